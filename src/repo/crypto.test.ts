import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NONCE_LEN, TAG_LEN, open, openInPlace, seal } from './crypto.js';

test('seal: every sealed object has its own nonce, across the batches nonces are drawn in', () => {
  const key = randomBytes(32);
  const seen = new Set<string>();
  const msg = Buffer.from('same plaintext');
  for (let i = 0; i < 1000; i++) {
    const sealed = seal(key, msg);
    const nonce = sealed.subarray(0, NONCE_LEN).toString('hex');
    assert.ok(!seen.has(nonce), `nonce repeated after ${i} seals`);
    seen.add(nonce);
    assert.deepEqual(open(key, sealed, 'test'), msg);
  }
});

test('openInPlace: the plaintext open() gives, written over the sealed bytes, across its 1 MiB pieces; a changed byte fails', () => {
  const key = randomBytes(32);
  for (const n of [0, 1, (1 << 20) - NONCE_LEN, 1 << 20, (1 << 20) + 1, 3.5 * (1 << 20)]) {
    const plain = randomBytes(n);
    const sealed = seal(key, plain);
    const expected = open(key, sealed, 'x');
    const out = openInPlace(key, sealed, 'x');
    assert.ok(out.equals(plain) && expected.equals(plain), `${n} bytes`);
    assert.equal(out.buffer, sealed.buffer, 'a view of the sealed bytes, not a copy');
    assert.equal(out.byteOffset, sealed.byteOffset + NONCE_LEN);
    assert.equal(out.length, sealed.length - NONCE_LEN - TAG_LEN);
  }
  const sealed = seal(key, randomBytes(2 << 20));
  for (const at of [0, NONCE_LEN + 5, (1 << 20) + 77, sealed.length - 1]) {
    const bad = Buffer.from(sealed);
    bad[at]! ^= 1;
    assert.throws(() => openInPlace(key, bad, 'index f'), /index f/);
  }
  assert.throws(() => openInPlace(randomBytes(32), Buffer.from(sealed), 'index f'), /index f/);
  assert.throws(() => openInPlace(key, Buffer.alloc(NONCE_LEN + TAG_LEN - 1), 'index f'), /index f/);
});
