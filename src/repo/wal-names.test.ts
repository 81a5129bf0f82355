import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nextSegment, prevSegment } from './wal-names.js';
import { segmentName, parseLsn } from './wal.js';

test('nextSegment: the segment after a name, across the log-id boundary, for 16 MiB and 64 MiB segments', () => {
  const M16 = 16 << 20;
  assert.equal(nextSegment('000000010000000000000001', M16), '000000010000000000000002');
  assert.equal(nextSegment('00000002000000000000000F', M16), '000000020000000000000010');
  assert.equal(nextSegment('0000000100000000000000FF', M16), '000000010000000100000000');
  assert.equal(nextSegment('00000001000000000000003F', 64 << 20), '000000010000000100000000');
  // agrees with the LSN arithmetic of segmentName
  for (const lsn of ['0/16B3748', '3/FF000000', '1A/12345678']) {
    const here = segmentName(1, parseLsn(lsn), M16);
    assert.equal(nextSegment(here, M16), segmentName(1, parseLsn(lsn) + BigInt(M16), M16));
  }
});

test('prevSegment is the inverse of nextSegment; none before the first', () => {
  for (const n of ['000000010000000000000002', '000000010000000100000000', '0000000200000003000000A7']) assert.equal(nextSegment(prevSegment(n, 16 << 20)!, 16 << 20), n);
  assert.equal(prevSegment('000000010000000000000000', 16 << 20), undefined);
});
