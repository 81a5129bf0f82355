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

/**
 * Lookup of a parent's chunks by feature. Each of a new chunk's features votes
 * for the parent chunk that has the same feature; a chunk whose boundaries moved
 * gets votes from the two parent chunks it straddles, and both become bases.
 */
export class SketchIndex {
  private readonly map = new Map<number, string[]>();
  add(id: string, sf: readonly number[] | undefined): void {
    if (!sf) return;
    for (let i = 0; i < sf.length; i++) {
      const key = (sf[i]! ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0;
      const l = this.map.get(key);
      if (!l) this.map.set(key, [id]);
      else if (l.length < 4 && !l.includes(id)) l.push(id);
    }
  }
  get size(): number {
    return this.map.size;
  }
  /**
   * Up to two parent chunks with the most matching features (at least 2 votes
   * each), best first. In very repetitive data many chunks share the same
   * features; when the best vote is not decisive the answer is "don't know" ([])
   * and the caller falls back to the position-based guess.
   */
  find(sf: readonly number[]): string[] {
    const votes = new Map<string, number>();
    for (let i = 0; i < sf.length; i++) {
      const ids = this.map.get((sf[i]! ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0);
      if (!ids) continue;
      for (const id of ids) votes.set(id, (votes.get(id) ?? 0) + 1);
    }
    const ranked = [...votes].filter(([, v]) => v >= 2).sort((a, b) => b[1] - a[1]);
    if (ranked.length > 2 && ranked[2]![1] === ranked[0]![1]) return [];
    return ranked.slice(0, 2).map(([id]) => id);
  }
}
