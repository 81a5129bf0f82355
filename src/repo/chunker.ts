import { createHash } from 'node:crypto';
import { type BytesNative, bytesNative } from './native.js';

/**
 * Content-defined chunking with a gear rolling hash and FastCDC's normalized
 * chunking (two masks: a harder one before the average size, an easier one
 * after it). The gear table is derived from a per-repository secret seed so
 * chunk boundaries do not reveal content fingerprints across repositories.
 */
export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export const DEFAULT_CHUNKER: ChunkerParams = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };

export function validateChunkerParams(p: ChunkerParams): string | undefined {
  const pow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
  if (!pow2(p.avg)) return `average chunk size must be a power of two, got ${p.avg}`;
  if (p.avg < 1024 || p.avg > 64 * 1024 * 1024) return `average chunk size must be between 1 KiB and 64 MiB, got ${p.avg}`;
  if (!(Number.isInteger(p.min) && p.min >= 64 && p.min < p.avg)) return `min chunk size must be an integer in [64, avg), got ${p.min}`;
  if (!(Number.isInteger(p.max) && p.max > p.avg && p.max <= 128 * 1024 * 1024)) {
    return `max chunk size must be an integer in (avg, 128 MiB], got ${p.max}`;
  }
  return undefined;
}

export function gearTable(seed: Buffer): Int32Array {
  const table = new Int32Array(256);
  for (let i = 0; i < 256; i += 8) {
    const h = createHash('sha256').update(seed).update(Buffer.from([i])).digest();
    for (let j = 0; j < 8; j++) table[i + j] = h.readInt32LE(j * 4);
  }
  return table;
}

function topMask(bits: number): number {
  return (0xffffffff << (32 - bits)) | 0;
}

/**
 * Streaming chunker. Feed data with push() (copied once into the chunker's
 * window), or read straight into the window with writable() + commit() (no
 * copy at all). Complete chunks are returned as freshly allocated Buffers
 * that own their memory (safe to transfer to other threads). finish() returns
 * the final partial chunk, if any. The window slides: a cut does not move the
 * remaining bytes; they move only when the window's tail runs out of room.
 */
/** Bytes of a chunker's window: room for a whole maximal chunk plus a read's worth beyond it. */
export function windowSize(params: ChunkerParams): number {
  return params.max + Math.min(params.max, 1024 * 1024);
}

export class Chunker {
  private readonly gear: Int32Array;
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private buf: Buffer;
  private start = 0; // first byte of the current chunk in buf
  private end = 0; // end of buffered data in buf
  private scanned = 0; // bytes of the current chunk already fed to the rolling hash
  private h = 0;
  /** The C cut search (native/bytes.c) when it loaded and the parameters are valid, and its state vector. */
  private readonly nat: BytesNative | undefined;
  private readonly st = new Int32Array(9);

  /**
   * `window`: a buffer to use as the window (one a finished chunker gave back with
   * release()), if it is exactly the size this chunker needs; else a new one is allocated.
   */
  /** `native`: false forces the JavaScript cut search (tests compare the two). */
  constructor(gear: Int32Array, params: ChunkerParams = DEFAULT_CHUNKER, window?: Buffer, native = true) {
    this.gear = gear;
    this.min = params.min;
    this.avg = params.avg;
    this.max = params.max;
    const bits = Math.round(Math.log2(params.avg));
    this.maskS = topMask(bits + 2);
    this.maskL = topMask(bits - 2);
    const size = windowSize(params);
    this.buf = window && window.length === size ? window : Buffer.allocUnsafe(size);
    // The C takes int32 parameters: only parameters that validate (integers below 2^31) go there.
    this.nat = native && gear.length === 256 && validateChunkerParams(params) === undefined ? bytesNative() : undefined;
    const st = this.st;
    st[4] = this.min;
    st[5] = this.avg;
    st[6] = this.max;
    st[7] = this.maskS;
    st[8] = this.maskL;
  }

  /**
   * Hand the window back for another chunker (the data in it must have been
   * taken out with finish()): this chunker is unusable afterwards. A window
   * (max + 1 MiB, 9 MiB by default) per large file would otherwise be dropped
   * after each one, and V8 collects such long-lived buffers late.
   */
  release(): Buffer | undefined {
    const b = this.buf;
    if (b.length === 0 || this.end !== this.start) return undefined;
    this.buf = Buffer.alloc(0);
    this.start = this.end = 0;
    return b;
  }

  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < data.length) {
      const room = this.writable();
      const take = Math.min(room.length, data.length - pos);
      room.set(data.subarray(pos, pos + take));
      pos += take;
      for (const c of this.commit(take)) out.push(c);
    }
    return out;
  }

  /**
   * The free part of the window (at least 1 byte, at most the window's size):
   * fill a prefix of it, then call commit() with the number of bytes written.
   * Do not keep it across commit() calls.
   */
  writable(): Buffer {
    if (this.buf.length === 0) throw new Error('chunker used after release()');
    const pending = this.end - this.start;
    if (this.start > 0 && (pending <= this.start || this.buf.length - this.end < Math.min(64 * 1024, this.buf.length - this.max))) {
      // slide: move the current chunk's bytes (less than max) to the front, as soon as that copies no
      // more than the cuts consumed (or when the tail runs out of room). The window's pages are then
      // touched only up to about twice the largest chunk plus a read, not all of max + 1 MiB: a daily
      // dump backup's window held 3.8 MB resident instead of 9 (docs/benchmarks.md, "The chunker's window").
      this.buf.copy(this.buf, 0, this.start, this.end);
      this.end -= this.start;
      this.start = 0;
    }
    return this.buf.subarray(this.end);
  }

  /** Account for `n` bytes written into writable(); returns the chunks completed. */
  commit(n: number): Buffer[] {
    if (!(Number.isInteger(n) && n >= 0 && this.end + n <= this.buf.length)) throw new RangeError(`commit(${n}): beyond the writable window`);
    this.end += n;
    const out: Buffer[] = [];
    let cut: number;
    while ((cut = this.findCut()) > 0) out.push(this.emit(cut));
    return out;
  }

  finish(): Buffer | undefined {
    if (this.end === this.start) return undefined;
    return this.emit(this.end - this.start);
  }

  /**
   * Returns the cut position (chunk length) if a boundary is found within buffered data, else 0.
   * The hash loops are unrolled by 4 (a quarter of the loop overhead; the cuts are exactly
   * those of the plain loop, see chunker.test.ts): chunking is a large share of a backup's main thread.
   */
  private findCut(): number {
    const len = this.end - this.start;
    if (len < this.min) return 0;
    const nat = this.nat;
    if (nat !== undefined) {
      const st = this.st;
      st[0] = this.start;
      st[1] = len;
      st[2] = this.scanned;
      st[3] = this.h;
      const cut = nat.findCut(this.buf, this.gear, st);
      this.scanned = st[2]!;
      this.h = st[3]!;
      return cut;
    }
    const gear = this.gear;
    const b = this.buf;
    const base = this.start;
    let h = this.h;
    let i = this.scanned < this.min ? this.min : this.scanned;
    const normEnd = Math.min(len, this.avg);
    const maskS = this.maskS;
    for (; i + 4 <= normEnd; i += 4) {
      const p = base + i;
      h = ((h << 1) + gear[b[p]!]!) | 0;
      if ((h & maskS) === 0) return this.cutAt(i + 1);
      h = ((h << 1) + gear[b[p + 1]!]!) | 0;
      if ((h & maskS) === 0) return this.cutAt(i + 2);
      h = ((h << 1) + gear[b[p + 2]!]!) | 0;
      if ((h & maskS) === 0) return this.cutAt(i + 3);
      h = ((h << 1) + gear[b[p + 3]!]!) | 0;
      if ((h & maskS) === 0) return this.cutAt(i + 4);
    }
    for (; i < normEnd; i++) {
      h = ((h << 1) + gear[b[base + i]!]!) | 0;
      if ((h & maskS) === 0) return this.cutAt(i + 1);
    }
    const maskL = this.maskL;
    const end = Math.min(len, this.max);
    for (; i + 4 <= end; i += 4) {
      const p = base + i;
      h = ((h << 1) + gear[b[p]!]!) | 0;
      if ((h & maskL) === 0) return this.cutAt(i + 1);
      h = ((h << 1) + gear[b[p + 1]!]!) | 0;
      if ((h & maskL) === 0) return this.cutAt(i + 2);
      h = ((h << 1) + gear[b[p + 2]!]!) | 0;
      if ((h & maskL) === 0) return this.cutAt(i + 3);
      h = ((h << 1) + gear[b[p + 3]!]!) | 0;
      if ((h & maskL) === 0) return this.cutAt(i + 4);
    }
    for (; i < end; i++) {
      h = ((h << 1) + gear[b[base + i]!]!) | 0;
      if ((h & maskL) === 0) return this.cutAt(i + 1);
    }
    if (len >= this.max) return this.cutAt(this.max);
    this.h = h;
    this.scanned = i;
    return 0;
  }

  private cutAt(n: number): number {
    this.h = 0;
    this.scanned = 0;
    return n;
  }

  private emit(n: number): Buffer {
    const chunk = Buffer.allocUnsafeSlow(n);
    this.buf.copy(chunk, 0, this.start, this.start + n);
    this.start += n;
    if (this.start === this.end) this.start = this.end = 0;
    return chunk;
  }
}
