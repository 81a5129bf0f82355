import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlobCache, ReadCache } from './blob-cache.js';

const buf = (n: number, fill = 1) => Buffer.alloc(n, fill);

test('BlobCache keeps at most maxBytes and evicts the least recently used', () => {
  const c = new BlobCache(100);
  c.set('a', buf(20), true);
  c.set('b', buf(20), true);
  c.set('c', buf(20), true);
  c.set('d', buf(20), true);
  assert.equal(c.bytes, 80);
  assert.ok(c.get('a')); // a is now the most recent
  c.set('e', buf(25), true); // 105 > 100: evicts b (least recent)
  assert.equal(c.bytes, 85);
  assert.equal(c.get('b'), undefined);
  assert.ok(c.get('a') && c.get('c') && c.get('d') && c.get('e'));
  for (let i = 0; i < 50; i++) c.set(`x${i}`, buf(7), false);
  assert.ok(c.bytes <= 100, `holds ${c.bytes} bytes`);
});

test('BlobCache refuses an entry larger than a quarter of its bound', () => {
  const c = new BlobCache(100);
  c.set('big', buf(26), true);
  assert.equal(c.get('big'), undefined);
  assert.equal(c.bytes, 0);
  c.set('ok', buf(25), true);
  assert.equal(c.bytes, 25);
});

test('BlobCache tracks whether an entry was verified, never downgrades, drops unverified ones', () => {
  const c = new BlobCache(1000);
  c.set('base', buf(10), false);
  assert.equal(c.get('base')!.verified, false);
  c.markVerified('base');
  assert.equal(c.get('base')!.verified, true);
  c.set('base', buf(10, 2), false); // an unverified copy does not replace a verified one
  assert.equal(c.get('base')!.verified, true);
  assert.equal(c.get('base')!.data[0], 1);
  c.set('other', buf(10), false);
  c.set('tree', buf(10), true);
  c.dropUnverified();
  assert.equal(c.get('other'), undefined);
  assert.ok(c.get('base') && c.get('tree'));
  assert.equal(c.bytes, 20);
  c.delete('base');
  assert.equal(c.bytes, 10);
});

test('ReadCache bounds trees and data blobs apart: bases never push trees out, and hold only their own bound', () => {
  const c = new ReadCache(100, 40);
  c.set('t1', buf(25), true, true);
  c.set('t2', buf(25), true, true);
  for (let i = 0; i < 10; i++) c.set(`base${i}`, buf(10), false, false);
  assert.ok(c.get('t1') && c.get('t2'), 'trees kept');
  assert.equal(c.trees.bytes, 50);
  assert.equal(c.data.bytes, 40);
  assert.equal(c.get('base0'), undefined);
  assert.ok(c.get('base9'));
  c.set('big', buf(11), true, false); // more than a quarter of the data bound
  assert.equal(c.get('big'), undefined);
  c.markVerified('base9');
  c.dropUnverified();
  assert.ok(c.get('base9')!.verified);
  assert.equal(c.data.bytes, 10);
  c.clear();
  assert.equal(c.get('t1'), undefined);
  assert.equal(c.trees.bytes + c.data.bytes, 0);
});
