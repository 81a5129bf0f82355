import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { decodeHexId, isHexId } from './hex-id.js';

const RE = /^[0-9a-f]{64}$/;

test('ids: exactly 64 lowercase hex digits are accepted, and decode to their bytes', () => {
  const out = Buffer.alloc(32);
  for (let i = 0; i < 200; i++) {
    const id = createHash('sha256').update(String(i)).digest('hex');
    assert.equal(isHexId(id), true);
    assert.equal(decodeHexId(id, out), true);
    assert.equal(out.toString('hex'), id);
  }
  assert.equal(decodeHexId('0123456789abcdef'.repeat(4), out), true);
  assert.equal(out.toString('hex'), '0123456789abcdef'.repeat(4));
});

test('ids: anything else is refused, as the regular expression it replaces would', () => {
  const good = 'a'.repeat(64);
  const bad: unknown[] = [undefined, null, 42, {}, [], '', 'a'.repeat(63), 'a'.repeat(65), good.toUpperCase(), ` ${good.slice(1)}`, `${good.slice(1)}\n`];
  // every character next to the accepted ranges, at the first, a middle and the last position
  for (const c of ['/', ':', '`', 'g', 'A', 'F', '\u0000', '\u00e9', '\u0130']) {
    for (const at of [0, 31, 63]) bad.push(good.slice(0, at) + c + good.slice(at + 1));
  }
  const out = Buffer.alloc(32);
  for (const b of bad) {
    assert.equal(isHexId(b), false, JSON.stringify(b));
    assert.equal(decodeHexId(b, out), false, JSON.stringify(b));
    if (typeof b === 'string') assert.equal(RE.test(b), false, JSON.stringify(b));
  }
});
