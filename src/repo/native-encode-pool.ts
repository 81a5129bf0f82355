import { availableParallelism } from 'node:os';
import { LifeboatError } from '../errors.js';
import { nativeAddon } from '../util/native.js';
import type { MasterKey } from './crypto.js';
import type { Compression } from './pack.js';

/**
 * The write path's encode (compress + seal) as WorkerPool's encode worker does it (worker.ts
 * encode / encodeBatch: codec.ts BlobCodec.encode), but in C (native/encode.c, in the zdelta
 * addon) in libuv work items on the main isolate: no encode worker thread (its V8 heap, its
 * start-up, the structured-clone round trips), and up to `size` jobs on as many cores at once
 * where the single worker of a two-core machine ran them one after the other. The compression
 * choice, the compressed payload and the sealed format are those of the JavaScript (tests compare
 * them blob for blob); only the nonces differ, random either way. The resemblance sketch of a
 * compressible blob (from SKETCH_MIN bytes) is computed in the same work item (native/sketch-core.h,
 * the loop of bytes.c). Small files are read there too (readFiles: small-files-worker.ts in C).
 * The buffers handed in are held by the addon
 * until the job settles and never written: unlike WorkerPool (which transfers them) the caller's
 * buffers stay usable.
 */
export interface EncodeAddon {
  encOpen(encKey: Uint8Array, idKey: Uint8Array, level: number): unknown;
  encRun(
    ctx: unknown,
    data: Uint8Array[],
    dicts: Array<Uint8Array | undefined>,
    flags: Uint8Array,
    cb: (results: Array<RawResult | string>) => void,
  ): void;
  encFiles(ctx: unknown, paths: Uint8Array[], sizes: Float64Array, flags: Uint8Array, cb: (results: Array<RawFile | string | Buffer>) => void): void;
  /**
   * [sealed-output blocks kept for reuse, their bytes, outputs given a kept block, outputs given a new mapping,
   * the largest zstd context bytes an idle state holds, the largest C delta scratch an idle state holds,
   * the most C delta scratch any state held at once, the base hash tables the C delta built] (tests, measurements)
   */
  encStats(): number[];
}

type RawResult = [Buffer, number, string | undefined, number[] | undefined];
/** [1, errno, syscall] | [2] (grew) | [0, size, off, len, compression, id, xattr, sf]: the sealed blob at [off, off + len) of the batch's buffer (the last element) */
type RawFile = [1, number, string] | [2] | [0, number, number | undefined, number | undefined, number | undefined, string | undefined, number, number[] | undefined];

/** What readFiles reports for one file (small-files.ts maps it to a SmallFileRead). */
export type NativeFileRead =
  | { kind: 'error'; errno: number; syscall: string }
  | { kind: 'grew' }
  | { kind: 'ok'; size: number; blob?: { id: string; sealed: Buffer; compression: Compression; sf?: number[] }; xattrs: boolean };

/** Item flags (native/encode.c). */
const F_ID = 1;
const F_NO_ZDELTA = 2;
const F_SKETCH = 4;

/** The addon, or undefined (not built, LIFEBOAT_NO_NATIVE=1, or LIFEBOAT_NATIVE_ENCODE=0: the encode worker). */
export function encodeNative(): EncodeAddon | undefined {
  if (process.env.LIFEBOAT_NATIVE_ENCODE === '0') return undefined;
  const a = nativeAddon<EncodeAddon>('zdelta');
  return a && typeof a.encRun === 'function' ? a : undefined;
}

export interface EncodeResult {
  sealed: Buffer;
  compression: Compression;
  sf?: number[];
  /** The blob's keyed id (hex), when asked for. */
  id?: string;
}

export class NativeEncodePool {
  private readonly ctx: unknown;
  private inflight = 0;
  /** No worker thread is ever started (Repository.workersStarted). */
  readonly started = 0;
  readonly native = true;

  constructor(
    private readonly addon: EncodeAddon,
    key: MasterKey,
    level: number,
    /** Jobs the caller keeps in flight (Repository's batching sends a batch while fewer run). */
    readonly size = Number(process.env.LIFEBOAT_NATIVE_ENCODE_JOBS) || Math.max(1, Math.min(4, availableParallelism())),
  ) {
    this.ctx = addon.encOpen(key.encKey, key.idKey, level);
  }

  get jobsInFlight(): number {
    return this.inflight;
  }

  /** Jobs waiting for one of the `size` slots. */
  private readonly waiting: Array<() => void> = [];
  private running = 0;

  /**
   * One job of the addon, at most `size` at once: the rest wait here, so the encoder's states in C
   * stay as few (encode.c) and libuv's other threads stay free for file reads, stats and decodes.
   */
  private async call<T>(start: (cb: (r: T[]) => void) => void, n: number): Promise<T[]> {
    this.inflight++;
    try {
      if (this.running >= this.size) await new Promise<void>((r) => this.waiting.push(r));
      this.running++;
      try {
        return await new Promise<T[]>((resolve, reject) => {
          start((r) => {
            if (!Array.isArray(r) || r.length !== n) reject(new LifeboatError('encoder returned a malformed result'));
            else resolve(r);
          });
        });
      } finally {
        this.running--;
        this.waiting.shift()?.();
      }
    } finally {
      this.inflight--;
    }
  }

  private flags(n: number, withId: boolean, sketch: (i: number) => boolean): Uint8Array {
    const base = (withId ? F_ID : 0) | (process.env.LIFEBOAT_NO_ZDELTA === '1' ? F_NO_ZDELTA : 0);
    const f = new Uint8Array(n);
    for (let i = 0; i < n; i++) f[i] = base | (sketch(i) ? F_SKETCH : 0);
    return f;
  }

  /** One result of encRun. */
  private static result(r: RawResult | string): EncodeResult | Error {
    if (typeof r === 'string' || !Array.isArray(r) || !Buffer.isBuffer(r[0])) return new LifeboatError(`encoding failed: ${typeof r === 'string' ? r : 'malformed result'}`);
    const out: EncodeResult = { sealed: r[0], compression: r[1] as Compression };
    if (r[2]) out.id = r[2];
    if (r[3]) out.sf = r[3];
    return out;
  }

  /** Compress + seal one blob, with `dict` (its base's plaintext) a delta against it when that is smaller. */
  async encode(data: Buffer, dict?: Buffer, sketch = false): Promise<EncodeResult> {
    const flags = this.flags(1, false, () => sketch);
    const [r] = await this.call<RawResult | string>((cb) => this.addon.encRun(this.ctx, [data], [dict], flags, cb), 1);
    const out = NativeEncodePool.result(r!);
    if (out instanceof Error) throw out;
    return out;
  }

  /** Compress + seal many small blobs in one job (no dictionaries); one result per item, in order, an error for an item that failed. `withId`: each blob's keyed id too. */
  async encodeBatch(items: Array<{ data: Buffer; sketch: boolean }>, withId = false): Promise<Array<EncodeResult | Error>> {
    const data = items.map((it) => it.data);
    const flags = this.flags(items.length, withId, (i) => items[i]!.sketch);
    const r = await this.call<RawResult | string>((cb) => this.addon.encRun(this.ctx, data, new Array<undefined>(items.length).fill(undefined), flags, cb), items.length);
    return r.map((x) => NativeEncodePool.result(x));
  }

  /**
   * Read, hash, encode and sketch (from SKETCH_MIN bytes, compressible only) small files in one
   * work item, as small-files-worker.ts readOne does in the worker: `sizes` their lstat sizes (a
   * file found larger is reported as grown). `xattrs` true: the file has extended attributes (or
   * flistxattr could not tell), which the caller reads. A string: that file's encode failed.
   */
  async readFiles(paths: Buffer[], sizes: number[], sketchMin: number): Promise<Array<NativeFileRead | Error>> {
    if (paths.length === 0) return [];
    const flags = this.flags(paths.length, true, (i) => sizes[i]! >= sketchMin);
    const r = await this.call<RawFile | string | Buffer>((cb) => this.addon.encFiles(this.ctx, paths, Float64Array.from(sizes), flags, cb), paths.length + 1);
    const all = r[paths.length];
    if (!Buffer.isBuffer(all)) throw new LifeboatError('encoding failed: out of memory');
    return r.slice(0, paths.length).map((x): NativeFileRead | Error => {
      if (typeof x === 'string' || !Array.isArray(x)) return new LifeboatError(`encoding failed: ${typeof x === 'string' ? x : 'malformed result'}`);
      if (x[0] === 1) return { kind: 'error', errno: x[1], syscall: x[2] };
      if (x[0] === 2) return { kind: 'grew' };
      const [, size, off, len, comp, id, xattr, sf] = x;
      const out: NativeFileRead = { kind: 'ok', size, xattrs: xattr === 1 };
      if (off !== undefined && len !== undefined && id) out.blob = { id, sealed: all.subarray(off, off + len), compression: comp as Compression, ...(sf ? { sf } : {}) };
      return out;
    });
  }

  async close(): Promise<void> {
    // the work items hold their own references; nothing to stop
  }
}
