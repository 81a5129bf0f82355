import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferReclaimer, collector, envMiB } from './reclaim.js';

test('collector reaches V8 minor collections at run time', () => {
  const gc = collector();
  assert.equal(typeof gc, 'function');
  gc!({ type: 'minor' });
});

test('BufferReclaimer collects once every `every` bytes dropped, not before', () => {
  const r = new BufferReclaimer(100);
  r.dropped(60);
  assert.equal(r.collections, 0);
  r.dropped(39);
  assert.equal(r.collections, 0);
  r.dropped(1);
  assert.equal(r.collections, 1);
  r.dropped(99);
  assert.equal(r.collections, 1);
  r.dropped(250);
  assert.equal(r.collections, 2);
});

test('BufferReclaimer runs a full collection (instead of a minor one) once every `full` bytes dropped', () => {
  const r = new BufferReclaimer(100, 250);
  r.dropped(100);
  r.dropped(100);
  assert.equal(r.collections, 2);
  assert.equal(r.fullCollections, 0);
  r.dropped(50); // 250 since the start: full, even below `every`
  assert.equal(r.fullCollections, 1);
  assert.equal(r.collections, 2);
  r.dropped(100);
  assert.equal(r.collections, 3);
  assert.equal(r.fullCollections, 1);
  const none = new BufferReclaimer(100);
  for (let i = 0; i < 10; i++) none.dropped(100);
  assert.equal(none.fullCollections, 0);
  assert.equal(none.collections, 10);
});

test('BufferReclaimer runs a full collection once the heap grew by `heapCap` bytes, whatever the bytes dropped', () => {
  const r = new BufferReclaimer(1 << 30, 1 << 30, 4 * 1024 * 1024);
  r.dropped(0); // the baseline
  assert.equal(r.fullCollections, 0);
  // 8 MiB of small objects kept (as a restore's per-file state), then let go
  let keep: Array<{ a: number; b: string }> | undefined = [];
  for (let i = 0; i < 200_000; i++) keep.push({ a: i, b: `f${i}` });
  r.dropped(0);
  assert.equal(r.fullCollections, 1);
  assert.equal(r.collections, 0);
  keep = undefined;
  r.dropped(0); // the new baseline is the heap after that collection: nothing more
  assert.equal(r.fullCollections, 1);
  // without a cap the same growth collects nothing
  const none = new BufferReclaimer(1 << 30, 1 << 30);
  none.dropped(0);
  keep = [];
  for (let i = 0; i < 200_000; i++) keep.push({ a: i, b: `f${i}` });
  none.dropped(0);
  assert.equal(none.fullCollections + none.collections, 0);
  assert.equal(keep.length, 200_000);
});

test('BufferReclaimer: the heap baseline follows the heap down (a collection by V8 after a baseline taken with garbage)', () => {
  const MB = 1024 * 1024;
  const heap = [40, 12.6, 12.9, 13.2, 12.8, 13.1];
  let at = 0;
  const r = new BufferReclaimer(1 << 30, 1 << 30, 0.5 * MB, () => heap[at] * MB);
  r.dropped(0); // 40 MB: a baseline holding garbage
  for (at = 1; at <= 3; at++) r.dropped(0); // V8 collected it: 12.6, then +0.3, +0.6 past the low point
  assert.equal(r.fullCollections, 1, 'growth counts from the lowest heap seen, not from the 40 MB');
  at = 4; // after our collection the baseline is the heap then (13.2), and follows it down to 12.8: 13.1 is +0.3
  r.dropped(0);
  at = 5;
  r.dropped(0);
  assert.equal(r.fullCollections, 1);
});

test('envMiB: a threshold in MiB from the environment as bytes; 0, negative or not a number: 0 (none); unset: the default', () => {
  assert.equal(envMiB('LB_X', 8, {}), 8 * 1024 * 1024);
  assert.equal(envMiB('LB_X', 8, { LB_X: '0.25' }), 0.25 * 1024 * 1024);
  assert.equal(envMiB('LB_X', 8, { LB_X: '0' }), 0);
  assert.equal(envMiB('LB_X', 8, { LB_X: '-3' }), 0);
  assert.equal(envMiB('LB_X', 8, { LB_X: 'lots' }), 0);
});
