import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlobCache } from './blob-cache.js';

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
