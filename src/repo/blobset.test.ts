import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { BlobSet } from './blobset.js';
import { MasterIndex } from './index.js';

const hid = (s: string | number) => createHash('sha256').update(String(s)).digest('hex');

test('BlobSet: bits for indexed ids, a plain set for the others; iteration yields each once', () => {
  const idx = new MasterIndex();
  const n = 70_000; // more than one index block
  const blobs = Array.from({ length: n }, (_, i) => ({ id: hid(i), type: 'data' as const, offset: 0, length: 100, rawLength: 100, compression: 1 as const }));
  idx.addPack(hid('p'), blobs);
  const set = new BlobSet(idx);
  for (let i = 0; i < n; i += 3) set.add(hid(i)).add(hid(i));
  set.add(hid('unindexed')).add(hid('unindexed'));
  assert.equal(set.size, Math.ceil(n / 3) + 1);
  for (let i = 0; i < 30; i++) assert.equal(set.has(hid(i)), i % 3 === 0, String(i));
  assert.equal(set.has(hid('unindexed')), true);
  assert.equal(set.has(hid('other')), false);
  assert.equal(set.hasSlot(idx.slotOf(hid(3))), true);
  assert.equal(set.hasSlot(idx.slotOf(hid(4))), false);
  assert.deepEqual([...set.notIndexed()], [hid('unindexed')]);
  const all = [...set];
  assert.equal(all.length, set.size);
  assert.equal(new Set(all).size, all.length);
  // slots added to the index after the set was made still work
  idx.addPack(hid('p2'), [{ id: hid('late'), type: 'tree', offset: 0, length: 100, rawLength: 100, compression: 1 }]);
  set.add(hid('late'));
  assert.equal(set.has(hid('late')), true);
  // a reloaded index makes slot numbers meaningless: the set refuses to be used
  idx.clear();
  assert.throws(() => set.has(hid(0)), /reloaded/);
});
