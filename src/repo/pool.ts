import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { IntegrityError, LifeboatError } from '../errors.js';
import { type Compression, MAX_TREE_BLOB } from './pack.js';
import type { MasterKey } from './crypto.js';

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

/**
 * A small pool of worker threads for blob encoding/decoding. Buffers handed to
 * encode() are transferred (zero-copy) to the worker: the caller must not use
 * them afterwards. Workers are unref'ed while idle so they never keep the
 * process alive on their own.
 */
export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending & { w: number }>();
  private seq = 0;
  private inflight = 0;
  private closed = false;
  private respawns = 0;
  private broken: string | undefined;

  constructor(
    private readonly key: MasterKey,
    private readonly level: number,
    size = Number(process.env.LIFEBOAT_WORKERS) || Math.max(1, Math.min(4, availableParallelism() - 1)),
  ) {
    for (let i = 0; i < size; i++) {
      this.workers.push(this.spawn(i));
      this.load.push(0);
    }
  }

  private spawn(i: number): Worker {
    const w = new Worker(new URL('./worker.js', import.meta.url), {
      workerData: { encKey: new Uint8Array(this.key.encKey), idKey: new Uint8Array(this.key.idKey), level: this.level },
    });
    w.on('message', (m: { seq: number; error?: { message: string; name?: string } }) => this.onMessage(i, m));
    w.on('error', (err) => this.failWorker(i, w, err));
    w.on('exit', (code) => {
      if (!this.closed) this.failWorker(i, w, new Error(`exited with code ${code}`));
    });
    if (this.inflight === 0) w.unref();
    return w;
  }

  get size(): number {
    return this.workers.length;
  }

  private onMessage(i: number, m: { seq: number; error?: { message: string; name?: string } }): void {
    const p = this.pending.get(m.seq);
    if (!p) return;
    this.pending.delete(m.seq);
    this.load[i]!--;
    if (--this.inflight === 0) for (const w of this.workers) w.unref();
    if (m.error) {
      p.reject(m.error.name === 'IntegrityError' ? new IntegrityError(m.error.message) : new LifeboatError(m.error.message));
    } else p.resolve(m);
  }

  /**
   * A worker died (e.g. out of memory): fail only the jobs it held, and replace
   * it so later jobs are not posted to a dead thread (they would wait forever).
   */
  private failWorker(i: number, w: Worker, err: Error): void {
    if (this.workers[i] !== w) return; // already replaced ('error' is followed by 'exit')
    for (const [seq, p] of this.pending) {
      if (p.w !== i) continue;
      this.pending.delete(seq);
      --this.inflight;
      p.reject(new LifeboatError(`worker thread failed: ${err.message}`));
    }
    this.load[i] = 0;
    if (this.closed) return;
    if (++this.respawns > 16) {
      // Workers keep dying: stop replacing them; later jobs fail at once.
      this.broken = `worker threads keep failing (last: ${err.message})`;
      return;
    }
    this.workers[i] = this.spawn(i);
    if (this.inflight === 0) for (const x of this.workers) x.unref();
  }

  private post<T>(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> {
    if (this.closed) return Promise.reject(new LifeboatError('worker pool is closed'));
    if (this.broken) return Promise.reject(new LifeboatError(this.broken));
    let wi = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[wi]!) wi = i;
    const seq = ++this.seq;
    this.load[wi]!++;
    if (this.inflight++ === 0) for (const w of this.workers) w.ref();
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, w: wi });
      this.workers[wi]!.postMessage({ seq, ...msg }, transfer);
    });
  }

  /** Compress + seal. `data` is transferred when it owns its whole ArrayBuffer. */
  async encode(data: Buffer, dict?: Buffer, sketch = false): Promise<{ sealed: Buffer; compression: Compression; sf?: number[] }> {
    const transfer = ownsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
    const r = await this.post<{ sealed: Uint8Array; compression: Compression; sf?: number[] }>({ op: 'encode', data, dict, sketch }, transfer);
    return { sealed: Buffer.from(r.sealed.buffer, r.sealed.byteOffset, r.sealed.length), compression: r.compression, ...(r.sf ? { sf: r.sf } : {}) };
  }

  /** Compute a blob's resemblance sketch off the main thread; the buffer travels there and back without copies. */
  async sketch(data: Buffer): Promise<{ sf: number[]; data: Buffer }> {
    const transfer = ownsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
    const r = await this.post<{ sf: number[]; data: Uint8Array }>({ op: 'sketch', data }, transfer);
    return { sf: r.sf, data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length) };
  }

  async decode(
    sealed: Buffer,
    compression: Compression,
    rawLength: number,
    what: string,
    dict?: Buffer,
  ): Promise<{ data: Buffer; id: string }> {
    if (!(rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${what}: rawLength ${rawLength} exceeds the format maximum`);
    const transfer = ownsBuffer(sealed) ? [sealed.buffer as ArrayBuffer] : [];
    const r = await this.post<{ data: Uint8Array; id: string }>({ op: 'decode', sealed, compression, rawLength, what, dict }, transfer);
    return { data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length), id: r.id };
  }

  /** Decode and return only the keyed hash of the plaintext (for check --read-data). */
  async verify(sealed: Buffer, compression: Compression, rawLength: number, what: string, dict?: Buffer): Promise<string> {
    if (!(rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${what}: rawLength ${rawLength} exceeds the format maximum`);
    const transfer = ownsBuffer(sealed) ? [sealed.buffer as ArrayBuffer] : [];
    const r = await this.post<{ id: string }>({ op: 'decode', sealed, compression, rawLength, what, dict, idOnly: true }, transfer);
    return r.id;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function ownsBuffer(b: Buffer): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer);
}
