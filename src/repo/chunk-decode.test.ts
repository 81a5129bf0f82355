import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import zstd from 'zstd-napi';
import { SlabPool, decodeRange } from './chunk-decode.js';
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
