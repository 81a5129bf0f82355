import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BatchBound, type BlobLocation, coalesceReads, planBatch } from './restore-plan.js';

const loc = (pack: string, offset: number, length = 100, rawLength = length): BlobLocation => ({ pack, offset, length, compression: 0, rawLength });

test('planBatch: a blob shared by several files, and needed twice in one file, is planned once with every use', () => {
  const where: Record<string, BlobLocation> = { a: loc('P1', 500), b: loc('P1', 0), c: loc('P2', 0) };
  const plan = planBatch(
    [
      ['a', 'b', 'a'], // file 0 needs a twice
      ['c', 'a'], // file 1 shares a
      ['d'], // d: a delta (no full location): loaded on its own
    ],
    (id) => where[id],
  );
  assert.deepEqual(
    plan.packs.map((p) => p.pack),
    ['P1', 'P2'],
  );
  const p1 = plan.packs[0]!;
  // by offset, each blob once
  assert.deepEqual(
    p1.blobs.map((b) => b.id),
    ['b', 'a'],
  );
  assert.deepEqual(p1.blobs[1]!.uses, [
    { file: 0, chunk: 0 },
    { file: 0, chunk: 2 },
    { file: 1, chunk: 1 },
  ]);
  assert.deepEqual(p1.blobs[0]!.uses, [{ file: 0, chunk: 1 }]);
  assert.deepEqual(plan.packs[1]!.blobs[0]!.uses, [{ file: 1, chunk: 0 }]);
  assert.deepEqual(plan.loose, [{ id: 'd', uses: [{ file: 2, chunk: 0 }] }]);
  // every chunk of every file has exactly one use
  const n = [...plan.packs.flatMap((p) => p.blobs), ...plan.loose].reduce((a, b) => a + b.uses.length, 0);
  assert.equal(n, 6);
});

test('coalesceReads: small gaps are read through; a large gap, the range bound or the plaintext bound starts a new read', () => {
  const blobs = (specs: Array<[number, number, number?]>) =>
    specs.map(([offset, length, raw], i) => ({ id: `x${i}`, uses: [], ...loc('P', offset, length, raw ?? length) }));
  // gap 10 <= 50: one read
  assert.deepEqual(
    coalesceReads(blobs([[0, 100], [110, 100]]), 1000, 50, 10_000).map((r) => [r.start, r.end, r.blobs.length]),
    [[0, 210, 2]],
  );
  // gap 60 > 50: two reads
  assert.deepEqual(
    coalesceReads(blobs([[0, 100], [160, 100]]), 1000, 50, 10_000).map((r) => [r.start, r.end]),
    [
      [0, 100],
      [160, 260],
    ],
  );
  // range bound 250: the third blob starts a new read; a blob larger than the bound is a read of its own
  assert.deepEqual(
    coalesceReads(blobs([[0, 100], [100, 100], [200, 100], [300, 900]]), 250, 50, 10_000).map((r) => [r.start, r.end]),
    [
      [0, 200],
      [200, 300],
      [300, 1200],
    ],
  );
  // plaintext bound: two well-compressed blobs whose plaintexts exceed it are two reads
  assert.equal(coalesceReads(blobs([[0, 100, 600], [100, 100, 600]]), 1000, 50, 1000).length, 2);
  // every blob is in exactly one read, wholly inside it
  const many = blobs(Array.from({ length: 50 }, (_, i) => [i * 37, 30 + (i % 7)] as [number, number]));
  const reads = coalesceReads(many, 300, 16, 10_000);
  assert.equal(reads.reduce((a, r) => a + r.blobs.length, 0), many.length);
  for (const r of reads) for (const b of r.blobs) assert.ok(b.offset >= r.start && b.offset + b.length <= r.end && r.end - r.start <= 300);
});

test('BatchBound: files and chunk positions are bounded; a large file is accepted alone', () => {
  const b = new BatchBound(3, 10);
  assert.ok(b.accepts(4));
  b.add(4);
  assert.ok(b.accepts(6));
  assert.ok(!b.accepts(7)); // 4 + 7 > 10 chunks
  b.add(6);
  assert.ok(!b.accepts(1)); // 10 chunks already
  b.reset();
  assert.ok(b.accepts(1000)); // an empty batch takes any file
  b.add(1);
  b.add(1);
  b.add(1);
  assert.ok(!b.accepts(1)); // 3 files
});
