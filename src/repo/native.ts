import { createRequire } from 'node:module';

/**
 * The byte loops in C (native/bytes.c, built by `npm install` with the time helper):
 * the chunker's cut search and the resemblance sketch, bit-identical to the
 * JavaScript in chunker.ts and sketch.ts, which stays the fallback when the addon
 * did not build or LIFEBOAT_NO_NATIVE=1 is set (tests and comparisons).
 * Loaded once per thread (the addon is context-aware: worker threads load it too).
 */
export interface BytesNative {
  /** st = [start, len, scanned, h, min, avg, max, maskS, maskL]; returns the cut or 0 and writes back st[2], st[3]. */
  findCut(buf: Uint8Array, gear: Int32Array, st: Int32Array): number;
  /** The 12 features into out; false when no position was sampled. */
  sketch(data: Uint8Array, out: Uint32Array): boolean;
}

let mod: BytesNative | null | undefined;

/** The addon, or undefined (not built, or LIFEBOAT_NO_NATIVE=1). */
export function bytesNative(): BytesNative | undefined {
  if (mod === undefined) {
    mod = null;
    if (process.env.LIFEBOAT_NO_NATIVE !== '1') {
      try {
        mod = createRequire(import.meta.url)(new URL('../../../native/build/Release/bytes.node', import.meta.url).pathname) as BytesNative;
      } catch {
        mod = null;
      }
    }
  }
  return mod ?? undefined;
}
