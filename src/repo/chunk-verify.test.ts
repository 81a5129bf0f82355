import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import zstd from 'zstd-napi';
import { type ChunkBlob, verifyChunk } from './chunk-verify.js';
import { BlobCodec } from './codec.js';
import { blobId, seal } from './crypto.js';
import type { Compression } from './pack.js';

const encKey = randomBytes(32);
const idKey = randomBytes(32);
const codec = new BlobCodec(encKey, 3);

function text(n: number, seed: number): Buffer {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `line ${seed} ${i} ${(i * 7919) % 1000}\n`;
  return Buffer.from(s.slice(0, n));
}

interface Case {
  name: string;
  sealed: Buffer;
  compression: Compression;
  rawLength: number;
  dict?: Buffer;
}

/** What decoding the blob the ordinary way gives: its id, or the error message. */
function expected(c: Case): { id: string } | { error: string } {
  try {
    return { id: blobId(idKey, codec.decode(c.sealed, c.compression, c.rawLength, `blob ${c.name}`, c.dict)) };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

test('verifyChunk: ids and errors are those of decoding each blob whole', () => {
  const plain = text(300_000, 1); // larger than the scratch buffer: the plaintext streams through in pieces
  const base = text(200_000, 2);
  const top = Buffer.from(base);
  top.write('changed', 1000);
  const small = text(5000, 3);
  const rnd = randomBytes(3000);
  const enc = codec.encode(plain);
  assert.equal(enc.compression, 1);
  const delta = codec.encode(top, base);
  assert.equal(delta.compression, 2);
  const stored = codec.encode(rnd);
  assert.equal(stored.compression, 0);
  const flipped = Buffer.from(enc.sealed);
  flipped[100]! ^= 1;
  const frame = zstd.compress(small);
  // compressible, but still ~300 KB compressed: several pieces
  const big = Buffer.from(randomBytes(300_000).toString('base64'));
  const bigEnc = codec.encode(big);
  assert.equal(bigEnc.compression, 1);
  assert.ok(bigEnc.sealed.length > 4 * 64 * 1024);
  const bigFrame = zstd.compress(big);
  const bigRnd = randomBytes(300_000);
  const bigStored = codec.encode(bigRnd);
  assert.equal(bigStored.compression, 0);
  const bigTop = Buffer.concat([big.subarray(0, 200_000), Buffer.from(randomBytes(150_000).toString('base64')), big.subarray(200_000)]);
  const bigDelta = codec.encode(bigTop, big);
  assert.equal(bigDelta.compression, 2);
  assert.ok(bigDelta.sealed.length > 2 * 64 * 1024);
  const flip = (b: Buffer, at: number) => {
    const c = Buffer.from(b);
    c[at]! ^= 1;
    return c;
  };
  const cases: Case[] = [
    { name: 'plain', sealed: enc.sealed, compression: 1, rawLength: plain.length },
    { name: 'delta', sealed: delta.sealed, compression: 2, rawLength: top.length, dict: base },
    { name: 'stored', sealed: stored.sealed, compression: 0, rawLength: rnd.length },
    { name: 'flipped', sealed: flipped, compression: 1, rawLength: plain.length },
    { name: 'too-short-raw', sealed: enc.sealed, compression: 1, rawLength: plain.length - 1 },
    { name: 'too-long-raw', sealed: enc.sealed, compression: 1, rawLength: plain.length + 1 },
    { name: 'stored-wrong-raw', sealed: stored.sealed, compression: 0, rawLength: rnd.length - 5 },
    { name: 'truncated-frame', sealed: seal(encKey, frame.subarray(0, frame.length - 7)), compression: 1, rawLength: small.length },
    { name: 'no-frame-size-bomb', sealed: seal(encKey, zstd.compress(Buffer.alloc(1_000_000))), compression: 1, rawLength: 1000 },
    // two frames: the first declares a size within the cap, the second inflates past it (caught while decoding)
    { name: 'second-frame-bomb', sealed: seal(encKey, Buffer.concat([zstd.compress(small), zstd.compress(Buffer.alloc(1_000_000))])), compression: 1, rawLength: 10_000 },
    { name: 'two-frames-exact', sealed: seal(encKey, Buffer.concat([zstd.compress(small), zstd.compress(small)])), compression: 1, rawLength: 2 * small.length },
    { name: 'two-frames-second-truncated', sealed: seal(encKey, Buffer.concat([zstd.compress(small), frame.subarray(0, frame.length - 7)])), compression: 1, rawLength: 2 * small.length },
    { name: 'empty-payload', sealed: seal(encKey, Buffer.alloc(0)), compression: 1, rawLength: 0 },
    { name: 'garbage-payload', sealed: seal(encKey, randomBytes(500)), compression: 1, rawLength: 5000 },
    { name: 'delta-without-base', sealed: delta.sealed, compression: 2, rawLength: top.length },
    { name: 'delta-wrong-base', sealed: delta.sealed, compression: 2, rawLength: top.length, dict: text(200_000, 9) },
    { name: 'zero-raw', sealed: enc.sealed, compression: 1, rawLength: 0 },
    // payloads of several 64 KiB pieces (decodeId deciphers and decompresses piece by piece)
    { name: 'big-plain', sealed: bigEnc.sealed, compression: 1, rawLength: big.length },
    { name: 'big-stored', sealed: bigStored.sealed, compression: 0, rawLength: bigRnd.length },
    { name: 'big-delta', sealed: bigDelta.sealed, compression: 2, rawLength: bigTop.length, dict: big },
    { name: 'big-delta-wrong-base', sealed: bigDelta.sealed, compression: 2, rawLength: bigTop.length, dict: bigTop },
    { name: 'big-truncated', sealed: seal(encKey, bigFrame.subarray(0, bigFrame.length - 1000)), compression: 1, rawLength: big.length },
    { name: 'big-cut-in-first-piece', sealed: seal(encKey, bigFrame.subarray(0, 70_000)), compression: 1, rawLength: big.length },
    { name: 'big-flipped-late', sealed: flip(bigEnc.sealed, bigEnc.sealed.length - 100), compression: 1, rawLength: big.length },
    { name: 'big-flipped-early', sealed: flip(bigEnc.sealed, 200), compression: 1, rawLength: big.length },
    { name: 'big-garbage-unauthentic', sealed: flip(seal(encKey, randomBytes(200_000)), 150_000), compression: 1, rawLength: 300_000 },
    { name: 'big-garbage', sealed: seal(encKey, randomBytes(200_000)), compression: 1, rawLength: 300_000 },
    { name: 'big-bomb-late', sealed: seal(encKey, Buffer.concat([bigFrame, zstd.compress(Buffer.alloc(3_000_000))])), compression: 1, rawLength: big.length + 10 },
    { name: 'big-two-frames', sealed: seal(encKey, Buffer.concat([bigFrame, bigFrame])), compression: 1, rawLength: 2 * big.length },
    { name: 'big-trailing-garbage', sealed: seal(encKey, Buffer.concat([bigFrame, randomBytes(70_000)])), compression: 1, rawLength: big.length },
    { name: 'big-raw-short', sealed: bigEnc.sealed, compression: 1, rawLength: big.length - 1 },
    { name: 'big-raw-long', sealed: bigEnc.sealed, compression: 1, rawLength: big.length + 1 },
    { name: 'big-stored-raw-short', sealed: bigStored.sealed, compression: 0, rawLength: bigRnd.length - 1 },
    { name: 'too-short-sealed', sealed: Buffer.alloc(20), compression: 1, rawLength: 10 },
  ];
  // all in one range, with a gap before each blob
  const parts: Buffer[] = [];
  const jobs: ChunkBlob[] = [];
  let off = 0;
  for (const c of cases) {
    parts.push(Buffer.alloc(13, 0xee), c.sealed);
    off += 13;
    jobs.push({ offset: off, length: c.sealed.length, compression: c.compression, rawLength: c.rawLength, what: `blob ${c.name}`, ...(c.dict ? { dict: [c.dict] } : {}) });
    off += c.sealed.length;
  }
  const results = verifyChunk(codec, idKey, Buffer.concat(parts), jobs);
  assert.equal(results.length, cases.length);
  cases.forEach((c, i) => {
    const r = results[i]!;
    const want = expected(c);
    assert.deepEqual('id' in r ? { id: r.id } : { error: r.error.message }, want, c.name);
  });
  // the intact blobs verify to their ids
  assert.deepEqual(results[0], { id: blobId(idKey, plain) });
  assert.deepEqual(results[1], { id: blobId(idKey, top) });
  assert.deepEqual(results[2], { id: blobId(idKey, rnd) });
  assert.match((results[3] as { error: { message: string } }).error.message, /authentication failed/);
});

test('verifyChunk: a blob outside the range is an error for that blob only', () => {
  const data = text(1000, 4);
  const enc = codec.encode(data);
  const chunk = Buffer.concat([enc.sealed]);
  const r = verifyChunk(codec, idKey, chunk, [
    { offset: 0, length: enc.sealed.length, compression: enc.compression, rawLength: data.length, what: 'blob a' },
    { offset: 10, length: enc.sealed.length, compression: enc.compression, rawLength: data.length, what: 'blob b' },
  ]);
  assert.deepEqual(r[0], { id: blobId(idKey, data) });
  assert.match((r[1] as { error: { message: string } }).error.message, /outside/);
});

test('verifyChunk: delta bases given as sealed chains (one base, two bases, a base that is itself a delta) verify as with the plaintext dictionary; a damaged base fails its delta, naming the base', () => {
  const v0 = text(150_000, 5);
  const v1 = Buffer.from(v0);
  v1.write('first change', 40_000);
  const other = text(120_000, 6);
  const top = Buffer.concat([v1.subarray(0, 100_000), other.subarray(0, 60_000)]);
  top.write('top change', 5_000);
  const e0 = codec.encode(v0);
  const e1 = codec.encode(v1, v0); // v1: a delta on v0 (a chain of depth 1)
  assert.equal(e1.compression, 2);
  const eo = codec.encode(other);
  const one = codec.encode(top, v1); // top on v1 alone
  const two = codec.encode(top, Buffer.concat([v1, other])); // top on v1 and other
  assert.equal(one.compression, 2);
  assert.equal(two.compression, 2);
  const chainV1 = { sealed: [e0.sealed, e1.sealed], compression: [e0.compression, e1.compression], rawLength: [v0.length, v1.length], what: ['blob v0', 'blob v1'], noHash: true };
  const chainOther = { sealed: [eo.sealed], compression: [eo.compression], rawLength: [other.length], what: ['blob other'], noHash: true };
  const badV0 = Buffer.from(e0.sealed);
  badV0[50]! ^= 1;
  const chunk = Buffer.concat([one.sealed, two.sealed]);
  const blob = (i: 0 | 1) => ({ offset: i === 0 ? 0 : one.sealed.length, length: (i === 0 ? one : two).sealed.length, compression: 2 as const, rawLength: top.length, what: `blob top${i}` });
  const want = { id: blobId(idKey, top) };
  // twice: the reused buffers of the first round do not leak into the second
  for (let round = 0; round < 2; round++) {
    const r = verifyChunk(codec, idKey, chunk, [
      { ...blob(0), chains: [chainV1] },
      { ...blob(1), chains: [chainV1, chainOther] },
      { ...blob(1), chains: [chainOther, chainV1] }, // bases in the wrong order: another dictionary
      { ...blob(0), chains: [{ ...chainV1, sealed: [badV0, e1.sealed], what: ['blob v0', 'blob v1 (damaged copy)'] }] },
      { ...blob(1), dict: [v1, other] },
    ]);
    assert.deepEqual(r[0], want);
    assert.deepEqual(r[1], want);
    assert.ok(!('id' in r[2]!) || r[2].id !== want.id, 'the wrong dictionary does not give the blob');
    assert.match((r[3] as { error: { message: string } }).error.message, /blob v0: authentication failed/);
    assert.deepEqual(r[4], want);
  }
});

test('verifyChunk: bases shared by neighbouring deltas (moved in the reused dictionary, not decoded again) give the same ids as decoding each', () => {
  const a = text(90_000, 11);
  const b = text(80_000, 12);
  const c = text(70_000, 13);
  const plain = { a, b, c };
  const enc = Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, codec.encode(v)])) as Record<'a' | 'b' | 'c', { sealed: Buffer; compression: Compression }>;
  const chain = (k: 'a' | 'b' | 'c') => ({ sealed: [enc[k].sealed], compression: [enc[k].compression], rawLength: [plain[k].length], what: [`blob ${k}`], noHash: true });
  // each delta's content mixes its bases' text with a change of its own
  const sets: Array<Array<'a' | 'b' | 'c'>> = [['a', 'b'], ['b', 'c'], ['c', 'a'], ['a'], ['c'], ['b', 'c'], ['c', 'b'], ['a', 'b']];
  const parts: Buffer[] = [];
  const jobs: ChunkBlob[] = [];
  const want: string[] = [];
  let off = 0;
  sets.forEach((set, i) => {
    const dict = Buffer.concat(set.map((k) => plain[k]));
    const top = Buffer.concat([dict.subarray(0, 40_000), Buffer.from(`change ${i}`), dict.subarray(dict.length - 40_000)]);
    const d = codec.encode(top, dict);
    assert.equal(d.compression, 2);
    parts.push(d.sealed);
    jobs.push({ offset: off, length: d.sealed.length, compression: 2, rawLength: top.length, what: `blob top${i}`, chains: set.map(chain) });
    off += d.sealed.length;
    want.push(blobId(idKey, top));
  });
  const r = verifyChunk(codec, idKey, Buffer.concat(parts), jobs);
  assert.deepEqual(r, want.map((id) => ({ id })));
});
