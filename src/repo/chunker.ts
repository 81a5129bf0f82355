import { createHash } from 'node:crypto';

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
 * Streaming chunker. Feed data with push(); complete chunks are returned as
 * freshly allocated Buffers (safe to hand to other threads). finish() returns
 * the final partial chunk, if any.
 */
export class Chunker {
  private readonly gear: Int32Array;
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;
  private readonly maskS: number;
  private readonly maskL: number;
  private buf: Buffer;
  private len = 0; // bytes of the current chunk held in buf
  private scanned = 0; // bytes of buf already fed to the rolling hash
  private h = 0;

  constructor(gear: Int32Array, params: ChunkerParams = DEFAULT_CHUNKER) {
    this.gear = gear;
    this.min = params.min;
    this.avg = params.avg;
    this.max = params.max;
    const bits = Math.round(Math.log2(params.avg));
    this.maskS = topMask(bits + 2);
    this.maskL = topMask(bits - 2);
    this.buf = Buffer.allocUnsafe(params.max);
  }

  push(data: Uint8Array): Buffer[] {
    const out: Buffer[] = [];
    let pos = 0;
    while (pos < data.length) {
      const take = Math.min(this.max - this.len, data.length - pos);
      this.buf.set(data.subarray(pos, pos + take), this.len);
      this.len += take;
      pos += take;
      let cut: number;
      while ((cut = this.findCut()) > 0) {
        out.push(this.emit(cut));
      }
    }
    return out;
  }

  finish(): Buffer | undefined {
    if (this.len === 0) return undefined;
    return this.emit(this.len);
  }

  /** Returns the cut position (chunk length) if a boundary is found within buffered data, else 0. */
  private findCut(): number {
    const len = this.len;
    if (len < this.min) return 0;
    const gear = this.gear;
    const b = this.buf;
    let h = this.h;
    let i = this.scanned < this.min ? this.min : this.scanned;
    const normEnd = Math.min(len, this.avg);
    const maskS = this.maskS;
    for (; i < normEnd; i++) {
      h = ((h << 1) + gear[b[i]!]!) | 0;
      if ((h & maskS) === 0) return this.cutAt(i + 1);
    }
    const maskL = this.maskL;
    const end = Math.min(len, this.max);
    for (; i < end; i++) {
      h = ((h << 1) + gear[b[i]!]!) | 0;
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
    this.buf.copy(chunk, 0, 0, n);
    const rest = this.len - n;
    if (rest > 0) this.buf.copy(this.buf, 0, n, this.len);
    this.len = rest;
    return chunk;
  }
}
