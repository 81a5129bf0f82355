import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Cksum, cksum } from './cksum.js';

/** What the system's `cksum` prints for these bytes on its standard input: "CRC SIZE". */
function systemCksum(b: Buffer): string {
  const r = spawnSync('cksum', { input: b, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

test('cksum gives what the system cksum prints, for sizes around every slice and length-byte boundary', () => {
  // sizes: empty, under / at / over an 8-byte slice, one and two length bytes, a 16 MiB WAL segment's neighbours
  for (const n of [0, 1, 7, 8, 9, 15, 255, 256, 257, 65535, 65536, 65537, (1 << 20) + 3, 1 << 24]) {
    const b = randomBytes(n);
    assert.equal(`${cksum(b)} ${n}`, systemCksum(b), `${n} bytes`);
  }
  // known value: POSIX cksum of the empty input
  assert.equal(cksum(Buffer.alloc(0)), 4294967295);
});

test('Cksum fed in uneven pieces equals one update over the whole', () => {
  const b = randomBytes(300_007);
  const c = new Cksum();
  let at = 0;
  for (const step of [1, 3, 8, 13, 4096, 65536, 1]) {
    c.update(b.subarray(at, at + step));
    at += step;
  }
  c.update(b.subarray(at));
  assert.equal(c.length, b.length);
  assert.equal(`${c.value()} ${b.length}`, systemCksum(b));
  // one flipped bit changes it
  const d = Buffer.from(b);
  d[123_456]! ^= 0x10;
  assert.notEqual(cksum(d), c.value());
});
