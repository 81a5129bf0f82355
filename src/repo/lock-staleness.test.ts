import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CLOCK_SKEW_ALLOWANCE_MS, LEGACY_LEASE_MS, LockObserver, judgeLock, type LockEntry } from './lock-staleness.js';

const LEASE = 60_000;
const T0 = Date.parse('2026-01-01T12:00:00Z');

function entry(over: Partial<LockEntry['info']> = {}, mtime?: number): LockEntry {
  const refreshed = new Date(T0).toISOString();
  return {
    name: 'a'.repeat(64),
    info: { time: refreshed, refreshed, exclusive: true, hostname: 'other-host', pid: 1234, operation: 'prune', nonce: '0123456789abcdef', leaseMs: LEASE, seq: 3, ...over },
    ...(mtime !== undefined ? { mtime: new Date(mtime) } : {}),
  };
}

const alive = () => true;

test("the storage's clock decides alone when it is known: skewed host clocks do not matter", () => {
  // the holder's clock is an hour behind (refreshed looks ancient), the storage saw it rewritten 10 s ago: live
  const skewed = entry({ refreshed: new Date(T0 - 3_600_000).toISOString(), time: new Date(T0 - 3_600_000).toISOString() }, T0 - 10_000);
  const v = judgeLock(skewed, { serverTimes: true, reference: new Date(T0), now: T0, host: 'me', alive });
  assert.equal(v.stale, false, v.reason);
  // the holder's clock is an hour ahead (refreshed in the future), the storage has not seen a rewrite for lease + 2 s: stale
  const ahead = entry({ refreshed: new Date(T0 + 3_600_000).toISOString() }, T0 - LEASE - 2000);
  const w = judgeLock(ahead, { serverTimes: true, reference: new Date(T0), now: T0, host: 'me', alive });
  assert.equal(w.stale, true);
  assert.match(w.reason, /by the storage's clock/);
  // within the 1 s listing granularity past the lease: still live
  assert.equal(judgeLock(entry({}, T0 - LEASE - 500), { serverTimes: true, reference: new Date(T0), now: T0, host: 'me', alive }).stale, false);
});

test('without storage times: a lock seen unchanged for longer than its lease is stale; a refresh resets the observation', () => {
  let mono = 0;
  const obs = new LockObserver(() => mono);
  const ctx = { serverTimes: false, observer: obs, now: T0, host: 'me', alive };
  assert.equal(judgeLock(entry(), ctx).stale, false);
  mono = LEASE - 1;
  assert.equal(judgeLock(entry(), ctx).stale, false);
  // refreshed (seq + 1) just before the lease ran out: observed afresh
  assert.equal(judgeLock(entry({ seq: 4 }), ctx).stale, false);
  mono = 2 * LEASE - 2;
  assert.equal(judgeLock(entry({ seq: 4 }), ctx).stale, false);
  mono = 2 * LEASE + 10;
  const v = judgeLock(entry({ seq: 4 }), ctx);
  assert.equal(v.stale, true);
  assert.match(v.reason, /seen unchanged/);
});

test("the holder's clock alone needs the lease plus the skew allowance", () => {
  const ctx = (now: number) => ({ serverTimes: false, now, host: 'me', alive });
  assert.equal(judgeLock(entry(), ctx(T0 + LEASE + CLOCK_SKEW_ALLOWANCE_MS - 1000)).stale, false);
  assert.equal(judgeLock(entry(), ctx(T0 + LEASE + CLOCK_SKEW_ALLOWANCE_MS + 1000)).stale, true);
  // a lock written before leases (no leaseMs) keeps the old 30 minutes
  const legacy = entry({ leaseMs: undefined });
  assert.equal(judgeLock(legacy, ctx(T0 + LEASE + CLOCK_SKEW_ALLOWANCE_MS + 1000)).stale, false);
  assert.equal(judgeLock(legacy, ctx(T0 + LEGACY_LEASE_MS + CLOCK_SKEW_ALLOWANCE_MS + 1000)).stale, true);
});

test('same host: a lock whose process is gone is stale at once; another host\'s pid is never checked', () => {
  const dead = () => false;
  const v = judgeLock(entry({ hostname: 'me' }), { serverTimes: true, reference: new Date(T0), now: T0, host: 'me', alive: dead });
  assert.equal(v.stale, true);
  assert.match(v.reason, /process 1234 on this host \(me\) is gone/);
  assert.equal(judgeLock(entry({}, T0), { serverTimes: true, reference: new Date(T0), now: T0, host: 'me', alive: dead }).stale, false);
});

test('an unreadable lock object is stale', () => {
  assert.equal(judgeLock({ ...entry(), unreadable: true }, { serverTimes: true, host: 'me', alive }).stale, true);
});
