import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { BlobCodec } from './codec.js';
import { blobId } from './crypto.js';
import { IntegrityError } from '../errors.js';
import { type ChainMsg, decodeChain } from './chain.js';

/** Text-like rows; each version rewrites a few of them (a daily dump's chunk). */
function rows(n: number, version: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const v = i % 97 === version % 97 && version > 0 ? version : 0;
    lines.push(`INSERT INTO accounts VALUES (${i}, 'name ${i}', ${(i * 7919 + v * 31) % 100000}, 'filler ${'x'.repeat(i % 40)}');`);
  }
  return Buffer.from(lines.join('\n'));
}

const encKey = Buffer.alloc(32, 3);
const idKey = Buffer.alloc(32, 4);

/** A chain root -> v1 -> v2 -> v3, each a delta against the one before, as decodeChain takes it. */
function chain(codec: BlobCodec, versions: Buffer[]): ChainMsg {
  const sealed: Buffer[] = [];
  const compression: Array<0 | 1 | 2> = [];
  versions.forEach((v, i) => {
    const e = codec.encode(v, i > 0 ? versions[i - 1] : undefined);
    if (i > 0) assert.equal(e.compression, 2, `version ${i} is stored as a delta`);
    sealed.push(e.sealed);
    compression.push(e.compression);
  });
  return { sealed, compression, rawLength: versions.map((v) => v.length), what: versions.map((_, i) => `v${i}`) };
}

test('decodeChain: the last blob of a delta chain comes back exactly, hashed, through the reused buffers (twice in a row)', () => {
  const codec = new BlobCodec(encKey, 3);
  const versions = [0, 1, 2, 3].map((v) => rows(6000, v));
  const msg = chain(codec, versions);
  for (let round = 0; round < 2; round++) {
    const r = decodeChain(codec, idKey, msg);
    assert.deepEqual(r.data, versions[3]);
    assert.equal(r.id, blobId(idKey, versions[3]!));
    const t = decodeChain(codec, idKey, { ...msg, noHash: true }, true);
    assert.deepEqual(t.data, versions[3]);
    assert.equal(t.id, undefined);
  }
  // a shorter chain after a longer one: the buffers shrink to each level's length
  const r2 = decodeChain(codec, idKey, { ...msg, sealed: msg.sealed.slice(0, 2), compression: msg.compression.slice(0, 2), rawLength: msg.rawLength.slice(0, 2), what: msg.what.slice(0, 2) });
  assert.deepEqual(r2.data, versions[1]);
});

test('decodeChain: a wrong level, a wrong length or a delta without its base fails loudly', () => {
  const codec = new BlobCodec(encKey, 3);
  const versions = [0, 1, 2].map((v) => rows(4000, v));
  const msg = chain(codec, versions);
  // levels swapped: v2's delta decoded against the root instead of v1 gives other bytes (or fails)
  const swapped = { ...msg, sealed: [msg.sealed[0]!, msg.sealed[2]!, msg.sealed[1]!], rawLength: [msg.rawLength[0]!, msg.rawLength[2]!, msg.rawLength[1]!] };
  let out: Buffer | undefined;
  try {
    out = decodeChain(codec, idKey, swapped).data;
  } catch (err) {
    assert.ok(err instanceof IntegrityError);
  }
  if (out) assert.notDeepEqual(out, versions[2]);
  // the index declares one byte less: the output is capped, never larger than declared
  assert.throws(() => decodeChain(codec, idKey, { ...msg, rawLength: [...msg.rawLength.slice(0, 2), msg.rawLength[2]! - 1] }), IntegrityError);
  assert.throws(() => decodeChain(codec, idKey, { ...msg, rawLength: [...msg.rawLength.slice(0, 2), msg.rawLength[2]! + 1] }), IntegrityError);
  // a chain starting with a delta has no base for it
  assert.throws(() => decodeChain(codec, idKey, { ...msg, sealed: msg.sealed.slice(1), compression: msg.compression.slice(1), rawLength: msg.rawLength.slice(1), what: msg.what.slice(1) }), /without its base/);
  // a damaged seal
  const bad = Buffer.from(msg.sealed[1]!);
  bad[bad.length - 1]! ^= 1;
  assert.throws(() => decodeChain(codec, idKey, { ...msg, sealed: [msg.sealed[0]!, bad, msg.sealed[2]!] }), IntegrityError);
});

test('a delta on a base of up to 2 MiB (zstd level 4 in place) and on a larger one (tuned parameters) both decode back, by decode() and decodeTo()', () => {
  const codec = new BlobCodec(encKey, 3);
  for (const [n, v] of [
    [6000, 1],
    [40000, 2], // ~3 MiB: the tuned path
  ] as const) {
    const base = rows(n, 0);
    const data = rows(n, v);
    const e = codec.encode(data, base);
    assert.equal(e.compression, 2);
    assert.ok(e.sealed.length * 50 < data.length, `delta ${e.sealed.length} bytes for ${data.length}`);
    assert.deepEqual(codec.decode(e.sealed, 2, data.length, 'd', base), data);
    const out = Buffer.alloc(data.length);
    codec.decodeTo(e.sealed, 2, data.length, 'd', out, base);
    assert.deepEqual(out, data);
  }
  // incompressible data against an unrelated base: no delta, no error
  const r = randomBytes(300_000);
  assert.notEqual(codec.encode(r, randomBytes(300_000)).compression, 2);
});
