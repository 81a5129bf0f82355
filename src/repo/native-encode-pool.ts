import { availableParallelism } from 'node:os';
import { LifeboatError } from '../errors.js';
import { nativeAddon } from '../util/native.js';
import type { MasterKey } from './crypto.js';
import type { Compression } from './pack.js';
import { superFeatures, superFeaturesAsync } from './sketch.js';
import { SKETCH_MIN } from './codec.js';

/**
 * The write path's encode (compress + seal) as WorkerPool's encode worker does it (worker.ts
 * encode / encodeBatch: codec.ts BlobCodec.encode), but in C (native/encode.c, in the zdelta
 * addon) in libuv work items on the main isolate: no encode worker thread (its V8 heap, its
 * start-up, the structured-clone round trips), and up to `size` jobs on as many cores at once
 * where the single worker of a two-core machine ran them one after the other. The compression
 * choice, the compressed payload and the sealed format are those of the JavaScript (tests compare
 * them blob for blob); only the nonces differ, random either way. The resemblance sketch of a
 * compressible blob is the C sketch of native/bytes.c (on the pool for a large blob), as the
 * main thread computes it for the delta search. The buffers handed in are held by the addon
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
    cb: (results: Array<[Buffer, number, Buffer | undefined] | string>) => void,
  ): void;
}

/** Item flags (native/encode.c). */
const F_ID = 1;
const F_NO_ZDELTA = 2;

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

  private run(data: Uint8Array[], dicts: Array<Uint8Array | undefined>, withId: boolean): Promise<Array<[Buffer, number, Buffer | undefined] | string>> {
    const flags = new Uint8Array(data.length).fill((withId ? F_ID : 0) | (process.env.LIFEBOAT_NO_ZDELTA === '1' ? F_NO_ZDELTA : 0));
    this.inflight++;
    return new Promise((resolve, reject) => {
      try {
        this.addon.encRun(this.ctx, data, dicts, flags, (r) => {
          this.inflight--;
          if (!Array.isArray(r) || r.length !== data.length) reject(new LifeboatError('encoder returned a malformed result'));
          else resolve(r);
        });
      } catch (err) {
        this.inflight--;
        reject(err as Error);
      }
    });
  }

  /** One result: the sketch (for data zstd could shrink, as the worker does) added. */
  private async finish(data: Uint8Array, r: [Buffer, number, Buffer | undefined] | string, sketch: boolean): Promise<EncodeResult | Error> {
    if (typeof r === 'string') return new LifeboatError(`encoding failed: ${r}`);
    const out: EncodeResult = { sealed: r[0], compression: r[1] as Compression };
    if (r[2]) out.id = r[2].toString('hex');
    if (sketch && out.compression !== 0) out.sf = (data.length >= SKETCH_MIN ? await superFeaturesAsync(data) : undefined) ?? superFeatures(data);
    return out;
  }

  /** Compress + seal one blob, with `dict` (its base's plaintext) a delta against it when that is smaller. */
  async encode(data: Buffer, dict?: Buffer, sketch = false): Promise<EncodeResult> {
    const [r] = await this.run([data], [dict], false);
    const out = await this.finish(data, r!, sketch);
    if (out instanceof Error) throw out;
    return out;
  }

  /** Compress + seal many small blobs in one job (no dictionaries); one result per item, in order, an error for an item that failed. `withId`: each blob's keyed id too. */
  async encodeBatch(items: Array<{ data: Buffer; sketch: boolean }>, withId = false): Promise<Array<EncodeResult | Error>> {
    const data = items.map((it) => it.data);
    const r = await this.run(data, new Array<undefined>(items.length).fill(undefined), withId);
    return Promise.all(r.map((x, i) => this.finish(data[i]!, x, items[i]!.sketch)));
  }

  async close(): Promise<void> {
    // the work items hold their own references; nothing to stop
  }
}
