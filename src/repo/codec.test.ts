import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BlobCodec } from './codec.js';
import { xorshift32 as rng } from '../util/xorshift.js';

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
  // 6 bits of entropy per byte: zstd shrinks it to ~75%, so the incompressibility probes pass it on
  const noise = (b: Buffer, from: number, to: number) => {
    for (let i = from; i < to; i++) b[i] = 0x30 + ((r() * 64) | 0);
  };
  const base = Buffer.alloc(1 << 20);
  noise(base, 0, base.length);
  // 30% of the chunk rewritten (a changed file of bench/backup-data.mjs mutate): the delta is ~25% of it
  const v1 = Buffer.from(base);
  for (let k = 0; k < 5; k++) noise(v1, k * 200_000, k * 200_000 + 65536);
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  const seen = countPlain(codec);
  const d = codec.encode(v1, base);
  assert.equal(d.compression, 2);
  assert.ok(d.sealed.length < v1.length / 2, `delta ${d.sealed.length} bytes`);
  assert.equal(seen.calls, 0, 'plain compression was run although the delta saved more than half');
  assert.deepEqual(codec.decode(d.sealed, 2, v1.length, 'test', base), v1);
  // 90% rewritten: the delta saves less than half, plain compression is tried too (the smaller one is kept)
  const v2 = Buffer.from(base);
  noise(v2, 0, 940_000);
  const d2 = codec.encode(v2, base);
  assert.equal(seen.calls, 1);
  assert.ok(d2.compression === 1 || d2.compression === 2);
  assert.deepEqual(codec.decode(d2.sealed, d2.compression, v2.length, 'test', base), v2);
});

test('random data is stored raw without running the compressor; data with redundancy is compressed', () => {
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  const seen = countPlain(codec);
  const r = rng(5);
  const random = Buffer.alloc(1 << 20);
  for (let i = 0; i < random.length; i++) random[i] = (r() * 256) | 0;
  const e = codec.encode(random);
  assert.equal(e.compression, 0);
  assert.equal(seen.calls, 0, 'the compressor ran on data the probes found incompressible');
  assert.deepEqual(codec.decode(e.sealed, 0, random.length, 'test'), random);
  // random except for a compressible middle: one probe shrinks, so the whole is compressed
  const mixed = Buffer.from(random);
  mixed.fill(0x41, 400_000, 600_000);
  const m = codec.encode(mixed);
  assert.equal(seen.calls, 1);
  assert.equal(m.compression, 1);
  assert.ok(m.sealed.length < mixed.length - 150_000);
  assert.deepEqual(codec.decode(m.sealed, 1, mixed.length, 'test'), mixed);
  // below PROBE_MIN the compressor decides alone (as before)
  const small = random.subarray(0, 32 * 1024);
  assert.equal(codec.encode(small).compression, 0);
  assert.equal(seen.calls, 2);
});
