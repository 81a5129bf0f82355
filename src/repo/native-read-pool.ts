import { availableParallelism } from 'node:os';
import { IntegrityError, LifeboatError } from '../errors.js';
import { nativeAddon } from '../util/native.js';
import { freeLarge, largeBuffer } from '../util/huge-buffer.js';
import { ByteBudget } from '../util/sync.js';
import type { MasterKey } from './crypto.js';
import { type Compression, MAX_TREE_BLOB } from './pack.js';
import type { ChunkBlob, ChunkResult } from './chunk-verify.js';
import type { RangeBlob, RangeResult } from './chunk-decode.js';
import type { ChainMsg } from './chain.js';
import { decodeErrors } from './decode-errors.js';
import { ownsBuffer } from './pool.js';

/**
 * The read ops of Repository.readPool (restore, check --read-data, a delta chain's read), as
 * WorkerPool's decode worker answers them, but decoded in C (native/codec.c) in libuv work items
 * on the main isolate: no second V8 isolate (its heap and start-up), no structured-clone round
 * trips, and up to `size` jobs on as many cores at once. The same checks and the same outcome per
 * blob as codec.ts (BlobCodec.decodeInto / decodeTo / decode / decodeId): the C code returns codes,
 * turned into the JS path's errors here. The buffers handed in are held by the addon until the job
 * settles; a job's bytes count in the same decode byte budget as WorkerPool's.
 */
export interface ReadPool {
  readonly jobsInFlight: number;
  readonly started: number;
  /** True for this pool: the range verification of check needs no help on the main thread. */
  readonly native?: boolean;
  decodeRange(chunk: Buffer, blobs: RangeBlob[], slab?: ArrayBuffer, slabBytes?: number): Promise<{ results: RangeResult[]; slab: ArrayBuffer }>;
  decode(
    sealed: Buffer,
    compression: Compression,
    rawLength: number,
    what: string,
    dict?: Buffer | Buffer[],
    opts?: { hash?: boolean; shared?: boolean },
  ): Promise<{ data: Buffer; id?: string }>;
  decodeChain(msg: ChainMsg): Promise<{ data: Buffer; id?: string }>;
  /** `proven`: the ids of the bases' levels asked to be proven (ChainMsg.prove) whose hash was their id (the C codec only). */
  verifyChunk(chunk: Buffer, blobs: ChunkBlob[], whole?: boolean): Promise<{ results: ChunkResult[]; returned?: ArrayBuffer; proven?: string[] }>;
  close(): Promise<void>;
}

interface CodecAddon {
  open(encKey: Uint8Array, idKey: Uint8Array): unknown;
  run(ctx: unknown, bufs: Array<ArrayBuffer | ArrayBufferView>, steps: Float64Array, status: Float64Array, ids: Uint8Array, cb: (msgs: Array<string | undefined>) => void): void;
  detach(ab: ArrayBuffer): void;
  /**
   * [decoder states made, scratch buffers newly allocated, KEEP, SPARE, bytes of idle states' buffers given back,
   * bytes of spares given back (both after the idle time unused), the idle time in ms, idle states holding buffers]
   * (tests, measurements)
   */
  stats(): Float64Array;
  /** The idle time after which an idle decoder state's buffers and the spares are given back (tests: 0 .. 3600000 ms). */
  idleMs(ms: number): void;
}

/** The addon, or undefined (not built, LIFEBOAT_NO_NATIVE=1, or LIFEBOAT_NATIVE_READ=0: the decode worker). */
export function codecNative(): CodecAddon | undefined {
  return process.env.LIFEBOAT_NATIVE_READ === '0' ? undefined : nativeAddon<CodecAddon>('codec');
}

/**
 * Free a buffer's memory now instead of at a later collection (nothing may use it afterwards): one
 * made in huge pages is unmapped (util/huge-buffer.ts), any other detached through the C codec.
 * False when neither could be done (no codec): the collector frees it.
 */
export function freeNow(ab: ArrayBuffer, addon: CodecAddon | undefined = codecNative()): boolean {
  if (freeLarge(ab)) return true;
  if (!addon) return false;
  addon.detach(ab);
  return true;
}

const STEP = 12;
const S_OK = 0;
const S_RANGE = 1;
const S_SHORT = 2;
const S_AUTH = 3;
const S_DECOMP = 4;
const S_LENGTH = 5;
const S_NOBASE = 6;
const S_SKIPPED = 7;
const S_NOMEM = 8;
const S_OUTLEN = 9;
/** Step flags (native/codec.c). */
const F_HASH = 1;
const F_DECODE = 2;
/** A step joining a dictionary's part (comp), and that dictionary (dict index). */
const JOIN = -2;
const JOINED = -3;
/** The job's buffers (its decoder state's) for a chain's inner levels (dst and dict indexes). */
const LEVEL0 = -4;
const LEVEL1 = -5;

/** One step of a job (see native/codec.c). */
interface Step {
  src: number;
  off: number;
  len: number;
  comp: number;
  raw: number;
  dst: number;
  dstOff: number;
  dict: number;
  dictOff: number;
  dictLen: number;
  flags: number;
  group: number;
}

/** Steps and their buffers, built up for one job. */
class Plan {
  readonly bufs: Array<ArrayBuffer | ArrayBufferView> = [];
  readonly steps: Step[] = [];
  /** Per step: names the blob in its error. */
  readonly what: string[] = [];
  /** Steps hashed to prove a chain's level (ChainMsg.prove): step -> the id its hash must be. */
  readonly expect = new Map<number, string>();
  buf(b: ArrayBuffer | ArrayBufferView): number {
    const i = this.bufs.indexOf(b);
    if (i >= 0) return i;
    this.bufs.push(b);
    return this.bufs.length - 1;
  }
  /**
   * The dictionary of a delta: one buffer as it is; several (a two-base delta's bases) joined in
   * C, in the job's own buffer (comp -2 steps), not with Buffer.concat on this heap (a
   * restore of a daily dump joined ~2 MB per blob here: major GCs, +0.25 CPU s).
   */
  dict(d: Buffer | Buffer[], what: string, group = -1): { dict: number; dictOff: number; dictLen: number } {
    const parts = Array.isArray(d) ? (d.length === 0 ? [Buffer.alloc(0)] : d) : [d];
    if (parts.length === 1) return { dict: this.buf(parts[0]!), dictOff: 0, dictLen: parts[0]!.length };
    const total = parts.reduce((a, x) => a + x.length, 0);
    let at = 0;
    for (const x of parts) {
      this.add({ src: this.buf(x), off: 0, len: x.length, comp: JOIN, raw: total, dstOff: at, group }, what);
      at += x.length;
    }
    return { dict: JOINED, dictOff: 0, dictLen: total };
  }
  add(s: Partial<Step> & { raw: number; comp: number }, what: string): number {
    this.steps.push({ src: -1, off: 0, len: 0, dst: -1, dstOff: 0, dict: -1, dictOff: 0, dictLen: 0, flags: 0, group: -1, ...s });
    this.what.push(what);
    return this.steps.length - 1;
  }
}

/** The outcome of a job: per step its code, the number for its message, zstd's message, and the ids. */
interface Done {
  status: Float64Array;
  ids: Buffer;
  msgs: Array<string | undefined>;
}

/** The JS path's error for a step's code (codec.ts, crypto.ts open). */
function stepError(code: number, aux: number, msg: string | undefined, what: string, raw: number): Error {
  switch (code) {
    case S_SHORT:
      return decodeErrors.tooShort(what, aux);
    case S_AUTH:
      return decodeErrors.authFailed(what);
    case S_DECOMP:
      return decodeErrors.decompression(what, msg ?? 'unknown error', raw);
    case S_LENGTH:
      return decodeErrors.length(what, aux, raw);
    case S_NOBASE:
      return decodeErrors.noBase(what);
    case S_NOMEM:
      return new LifeboatError(`${what}: out of memory`);
    case S_OUTLEN:
      return new Error(`${what}: output of ${aux} bytes for ${raw}`);
    case S_RANGE:
      return new Error(`${what}: step out of range (internal error)`);
    default:
      return new Error(`${what}: ${msg ?? `decode failed (code ${code})`}`);
  }
}

function errorOf(e: Error): { message: string; name: string } {
  return { message: e.message, name: e.name };
}

export class NativeReadPool implements ReadPool {
  readonly native = true;
  private readonly ctx: unknown;
  private running = 0;
  private queued: Array<() => void> = [];
  private inflight = 0;
  private posted = 0;
  private closing = false;
  private readonly idle: Array<() => void> = [];
  private readonly budget = new ByteBudget((Number(process.env.LIFEBOAT_DECODE_QUEUE_MB) || 12) * 1024 * 1024);

  constructor(
    private readonly addon: CodecAddon,
    key: MasterKey,
    /** Jobs running in libuv's pool at once (the rest wait here: fs work shares that pool). */
    readonly size = Number(process.env.LIFEBOAT_NATIVE_READ_JOBS) || Math.max(1, Math.min(4, availableParallelism())),
  ) {
    this.ctx = addon.open(key.encKey, key.idKey);
  }

  get jobsInFlight(): number {
    return this.inflight;
  }

  /** Repository.runInline counts started workers: 1 once a job was posted here (no start-up to avoid). */
  get started(): number {
    return this.posted > 0 ? 1 : 0;
  }

  /** Run a plan in C, at most `size` at once. */
  private async run(plan: Plan): Promise<Done> {
    if (this.closing) throw new LifeboatError('read pool is closed');
    this.inflight++;
    this.posted++;
    try {
      if (this.running >= this.size) await new Promise<void>((go) => this.queued.push(go));
      this.running++;
      try {
        const n = plan.steps.length;
        const steps = new Float64Array(n * STEP);
        plan.steps.forEach((s, i) => {
          steps.set([s.src, s.off, s.len, s.comp, s.raw, s.dst, s.dstOff, s.dict, s.dictOff, s.dictLen, s.flags, s.group], i * STEP);
        });
        const status = new Float64Array(n * 2);
        const ids = Buffer.allocUnsafeSlow(Math.max(1, n * 32));
        const msgs = await new Promise<Array<string | undefined>>((resolve, reject) => {
          try {
            this.addon.run(this.ctx, plan.bufs, steps, status, ids, resolve);
          } catch (err) {
            reject(err as Error);
          }
        });
        return { status, ids, msgs };
      } finally {
        this.running--;
        this.queued.shift()?.();
      }
    } finally {
      if (--this.inflight === 0) for (const r of this.idle.splice(0)) r();
    }
  }

  /**
   * Free the memory of buffers the caller gave up (the sealed input of a decode, as WorkerPool
   * transferred them to its worker): at once, instead of at the next major GC of this heap, which
   * they would otherwise bring about (a day-3 dump restore: 12 mark-compacts instead of 1).
   */
  private drop(bufs: readonly Uint8Array[]): void {
    if (process.env.LIFEBOAT_NATIVE_DETACH === '0') return;
    for (const b of bufs) if (b.byteLength > 0 && ownsBuffer(b)) freeNow(b.buffer as ArrayBuffer, this.addon);
  }

  /** A step's error, or undefined when it succeeded; a skipped step takes the error of its group's failed step. */
  private failure(plan: Plan, d: Done, i: number): Error | undefined {
    const code = d.status[2 * i]!;
    if (code === S_OK) return undefined;
    if (code === S_SKIPPED) {
      const g = plan.steps[i]!.group;
      for (let k = 0; k < i; k++) if (plan.steps[k]!.group === g && d.status[2 * k] !== S_OK && d.status[2 * k] !== S_SKIPPED) return this.failure(plan, d, k);
      return new LifeboatError(`${plan.what[i]}: skipped (internal error)`);
    }
    return stepError(code, d.status[2 * i + 1]!, d.msgs[i], plan.what[i]!, plan.steps[i]!.raw);
  }

  private async budgeted<T>(cost: number, f: () => Promise<T>): Promise<T> {
    await this.budget.acquire(cost);
    try {
      return await f();
    } finally {
      this.budget.release(cost);
    }
  }

  /** chunk-decode.ts decodeRange: the plaintexts one after the other in the slab, each hashed. */
  async decodeRange(chunk: Buffer, blobs: RangeBlob[], slab?: ArrayBuffer, slabBytes = 0): Promise<{ results: RangeResult[]; slab: ArrayBuffer }> {
    let total = 0;
    for (const b of blobs) {
      if (!(Number.isSafeInteger(b.rawLength) && b.rawLength >= 0 && b.rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${b.what}: rawLength ${b.rawLength} exceeds the format maximum`);
      total += b.rawLength;
    }
    const size = Math.max(total, slabBytes);
    const mem = slab && !(slab instanceof SharedArrayBuffer) && slab.byteLength >= total ? slab : ((largeBuffer(size) ?? Buffer.allocUnsafeSlow(size)).buffer as ArrayBuffer);
    const plan = new Plan();
    const src = plan.buf(chunk);
    const dst = plan.buf(mem);
    const results: Array<RangeResult | number> = [];
    let at = 0;
    for (const b of blobs) {
      if (!(Number.isSafeInteger(b.offset) && Number.isSafeInteger(b.length) && b.offset >= 0 && b.length >= 0 && b.offset + b.length <= chunk.length)) {
        results.push({ error: errorOf(new Error(`range ${b.offset}+${b.length} lies outside the ${chunk.length}-byte part of the pack that was read`)) });
        continue;
      }
      results.push(plan.add({ src, off: b.offset, len: b.length, comp: b.compression, raw: b.rawLength, dst, dstOff: at, flags: F_HASH }, b.what));
      at += b.rawLength;
    }
    const d = plan.steps.length ? await this.budgeted(chunk.length + total, () => this.run(plan)) : undefined;
    if (chunk.buffer !== mem) this.drop([chunk]);
    const out = results.map((r): RangeResult => {
      if (typeof r !== 'number') return r;
      const err = this.failure(plan, d!, r);
      if (err) return { error: errorOf(err) };
      return { id: d!.ids.toString('hex', r * 32, r * 32 + 32), at: plan.steps[r]!.dstOff };
    });
    return { results: out, slab: mem };
  }

  /** BlobCodec.decode (a delta against its joined bases), hashed unless opts.hash is false. */
  async decode(
    sealed: Buffer,
    compression: Compression,
    rawLength: number,
    what: string,
    dict?: Buffer | Buffer[],
    opts: { hash?: boolean; shared?: boolean } = {},
  ): Promise<{ data: Buffer; id?: string }> {
    if (!(Number.isSafeInteger(rawLength) && rawLength >= 0 && rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${what}: rawLength ${rawLength} exceeds the format maximum`);
    // `shared` (a delta base for the read cache): in a SharedArrayBuffer, as the decode worker returns it. Its
    // bytes do not count towards this heap's external memory: as plain buffers, the cached and evicted bases of
    // a day-3 dump restore brought about 9 major GCs instead of 1 (+0.15 user s, +6 MB peak RSS)
    const out = opts.shared ? Buffer.from(new SharedArrayBuffer(rawLength)) : (largeBuffer(rawLength) ?? Buffer.allocUnsafeSlow(rawLength));
    const plan = new Plan();
    const hash = opts.hash !== false;
    const step = { src: plan.buf(sealed), off: 0, len: sealed.length, comp: compression, raw: rawLength, dst: plan.buf(out), flags: F_DECODE | (hash ? F_HASH : 0), group: 0 };
    const base = dict ? plan.dict(dict, what, 0) : undefined;
    const last = plan.add({ ...step, ...base }, what);
    const d = await this.budgeted(sealed.length + rawLength + (base?.dictLen ?? 0), () => this.run(plan));
    this.drop([sealed]);
    const err = this.failure(plan, d, last);
    if (err) throw err;
    return { data: out, ...(hash ? { id: d.ids.toString('hex', last * 32, last * 32 + 32) } : {}) };
  }

  /**
   * Steps decoding a chain (root first, chain.ts) into dst at dstOff: the inner levels through the
   * job's two level buffers (native/codec.c rd_state.tb), not through memory of this heap.
   */
  private chainSteps(plan: Plan, c: ChainMsg, group: number, dst: number, dstOff: number, flags: number): void {
    const n = c.sealed.length;
    if (n === 0 || c.compression.length !== n || c.rawLength.length !== n || c.what.length !== n) throw new LifeboatError('malformed chain');
    let prev: { buf: number; off: number; len: number } | undefined;
    for (let i = 0; i < n; i++) {
      const raw = c.rawLength[i]!;
      if (!(Number.isSafeInteger(raw) && raw >= 0 && raw <= MAX_TREE_BLOB)) throw new IntegrityError(`${c.what[i]}: rawLength ${raw} exceeds the format maximum`);
      const last = i === n - 1;
      const to = last ? { buf: dst, off: dstOff } : { buf: i & 1 ? LEVEL1 : LEVEL0, off: 0 };
      const sealed = c.sealed[i]!;
      const id = c.prove?.[i] ? c.ids?.[i] : undefined;
      if (id !== undefined) plan.expect.set(plan.steps.length, id);
      plan.add(
        {
          src: plan.buf(sealed),
          off: 0,
          len: sealed.length,
          comp: c.compression[i]!,
          raw,
          dst: to.buf,
          dstOff: to.off,
          ...(prev ? { dict: prev.buf, dictOff: prev.off, dictLen: prev.len } : {}),
          flags: (last ? flags : 0) | (id !== undefined ? F_HASH : 0),
          group,
        },
        c.what[i]!,
      );
      prev = { buf: to.buf, off: to.off, len: raw };
    }
  }

  /** chain.ts decodeChain: the last plaintext in its own buffer, hashed unless msg.noHash. */
  async decodeChain(msg: ChainMsg): Promise<{ data: Buffer; id?: string }> {
    if (!msg.rawLength.every((r) => Number.isSafeInteger(r) && r >= 0 && r <= MAX_TREE_BLOB)) throw new IntegrityError(`${msg.what[msg.what.length - 1]}: rawLength exceeds the format maximum`);
    const top = msg.rawLength[msg.rawLength.length - 1]!;
    const out = largeBuffer(top) ?? Buffer.allocUnsafeSlow(top);
    const plan = new Plan();
    this.chainSteps(plan, msg, 0, plan.buf(out), 0, msg.noHash ? 0 : F_HASH);
    const cost = msg.sealed.reduce((a, x) => a + x.length, 0) + top;
    const d = await this.budgeted(cost, () => this.run(plan));
    this.drop(msg.sealed);
    const last = plan.steps.length - 1;
    const err = this.failure(plan, d, last);
    if (err) throw err;
    return { data: out, ...(msg.noHash ? {} : { id: d.ids.toString('hex', last * 32, last * 32 + 32) }) };
  }

  /**
   * chunk-verify.ts verifyChunk: per blob its keyed id (the plaintext streamed through the hash,
   * not kept); a delta's bases, given as chains, decoded just before it into a joined dictionary.
   * The chunk is not transferred: `returned` is it when `whole` (the caller reuses it).
   */
  async verifyChunk(chunk: Buffer, blobs: ChunkBlob[], whole = false): Promise<{ results: ChunkResult[]; returned?: ArrayBuffer; proven?: string[] }> {
    const plan = new Plan();
    const src = plan.buf(chunk);
    const results: Array<ChunkResult | number> = [];
    blobs.forEach((b, g) => {
      try {
        if (!(Number.isSafeInteger(b.offset) && Number.isSafeInteger(b.length) && b.offset >= 0 && b.length >= 0 && b.offset + b.length <= chunk.length)) {
          throw new Error(`range ${b.offset}+${b.length} lies outside the ${chunk.length}-byte part of the pack that was read`);
        }
        if (!(Number.isSafeInteger(b.rawLength) && b.rawLength >= 0 && b.rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${b.what}: rawLength ${b.rawLength} exceeds the format maximum`);
        let dict: { dict: number; dictOff: number; dictLen: number } | undefined;
        const mark = plan.steps.length;
        if (b.chains) {
          let total = 0;
          for (const c of b.chains) total += c.rawLength[c.rawLength.length - 1]!;
          if (!(Number.isSafeInteger(total) && total >= 0 && total <= 2 * MAX_TREE_BLOB)) throw new IntegrityError(`${b.what}: impossible bases`);
          // the bases decoded straight into the job's joined dictionary (sized by an empty first part)
          let off = 0;
          try {
            plan.add({ src, off: 0, len: 0, comp: JOIN, raw: total, dstOff: 0, group: g }, b.what);
            for (const c of b.chains) {
              this.chainSteps(plan, c, g, JOINED, off, 0);
              off += c.rawLength[c.rawLength.length - 1]!;
            }
          } catch (err) {
            plan.steps.length = mark;
            plan.what.length = mark;
            throw err;
          }
          dict = { dict: JOINED, dictOff: 0, dictLen: off };
        } else if (b.dict) {
          dict = plan.dict(b.dict as Buffer | Buffer[], b.what, g);
        }
        results.push(plan.add({ src, off: b.offset, len: b.length, comp: b.compression, raw: b.rawLength, ...dict, group: g }, b.what));
      } catch (err) {
        results.push({ error: errorOf(err as Error) });
      }
    });
    const d = plan.steps.length ? await this.run(plan) : undefined;
    // (the bases' sealed chains were read for this range alone: WorkerPool transferred them too)
    this.drop(blobs.flatMap((b) => b.chains?.flatMap((c) => (c.rootLent ? c.sealed.slice(1) : c.sealed)) ?? []).filter((x) => x.buffer !== chunk.buffer));
    const out = results.map((r): ChunkResult => {
      if (typeof r !== 'number') return r;
      const err = this.failure(plan, d!, r);
      if (err) return { error: errorOf(err) };
      return { id: d!.ids.toString('hex', r * 32, r * 32 + 32) };
    });
    // the bases' levels asked to be proven (ChainMsg.prove) that decoded to their ids
    const proven: string[] = [];
    for (const [k, id] of plan.expect) if (d && d.status[2 * k] === S_OK && d.ids.toString('hex', k * 32, k * 32 + 32) === id) proven.push(id);
    // (the range stays the caller's: handed back as the decode worker would, to be reused)
    const own = whole || ownsBuffer(chunk);
    return { results: out, ...(own ? { returned: chunk.buffer as ArrayBuffer } : {}), ...(proven.length ? { proven } : {}) };
  }

  /** Waits for the jobs in flight; later jobs are refused. */
  async close(): Promise<void> {
    this.closing = true;
    while (this.inflight > 0) await new Promise<void>((r) => this.idle.push(r));
  }
}
