import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyRetention, bucketKey, describePolicy, groupSnapshots, isEmptyPolicy, isoWeek, subtractCalendarDuration, type RetentionPolicy, type SnapshotLike } from '../src/policy/retention.js';
import { formatDuration } from '../src/util/format.js';
import { parseCalendarDuration, parseDuration } from '../src/util/duration.js';
import { retentionPolicySchema } from '../src/config/retention.js';
import { ConfigError } from '../src/errors.js';

interface Snap extends SnapshotLike {
  time: string;
}
const s = (id: string, time: string, tags?: string[]): Snap => ({ id, time, ...(tags ? { tags } : {}) });
const keptIds = (snaps: Snap[], p: RetentionPolicy, now?: Date) => applyRetention(snaps, p, now).keep.map((k) => k.snapshot.id);
const reasonsOf = (snaps: Snap[], p: RetentionPolicy) => Object.fromEntries(applyRetention(snaps, p).keep.map((k) => [k.snapshot.id, k.reasons]));

// Two snapshots a day on three days.
const twoPerDay = [
  s('d1a', '2024-03-01T08:00:00Z'),
  s('d1b', '2024-03-01T20:00:00Z'),
  s('d2a', '2024-03-02T08:00:00Z'),
  s('d2b', '2024-03-02T20:00:00Z'),
  s('d3a', '2024-03-03T08:00:00Z'),
  s('d3b', '2024-03-03T20:00:00Z'),
];

// Around the ISO year boundary: 2020 has 53 ISO weeks; 2020-W53 runs Mon 2020-12-28 .. Sun 2021-01-03.
const yearEnd = [
  s('w52', '2020-12-27T12:00:00Z'), // Sun, 2020-W52
  s('w53a', '2020-12-28T12:00:00Z'), // Mon, 2020-W53
  s('w53b', '2020-12-31T12:00:00Z'), // Thu, 2020-W53
  s('w53c', '2021-01-03T12:00:00Z'), // Sun, 2020-W53 (calendar year 2021)
  s('w01a', '2021-01-04T12:00:00Z'), // Mon, 2021-W01
  s('w01b', '2021-01-10T12:00:00Z'), // Sun, 2021-W01
];

// Months with gaps: nothing in Feb, Mar, May, Jun, Jul.
const monthsWithGaps = [
  s('m1', '2023-01-15T00:00:00Z'),
  s('m2', '2023-01-20T00:00:00Z'),
  s('m3', '2023-04-02T00:00:00Z'),
  s('m4', '2023-04-28T00:00:00Z'),
  s('m5', '2023-08-10T00:00:00Z'),
  s('m6', '2023-09-01T00:00:00Z'),
  s('m7', '2023-09-30T23:59:59Z'),
];

const years = [
  s('y2019', '2019-06-01T00:00:00Z'),
  s('y2020a', '2020-01-01T00:00:00Z'),
  s('y2020b', '2020-12-31T23:59:59Z'),
  s('y2022', '2022-03-01T00:00:00Z'),
  s('y2023', '2023-12-01T00:00:00Z'),
];

const hours = [
  s('h1', '2024-01-01T10:05:00Z'),
  s('h2', '2024-01-01T10:55:00Z'),
  s('h3', '2024-01-01T11:00:00Z'),
  s('h4', '2024-01-01T11:59:59.999Z'),
  s('h5', '2024-01-01T12:00:00Z'),
];

// 2024-01-01 is a Monday (2024-W01); 2024-01-08 starts W02.
const mixed = [
  s('a', '2024-01-01T12:00:00Z'),
  s('b', '2024-01-05T12:00:00Z'),
  s('c', '2024-01-08T12:00:00Z'),
  s('d', '2024-01-09T12:00:00Z'),
  s('e', '2024-01-09T18:00:00Z'),
  s('f', '2024-01-10T12:00:00Z'),
];

const within = [
  s('k4', '2024-05-01T00:00:00Z'),
  s('k2', '2024-05-03T12:00:00Z'), // exactly latest - 7d: NOT kept (restic keeps strictly newer)
  s('k3', '2024-05-03T12:00:00.001Z'),
  s('k1', '2024-05-10T12:00:00Z'),
];

const tagged = [
  s('t1', '2024-01-01T00:00:00Z', ['a']),
  s('t2', '2024-01-02T00:00:00Z', ['b']),
  s('t3', '2024-01-03T00:00:00Z', ['a', 'b']),
  s('t4', '2024-01-04T00:00:00Z', []),
  s('t5', '2024-01-05T00:00:00Z', ['c']),
  s('t6', '2024-01-06T00:00:00Z'),
];

// Hand-computed expectations (newest first).
const cases: Array<{ name: string; snaps: Snap[]; policy: RetentionPolicy; keep: string[]; now?: Date }> = [
  { name: 'keep-last 3 of 6', snaps: twoPerDay, policy: { keepLast: 3 }, keep: ['d3b', 'd3a', 'd2b'] },
  { name: 'keep-last larger than history', snaps: years, policy: { keepLast: 10 }, keep: ['y2023', 'y2022', 'y2020b', 'y2020a', 'y2019'] },
  { name: 'keep-hourly 2', snaps: hours, policy: { keepHourly: 2 }, keep: ['h5', 'h4'] },
  { name: 'keep-hourly 3 (count used up before the oldest)', snaps: hours, policy: { keepHourly: 3 }, keep: ['h5', 'h4', 'h2'] },
  { name: 'keep-daily 2, two per day', snaps: twoPerDay, policy: { keepDaily: 2 }, keep: ['d3b', 'd2b'] },
  { name: 'keep-daily 3, two per day', snaps: twoPerDay, policy: { keepDaily: 3 }, keep: ['d3b', 'd2b', 'd1b'] },
  { name: 'keep-daily 4 > days: oldest kept as well (restic)', snaps: twoPerDay, policy: { keepDaily: 4 }, keep: ['d3b', 'd2b', 'd1b', 'd1a'] },
  { name: 'keep-daily -1 (unlimited) also keeps the oldest', snaps: twoPerDay, policy: { keepDaily: -1 }, keep: ['d3b', 'd2b', 'd1b', 'd1a'] },
  { name: 'keep-last -1 keeps all', snaps: twoPerDay, policy: { keepLast: -1 }, keep: ['d3b', 'd3a', 'd2b', 'd2a', 'd1b', 'd1a'] },
  { name: 'keep-weekly 2 across ISO year boundary', snaps: yearEnd, policy: { keepWeekly: 2 }, keep: ['w01b', 'w53c'] },
  { name: 'keep-weekly 3 across ISO year boundary', snaps: yearEnd, policy: { keepWeekly: 3 }, keep: ['w01b', 'w53c', 'w52'] },
  { name: 'keep-yearly uses calendar years, not ISO years', snaps: yearEnd, policy: { keepYearly: 2 }, keep: ['w01b', 'w53b'] },
  { name: 'keep-monthly 3 with gaps', snaps: monthsWithGaps, policy: { keepMonthly: 3 }, keep: ['m7', 'm5', 'm4'] },
  { name: 'keep-monthly 5 with gaps (+ oldest)', snaps: monthsWithGaps, policy: { keepMonthly: 5 }, keep: ['m7', 'm5', 'm4', 'm2', 'm1'] },
  { name: 'keep-yearly 3', snaps: years, policy: { keepYearly: 3 }, keep: ['y2023', 'y2022', 'y2020b'] },
  { name: 'keep-yearly -1', snaps: years, policy: { keepYearly: -1 }, keep: ['y2023', 'y2022', 'y2020b', 'y2019'] },
  { name: 'last + daily + weekly overlapping', snaps: mixed, policy: { keepLast: 2, keepDaily: 3, keepWeekly: 2 }, keep: ['f', 'e', 'c', 'b'] },
  { name: 'keep-within 7d (strictly newer than latest - 7d)', snaps: within, policy: { keepWithin: '7d' }, keep: ['k1', 'k3'] },
  {
    name: 'keep-within ignores future snapshots when finding the latest',
    snaps: [...within, s('kf', '2024-06-01T00:00:00Z')],
    policy: { keepWithin: '7d' },
    now: new Date('2024-05-10T13:00:00Z'),
    keep: ['kf', 'k1', 'k3'],
  },
  { name: 'keep-within 2w', snaps: within, policy: { keepWithin: '2w' }, keep: ['k1', 'k3', 'k2', 'k4'] },
  { name: 'keep-tags b', snaps: tagged, policy: { keepTags: ['b'] }, keep: ['t3', 't2'] },
  { name: 'keep-tags a,b needs both', snaps: tagged, policy: { keepTags: ['a,b'] }, keep: ['t3'] },
  { name: 'keep-tags any of several lists', snaps: tagged, policy: { keepTags: ['c', 'a,b'] }, keep: ['t5', 't3'] },
  { name: 'keep-tags are not counted by keep-last', snaps: tagged, policy: { keepLast: 1, keepTags: ['a'] }, keep: ['t6', 't3', 't1'] },
  { name: 'empty policy keeps everything', snaps: monthsWithGaps, policy: {}, keep: ['m7', 'm6', 'm5', 'm4', 'm3', 'm2', 'm1'] },
  { name: 'all-zero policy is empty too', snaps: hours, policy: { keepLast: 0, keepDaily: 0, keepTags: [] }, keep: ['h5', 'h4', 'h3', 'h2', 'h1'] },
];

describe('applyRetention: hand-checked cases', () => {
  for (const c of cases) {
    it(c.name, () => {
      const d = applyRetention(c.snaps, c.policy, c.now);
      assert.deepEqual(
        d.keep.map((k) => k.snapshot.id),
        c.keep,
      );
      const keep = new Set(c.keep);
      const removed = c.snaps.filter((x) => !keep.has(x.id)).map((x) => x.id);
      assert.deepEqual(new Set(d.remove.map((x) => x.id)), new Set(removed));
      for (const k of d.keep) assert.ok(k.reasons.length > 0);
    });
  }

  it('lists every reason a snapshot is kept for', () => {
    assert.deepEqual(reasonsOf(mixed, { keepLast: 2, keepDaily: 3, keepWeekly: 2 }), {
      f: ['last snapshot', 'daily snapshot', 'weekly snapshot'],
      e: ['last snapshot', 'daily snapshot'],
      c: ['daily snapshot'],
      b: ['weekly snapshot'],
    });
    assert.deepEqual(reasonsOf(twoPerDay, { keepLast: 1, keepDaily: 4, keepMonthly: 1 }), {
      d3b: ['last snapshot', 'daily snapshot', 'monthly snapshot'],
      d2b: ['daily snapshot'],
      d1b: ['daily snapshot'],
      d1a: ['oldest daily snapshot'],
    });
    assert.deepEqual(reasonsOf(tagged, { keepLast: 1, keepTags: ['a', 'b'], keepWithin: '2d' }), {
      t6: ['within 2d', 'last snapshot'],
      t5: ['within 2d'],
      t3: ['has tags a', 'has tags b'],
      t2: ['has tags b'],
      t1: ['has tags a'],
    });
    assert.deepEqual(reasonsOf(monthsWithGaps, {}).m1, ['policy is empty']);
  });

  it('buckets by UTC, whatever offset the time string carries', () => {
    const snaps = [
      s('x2', '2024-03-01T22:00:00Z'),
      s('x1', '2024-03-02T01:00:00+02:00'), // 2024-03-01T23:00Z: same UTC day as x2 (local +02 day would be 03-02)
      s('x3', '2024-03-02T00:30:00Z'),
    ];
    assert.deepEqual(keptIds(snaps, { keepDaily: 2 }), ['x3', 'x1']);
    assert.deepEqual(keptIds(snaps.slice(0, 2), { keepDaily: 1 }), ['x1']);
    // Date objects work as well as strings.
    const dated = snaps.map((x) => ({ ...x, time: new Date(x.time) }));
    assert.deepEqual(
      applyRetention(dated, { keepDaily: 2 }).keep.map((k) => k.snapshot.id),
      ['x3', 'x1'],
    );
    assert.equal(bucketKey.daily(new Date('2023-08-31T23:59:59.999Z')), '2023-08-31');
    assert.equal(bucketKey.monthly(new Date('2023-09-01T00:00:00Z')), '2023-09');
    assert.equal(bucketKey.hourly(new Date('2024-01-01T11:59:59.999Z')), '2024-01-01 11');
    assert.equal(bucketKey.weekly(new Date('2021-01-03T23:59:59Z')), '2020-W53');
    assert.equal(bucketKey.yearly(new Date('2021-01-03T23:59:59Z')), '2021');
  });

  it('computes ISO weeks like Go time.ISOWeek', () => {
    const w = (d: string) => isoWeek(new Date(d));
    assert.deepEqual(w('2020-12-27T00:00:00Z'), { year: 2020, week: 52 });
    assert.deepEqual(w('2020-12-28T00:00:00Z'), { year: 2020, week: 53 });
    assert.deepEqual(w('2021-01-03T23:59:59Z'), { year: 2020, week: 53 });
    assert.deepEqual(w('2021-01-04T00:00:00Z'), { year: 2021, week: 1 });
    assert.deepEqual(w('2019-12-30T00:00:00Z'), { year: 2020, week: 1 });
    assert.deepEqual(w('2018-12-31T00:00:00Z'), { year: 2019, week: 1 });
    assert.deepEqual(w('2016-01-03T00:00:00Z'), { year: 2015, week: 53 });
    assert.deepEqual(w('2024-12-29T00:00:00Z'), { year: 2024, week: 52 });
    assert.deepEqual(w('2024-12-30T00:00:00Z'), { year: 2025, week: 1 });
  });

  it('keep-within uses calendar months (restic "m") and strict comparison', () => {
    const snaps = [
      s('latest', '2024-03-31T00:00:00Z'),
      s('edge', '2024-03-02T00:00:00Z'), // 2024-03-31 minus 1 month = "02-31" = 03-02
      s('inside', '2024-03-02T00:00:01Z'),
      s('old', '2024-02-29T00:00:00Z'),
    ];
    assert.deepEqual(keptIds(snaps, { keepWithin: '1m' }), ['latest', 'inside']);
    assert.deepEqual(keptIds(snaps, { keepWithin: '1mo' }), ['latest', 'inside']);
    assert.deepEqual(keptIds(snaps, { keepWithin: '1m1d' }), ['latest', 'inside', 'edge']);
  });

  it('handles an empty list and a single snapshot', () => {
    assert.deepEqual(applyRetention([], { keepLast: 3 }), { keep: [], remove: [] });
    assert.deepEqual(applyRetention([], { keepWithin: '1d' }), { keep: [], remove: [] });
    const one = [s('only', '2024-01-01T00:00:00Z')];
    assert.deepEqual(reasonsOf(one, { keepDaily: 1, keepWeekly: 3 }), { only: ['daily snapshot', 'weekly snapshot'] });
  });

  it('rejects invalid policies and times with a clear error', () => {
    assert.throws(() => applyRetention(twoPerDay, { keepDaily: -2 }), (e: unknown) => e instanceof ConfigError && /keepDaily/.test(e.message));
    assert.throws(() => applyRetention(twoPerDay, { keepLast: 1.5 }), (e: unknown) => e instanceof ConfigError && /keepLast/.test(e.message));
    assert.throws(() => applyRetention(twoPerDay, { keepWithin: '7x' }), (e: unknown) => e instanceof ConfigError && /keepWithin.*7x/.test(e.message));
    assert.throws(() => applyRetention(twoPerDay, { keepTags: [' , '] }), (e: unknown) => e instanceof ConfigError && /keepTags/.test(e.message));
    assert.throws(() => applyRetention([s('bad', 'yesterday')], { keepLast: 1 }), /snapshot bad: invalid time "yesterday"/);
  });
});

// ---------------------------------------------------------------------------
// Two years of snapshots every 3 hours (2022-01-01T00:00Z .. 2023-12-31T21:00Z)
// with gaps: all of June 2023 and 2023-12-25 .. 2023-12-27.

function longHistory(): Snap[] {
  const out: Snap[] = [];
  const start = Date.parse('2022-01-01T00:00:00Z');
  const end = Date.parse('2023-12-31T21:00:00Z');
  for (let t = start; t <= end; t += 3 * 3_600_000) {
    const iso = new Date(t).toISOString();
    if (iso.startsWith('2023-06')) continue;
    if (iso >= '2023-12-25' && iso < '2023-12-28') continue;
    out.push(s(iso.slice(0, 13), iso)); // id like "2023-12-31T21"
  }
  return out;
}

/**
 * Independent formulation of the same rules: for each bucket kind, group by
 * bucket, take the newest snapshot of each of the N newest buckets, and the
 * oldest snapshot when fewer than N buckets exist (or N = -1).
 */
function referenceKeep(snaps: Snap[], p: RetentionPolicy): Set<string> {
  const sorted = [...snaps].sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? -1 : 1));
  const keep = new Set<string>();
  const kinds: Array<[number | undefined, (d: Date, i: number) => string]> = [
    [p.keepLast, (_d, i) => String(i)],
    [p.keepHourly, bucketKey.hourly],
    [p.keepDaily, bucketKey.daily],
    [p.keepWeekly, bucketKey.weekly],
    [p.keepMonthly, bucketKey.monthly],
    [p.keepYearly, bucketKey.yearly],
  ];
  for (const [n, key] of kinds) {
    if (!n) continue;
    const newestPerBucket = new Map<string, Snap>();
    sorted.forEach((x, i) => {
      const k = key(new Date(x.time), i);
      if (!newestPerBucket.has(k)) newestPerBucket.set(k, x);
    });
    const buckets = [...newestPerBucket.values()]; // insertion order = newest bucket first
    for (const x of n === -1 ? buckets : buckets.slice(0, n)) keep.add(x.id);
    if (sorted.length && (n === -1 || buckets.length < n)) keep.add(sorted[sorted.length - 1]!.id);
  }
  for (const x of sorted) {
    if (p.keepTags?.some((l) => l.split(',').every((t) => x.tags?.includes(t)))) keep.add(x.id);
  }
  if (p.keepWithin && sorted.length) {
    const cutoff = subtractCalendarDuration(new Date(sorted[0]!.time), parseCalendarDuration(p.keepWithin)).getTime();
    for (const x of sorted) if (Date.parse(x.time) > cutoff) keep.add(x.id);
  }
  return keep;
}

describe('applyRetention: two years every 3 hours with gaps', () => {
  const hist = longHistory();
  const far = new Date('2100-01-01T00:00:00Z');

  it('matches the hand-computed keep set for a typical policy', () => {
    assert.equal(hist.length, 8 * (365 + 365 - 30 - 3));
    const d = applyRetention(hist, { keepLast: 3, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: -1 }, far);
    const expected = [
      '2023-12-31T21', '2023-12-31T18', '2023-12-31T15', // last 3
      '2023-12-30T21', '2023-12-29T21', '2023-12-28T21', // daily (12-25..27 missing)
      '2023-12-24T21', '2023-12-23T21', '2023-12-22T21', // daily; 12-24 (Sun) is also weekly W51
      '2023-12-17T21', '2023-12-10T21', // weekly W50, W49
      '2023-11-30T21', '2023-10-31T21', '2023-09-30T21', '2023-08-31T21', '2023-07-31T21', // monthly (no June)
      '2023-05-31T21', '2023-04-30T21', '2023-03-31T21', '2023-02-28T21', '2023-01-31T21',
      '2022-12-31T21', // 12th month; also yearly 2022
      '2022-01-01T00', // oldest yearly snapshot (yearly is unlimited)
    ];
    assert.deepEqual(
      d.keep.map((k) => k.snapshot.id),
      expected,
    );
    assert.equal(d.remove.length, hist.length - expected.length);
    const r = Object.fromEntries(d.keep.map((k) => [k.snapshot.id, k.reasons]));
    assert.deepEqual(r['2023-12-31T21'], ['last snapshot', 'daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot']);
    assert.deepEqual(r['2023-12-24T21'], ['daily snapshot', 'weekly snapshot']);
    assert.deepEqual(r['2022-12-31T21'], ['monthly snapshot', 'yearly snapshot']);
    assert.deepEqual(r['2022-01-01T00'], ['oldest yearly snapshot']);
  });

  it('keep-hourly and keep-within on the long history', () => {
    assert.deepEqual(keptIds(hist, { keepHourly: 4 }, far), ['2023-12-31T21', '2023-12-31T18', '2023-12-31T15', '2023-12-31T12']);
    // latest 2023-12-31T21:00 - 5d = 12-26T21:00; 12-25..27 are missing, so 12-28T00 .. 12-31T21 = 4 days x 8.
    const w = keptIds(hist, { keepWithin: '5d' }, far);
    assert.equal(w.length, 32);
    assert.equal(w.at(-1), '2023-12-28T00');
  });

  const policies: RetentionPolicy[] = [
    { keepDaily: 30 },
    { keepWeekly: 60 },
    { keepWeekly: 200 },
    { keepMonthly: 6, keepYearly: 1 },
    { keepMonthly: -1 },
    { keepHourly: 48, keepDaily: 14, keepWeekly: 8, keepMonthly: 24, keepYearly: 5 },
    { keepLast: 10, keepWithin: '1m2w' },
  ];
  for (const p of policies) {
    it(`agrees with the reference formulation for ${describePolicy(p)}`, () => {
      assert.deepEqual(new Set(keptIds(hist, p, far)), referenceKeep(hist, p));
    });
  }
});

// ---------------------------------------------------------------------------
// Property checks

const T0 = Date.parse('2019-12-01T00:00:00Z');
const SPAN = 3 * 365 * 24 * 3_600_000;
const historyArb = fc
  .array(
    fc.record({
      // Mostly distinct times, with some collisions on whole hours to exercise ties.
      t: fc.oneof(
        fc.integer({ min: 0, max: SPAN }),
        fc.integer({ min: 0, max: 3 * 365 * 24 }).map((h) => h * 3_600_000),
        fc.integer({ min: 0, max: 40 }).map((d) => d * 86_400_000), // frequent exact ties
      ),
      tags: fc.subarray(['a', 'b', 'c']),
    }),
    { maxLength: 80 },
  )
  .map((xs) => xs.map((x, i) => s(`s${String(i).padStart(3, '0')}`, new Date(T0 + x.t).toISOString(), x.tags)));
const countArb = fc.oneof(fc.constant(undefined), fc.constant(-1), fc.integer({ min: 0, max: 12 }));
const policyArb: fc.Arbitrary<RetentionPolicy> = fc
  .record({
    keepLast: countArb,
    keepHourly: countArb,
    keepDaily: countArb,
    keepWeekly: countArb,
    keepMonthly: countArb,
    keepYearly: countArb,
    keepWithin: fc.oneof(fc.constant(undefined), fc.constantFrom('1d', '36h', '2w', '3m', '1y2m3d4h')),
    keepTags: fc.oneof(fc.constant(undefined), fc.constantFrom(['a'], ['a,b'], ['c', 'b'])),
  })
  .map((p) => Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as RetentionPolicy);
const NOW = new Date('2100-01-01T00:00:00Z');

describe('applyRetention: properties', () => {
  it('kept and removed partition the input', () => {
    fc.assert(
      fc.property(historyArb, policyArb, (snaps, p) => {
        const d = applyRetention(snaps, p, NOW);
        const kept = d.keep.map((k) => k.snapshot.id);
        const removed = d.remove.map((x) => x.id);
        assert.equal(kept.length + removed.length, snaps.length);
        assert.equal(new Set([...kept, ...removed]).size, snaps.length);
        assert.deepEqual(new Set([...kept, ...removed]), new Set(snaps.map((x) => x.id)));
        for (const k of d.keep) assert.ok(k.reasons.length > 0);
        if (isEmptyPolicy(p)) assert.equal(removed.length, 0);
        // Any count or keep-within keeps at least the newest snapshot (tags alone may match nothing).
        else if (snaps.length && (p.keepWithin || [p.keepLast, p.keepHourly, p.keepDaily, p.keepWeekly, p.keepMonthly, p.keepYearly].some(Boolean))) {
          const newest = [...snaps].sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? -1 : 1))[0]!;
          assert.ok(kept.includes(newest.id), 'the newest snapshot is kept');
        }
      }),
      { numRuns: 300 },
    );
  });

  it('keep-last N alone keeps exactly the min(N, total) newest', () => {
    fc.assert(
      fc.property(historyArb, fc.integer({ min: 1, max: 100 }), (snaps, n) => {
        const d = applyRetention(snaps, { keepLast: n }, NOW);
        const newest = [...snaps].sort((a, b) => Date.parse(b.time) - Date.parse(a.time) || (a.id < b.id ? -1 : 1)).slice(0, n);
        assert.deepEqual(
          d.keep.map((k) => k.snapshot.id),
          newest.map((x) => x.id),
        );
        assert.equal(d.keep.length, Math.min(n, snaps.length));
      }),
      { numRuns: 200 },
    );
  });

  it('does not depend on input order', () => {
    fc.assert(
      fc.property(
        historyArb.chain((snaps) => fc.tuple(fc.constant(snaps), fc.shuffledSubarray(snaps, { minLength: snaps.length, maxLength: snaps.length }))),
        policyArb,
        ([snaps, shuffled], p) => {
          assert.deepEqual(applyRetention(shuffled, p, NOW), applyRetention(snaps, p, NOW));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('agrees with the bucket-grouping reference formulation', () => {
    fc.assert(
      fc.property(historyArb, policyArb, (snaps, p) => {
        assert.deepEqual(new Set(keptIds(snaps, p, NOW)), isEmptyPolicy(p) ? new Set(snaps.map((x) => x.id)) : referenceKeep(snaps, p));
      }),
      { numRuns: 300 },
    );
  });

  it('raising a count never removes a snapshot that was kept', () => {
    const keys = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;
    fc.assert(
      fc.property(historyArb, policyArb, fc.constantFrom(...keys), fc.integer({ min: 1, max: 5 }), (snaps, p, k, by) => {
        if (isEmptyPolicy(p)) return;
        const cur = p[k] ?? 0;
        const more = { ...p, [k]: cur === -1 ? -1 : cur + by };
        const before = new Set(keptIds(snaps, p, NOW));
        const after = new Set(keptIds(snaps, more, NOW));
        for (const id of before) assert.ok(after.has(id), `${id} kept with ${JSON.stringify(p)} but not with ${JSON.stringify(more)}`);
      }),
      { numRuns: 300 },
    );
  });
});

describe('groupSnapshots', () => {
  it('groups by key, keeping input order within each group', () => {
    const snaps = [
      { id: '1', host: 'a', time: '2024-01-01T00:00:00Z' },
      { id: '2', host: 'b', time: '2024-01-02T00:00:00Z' },
      { id: '3', host: 'a', time: '2024-01-03T00:00:00Z' },
    ];
    const g = groupSnapshots(snaps, (x) => x.host);
    assert.deepEqual([...g.keys()], ['a', 'b']);
    assert.deepEqual(
      g.get('a')!.map((x) => x.id),
      ['1', '3'],
    );
    // Policy applied per group: keep-last 1 keeps one per host.
    const kept = [...g.values()].flatMap((l) => applyRetention(l, { keepLast: 1 }).keep.map((k) => k.snapshot.id));
    assert.deepEqual(kept, ['3', '2']);
  });
});

describe('isEmptyPolicy / describePolicy / schema', () => {
  it('isEmptyPolicy', () => {
    assert.equal(isEmptyPolicy({}), true);
    assert.equal(isEmptyPolicy(undefined), true);
    assert.equal(isEmptyPolicy({ keepLast: 0, keepTags: [], keepWithin: '' }), true);
    assert.equal(isEmptyPolicy({ keepYearly: -1 }), false);
    assert.equal(isEmptyPolicy({ keepTags: ['x'] }), false);
    assert.equal(isEmptyPolicy({ keepWithin: '1d' }), false);
  });

  it('describePolicy', () => {
    assert.equal(describePolicy({ keepDaily: 7, keepWeekly: -1 }), 'keep 7 daily, all weekly snapshots');
    assert.equal(describePolicy({ keepLast: 1, keepTags: ['a,b'], keepWithin: '2w' }), 'keep 1 latest snapshots and all snapshots with tags [a, b] and all snapshots within 2w of the newest');
    assert.equal(describePolicy({}), 'empty policy (keep everything)');
  });

  it('retentionPolicySchema accepts valid blocks and rejects bad ones', () => {
    assert.deepEqual(retentionPolicySchema.parse({ keepDaily: 7, keepYearly: -1, keepWithin: '1y2m', keepTags: ['x', 'a,b'] }), {
      keepDaily: 7,
      keepYearly: -1,
      keepWithin: '1y2m',
      keepTags: ['x', 'a,b'],
    });
    const msg = (v: unknown) => {
      const r = retentionPolicySchema.safeParse(v);
      assert.equal(r.success, false, `expected ${JSON.stringify(v)} to be rejected`);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.match(msg({ keepDaily: -2 }), /keepDaily: .*-1 for unlimited/);
    assert.match(msg({ keepDaily: 1.5 }), /keepDaily: expected a whole number/);
    assert.match(msg({ keepDaily: '7' }), /keepDaily/);
    assert.match(msg({ keep_daily: 7 }), /keep_daily/);
    assert.match(msg({ keepWithin: '15s' }), /keepWithin: invalid duration "15s"/);
    assert.match(msg({ keepTags: [''] }), /keepTags.0: empty tag/);
  });
});

describe('durations', () => {
  it('parseDuration', () => {
    const table: Array<[string, number]> = [
      ['500ms', 500],
      ['90s', 90_000],
      ['15m', 900_000],
      ['1h', 3_600_000],
      ['1h30m', 5_400_000],
      ['24h', 86_400_000],
      ['7d', 7 * 86_400_000],
      ['2w', 14 * 86_400_000],
      ['1mo', 30 * 86_400_000],
      ['1y', 365 * 86_400_000],
      ['1d12h', 36 * 3_600_000],
      ['  4h ', 4 * 3_600_000],
      ['0h15m', 900_000],
    ];
    for (const [input, ms] of table) assert.equal(parseDuration(input), ms, input);
  });

  it('parseDuration errors name the problem', () => {
    const table: Array<[string, RegExp]> = [
      ['', /empty/],
      ['   ', /empty/],
      ['abc', /invalid duration "abc": unexpected "abc"/],
      ['10', /number 10 has no unit/],
      ['10x', /unknown unit in "10x"/],
      ['1h1h', /unit "h" given twice/],
      ['0m', /greater than zero/],
      ['-5m', /unexpected "-5m"/],
      ['1.5h', /unexpected/],
      ['1h 30m', /unexpected " 30m"/],
      ['h', /unexpected "h"/],
      ['15min', /unexpected "in"/],
      ['99999999999999y', /too large/],
    ];
    for (const [input, re] of table) {
      assert.throws(() => parseDuration(input), (e: unknown) => e instanceof ConfigError && re.test(e.message), input);
    }
    assert.throws(() => parseDuration(42 as unknown as string), /expected a string/);
  });

  it('parseCalendarDuration (restic keep-within syntax)', () => {
    assert.deepEqual(parseCalendarDuration('1y2m3d4h'), { years: 1, months: 2, days: 3, hours: 4 });
    assert.deepEqual(parseCalendarDuration('2w'), { years: 0, months: 0, days: 14, hours: 0 });
    assert.deepEqual(parseCalendarDuration('1w2d'), { years: 0, months: 0, days: 9, hours: 0 });
    assert.deepEqual(parseCalendarDuration('6mo'), { years: 0, months: 6, days: 0, hours: 0 });
    assert.throws(() => parseCalendarDuration('15s'), /unknown unit in "15s"/);
    assert.throws(() => parseCalendarDuration('30min'), /unexpected "in"/);
    assert.throws(() => parseCalendarDuration('0d'), /greater than zero/);
    assert.throws(() => parseCalendarDuration('1m1mo'), /months given twice/);
  });

  it('subtractCalendarDuration uses calendar arithmetic in UTC', () => {
    const sub = (t: string, d: string) => subtractCalendarDuration(new Date(t), parseCalendarDuration(d)).toISOString();
    assert.equal(sub('2024-05-10T12:00:00.000Z', '1y2m3d4h'), '2023-03-07T08:00:00.000Z');
    assert.equal(sub('2024-03-31T00:00:00.000Z', '1m'), '2024-03-02T00:00:00.000Z');
    assert.equal(sub('2024-02-29T00:00:00.000Z', '1y'), '2023-03-01T00:00:00.000Z');
    assert.equal(sub('2024-01-10T05:00:00.000Z', '2w6h'), '2023-12-26T23:00:00.000Z');
    assert.equal(sub('0100-06-01T00:00:00.000Z', '1y'), '0099-06-01T00:00:00.000Z');
  });

  it('formatDuration', () => {
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(90_061_000), '1d1h1m1s');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(-60_000), '-1m');
  });
});
