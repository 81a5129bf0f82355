import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { IntegrityError, LifeboatError } from '../src/errors.js';
import { seal } from '../src/repo/crypto.js';
import { parseHeaderBytes, parsePackHeader, PackWriter } from '../src/repo/pack.js';
import { validateIndexFile } from '../src/repo/index.js';
import { decodeTree, encodeTree } from '../src/repo/tree.js';
import { validateSnapshot } from '../src/repo/snapshot.js';
import { parseKeyFile } from '../src/repo/keys.js';
import { openJson } from '../src/repo/repository.js';

/**
 * Every parser of a repository file format must reject garbage with an
 * IntegrityError: never crash, hang, or allocate without bound. Inputs are
 * random bytes, random JSON, and mutations of valid encodings.
 */
const RUNS = Number(process.env.LIFEBOAT_FUZZ_RUNS ?? 400);
const key = randomBytes(32);

/**
 * For inputs a parser may legitimately accept (random JSON handed to a
 * validator): it either accepts or throws a LifeboatError, nothing else.
 */
function acceptsOrRejectsCleanly(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (err instanceof LifeboatError) return true;
    throw new Error(`parser threw a non-Lifeboat error: ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

/**
 * For inputs that can never be valid (authenticated data that was changed,
 * truncated, or never sealed with the key): the parser must throw an
 * IntegrityError. Accepting the input fails the property.
 */
function mustReject(fn: () => unknown): boolean {
  try {
    fn();
  } catch (err) {
    if (err instanceof IntegrityError) return true;
    throw new Error(`parser threw a non-IntegrityError: ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
  throw new Error('parser accepted data that cannot be authentic');
}

const jsonish = fc.jsonValue({ maxDepth: 4 });
/** 1..8 bytes of `buf` (within [from, buf.length)) changed to a different value; never the unchanged buffer. */
const mutate = (buf: Buffer, from = 0) =>
  fc
    .array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 8 })
    .map((muts) => {
      const b = Buffer.from(buf);
      for (const [pos, x] of muts) b[from + (pos % (b.length - from))] ^= x;
      return b;
    })
    .filter((b) => !b.equals(buf));

function validPack(): Buffer {
  const w = new PackWriter();
  for (let i = 0; i < 3; i++) {
    const data = seal(key, randomBytes(100));
    w.add({ id: randomBytes(32).toString('hex'), type: 'data', rawLength: 88, compression: 0 }, data);
  }
  return w.finalize(key).data;
}

test('pack parser: random bytes, truncations and mutations of the authenticated header are rejected', () => {
  const pack = validPack();
  assert.equal(parsePackHeader(key, pack, 'p').length, 3);
  const headerStart = pack.length - 4 - pack.readUInt32LE(pack.length - 4);
  // never sealed with the key: cannot be accepted
  fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => mustReject(() => parsePackHeader(key, Buffer.from(bytes), 'p'))), { numRuns: RUNS });
  // every truncation cuts the header or its length: rejected
  fc.assert(fc.property(fc.nat({ max: pack.length - 1 }), (n) => mustReject(() => parsePackHeader(key, pack.subarray(0, n), 'p'))), { numRuns: RUNS });
  // any change to the sealed header or its length field: rejected
  fc.assert(fc.property(mutate(pack, headerStart), (b) => mustReject(() => parsePackHeader(key, b, 'p'))), { numRuns: RUNS });
  // changes anywhere (the blob area too): accepted or rejected cleanly (blobs are authenticated when read)
  fc.assert(fc.property(mutate(pack), (b) => acceptsOrRejectsCleanly(() => parsePackHeader(key, b, 'p'))), { numRuns: RUNS });
  // a huge declared header length must not allocate
  const evil = Buffer.concat([Buffer.alloc(16), Buffer.from([0xff, 0xff, 0xff, 0x7f])]);
  assert.throws(() => parsePackHeader(key, evil, 'p'), IntegrityError);
});

test('pack header JSON: any authenticated JSON is validated field by field; a changed sealed header is rejected', () => {
  fc.assert(
    fc.property(jsonish, (v) => acceptsOrRejectsCleanly(() => parseHeaderBytes(key, seal(key, Buffer.from(JSON.stringify(v) ?? 'null')), 1 << 20, 'p'))),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(fc.record({ id: fc.string(), type: fc.string(), offset: fc.integer(), length: fc.integer(), rawLength: fc.double(), compression: fc.integer({ min: -1, max: 3 }) })), (blobs) =>
      acceptsOrRejectsCleanly(() => parseHeaderBytes(key, seal(key, Buffer.from(JSON.stringify({ v: 1, blobs }))), 1 << 20, 'p')),
    ),
    { numRuns: RUNS },
  );
  const pack = validPack();
  const sealedHeader = pack.subarray(pack.length - 4 - pack.readUInt32LE(pack.length - 4), pack.length - 4);
  assert.equal(parseHeaderBytes(key, Buffer.from(sealedHeader), 1 << 20, 'p').length, 3);
  fc.assert(fc.property(mutate(Buffer.from(sealedHeader)), (b) => mustReject(() => parseHeaderBytes(key, b, 1 << 20, 'p'))), { numRuns: RUNS });
});

test('index files, snapshots, trees: random JSON and mutations are rejected cleanly; changed sealed JSON is rejected', () => {
  fc.assert(fc.property(jsonish, (v) => acceptsOrRejectsCleanly(() => validateIndexFile(v, 'i'))), { numRuns: RUNS });
  fc.assert(fc.property(jsonish, (v) => acceptsOrRejectsCleanly(() => validateSnapshot(v, 's'))), { numRuns: RUNS });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => acceptsOrRejectsCleanly(() => decodeTree(Buffer.from(b), 't'))), { numRuns: RUNS });
  const tree = encodeTree({
    nodes: [
      { name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, size: 3, content: ['a'.repeat(64)], sizes: [3] },
      { name: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0, subtree: 'b'.repeat(64) },
    ],
  });
  // a tree is plaintext here (its blob is authenticated when loaded): a changed byte may still be a valid tree
  fc.assert(fc.property(mutate(tree), (b) => acceptsOrRejectsCleanly(() => decodeTree(b, 't'))), { numRuns: RUNS });
  // tree node names that would escape the restore target are refused
  for (const name of ['..', '.', 'a/b', '']) {
    const bad = Buffer.from(JSON.stringify({ nodes: [{ name, type: 'file', content: [] }] }));
    assert.throws(() => decodeTree(bad, 't'), IntegrityError, `name ${JSON.stringify(name)}`);
  }
  // sealed JSON wrapper: bytes never sealed with the key, and sealed bytes that are not JSON, are rejected
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => mustReject(() => openJson(key, Buffer.from(b), 'x'))), { numRuns: RUNS });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => acceptsOrRejectsCleanly(() => openJson(key, seal(key, Buffer.from(b)), 'x'))), { numRuns: RUNS });
  // a changed byte anywhere in a sealed JSON object is rejected
  const sealedJson = seal(key, Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify({ v: 1, packs: [] }))]));
  assert.deepEqual(openJson(key, sealedJson, 'x'), { v: 1, packs: [] });
  fc.assert(fc.property(mutate(sealedJson), (b) => mustReject(() => openJson(key, b, 'x'))), { numRuns: RUNS });
});

test('key files: garbage and hostile KDF parameters are rejected before any work', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => acceptsOrRejectsCleanly(() => parseKeyFile(Buffer.from(b), 'k'))), { numRuns: RUNS });
  fc.assert(fc.property(jsonish, (v) => acceptsOrRejectsCleanly(() => parseKeyFile(Buffer.from(JSON.stringify(v) ?? ''), 'k'))), { numRuns: RUNS });
  const hostile = { v: 1, kdf: 'scrypt', N: 2 ** 30, r: 8, p: 1, salt: 'AA==', data: 'AA==' };
  assert.throws(() => parseKeyFile(Buffer.from(JSON.stringify(hostile)), 'k'), /out of range/);
});
