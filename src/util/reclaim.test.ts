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

test('leanHeap: off unless LIFEBOAT_LEAN_HEAP=1; reference counted, each release counts once', async () => {
  const { leanHeap, leanHeapUsers } = await import('./reclaim.js');
  const saved = process.env.LIFEBOAT_LEAN_HEAP;
  try {
    delete process.env.LIFEBOAT_LEAN_HEAP;
    leanHeap()();
    assert.equal(leanHeapUsers(), 0);
    process.env.LIFEBOAT_LEAN_HEAP = '1';
    const a = leanHeap();
    const b = leanHeap();
    assert.equal(leanHeapUsers(), 2);
    a();
    a();
    assert.equal(leanHeapUsers(), 1);
    b();
    assert.equal(leanHeapUsers(), 0);
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_LEAN_HEAP;
    else process.env.LIFEBOAT_LEAN_HEAP = saved;
  }
});
