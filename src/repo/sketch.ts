/**
 * Resemblance sketch of a chunk: 12 features (N-transform min-hash style).
 * Similar chunks (a few changed rows) share most features, even when inserted
 * or deleted data shifted their offsets.
 * Stored per data blob in pack headers and index files (`sf`) so a later
 * backup finds a delta base among the parent snapshot's chunks by content.
 *
 * Features: a 32-byte-window gear hash is sampled where its low 7 bits are
 * zero (about 1 position in 128); for each of 12 fixed linear transforms
 * (a*h + b mod 2^32) the maximum over sampled positions is a feature.
 */
import { bytesNative } from './native.js';

const GEAR = new Int32Array(256);
{
  // fixed table (not secret: sketches are stored encrypted)
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < 256; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    GEAR[i] = x | 0;
  }
}
const N = 12;
const A = new Uint32Array(N);
const B = new Uint32Array(N);
{
  let x = 0x12345678 | 0;
  for (let i = 0; i < N; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    A[i] = (x | 1) >>> 0;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    B[i] = x >>> 0;
  }
}

/** Number of features per sketch. */
export const FEATURES = N;

// The transforms in int32 form, B biased by 2^31: (a*h + b) mod 2^32 compared as unsigned
// equals (a*h + (b ^ 2^31)) | 0 compared as signed (adding 2^31 flips only the top bit).
// Small integers stay unboxed in the JIT's registers, where uint32 values above 2^31 do not.
const AI = Int32Array.from(A, (a) => a | 0);
const BI = Int32Array.from(B, (b) => (b ^ 0x80000000) | 0);

function sample(h: number, max: Int32Array): void {
  for (let k = 0; k < N; k++) {
    const v = (Math.imul(AI[k]!, h) + BI[k]!) | 0;
    if (v > max[k]!) max[k] = v;
  }
}

const nativeOut = new Uint32Array(N);

/** The sketch of `data` (12 features), or [] when no position was sampled (tiny or uniform input). */
export function superFeatures(data: Uint8Array): number[] {
  const nat = bytesNative();
  if (nat === undefined) return superFeaturesJs(data);
  if (!nat.sketch(data, nativeOut)) return [];
  return Array.from(nativeOut);
}

/**
 * superFeatures on the libuv thread pool (native/bytes.c sketchAsync), beside this thread;
 * undefined without the addon. `data` must be left alone (not changed, not transferred) until it settles.
 */
export function superFeaturesAsync(data: Uint8Array): Promise<number[]> | undefined {
  const nat = bytesNative();
  if (nat === undefined || typeof nat.sketchAsync !== 'function') return undefined;
  return new Promise((resolve, reject) => nat.sketchAsync(data, (err, f) => (err ? reject(err) : resolve(f ?? []))));
}

/** superFeatures in JavaScript: the fallback, and the reference the C is tested against. */
export function superFeaturesJs(data: Uint8Array): number[] {
  const gear = GEAR;
  const max = new Int32Array(N).fill(-0x80000000);
  let h = 0;
  let sampled = 0;
  const n = data.length;
  let i = 0;
  // Unrolled by 4: the per-byte loop overhead is most of the cost (sampling is 1 byte in 128).
  for (; i + 4 <= n; i += 4) {
    h = ((h << 1) + gear[data[i]!]!) | 0;
    if ((h & 0x7f) === 0) {
      sampled++;
      sample(h, max);
    }
    h = ((h << 1) + gear[data[i + 1]!]!) | 0;
    if ((h & 0x7f) === 0) {
      sampled++;
      sample(h, max);
    }
    h = ((h << 1) + gear[data[i + 2]!]!) | 0;
    if ((h & 0x7f) === 0) {
      sampled++;
      sample(h, max);
    }
    h = ((h << 1) + gear[data[i + 3]!]!) | 0;
    if ((h & 0x7f) === 0) {
      sampled++;
      sample(h, max);
    }
  }
  for (; i < n; i++) {
    h = ((h << 1) + gear[data[i]!]!) | 0;
    if ((h & 0x7f) === 0) {
      sampled++;
      sample(h, max);
    }
  }
  if (sampled === 0) return [];
  const out = new Array<number>(N);
  for (let k = 0; k < N; k++) out[k] = (max[k]! ^ 0x80000000) >>> 0;
  return out;
}

/** Parent chunks a SketchIndex holds at most (key and chunk number share one float64: 32 + 21 bits). */
export const SKETCH_INDEX_MAX_CHUNKS = 1 << 21;
const OWNER_SPAN = 2 ** 21;

/**
 * Lookup of a parent's chunks by feature. Each of a new chunk's features votes
 * for the parent chunk that has the same feature; a chunk whose boundaries moved
 * gets votes from the two parent chunks it straddles, and both become bases.
 *
 * Compact for large streams (a 20 GB dump has ~20,000 parent chunks): one float64
 * per feature, key × 2^21 + chunk number, sorted once before the first lookup and
 * binary-searched; plus one reference per chunk to its id (the id strings are the
 * parent's content list's). 12 × 8 + 8 = 104 bytes per parent chunk (a Map of
 * arrays took ~1 KB). Chunks beyond SKETCH_INDEX_MAX_CHUNKS (2 TB of 1 MiB chunks)
 * are not indexed: their new versions fall back to the offset guess.
 */
export class SketchIndex {
  private readonly ids: string[] = [];
  private entries = new Float64Array(1024);
  private count = 0;
  private sorted = true;
  private distinct = 0;
  add(id: string, sf: readonly number[] | undefined): void {
    if (!sf || sf.length === 0 || this.ids.length >= SKETCH_INDEX_MAX_CHUNKS) return;
    const owner = this.ids.length;
    this.ids.push(id);
    if (this.count + sf.length > this.entries.length) {
      const grown = new Float64Array(Math.max(this.entries.length * 2, this.count + sf.length));
      grown.set(this.entries.subarray(0, this.count));
      this.entries = grown;
    }
    for (let i = 0; i < sf.length; i++) this.entries[this.count++] = keyOf(sf[i]!, i) * OWNER_SPAN + owner;
    this.sorted = false;
  }
  private sort(): void {
    if (this.sorted) return;
    if (this.entries.length > this.count) this.entries = this.entries.slice(0, this.count); // drop the growth slack
    this.entries.sort();
    let d = 0;
    for (let i = 0; i < this.count; i++) if (i === 0 || Math.floor(this.entries[i]! / OWNER_SPAN) !== Math.floor(this.entries[i - 1]! / OWNER_SPAN)) d++;
    this.distinct = d;
    this.sorted = true;
  }
  /** Number of distinct feature keys (0: nothing to look up). */
  get size(): number {
    this.sort();
    return this.distinct;
  }
  /** Up to 4 distinct parent chunk ids with this key, in the order they were added. */
  private owners(key: number, out: string[]): void {
    const e = this.entries;
    let lo = 0;
    let hi = this.count;
    const first = key * OWNER_SPAN;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (e[mid]! < first) lo = mid + 1;
      else hi = mid;
    }
    const end = first + OWNER_SPAN;
    for (let j = lo; j < this.count && e[j]! < end && out.length < 4; j++) {
      const id = this.ids[e[j]! - first]!;
      if (!out.includes(id)) out.push(id);
    }
  }
  /**
   * Up to two parent chunks with the most matching features (at least 2 votes
   * each), best first. In very repetitive data many chunks share the same
   * features; when the best vote is not decisive the answer is "don't know" ([])
   * and the caller falls back to the position-based guess.
   */
  find(sf: readonly number[]): string[] {
    this.sort();
    const votes = new Map<string, number>();
    const ids: string[] = [];
    for (let i = 0; i < sf.length; i++) {
      ids.length = 0;
      this.owners(keyOf(sf[i]!, i), ids);
      for (const id of ids) votes.set(id, (votes.get(id) ?? 0) + 1);
    }
    const ranked = [...votes].filter(([, v]) => v >= 2).sort((a, b) => b[1] - a[1]);
    if (ranked.length > 2 && ranked[2]![1] === ranked[0]![1]) return [];
    return ranked.slice(0, 2).map(([id]) => id);
  }
}

function keyOf(f: number, i: number): number {
  return (f ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
}
