import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NONCE_LEN, open, seal } from './crypto.js';

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
