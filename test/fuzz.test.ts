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

function rejectsCleanly(fn: () => unknown): boolean {
  try {
    fn();
    return true; // accepted: must then be a valid structure (checked by callers where relevant)
  } catch (err) {
    if (err instanceof IntegrityError || err instanceof LifeboatError) return true;
    throw new Error(`parser threw a non-Lifeboat error: ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

const jsonish = fc.jsonValue({ maxDepth: 4 });
const mutate = (buf: Buffer) =>
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }).map((muts) => {
    const b = Buffer.from(buf);
    for (const [pos, val] of muts) if (b.length) b[pos % b.length] = val;
    return b;
  });

function validPack(): Buffer {
  const w = new PackWriter();
  for (let i = 0; i < 3; i++) {
    const data = seal(key, randomBytes(100));
    w.add({ id: randomBytes(32).toString('hex'), type: 'data', rawLength: 88, compression: 0 }, data);
  }
  return w.finalize(key).data;
}

test('pack parser: random bytes, truncations and mutations are rejected cleanly', () => {
  const pack = validPack();
  assert.equal(parsePackHeader(key, pack, 'p').length, 3);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), (bytes) => rejectsCleanly(() => parsePackHeader(key, Buffer.from(bytes), 'p'))), { numRuns: RUNS });
  fc.assert(fc.property(fc.nat({ max: pack.length }), (n) => rejectsCleanly(() => parsePackHeader(key, pack.subarray(0, n), 'p'))), { numRuns: RUNS });
  fc.assert(fc.property(mutate(pack), (b) => rejectsCleanly(() => parsePackHeader(key, b, 'p'))), { numRuns: RUNS });
  // a huge declared header length must not allocate
  const evil = Buffer.concat([Buffer.alloc(16), Buffer.from([0xff, 0xff, 0xff, 0x7f])]);
  assert.throws(() => parsePackHeader(key, evil, 'p'), IntegrityError);
});

test('pack header JSON: any authenticated JSON is validated field by field', () => {
  fc.assert(
    fc.property(jsonish, (v) => rejectsCleanly(() => parseHeaderBytes(key, seal(key, Buffer.from(JSON.stringify(v) ?? 'null')), 1 << 20, 'p'))),
    { numRuns: RUNS },
  );
  fc.assert(
    fc.property(fc.array(fc.record({ id: fc.string(), type: fc.string(), offset: fc.integer(), length: fc.integer(), rawLength: fc.double(), compression: fc.integer({ min: -1, max: 3 }) })), (blobs) =>
      rejectsCleanly(() => parseHeaderBytes(key, seal(key, Buffer.from(JSON.stringify({ v: 1, blobs }))), 1 << 20, 'p')),
    ),
    { numRuns: RUNS },
  );
});

test('index files, snapshots, trees: random JSON and mutations are rejected cleanly', () => {
  fc.assert(fc.property(jsonish, (v) => rejectsCleanly(() => validateIndexFile(v, 'i'))), { numRuns: RUNS });
  fc.assert(fc.property(jsonish, (v) => rejectsCleanly(() => validateSnapshot(v, 's'))), { numRuns: RUNS });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2048 }), (b) => rejectsCleanly(() => decodeTree(Buffer.from(b), 't'))), { numRuns: RUNS });
  const tree = encodeTree({
    nodes: [
      { name: 'a', type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 1, size: 3, content: ['a'.repeat(64)], sizes: [3] },
      { name: 'd', type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 1, size: 0, subtree: 'b'.repeat(64) },
    ],
  });
  fc.assert(fc.property(mutate(tree), (b) => rejectsCleanly(() => decodeTree(b, 't'))), { numRuns: RUNS });
  // tree node names that would escape the restore target are refused
  for (const name of ['..', '.', 'a/b', '']) {
    const bad = Buffer.from(JSON.stringify({ nodes: [{ name, type: 'file', content: [] }] }));
    assert.throws(() => decodeTree(bad, 't'), IntegrityError, `name ${JSON.stringify(name)}`);
  }
  // sealed JSON wrapper
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => rejectsCleanly(() => openJson(key, Buffer.from(b), 'x'))), { numRuns: RUNS });
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => rejectsCleanly(() => openJson(key, seal(key, Buffer.from(b)), 'x'))), { numRuns: RUNS });
});

test('key files: garbage and hostile KDF parameters are rejected before any work', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 1024 }), (b) => rejectsCleanly(() => parseKeyFile(Buffer.from(b), 'k'))), { numRuns: RUNS });
  fc.assert(fc.property(jsonish, (v) => rejectsCleanly(() => parseKeyFile(Buffer.from(JSON.stringify(v) ?? ''), 'k'))), { numRuns: RUNS });
  const hostile = { v: 1, kdf: 'scrypt', N: 2 ** 30, r: 8, p: 1, salt: 'AA==', data: 'AA==' };
  assert.throws(() => parseKeyFile(Buffer.from(JSON.stringify(hostile)), 'k'), /out of range/);
});
