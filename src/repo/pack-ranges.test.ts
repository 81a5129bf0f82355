import assert from 'node:assert/strict';
import { test } from 'node:test';
import { planPackRanges } from './pack-ranges.js';

interface B {
  n: number;
  offset: number;
  length: number;
}

/** Every byte in exactly one range, in order; every blob wholly inside the range it is listed in, or a stray. */
function checkPlan(blobs: B[], area: number, target: number): { ranges: number; strays: B[] } {
  const { ranges, strays } = planPackRanges(blobs, area, target);
  let cur = 0;
  const seen = new Set<number>();
  for (const r of ranges) {
    assert.equal(r.start, cur, 'ranges are contiguous');
    assert.ok(r.end > r.start, 'no empty range');
    for (const b of r.blobs) {
      assert.ok(b.offset >= r.start && b.offset + b.length <= r.end, `blob ${b.n} lies inside its range`);
      assert.ok(!seen.has(b.n));
      seen.add(b.n);
    }
    const biggest = Math.max(0, ...r.blobs.map((b) => b.length));
    assert.ok(r.end - r.start <= Math.max(target, target + biggest), `range ${r.start}-${r.end} is bounded`);
    cur = r.end;
  }
  assert.equal(cur, area, 'the ranges cover the blob area');
  for (const b of strays) {
    assert.ok(!seen.has(b.n));
    seen.add(b.n);
  }
  assert.equal(seen.size, blobs.length, 'every blob is planned once');
  return { ranges: ranges.length, strays };
}

test('pack ranges: blob-aligned, bounded, covering the blob area', () => {
  // a pack as written: blobs back to back, various sizes
  const blobs: B[] = [];
  let off = 0;
  for (let n = 0; n < 300; n++) {
    const length = 28 + ((n * 7919) % 5000) * (n % 17 === 0 ? 40 : 1);
    blobs.push({ n, offset: off, length });
    off += length;
  }
  const shuffled = [...blobs].reverse(); // header order does not matter
  const { strays } = checkPlan(shuffled, off, 64 * 1024);
  assert.deepEqual(strays, [], 'no stray in a well-formed pack');
  // one blob larger than the target gets a range of its own
  const big = [
    { n: 0, offset: 0, length: 100 },
    { n: 1, offset: 100, length: 10_000 },
    { n: 2, offset: 10_100, length: 100 },
  ];
  const r = planPackRanges(big, 10_200, 1000);
  assert.deepEqual(
    r.ranges.map((x) => [x.start, x.end, x.blobs.map((b) => b.n)]),
    [
      [0, 100, [0]],
      [100, 10_100, [1]],
      [10_100, 10_200, [2]],
    ],
  );
  // an empty blob area (a pack of only a header) has no ranges
  assert.deepEqual(planPackRanges([], 0, 1000), { ranges: [], strays: [] });
});

test('pack ranges: gaps are read (and hashed) in bounded pieces; overlapping blobs are strays', () => {
  // gaps before, between and after the blobs, longer than the target
  const gappy = [
    { n: 0, offset: 5000, length: 100 },
    { n: 1, offset: 9000, length: 300 },
  ];
  const g = checkPlan(gappy, 20_000, 1000);
  assert.ok(g.ranges >= 18);
  assert.deepEqual(g.strays, []);
  // a hostile header: blobs that overlap and nest
  const hostile = [
    { n: 0, offset: 0, length: 800 },
    { n: 1, offset: 700, length: 800 }, // overlaps the end of blob 0: same range while within the target
    { n: 2, offset: 100, length: 50 }, // nested inside blob 0
    { n: 3, offset: 1400, length: 900 }, // starts inside the previous range's last blob, ends past it
    { n: 4, offset: 1500, length: 28 },
  ];
  const h = checkPlan(hostile, 3000, 1500);
  assert.deepEqual(
    h.strays.map((b) => b.n),
    [3],
  );
});
