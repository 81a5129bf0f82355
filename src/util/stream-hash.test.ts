import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { StreamSha256 } from './stream-hash.js';

// The stream's SHA-256 on the thread pool (native/hash.c) against node's hash on the main
// thread (the fallback): the digest is recorded in every stream snapshot and checked on restore.
const addon = new URL('../../../native/build/Release/hash.node', import.meta.url).pathname;
const skip =
  process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addon) ? 'native/ did not build (no compiler): the JavaScript is used' : false;

/** Pieces of many sizes, empty ones included, from one random buffer. */
function pieces(seed: Buffer): Buffer[] {
  const sizes = [0, 1, 63, 64, 65, 4096, 0, 1 << 20, 12345, 7, (1 << 20) + 3, 0, 100_000];
  const out: Buffer[] = [];
  let at = 0;
  for (const n of sizes) {
    out.push(seed.subarray(at, at + n));
    at += n;
  }
  out.push(seed.subarray(at));
  return out;
}

async function digestOf(parts: Buffer[], native: boolean, waitEach: boolean): Promise<{ hex: string; offThread: boolean }> {
  const h = new StreamSha256({ native });
  for (const p of parts) {
    h.update(p);
    if (waitEach) await h.below(0);
  }
  return { hex: await h.digest(), offThread: h.offThread };
}

test('StreamSha256: the thread-pool hash and the JavaScript one give the SHA-256 of the whole stream', { skip }, async () => {
  const seed = randomBytes(3 << 20);
  const parts = pieces(seed);
  const want = createHash('sha256').update(seed).digest('hex');
  const js = await digestOf(parts, false, false);
  assert.equal(js.offThread, false);
  assert.equal(js.hex, want);
  for (const waitEach of [false, true]) {
    const nat = await digestOf(parts, true, waitEach);
    assert.equal(nat.offThread, true, `${addon} exists but did not load`);
    assert.equal(nat.hex, want, `native, waitEach=${waitEach}`);
  }
  // nothing hashed
  assert.equal((await digestOf([], true, false)).hex, createHash('sha256').digest('hex'));
});

test('StreamSha256: queued bytes fall to zero, below() waits for them; updates run in order', { skip }, async () => {
  const h = new StreamSha256();
  assert.equal(h.offThread, true);
  const a = randomBytes(4 << 20);
  const b = randomBytes(4 << 20);
  h.update(a);
  h.update(b);
  assert.equal(h.queued, 8 << 20);
  await h.below(4 << 20);
  assert.ok(h.queued <= 4 << 20);
  await h.below(0);
  assert.equal(h.queued, 0);
  assert.equal(await h.digest(), createHash('sha256').update(a).update(b).digest('hex'));
});

test('StreamSha256: many small pieces (a pipe\'s) go to the pool in batches, in order, up to 1024 a job', { skip }, async () => {
  const seed = randomBytes(1_200_000);
  const parts: Buffer[] = [];
  for (let at = 0, i = 0; at < seed.length; i++) {
    const n = Math.min(seed.length - at, 1 + ((i * 37) % 200) + (i % 500 === 0 ? 70_000 : 0));
    parts.push(seed.subarray(at, (at += n)));
  }
  assert.ok(parts.length > 2500);
  const h = new StreamSha256();
  assert.equal(h.offThread, true);
  for (const p of parts) h.update(p);
  assert.equal(await h.digest(), createHash('sha256').update(seed).digest('hex'));
  assert.equal(h.queued, 0);
});

test('StreamSha256: flushed() waits until the pieces given so far are hashed, so they may be reused', { skip }, async () => {
  // check --read-data hands a range's buffer back to be read into again once flushed() resolves (verify/read-pack.ts)
  const h = new StreamSha256();
  assert.equal(h.offThread, true);
  const want = createHash('sha256');
  const buf = Buffer.alloc(64 * 1024); // below the batch size: it waits in the queue until someone asks
  for (let round = 0; round < 20; round++) {
    buf.fill(round + 1);
    want.update(buf);
    h.update(buf);
    await h.flushed();
    assert.equal(h.queued, 0);
  }
  // a later piece need not be hashed for an earlier mark to resolve; both orders give the whole digest
  const big = randomBytes(8 << 20);
  const small = Buffer.alloc(1000, 7);
  h.update(small);
  const first = h.flushed();
  h.update(big);
  await first;
  small.fill(0); // hashed already: changing it now does not change the digest
  want.update(Buffer.alloc(1000, 7)).update(big);
  assert.equal(await h.digest(), want.digest('hex'));
});
