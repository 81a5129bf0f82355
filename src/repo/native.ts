import { nativeAddon } from '../util/native.js';

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
  /** sketch on the libuv thread pool: the features, or null when no position was sampled; data left alone until cb. */
  sketchAsync(data: Uint8Array, cb: (err: Error | null, features: number[] | null) => void): void;
}

/** The addon, or undefined (not built, or LIFEBOAT_NO_NATIVE=1). */
export function bytesNative(): BytesNative | undefined {
  return nativeAddon<BytesNative>('bytes');
}

/**
 * Delta compression in C (native/zdelta.c): a zstd frame of `data` against `base`
 * as raw-content dictionary, the frame every reader decodes (codec.ts decode);
 * BlobCodec.encode falls back to zstd's own match finder (zstd-napi) when the
 * addon did not build, LIFEBOAT_NO_NATIVE=1 or LIFEBOAT_NO_ZDELTA=1 is set.
 */
export interface ZdeltaNative {
  /** The frame's length in out (> 0), 0 when not smaller than out, -1 when declined; info[0] = bytes matched. */
  delta(out: Uint8Array, data: Uint8Array, base: Uint8Array, level: number, info: Float64Array): number;
}

/** The delta addon, or undefined (not built, LIFEBOAT_NO_NATIVE=1 or LIFEBOAT_NO_ZDELTA=1). */
export function zdeltaNative(): ZdeltaNative | undefined {
  return process.env.LIFEBOAT_NO_ZDELTA === '1' ? undefined : nativeAddon<ZdeltaNative>('zdelta');
}

/**
 * scrypt's ROMix in C with a quarter of the table (native/kdf.c): the same keys as
 * node's crypto.scrypt with 8 MiB instead of 32 at N = 2^15, r = 8, in about the
 * same time. crypto.ts deriveKey falls back to node's scrypt when the addon did not
 * build or LIFEBOAT_NO_NATIVE=1 is set.
 */
export interface KdfNative {
  /** ROMix (every k-th block kept) of each 128*r-byte block of b; b itself is not changed. */
  romix(b: Uint8Array, N: number, r: number, k: number): Promise<Buffer>;
}

/** The scrypt addon, or undefined (not built, or LIFEBOAT_NO_NATIVE=1). */
export function kdfNative(): KdfNative | undefined {
  return nativeAddon<KdfNative>('kdf');
}
