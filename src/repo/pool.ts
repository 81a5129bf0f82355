import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { IntegrityError, LifeboatError } from '../errors.js';
import { type Compression, MAX_TREE_BLOB } from './pack.js';
import type { MasterKey } from './crypto.js';
import type { ChunkBlob, ChunkResult } from './chunk-verify.js';
import type { RangeBlob, RangeResult } from './chunk-decode.js';
import type { ChainMsg } from './chain.js';
import { ByteBudget } from '../util/sync.js';

interface Pending {
  resolve: (v: any) => void;
  reject: (e: Error) => void;
}

/**
 * A small pool of worker threads for blob encoding/decoding. Buffers handed to
 * encode() are transferred (zero-copy) to the worker: the caller must not use
 * them afterwards. Workers are unref'ed while idle so they never keep the
 * process alive on their own. A worker is started only when a job finds
 * every started one busy: a command that encodes or decodes nothing (an
 * unchanged backup, listing) starts none (each costs ~0.1-0.2 CPU s of
 * start-up and ~10 MB of RSS).
 */
export class WorkerPool {
  /** Up to `size` slots; undefined until the slot's worker is first needed. */
  private readonly workers: Array<Worker | undefined> = [];
  private readonly load: number[] = [];
  private readonly pending = new Map<number, Pending & { w: number }>();
  private seq = 0;
  private inflight = 0;
  private closed = false;
  private respawns = 0;
  private broken: string | undefined;
  /**
   * Bytes of decode jobs (sealed input, dictionary and output) sent and not yet
   * answered: a restore's read-ahead and delta chains would otherwise queue
   * dozens of jobs, each holding its copy of a dictionary, in the worker's
   * message queue. A few jobs per worker keep it busy.
   */
  private budgetWaiting = 0;
  private readonly drained: Array<() => void> = [];
  private closing = false;
  private readonly decodeBudget = new ByteBudget((Number(process.env.LIFEBOAT_DECODE_QUEUE_MB) || 12) * 1024 * 1024);

  constructor(
    private readonly key: MasterKey,
    private readonly level: number,
    size = Number(process.env.LIFEBOAT_WORKERS) || Math.max(1, Math.min(4, availableParallelism() - 1)),
    /**
     * The worker script: worker.js (encode and decode) or decode-worker.js (read path) next to
     * this file, or the URL of another script that answers the same protocol (see call()).
     */
    private readonly script: string | URL = 'worker.js',
    /** worker.js only: a module whose ops these workers answer too (see worker.ts). */
    readonly extension?: URL,
  ) {
    for (let i = 0; i < size; i++) {
      this.workers.push(undefined);
      this.load.push(0);
    }
  }

  /** Jobs sent to the workers and not yet answered. */
  get jobsInFlight(): number {
    return this.inflight;
  }

  /** Workers started so far (at most `size`). */
  get started(): number {
    return this.workers.filter((w) => w !== undefined).length;
  }

  private spawn(i: number): Worker {
    const w = new Worker(typeof this.script === 'string' ? new URL(`./${this.script}`, import.meta.url) : this.script, {
      workerData: {
        encKey: new Uint8Array(this.key.encKey),
        idKey: new Uint8Array(this.key.idKey),
        level: this.level,
        ...(this.extension ? { extension: this.extension.href } : {}),
      },
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

  /** A job of worker `i` is over (answered, or never sent): idle workers do not keep the process alive. */
  private jobDone(i: number): void {
    this.load[i]!--;
    if (--this.inflight === 0) for (const w of this.workers) w?.unref();
  }

  private onMessage(i: number, m: { seq: number; error?: { message: string; name?: string } }): void {
    const p = this.pending.get(m.seq);
    if (!p) return;
    this.pending.delete(m.seq);
    this.jobDone(i);
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
    if (this.inflight === 0) for (const x of this.workers) x?.unref();
  }

  private post<T>(msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> {
    if (this.closed) return Promise.reject(new LifeboatError('worker pool is closed'));
    if (this.broken) return Promise.reject(new LifeboatError(this.broken));
    // the least loaded started worker; a new one only if every started one is busy
    let wi = -1;
    for (let i = 0; i < this.workers.length; i++) if (this.workers[i] && (wi < 0 || this.load[i]! < this.load[wi]!)) wi = i;
    if (wi < 0 || this.load[wi]! > 0) {
      const free = this.workers.indexOf(undefined);
      if (free >= 0) {
        this.workers[free] = this.spawn(free);
        wi = free;
      }
    }
    const seq = ++this.seq;
    this.load[wi]!++;
    if (this.inflight++ === 0) for (const w of this.workers) w?.ref();
    // Node drops a message whose transfer list holds an ArrayBuffer already transferred (detached: byteLength 0)
    // without a word, and the job would wait forever; left out of the list, such a buffer makes postMessage throw
    // (an empty buffer is as well cloned as transferred)
    const list = transfer.filter((ab) => ab.byteLength > 0);
    return new Promise<T>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, w: wi });
      try {
        this.workers[wi]!.postMessage({ seq, ...msg }, list);
      } catch (err) {
        this.pending.delete(seq);
        this.jobDone(wi);
        reject(new LifeboatError(`the worker job ${String(msg.op)} could not be handed to a worker thread: ${(err as Error).message}`));
      }
    });
  }

  /**
   * A job of a worker script of the caller's own: `msg` (with its `op`) is posted
   * with `seq`; the worker answers { seq, ... } or { seq, error }. A worker
   * script ends when it receives { op: 'close' } (see worker.ts).
   */
  call<T>(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> {
    return this.post<T>(msg, transfer);
  }

  /** Compress + seal. `data` is transferred when it owns its whole ArrayBuffer. */
  async encode(
    data: Buffer,
    dict?: Buffer,
    sketch = false,
    /** The dictionary as a delta chain the worker decodes (read-ops.ts decodeChain) and checks against `base`, its last blob's id; its sealed blobs are transferred. */
    from?: { chain: ChainMsg; base: string },
  ): Promise<{ sealed: Buffer; compression: Compression; sf?: number[] }> {
    const transfer = ownsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
    if (from) for (const x of from.chain.sealed) if (ownsBuffer(x as Buffer) && !transfer.includes(x.buffer as ArrayBuffer)) transfer.push(x.buffer as ArrayBuffer);
    const r = await this.post<{ sealed: Uint8Array; compression: Compression; sf?: number[] }>({ op: 'encode', data, dict, sketch, ...(from ? { chain: from.chain, base: from.base } : {}) }, transfer);
    return { sealed: Buffer.from(r.sealed.buffer, r.sealed.byteOffset, r.sealed.length), compression: r.compression, ...(r.sf ? { sf: r.sf } : {}) };
  }

  /**
   * Compress + seal many small blobs in one message (no dictionaries). Buffers
   * that own their memory are transferred: the caller must not use them afterwards.
   * Resolves with one result per item, in order; an item that failed carries an error.
   */
  async encodeBatch(items: Array<{ data: Buffer; sketch: boolean }>): Promise<Array<{ sealed: Buffer; compression: Compression; sf?: number[] } | Error>> {
    const transfer = new Set<ArrayBuffer>();
    for (const it of items) if (ownsBuffer(it.data)) transfer.add(it.data.buffer as ArrayBuffer);
    const r = await this.post<{ results: Array<{ sealed?: Uint8Array; compression?: Compression; sf?: number[]; error?: { message: string; name?: string } }> }>(
      { op: 'encodeBatch', items },
      [...transfer],
    );
    if (!Array.isArray(r.results) || r.results.length !== items.length) throw new LifeboatError('worker returned a malformed batch');
    return r.results.map((x) =>
      x.error || !x.sealed
        ? new LifeboatError(`encoding failed: ${x.error?.message ?? 'no result'}`)
        : { sealed: Buffer.from(x.sealed.buffer, x.sealed.byteOffset, x.sealed.length), compression: x.compression!, ...(x.sf ? { sf: x.sf } : {}) },
    );
  }

  /** Compute a blob's resemblance sketch off the main thread; the buffer travels there and back without copies. */
  async sketch(data: Buffer): Promise<{ sf: number[]; data: Buffer }> {
    const transfer = ownsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
    const r = await this.post<{ sf: number[]; data: Uint8Array }>({ op: 'sketch', data }, transfer);
    return { sf: r.sf, data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length) };
  }

  /**
   * A read job counted in the decode byte budget: waits (counted in
   * budgetWaiting, which close() drains) until `cost` bytes fit, posts the
   * job and gives the bytes back when it settles.
   */
  private async postBudgeted<T>(cost: number, msg: Record<string, unknown>, transfer: ArrayBuffer[]): Promise<T> {
    if (this.closing) throw new LifeboatError('worker pool is closed');
    this.budgetWaiting++;
    try {
      await this.decodeBudget.acquire(cost);
    } finally {
      if (--this.budgetWaiting === 0) for (const r of this.drained.splice(0)) r();
    }
    try {
      return await this.post<T>(msg, transfer);
    } finally {
      this.decodeBudget.release(cost);
    }
  }

  /**
   * decodeChain (read-ops.ts) in a worker: the chain's sealed blobs (root
   * first) are transferred when they own their memory; the last plaintext comes back transferred.
   */
  async decodeChain(msg: ChainMsg): Promise<{ data: Buffer; id?: string }> {
    const top = msg.rawLength[msg.rawLength.length - 1]!;
    if (!msg.rawLength.every((r) => r <= MAX_TREE_BLOB)) throw new IntegrityError(`${msg.what[msg.what.length - 1]}: rawLength exceeds the format maximum`);
    const transfer = msg.sealed.filter((x) => ownsBuffer(x as Buffer)).map((x) => x.buffer as ArrayBuffer);
    const cost = msg.sealed.reduce((a, x) => a + x.length, 0) + top;
    const r = await this.postBudgeted<{ data: Uint8Array; id?: string }>(cost, { op: 'decodeChain', ...msg }, [...new Set(transfer)]);
    return { data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length), ...(r.id ? { id: r.id } : {}) };
  }

  async decode(
    sealed: Buffer,
    compression: Compression,
    rawLength: number,
    what: string,
    dict?: Buffer | Buffer[],
    opts: { hash?: boolean; shared?: boolean } = {},
  ): Promise<{ data: Buffer; id?: string }> {
    if (!(rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${what}: rawLength ${rawLength} exceeds the format maximum`);
    const transfer = ownsBuffer(sealed) ? [sealed.buffer as ArrayBuffer] : [];
    // (both worker scripts answer decode alike: read-ops.ts) hash false skips hashing the plaintext;
    // shared: the plaintext comes back in a SharedArrayBuffer, so a cached delta base handed to
    // later decode jobs as their dictionary is shared with the worker, not copied per job
    const flags = { ...(opts.hash === false ? { noHash: true } : {}), ...(opts.shared ? { shared: true } : {}) };
    const cost = sealed.length + rawLength + (Array.isArray(dict) ? dict.reduce((a, d) => a + d.length, 0) : (dict?.length ?? 0));
    const r = await this.postBudgeted<{ data: Uint8Array; id?: string }>(cost, { op: 'decode', sealed, compression, rawLength, what, dict, ...flags }, transfer);
    return { data: Buffer.from(r.data.buffer, r.data.byteOffset, r.data.length), ...(r.id ? { id: r.id } : {}) };
  }

  /** Decode and return only the keyed hash of the plaintext (for check --read-data). */
  async verify(sealed: Buffer, compression: Compression, rawLength: number, what: string, dict?: Buffer): Promise<string> {
    if (!(rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${what}: rawLength ${rawLength} exceeds the format maximum`);
    const transfer = ownsBuffer(sealed) ? [sealed.buffer as ArrayBuffer] : [];
    const r = await this.post<{ id: string }>({ op: 'decode', sealed, compression, rawLength, what, dict, idOnly: true }, transfer);
    return r.id;
  }

  /**
   * Verify the blobs of one range of a pack in a worker (chunk-verify.ts): one
   * message for all of them. `chunk` travels there and back without copies
   * when it owns its memory, or when `whole` says its ArrayBuffer is the
   * caller's alone (a reused buffer the range fills only in part): the caller
   * must not use it afterwards, and gets the memory back as `returned` (to
   * reuse). The sealed bytes of the blobs' base chains are transferred too
   * when they own their memory. One result per blob, in order.
   */
  async verifyChunk(chunk: Buffer, blobs: ChunkBlob[], whole = false): Promise<{ results: ChunkResult[]; returned?: ArrayBuffer }> {
    const transfer = whole || ownsBuffer(chunk) ? [chunk.buffer as ArrayBuffer] : [];
    // a delta's base chain (sealed bytes read for this job alone) goes along without copies too
    for (const b of blobs) for (const x of b.chains?.flatMap((c) => c.sealed) ?? []) if (ownsBuffer(x as Buffer) && !transfer.includes(x.buffer as ArrayBuffer)) transfer.push(x.buffer as ArrayBuffer);
    const r = await this.post<{ results: ChunkResult[]; chunk?: Uint8Array }>({ op: 'verifyChunk', chunk, blobs }, transfer);
    if (!Array.isArray(r.results) || r.results.length !== blobs.length) throw new LifeboatError('worker returned a malformed result');
    return { results: r.results, ...(r.chunk ? { returned: r.chunk.buffer as ArrayBuffer } : {}) };
  }

  /**
   * Decode the full blobs of one ranged read of a pack in a worker
   * (chunk-decode.ts): one message; `chunk` is transferred when it owns its
   * memory, and so is `slab` (memory to decode into, see SlabPool: the caller
   * must not use it afterwards). Answers, per blob in order, its keyed hash
   * and the place of its plaintext in the returned slab, or its error. Counted in the decode
   * byte budget like decode().
   */
  async decodeRange(chunk: Buffer, blobs: RangeBlob[], slab?: ArrayBuffer, slabBytes = 0): Promise<{ results: RangeResult[]; slab: ArrayBuffer }> {
    let raw = 0;
    for (const b of blobs) {
      if (!(Number.isSafeInteger(b.rawLength) && b.rawLength >= 0 && b.rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${b.what}: rawLength ${b.rawLength} exceeds the format maximum`);
      raw += b.rawLength;
    }
    const cost = chunk.length + raw;
    const transfer = ownsBuffer(chunk) ? [chunk.buffer as ArrayBuffer] : [];
    if (slab && slab !== chunk.buffer) transfer.push(slab);
    const r = await this.postBudgeted<{ results: RangeResult[]; slab: ArrayBuffer }>(cost, { op: 'decodeRange', chunk, blobs, ...(slab ? { slab } : {}), slabBytes }, transfer);
    if (!Array.isArray(r.results) || r.results.length !== blobs.length || !(r.slab instanceof ArrayBuffer)) throw new LifeboatError('worker returned a malformed result');
    return r;
  }

  /**
   * Let every worker finish the jobs it was given, then end it. terminate()
   * is only the fallback: terminating a thread in the middle of a job (a
   * restore that failed leaves its read-ahead running) can leave the 'exit'
   * event undelivered, and since an idle worker does not keep the event loop
   * alive, the loop could drain with close() still pending and the caller's
   * next steps never run. The wait is bounded.
   */
  async close(): Promise<void> {
    // decodes asked for before close() still run: wait for those held back by the byte budget
    this.closing = true;
    while (this.budgetWaiting > 0) await new Promise<void>((r) => this.drained.push(r));
    this.closed = true;
    await Promise.all(this.workers.map((w) => (w ? stopWorker(w) : undefined)));
  }
}

const STOP_GRACE_MS = 10_000;

function stopWorker(w: Worker): Promise<void> {
  if (w.threadId < 0) return Promise.resolve(); // already exited
  return new Promise<void>((resolve) => {
    let fallback: NodeJS.Timeout | undefined;
    let last: NodeJS.Timeout | undefined;
    const done = () => {
      clearTimeout(fallback);
      clearTimeout(last);
      resolve();
    };
    w.once('exit', done);
    w.ref(); // keep the process alive until the thread has ended
    fallback = setTimeout(() => {
      w.terminate().catch(() => {});
      last = setTimeout(done, 2_000); // even if 'exit' never comes
    }, STOP_GRACE_MS);
    w.postMessage({ op: 'close' });
  });
}

/** True when `b` is the whole of its (non-shared) ArrayBuffer: such a buffer can be transferred to a worker (or freed) without touching another view's bytes. */
export function ownsBuffer(b: Uint8Array): boolean {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer);
}
