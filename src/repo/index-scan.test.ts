import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { MasterIndex, type IndexFile, validateIndexFile } from './index.js';
import { scanIndexJson } from './index-scan.js';
import { MAX_DATA_BLOB, MAX_PACK_SIZE, MAX_TREE_BLOB, type PackBlob, SEAL_OVERHEAD } from './pack.js';
import { requireAddon } from '../util/native.js';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import { Repository, openJsonBytes } from './repository.js';

const hid = (s: string | number) => createHash('sha256').update(String(s)).digest('hex');
const native = requireAddon('indexscan') !== undefined;
const skip = native ? false : 'the indexscan addon did not build';

/** A deterministic pseudo-random source (tests repeat exactly). */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 2 ** 32;
  };
}

/** An index file as Lifeboat writes them: full, compressed, stored, tree and delta blobs, sketches, one or two bases, empty packs. */
function indexFile(seed: number, packs: number, perPack: number): IndexFile {
  const r = rng(seed);
  const out: IndexFile = { v: 1, packs: [] };
  let n = 0;
  for (let p = 0; p < packs; p++) {
    const blobs: PackBlob[] = [];
    let offset = 0;
    const count = p === 1 ? 0 : perPack; // an empty pack among them
    for (let i = 0; i < count; i++, n++) {
      const tree = r() < 0.2;
      const compression = (tree ? Math.floor(r() * 2) : Math.floor(r() * 3)) as 0 | 1 | 2;
      const rawLength = 1 + Math.floor(r() * 4_000_000);
      const length = compression === 0 ? rawLength + SEAL_OVERHEAD : SEAL_OVERHEAD + Math.floor(r() * rawLength);
      const b: PackBlob = { id: hid(`${seed}/${n}`), type: tree ? 'tree' : 'data', offset, length, rawLength, compression };
      if (compression === 2) {
        b.base = hid(`${seed}/${Math.floor(r() * (n + 5))}`); // sometimes a blob not (yet) in the index, sometimes itself
        if (r() < 0.3) b.base2 = hid(`${seed}/${Math.floor(r() * (n + 5))}`);
      }
      if (!tree && r() < 0.6) b.sf = Array.from({ length: 1 + Math.floor(r() * 16) }, () => Math.floor(r() * 2 ** 32));
      // keys in another order now and then (JSON objects are unordered; the scanner takes any order)
      blobs.push(r() < 0.1 ? (Object.fromEntries(Object.entries(b).reverse()) as unknown as PackBlob) : b);
      offset += length;
    }
    out.packs.push(r() < 0.5 ? { id: hid(`pack ${seed}/${p}`), blobs } : ({ blobs, id: hid(`pack ${seed}/${p}`) } as IndexFile['packs'][0]));
  }
  return out;
}

/** Everything a MasterIndex holds (sorted: a repository loads its index files in whatever order they arrive). */
function dump(idx: MasterIndex): unknown {
  const sorted = <T>(xs: [string, T][]) => xs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return {
    size: idx.size,
    entries: sorted([...idx.values()]),
    files: sorted([...idx.files]),
    rejected: sorted([...idx.rejected]),
    packs: sorted([...idx.packs()]),
  };
}

/** The index as loadIndex built it before the scanner: JSON.parse, validateIndexFile, addFile. */
function byJson(files: [string, string][]): MasterIndex {
  const idx = new MasterIndex();
  for (const [name, json] of files) idx.addFile(name, validateIndexFile(JSON.parse(json), name));
  idx.computeDepths();
  return idx;
}

function byScan(files: [string, string][]): MasterIndex {
  const idx = new MasterIndex();
  for (const [name, json] of files) {
    const s = scanIndexJson(Buffer.from(json));
    assert.ok(s, `scanned: ${name}`);
    idx.addScanned(name, s);
  }
  idx.computeDepths();
  return idx;
}

test('the scanned columns build the same index as JSON.parse + validateIndexFile + addFile: every field, depth, pack and file', { skip }, () => {
  // three files; the second repeats blobs of the first (the first copy wins) and holds bases defined in the third
  const a = indexFile(1, 5, 300);
  const b = indexFile(2, 3, 200);
  b.packs[0]!.blobs.push(...a.packs[0]!.blobs.slice(0, 10));
  const c = indexFile(3, 2, 100);
  const files: [string, string][] = [
    ['a', JSON.stringify(a)],
    ['b', JSON.stringify(b)],
    ['c', JSON.stringify(c)],
    ['empty', JSON.stringify({ v: 1, packs: [] })],
  ];
  const want = byJson(files);
  const got = byScan(files);
  assert.ok(want.size > 1000);
  assert.deepEqual(dump(got), dump(want));
  // the same again after clear(): the reused columns carry nothing over
  got.clear();
  for (const [name, json] of files.slice(1)) got.addScanned(name, scanIndexJson(Buffer.from(json))!);
  got.computeDepths();
  assert.deepEqual(dump(got), dump(byJson(files.slice(1))));
});

test('a rejected copy is replaced by a scanned valid one, as with addFile', { skip }, () => {
  const id = hid('x');
  const pack = hid('p');
  const idx = new MasterIndex();
  idx.addPack(pack, [{ id, type: 'data', offset: 0, length: 10, rawLength: 200, compression: 1 }]); // shorter than a seal
  assert.equal(idx.rejected.size, 1);
  const s = scanIndexJson(Buffer.from(JSON.stringify({ v: 1, packs: [{ id: pack, blobs: [{ id, type: 'data', offset: 0, length: 100, rawLength: 200, compression: 1 }] }] })));
  idx.addScanned('f', s!);
  assert.equal(idx.rejected.size, 0);
  assert.equal(idx.get(id)!.length, 100);
});

const one = (over: Record<string, unknown> = {}, drop: string[] = []) => {
  const b: Record<string, unknown> = { id: hid(1), type: 'data', offset: 0, length: 100, rawLength: 200, compression: 2, base: hid(2), sf: [1, 2, 3], ...over };
  for (const k of drop) delete b[k];
  return JSON.stringify({ v: 1, packs: [{ id: hid('p'), blobs: [b] }] });
};

test('anything but the form Lifeboat writes with entries the format takes is left to JSON.parse (declined, never misread)', { skip }, () => {
  assert.ok(scanIndexJson(Buffer.from(one())), 'the reference entry is taken');
  const declined: [string, string][] = [
    ['white space', JSON.stringify(JSON.parse(one()), null, 1)],
    ['an escaped key', one().replace('"rawLength"', '"raw\\u004cength"')],
    ['an unknown key', one({ note: 1 })],
    ['a repeated key', one().replace('"offset":0', '"offset":0,"offset":0')],
    ['a fraction', one().replace('"offset":0', '"offset":0.0')],
    ['an exponent', one().replace('"length":100', '"length":1e2')],
    ['a sign', one().replace('"offset":0', '"offset":-0')],
    ['a leading zero', one().replace('"length":100', '"length":0100')],
    ['2^32', one({ sf: [2 ** 32] })],
    ['upper-case hex', one({ id: hid(1).toUpperCase() })],
    ['a short id', one({ id: hid(1).slice(2) })],
    ['an empty sketch', one({ sf: [] })],
    ['17 sketch words', one({ sf: Array.from({ length: 17 }, (_, i) => i) })],
    ['a base on a compressed blob', one({ compression: 1 })],
    ['a delta without a base', one({}, ['base'])],
    ['a second base without a first', one({ base2: hid(3) }, ['base'])],
    ['a missing field', one({}, ['rawLength'])],
    ['a type of its own', one({ type: 'blob' })],
    ['compression 3', one({ compression: 3 })],
    ['version 2', one().replace('"v":1', '"v":2')],
    ['no version', one().replace('"v":1,', '')],
    ['a pack without an id', one().replace(/"id":"[0-9a-f]{64}","blobs"/, '"blobs"')],
    ['trailing bytes', one() + ' '],
    ['a data blob over the largest', one({ rawLength: MAX_DATA_BLOB + 1, length: 200 })],
    ['shorter than a seal', one({ length: SEAL_OVERHEAD - 1 })],
    ['longer than rawLength + seal', one({ length: 200 + SEAL_OVERHEAD + 1 })],
    ['a stored blob of another length', one({ compression: 0, length: 200 + SEAL_OVERHEAD - 1 }, ['base'])],
    ['beyond the largest pack', one({ offset: MAX_PACK_SIZE - 100 })],
    ['empty input', ''],
    ['a JSON array', '[]'],
  ];
  for (const [what, json] of declined) assert.equal(scanIndexJson(Buffer.from(json)), undefined, what);
  // the edges the format takes are taken
  assert.ok(scanIndexJson(Buffer.from(one({ type: 'tree', rawLength: MAX_TREE_BLOB, length: 200 }, ['sf']))), 'a tree blob at the largest');
  assert.ok(scanIndexJson(Buffer.from(one({ offset: MAX_PACK_SIZE - 104 }))), 'ending where the largest pack ends');
  assert.ok(scanIndexJson(Buffer.from(one({ sf: [0, 2 ** 32 - 1] }))), 'sketch words 0 and 2^32 - 1');
  // every prefix of a file, and the reference file with any one byte changed: declined, or taken with exactly JSON.parse's values
  const json = JSON.stringify(indexFile(7, 3, 4));
  for (let n = 0; n < json.length; n++) assert.equal(scanIndexJson(Buffer.from(json.slice(0, n))), undefined, `prefix ${n}`);
  const r = rng(11);
  let taken = 0;
  for (let k = 0; k < 3000; k++) {
    const bytes = Buffer.from(json);
    const at = Math.floor(r() * bytes.length);
    // half the time any byte; else a digit for a digit (a number or an id changes) or one of the grammar's bytes
    const c = bytes[at]!;
    const digits = '0123456789abcdef';
    if (k % 2 === 0) bytes[at] = Math.floor(r() * 256);
    else if (c >= 48 && c <= 57) bytes[at] = digits.charCodeAt(Math.floor(r() * 10));
    else bytes[at] = '{}[],:"'.charCodeAt(Math.floor(r() * 7));
    const s = scanIndexJson(bytes);
    if (!s) continue;
    taken++;
    const idx = new MasterIndex();
    idx.addScanned('m', s);
    idx.computeDepths();
    assert.deepEqual(dump(idx), dump(byJson([['m', bytes.toString('utf8')]])), `mutation ${k}`);
  }
  assert.ok(taken > 100, `some mutations (digits in place of digits, hex for hex) are still files the scanner takes: ${taken}`);
});

test('the index files Lifeboat writes (full and stored blobs, trees, deltas, sketches) are all scanned, and a repository opens to the same index either way', { skip }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lifeboat-iscan-'));
  try {
    const storage = new LocalStorage(dir);
    const repo = await Repository.init(storage, 'pw');
    const text = (v: number) => Buffer.from(Array.from({ length: 9000 }, (_, i) => `row ${i} ${i % 97 === v ? v : 0}\n`).join(''));
    const a = (await repo.saveBlob('data', text(0))).id;
    const b = (await repo.saveBlob('data', text(1), { deltaBases: [a] })).id;
    await repo.saveBlob('data', text(2), { deltaBases: [a, b] });
    await repo.saveBlob('data', randomBytes(300 * 1024));
    await repo.saveBlob('tree', Buffer.from(JSON.stringify({ nodes: [] })));
    await repo.flush();
    await repo.saveBlob('data', text(3), { deltaBases: [b] });
    await repo.flush();
    await repo.close();
    const names = await fsp.readdir(path.join(dir, 'index'));
    assert.ok(names.length >= 2);
    const opened = await Repository.open(storage, 'pw');
    const kinds = new Set<string>();
    for (const [, e] of opened.index.values()) kinds.add(`${e.type}/${e.compression}/${e.base2 ? 2 : e.base ? 1 : 0}/${e.sf ? 'sf' : ''}`);
    assert.ok(kinds.has('data/2/1/sf') && kinds.has('data/1/0/sf') && kinds.has('tree/0/0/') && kinds.has('data/0/0/'), [...kinds].join(' '));
    const files: [string, string][] = [];
    for (const name of names) {
      const json = openJsonBytes(opened.key.encKey, await fsp.readFile(path.join(dir, 'index', name)), name, 512 << 20);
      assert.ok(scanIndexJson(json), `Lifeboat's own index file ${name} is one the scanner takes`);
      files.push([name, json.toString('utf8')]);
    }
    assert.deepEqual(dump(opened.index), dump(byJson(files)));
    await opened.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('LIFEBOAT_NO_NATIVE=1: no scan (the JSON path)', () => {
  const before = process.env.LIFEBOAT_NO_NATIVE;
  process.env.LIFEBOAT_NO_NATIVE = '1';
  try {
    assert.equal(scanIndexJson(Buffer.from(one())), undefined);
  } finally {
    if (before === undefined) delete process.env.LIFEBOAT_NO_NATIVE;
    else process.env.LIFEBOAT_NO_NATIVE = before;
  }
});
