import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlobCodec } from './codec.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

/**
 * PostgreSQL-like heap pages (8 KiB: a header with the page LSN, line pointers,
 * 61 pgbench-style tuples of ids, a balance and 84 spaces of filler). Version 1:
 * 45% of the pages were written again (new LSN), a few balances changed.
 */
function heapPages(n: number, version: number): Buffer {
  const b = Buffer.alloc(n * 8192);
  const r = rng(7);
  for (let p = 0; p < n; p++) {
    const o = p * 8192;
    const touched = version > 0 && r() < 0.45;
    b.writeUInt32LE(touched ? 0x1000 + p + version * 77777 : 0x1000, o);
    for (let t = 0; t < 61; t++) {
      const to = o + 8192 - (t + 1) * 128;
      b.writeUInt32LE(p * 61 + t + 1, to);
      b.writeUInt32LE(1, to + 4);
      b.writeInt32LE(touched && r() < 0.03 ? Math.floor(r() * 5000) : 0, to + 8);
      b.fill(0x20, to + 12, to + 96);
      b.writeUInt16LE(to - o, o + 24 + t * 4);
    }
  }
  return b;
}

test('a delta against the previous version of PostgreSQL pages is far smaller than plain compression, and decodes back', () => {
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  const v0 = heapPages(256, 0);
  const v1 = heapPages(256, 1);
  const delta = codec.encode(v1, v0);
  const plain = codec.encode(v1);
  assert.equal(delta.compression, 2);
  assert.equal(plain.compression, 1);
  // With long-distance matching (ldmMinMatch 32) this delta was 15% of plain; without, 6.5%.
  assert.ok(delta.sealed.length * 10 < plain.sealed.length, `delta ${delta.sealed.length} bytes vs plain ${plain.sealed.length}`);
  assert.deepEqual(codec.decode(delta.sealed, 2, v1.length, 'test', v0), v1);
  assert.deepEqual(codec.decode(plain.sealed, 1, v1.length, 'test'), v1);
});

/** Count the codec's plain (no dictionary) compressions. */
function countPlain(codec: BlobCodec): { calls: number } {
  const plain = (codec as unknown as { plain: { compress(b: Buffer): Buffer } }).plain;
  const seen = { calls: 0 };
  const orig = plain.compress.bind(plain);
  plain.compress = (b: Buffer) => {
    seen.calls++;
    return orig(b);
  };
  return seen;
}

test('a delta that saves more than half is kept without also compressing plain; one that saves less is compared with plain', () => {
  const r = rng(11);
  const base = Buffer.alloc(1 << 20);
  for (let i = 0; i < base.length; i++) base[i] = (r() * 256) | 0;
  // 30% of the chunk rewritten with new random bytes (a changed file of bench/backup-data.mjs mutate): delta ~31%
  const v1 = Buffer.from(base);
  for (let k = 0; k < 5; k++) for (let i = 0; i < 65536; i++) v1[k * 200_000 + i] = (r() * 256) | 0;
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  const seen = countPlain(codec);
  const d = codec.encode(v1, base);
  assert.equal(d.compression, 2);
  assert.ok(d.sealed.length < v1.length / 2, `delta ${d.sealed.length} bytes`);
  assert.equal(seen.calls, 0, 'plain compression was run although the delta saved more than half');
  assert.deepEqual(codec.decode(d.sealed, 2, v1.length, 'test', base), v1);
  // 70% rewritten: the delta saves less than half, plain compression is tried (and loses: random data)
  const v2 = Buffer.from(base);
  for (let i = 0; i < 700_000; i++) v2[i] = (r() * 256) | 0;
  const d2 = codec.encode(v2, base);
  assert.equal(seen.calls, 1);
  assert.equal(d2.compression, 2);
  assert.deepEqual(codec.decode(d2.sealed, 2, v2.length, 'test', base), v2);
});
