import { createHash, type Hash } from 'node:crypto';
import { nativeAddon } from './native.js';

/**
 * SHA-256 of a stream computed beside the main thread (issue 18, branch dump6):
 * a stream backup hashes every byte it reads (the snapshot's `stream` record), on
 * the main thread that also chunks, hashes and sketches every chunk and is the
 * bound of a daily dump's backup. With native/hash.c each update runs on the libuv
 * thread pool, in order, one at a time; without it (not built, or
 * LIFEBOAT_NO_NATIVE=1) node's hash on this thread, the same digest.
 *
 * The pieces given to update() are read there later: they must not be changed
 * afterwards (a stream's chunks are not: each read fills a new buffer) nor
 * transferred to another thread.
 */
interface HashAddon {
  create(): object;
  update(ctx: object, buf: Uint8Array | Uint8Array[], cb: (err: Error | null) => void): void;
  digest(ctx: object): Buffer;
  hmac(key: Uint8Array, buf: Uint8Array, cb: (err: Error | null, mac: Buffer | null) => void): void;
}

function hashAddon(): HashAddon | undefined {
  return nativeAddon<HashAddon>('hash');
}

/**
 * Pieces are handed to the thread pool this many bytes at a time (one job hashes them all, in
 * order): a pipe delivers 64 KiB pieces, and a job per piece cost more main-thread time (the
 * job's round trip) than hashing the piece here (measured on a daily dump, branch dump6).
 */
const BATCH_BYTES = 256 * 1024;
const BATCH_PIECES = 1024; // native/hash.c MAX_PARTS

export class StreamSha256 {
  private readonly js: Hash | undefined;
  private readonly ctx: object | undefined;
  private readonly nat: HashAddon | undefined;
  /** Pieces not yet handed to the pool, and their bytes. */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private running = false;
  private error: Error | undefined;
  /** Bytes given to update() and not yet hashed. */
  queued = 0;
  /** Bytes given to update() so far, and of those hashed. */
  private given = 0;
  private hashed = 0;
  private waiters: Array<{ below: number; resolve: () => void; reject: (e: Error) => void }> = [];
  private flushWaiters: Array<{ mark: number; resolve: () => void; reject: (e: Error) => void }> = [];

  constructor(opts: { native?: boolean } = {}) {
    this.nat = opts.native === false ? undefined : hashAddon();
    if (this.nat) this.ctx = this.nat.create();
    else this.js = createHash('sha256');
  }

  /** True when the hashing runs off this thread (native/hash.c). */
  get offThread(): boolean {
    return this.nat !== undefined;
  }

  update(b: Uint8Array): void {
    if (this.js) {
      this.js.update(b);
      this.given += b.length;
      this.hashed += b.length;
      return;
    }
    if (b.length === 0) return;
    this.pending.push(b);
    this.pendingBytes += b.length;
    this.queued += b.length;
    this.given += b.length;
    this.pump();
  }

  /** Hand the pending pieces to the pool: a batch's worth, or all of them when someone waits. */
  private pump(): void {
    if (this.running || this.error || this.pending.length === 0) return;
    if (this.pendingBytes < BATCH_BYTES && this.pending.length < BATCH_PIECES && this.waiters.length === 0 && this.flushWaiters.length === 0) return;
    const parts = this.pending.length <= BATCH_PIECES ? this.pending : this.pending.slice(0, BATCH_PIECES);
    this.pending = this.pending.length <= BATCH_PIECES ? [] : this.pending.slice(BATCH_PIECES);
    let bytes = 0;
    for (const p of parts) bytes += p.length;
    this.pendingBytes -= bytes;
    this.running = true;
    try {
      this.nat!.update(this.ctx!, parts, (err) => {
        this.running = false;
        this.queued -= bytes;
        this.hashed += bytes;
        if (err) this.fail(err);
        else {
          this.wake();
          this.pump();
        }
      });
    } catch (err) {
      this.running = false;
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    this.error = err;
    for (const w of this.waiters) w.reject(err);
    for (const w of this.flushWaiters) w.reject(err);
    this.waiters = [];
    this.flushWaiters = [];
  }

  private wake(): void {
    if (this.flushWaiters.length > 0) {
      const keep: typeof this.flushWaiters = [];
      for (const w of this.flushWaiters) {
        if (this.hashed >= w.mark) w.resolve();
        else keep.push(w);
      }
      this.flushWaiters = keep;
    }
    if (this.waiters.length === 0) return;
    const keep: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.queued <= w.below) w.resolve();
      else keep.push(w);
    }
    this.waiters = keep;
  }

  /** Bytes hashed so far, in the order given: a piece that ends at or before this many bytes is done with. */
  get hashedBytes(): number {
    return this.hashed;
  }

  /** Resolves once at most `bytes` are waiting to be hashed (the caller's bound on the pieces held). */
  below(bytes: number): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    if (this.queued <= bytes) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ below: bytes, resolve, reject });
      this.pump();
    });
  }

  /**
   * Resolves once every piece given to update() so far is hashed: from then on those pieces may be
   * changed, reused or freed (later pieces need not be hashed yet). Rejects when hashing failed.
   */
  flushed(): Promise<void> {
    if (this.error) return Promise.reject(this.error);
    const mark = this.given;
    if (this.js || this.hashed >= mark) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.flushWaiters.push({ mark, resolve, reject });
      this.pump();
    });
  }

  /** The hex digest, once every piece is hashed. */
  async digest(): Promise<string> {
    if (this.js) return this.js.digest('hex');
    await this.below(0);
    return this.nat!.digest(this.ctx!).toString('hex');
  }
}

/**
 * HMAC-SHA-256 of `data` under `key` on the libuv thread pool (native/hash.c), or
 * undefined without the addon (the caller hashes on its own thread: the same MAC).
 * `key` and `data` are read there until the promise settles: change neither, nor
 * transfer them to another thread, meanwhile.
 */
export function hmacSha256Async(key: Uint8Array, data: Uint8Array): Promise<Buffer> | undefined {
  const nat = hashAddon();
  if (!nat) return undefined;
  return new Promise((resolve, reject) => {
    nat.hmac(key, data, (err, mac) => (err || !mac ? reject(err ?? new Error('hash: no MAC')) : resolve(mac)));
  });
}
