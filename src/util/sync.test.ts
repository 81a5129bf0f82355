import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruCache, Semaphore, mapLimit } from './sync.js';

test('Semaphore bounds concurrency and hands slots over in order', async () => {
  const s = new Semaphore(2);
  let running = 0;
  let peak = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      s.with(async () => {
        running++;
        peak = Math.max(peak, running);
        await new Promise((r) => setTimeout(r, 5));
        order.push(i);
        running--;
      }),
    ),
  );
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7]);
});

test('Semaphore.with releases the slot when the function throws', async () => {
  const s = new Semaphore(1);
  await assert.rejects(s.with(async () => Promise.reject(new Error('boom'))), /boom/);
  assert.equal(await s.with(async () => 42), 42);
});

test('LruCache evicts least recently used entries by bytes and skips oversized values', () => {
  const c = new LruCache<Buffer>(100);
  c.set('a', Buffer.alloc(20));
  c.set('b', Buffer.alloc(20));
  c.set('c', Buffer.alloc(20));
  c.get('a'); // a is now the most recent
  c.set('d', Buffer.alloc(20));
  c.set('e', Buffer.alloc(20)); // 100 bytes: everything fits
  c.set('f', Buffer.alloc(20)); // evicts b (least recent)
  assert.equal(c.get('b'), undefined);
  assert.ok(c.get('a'));
  c.set('huge', Buffer.alloc(26)); // more than a quarter of the budget: not cached
  assert.equal(c.get('huge'), undefined);
});

test('mapLimit keeps input order and bounds parallelism', async () => {
  let running = 0;
  let peak = 0;
  const out = await mapLimit([5, 1, 4, 2, 3], 2, async (x) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, x));
    running--;
    return x * 10;
  });
  assert.deepEqual(out, [50, 10, 40, 20, 30]);
  assert.equal(peak, 2);
  assert.deepEqual(await mapLimit([], 4, async () => 1), []);
});

test('ByteBudget: waits until the bytes fit, serves waiters in order, lets one oversized holder through', async () => {
  const { ByteBudget } = await import('./sync.js');
  const b = new ByteBudget(100);
  await b.acquire(60);
  await b.acquire(40);
  const order: string[] = [];
  const p1 = b.acquire(50).then(() => order.push('50'));
  const p2 = b.acquire(10).then(() => order.push('10')); // fits after the first, but must not overtake it
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []);
  b.release(40);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, []); // 60 + 50 > 100
  b.release(60);
  await Promise.all([p1, p2]);
  assert.deepEqual(order, ['50', '10']);
  assert.equal(b.inUse, 60);
  b.release(60);
  await b.acquire(1000); // larger than the budget: allowed alone
  assert.equal(b.inUse, 1000);
  let big = false;
  const p3 = b.acquire(1).then(() => (big = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(big, false);
  b.release(1000);
  await p3;
});
