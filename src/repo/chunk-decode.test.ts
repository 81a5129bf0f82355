import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import zstd from 'zstd-napi';
import { SlabPool, decodeRange, decodeRangeWrite } from './chunk-decode.js';
import { BlobCodec } from './codec.js';
import { blobId, seal } from './crypto.js';

const encKey = randomBytes(32);
const idKey = randomBytes(32);
const codec = new BlobCodec(encKey, 3);

const text = (n: number, seed: number) => {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `line ${seed} ${i} ${(i * 7919) % 1000}\n`;
  return Buffer.from(s.slice(0, n));
};

/** A range of sealed blobs, one after the other, as a pack holds them. */
function range(blobs: Array<{ sealed: Buffer; compression: 0 | 1; rawLength: number }>) {
  const parts: Buffer[] = [];
  let off = 0;
  const list = blobs.map((b, i) => {
    parts.push(b.sealed);
    const r = { offset: off, length: b.sealed.length, compression: b.compression, rawLength: b.rawLength, what: `blob ${i}` };
    off += b.sealed.length;
    return r;
  });
  return { chunk: Buffer.concat(parts), list };
}

test('decodeRange: plaintexts land one after the other in one slab, each with its keyed id; a given slab is filled again', () => {
  const a = text(100_000, 1);
  const b = randomBytes(5000); // stored uncompressed
  const c = text(3000, 2);
  const { chunk, list } = range([
    { ...codec.encode(a), rawLength: a.length } as { sealed: Buffer; compression: 0 | 1; rawLength: number },
    { sealed: seal(encKey, b), compression: 0, rawLength: b.length },
    { ...codec.encode(c), rawLength: c.length } as { sealed: Buffer; compression: 0 | 1; rawLength: number },
  ]);
  const first = decodeRange(codec, idKey, chunk, list, undefined, 1 << 20);
  assert.equal(first.slab.byteLength, 1 << 20, 'a new slab has at least the asked size');
  const want = [a, b, c];
  let at = 0;
  first.results.forEach((r, i) => {
    assert.ok(!('error' in r), JSON.stringify(r));
    assert.equal(r.at, at);
    assert.equal(r.id, blobId(idKey, want[i]!));
    assert.ok(Buffer.from(first.slab, r.at, want[i]!.length).equals(want[i]!));
    at += want[i]!.length;
  });
  // the same slab handed back is the memory the next range is decoded into
  const again = decodeRange(codec, idKey, chunk, list.slice(2), first.slab);
  assert.equal(again.slab, first.slab);
  assert.ok(Buffer.from(again.slab, 0, c.length).equals(c));
  // too small a slab is not used
  const small = new ArrayBuffer(10);
  assert.notEqual(decodeRange(codec, idKey, chunk, list, small).slab, small);
});

test('decodeRange: a payload that decodes to more or fewer bytes than the index says is refused, the others still decode', () => {
  const a = text(50_000, 3);
  const big = zstd.compress(text(60_000, 4)); // says 40,000 in the index below: a bomb in a small way
  const undeclared = new zstd.Compressor();
  undeclared.setParameters({ contentSizeFlag: false });
  const big2 = undeclared.compress(text(60_000, 6)); // the same without the frame saying its size: stopped while decoding
  const short = zstd.compress(text(10_000, 5)).subarray(0, 100); // truncated frame
  const { chunk, list } = range([
    { sealed: seal(encKey, big), compression: 1, rawLength: 40_000 },
    { sealed: seal(encKey, big2), compression: 1, rawLength: 40_000 },
    { sealed: seal(encKey, short), compression: 1, rawLength: 10_000 },
    { sealed: seal(encKey, randomBytes(300)), compression: 0, rawLength: 200 },
    { ...codec.encode(a), rawLength: a.length } as { sealed: Buffer; compression: 0 | 1; rawLength: number },
  ]);
  const { results, slab } = decodeRange(codec, idKey, chunk, list, undefined, 0);
  const msg = (i: number) => (results[i] as { error: { message: string } }).error.message;
  assert.match(msg(0), /declares 60000 bytes, more than the 40000 allowed/);
  assert.match(msg(1), /decompresses to more than the 40000 bytes allowed/);
  assert.match(msg(2), /truncated/);
  assert.match(msg(3), /decoded to 300 bytes, index says 200/);
  const ok = results[4] as { id: string; at: number };
  assert.equal(ok.id, blobId(idKey, a));
  assert.ok(Buffer.from(slab, ok.at, a.length).equals(a));
  // a range outside the part that was read
  const out = decodeRange(codec, idKey, chunk, [{ ...list[4]!, offset: chunk.length - 10 }]);
  assert.match((out.results[0] as { error: { message: string } }).error.message, /lies outside/);
});

test('SlabPool: keeps at most `keep` slabs no larger than the limit, hands out one large enough', () => {
  const pool = new SlabPool(1024, 2);
  assert.equal(pool.take(10), undefined);
  pool.give(new ArrayBuffer(1024));
  pool.give(new ArrayBuffer(512));
  pool.give(new ArrayBuffer(1024)); // a third: not kept
  pool.give(new ArrayBuffer(4096)); // larger than the limit: not kept
  assert.equal(pool.kept, 2);
  assert.equal(pool.take(600)!.byteLength, 1024);
  assert.equal(pool.take(600), undefined);
  assert.equal(pool.take(100)!.byteLength, 512);
});

test('decodeRangeWrite: each blob is checked against its id and each target against its recorded size before anything is written; pieces land at their offsets', () => {
  const a = text(50_000, 3);
  const b = text(7000, 4);
  const c = text(2000, 5);
  const enc = (x: Buffer) => ({ ...codec.encode(x), rawLength: x.length }) as { sealed: Buffer; compression: 0 | 1; rawLength: number };
  const { chunk, list } = range([enc(a), enc(b), enc(c)]);
  // in-memory "files" by descriptor
  const files = new Map<number, Buffer>([
    [10, Buffer.alloc(60_000)],
    [11, Buffer.alloc(10_000)],
    [12, Buffer.alloc(3000)],
  ]);
  const write = (fd: number, buf: Uint8Array, off: number, len: number, pos: number) => {
    const f = files.get(fd)!;
    Buffer.from(buf.buffer, buf.byteOffset + off, len).copy(f, pos);
    return Math.min(len, 1000); // short writes: the caller loops
  };
  const blobs = [
    // a: two targets, one split around a hole, one with the wrong recorded size
    { ...list[0]!, id: blobId(idKey, a), targets: [{ fd: 10, size: a.length, pieces: [[0, 20_000], [30_000, 30_000]] as Array<[number, number]> }, { fd: 11, size: a.length + 1, pieces: [[0, a.length + 1]] as Array<[number, number]> }] },
    // b: the id of another blob (a wrong index entry): written nowhere
    { ...list[1]!, id: blobId(idKey, c), targets: [{ fd: 11, size: b.length, pieces: [[0, b.length]] as Array<[number, number]> }] },
    // c: one target skipped (null), one written
    { ...list[2]!, id: blobId(idKey, c), targets: [null, { fd: 12, size: c.length, pieces: [[500, c.length]] as Array<[number, number]> }] },
  ];
  const out = decodeRangeWrite(codec, idKey, chunk, blobs, write);
  assert.equal(out.length, 3);
  const r0 = out[0] as { t: Array<{ message: string; size?: true } | null> };
  assert.equal(r0.t[0], null);
  assert.equal(r0.t[1]!.size, true);
  assert.match(r0.t[1]!.message, /has 50000 bytes but the snapshot records 50001/);
  assert.ok(files.get(10)!.subarray(0, 20_000).equals(a.subarray(0, 20_000)));
  assert.ok(files.get(10)!.subarray(20_000, 30_000).equals(Buffer.alloc(10_000)));
  assert.ok(files.get(10)!.subarray(30_000).equals(a.subarray(20_000)));
  assert.ok('error' in out[1]!);
  assert.match((out[1] as { error: { message: string } }).error.message, /hash mismatch/);
  assert.ok(files.get(11)!.equals(Buffer.alloc(10_000)), 'nothing of the refused blob (nor of the wrong-size target) was written');
  const r2 = out[2] as { t: Array<unknown> };
  assert.deepEqual(r2.t, [null, null]);
  assert.ok(files.get(12)!.subarray(500, 2500).equals(c));
  assert.ok(files.get(12)!.subarray(0, 500).equals(Buffer.alloc(500)));
  // a write error is reported for its target only
  const failing = decodeRangeWrite(codec, idKey, chunk, [{ ...blobs[2]!, targets: [{ fd: 99, size: c.length, pieces: [[0, c.length]] }] }], () => {
    throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  });
  assert.equal((failing[0] as { t: Array<{ code?: string } | null> }).t[0]!.code, 'ENOSPC');
});
