import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FEATURES, SketchIndex, superFeatures } from './sketch.js';

function edit(data: Buffer, at: number, n: number): Buffer {
  const out = Buffer.from(data);
  randomBytes(n).copy(out, at);
  return out;
}

test('a slightly changed chunk finds its original among unrelated ones', () => {
  const idx = new SketchIndex();
  const original = randomBytes(256 * 1024);
  idx.add('original', superFeatures(original));
  for (let i = 0; i < 20; i++) idx.add(`other-${i}`, superFeatures(randomBytes(256 * 1024)));
  assert.equal(superFeatures(original).length, FEATURES);
  const changed = edit(edit(original, 1000, 64), 150_000, 64);
  assert.deepEqual(idx.find(superFeatures(changed)).slice(0, 1), ['original']);
});

test('shifted content (bytes inserted at the front) still matches', () => {
  const idx = new SketchIndex();
  const original = randomBytes(256 * 1024);
  idx.add('original', superFeatures(original));
  const shifted = Buffer.concat([randomBytes(777), original.subarray(0, original.length - 777)]);
  assert.deepEqual(idx.find(superFeatures(shifted)).slice(0, 1), ['original']);
});

test('unrelated content finds nothing; tiny input has no sketch', () => {
  const idx = new SketchIndex();
  for (let i = 0; i < 20; i++) idx.add(`c-${i}`, superFeatures(randomBytes(128 * 1024)));
  assert.deepEqual(idx.find(superFeatures(randomBytes(128 * 1024))), []);
  assert.deepEqual(superFeatures(Buffer.alloc(0)), []);
});

test('an ambiguous vote (many chunks with the same features) answers "don\'t know"', () => {
  const idx = new SketchIndex();
  const same = randomBytes(128 * 1024);
  for (let i = 0; i < 3; i++) idx.add(`copy-${i}`, superFeatures(same));
  assert.deepEqual(idx.find(superFeatures(same)), []);
});

/** Deterministic bytes: pseudo-random runs, runs of zeros and a repeated text (as in database pages). */
function goldenData(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 0;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    if (i % 5000 < 1500) b[i] = 0;
    else if (i % 5000 < 2500) b[i] = 'pgbench row '.charCodeAt(i % 12);
    else b[i] = x >>> 24;
  }
  return b;
}

test('sketches are exactly those of the first implementation (stored in repositories: a change would stop old and new chunks matching)', () => {
  // Computed by the original one-byte-per-iteration, unsigned-arithmetic superFeatures;
  // the lengths cover every remainder of the unrolled loop's stride of 4.
  const golden: Array<[number, number, number[]]> = [
    [100003, 1, [4277749667,  4292937624,  4256443341,  4285379753,  4288726417,  4292178296,  4291437077,  4286869609,  4291659037,  4291467796,  4285057214,  4293799969]],
    [65536, 2, [4274858275,  4263892632,  4284318285,  4289739945,  4280129809,  4288114936,  4291274773,  4269404521,  4282699933,  4294215188,  4293829310,  4247201569]],
    [262147, 3, [4293508003,  4291732504,  4287456205,  4294190377,  4294181009,  4294203384,  4294742421,  4291665513,  4291349661,  4292035092,  4293710014,  4284683297]],
    [40001, 4, [4294946467,  4285116952,  4260724173,  4289450025,  4260636689,  4289339384,  4287608341,  4237205481,  4274160413,  4263908244,  4277004350,  4287622689]],
    [40002, 5, [4254312355,  4226447512,  4275073741,  4270264617,  4248657937,  4274393592,  4256948245,  4278657641,  4294801949,  4247204500,  4278830910,  4272057505]],
  ];
  for (const [n, seed, sf] of golden) assert.deepEqual(superFeatures(goldenData(n, seed)), sf, `sketch of ${n} bytes (seed ${seed})`);
});

/** The first SketchIndex (a Map of id lists), kept as the reference for the compact one. */
class MapSketchIndex {
  private readonly map = new Map<number, string[]>();
  add(id: string, sf: readonly number[]): void {
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
  find(sf: readonly number[]): string[] {
    const votes = new Map<string, number>();
    for (let i = 0; i < sf.length; i++) {
      for (const id of this.map.get((sf[i]! ^ Math.imul(i + 1, 0x9e3779b1)) >>> 0) ?? []) votes.set(id, (votes.get(id) ?? 0) + 1);
    }
    const ranked = [...votes].filter(([, v]) => v >= 2).sort((a, b) => b[1] - a[1]);
    if (ranked.length > 2 && ranked[2]![1] === ranked[0]![1]) return [];
    return ranked.slice(0, 2).map(([id]) => id);
  }
}

test('the compact index answers exactly as the Map of id lists (crowded keys, repeated ids, adds after lookups)', () => {
  let x = 12345;
  const rnd = (n: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % n;
  };
  // features from a small domain: many keys are shared by more than 4 chunks
  const sketch = () => Array.from({ length: FEATURES }, (_, i) => (rnd(6) === 0 ? 0xffffffff - i : rnd(40) * 0x01000193));
  const ref = new MapSketchIndex();
  const idx = new SketchIndex();
  const sketches: number[][] = [];
  let compared = 0;
  let nonEmpty = 0;
  for (let round = 0; round < 6; round++) {
    for (let c = 0; c < 150; c++) {
      // repeated ids (a parent with the same chunk twice) and sketches shared by several chunks
      const id = rnd(10) === 0 && sketches.length ? `c${rnd(sketches.length)}` : `c${sketches.length}`;
      const sf = rnd(5) === 0 && sketches.length ? sketches[rnd(sketches.length)]! : sketch();
      sketches.push(sf);
      ref.add(id, sf);
      idx.add(id, sf);
    }
    assert.equal(idx.size, ref.size);
    for (let q = 0; q < 300; q++) {
      const probe = rnd(2) ? sketches[rnd(sketches.length)]!.map((f) => (rnd(3) ? f : rnd(40) * 0x01000193)) : sketch();
      const want = ref.find(probe);
      assert.deepEqual(idx.find(probe), want);
      compared++;
      if (want.length) nonEmpty++;
    }
  }
  assert.ok(nonEmpty > compared / 10, `${nonEmpty} of ${compared} lookups found something`);
});

test('chunks without a sketch are not indexed; an empty index has size 0', () => {
  const idx = new SketchIndex();
  idx.add('none', undefined);
  idx.add('empty', []);
  assert.equal(idx.size, 0);
  assert.deepEqual(idx.find([1, 2, 3]), []);
});
