import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferReclaimer, collector } from './reclaim.js';

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
