import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { IntegrityError } from '../errors.js';
import { MasterIndex, validateIndexFile } from './index.js';
import type { PackBlob } from './pack.js';

const hid = (s: string | number) => createHash('sha256').update(String(s)).digest('hex');
const blob = (id: string, i = 0, over: Partial<PackBlob> = {}): PackBlob => ({
  id,
  type: 'data',
  offset: i * 100,
  length: 100,
  rawLength: 200,
  compression: 1,
  ...over,
});

test('lookup and insert: entries come back as stored, unknown ids are absent', () => {
  const idx = new MasterIndex();
  const p1 = hid('pack1');
  const p2 = hid('pack2');
  idx.addPack(p1, [blob(hid(1), 0), blob(hid(2), 1, { type: 'tree', compression: 0, length: 228, rawLength: 200 })]);
  idx.addPack(p2, [blob(hid(3), 0, { sf: [1, 2, 0xffffffff] })]);
  assert.equal(idx.size, 3);
  assert.deepEqual(idx.get(hid(1)), { pack: p1, type: 'data', offset: 0, length: 100, rawLength: 200, compression: 1, depth: 0 });
  assert.deepEqual(idx.get(hid(2)), { pack: p1, type: 'tree', offset: 100, length: 228, rawLength: 200, compression: 0, depth: 0 });
  assert.deepEqual(idx.get(hid(3))!.sf, [1, 2, 0xffffffff]);
  assert.equal(idx.packOf(hid(3)), p2);
  assert.equal(idx.has(hid(4)), false);
  assert.equal(idx.get(hid(4)), undefined);
  // malformed lookups are simply not found
  for (const bad of ['', 'zz', hid(1).toUpperCase(), hid(1).slice(0, 63), hid(1) + '0', hid(1).slice(0, 62) + 'zz']) assert.equal(idx.has(bad), false, bad);
  assert.deepEqual(new Set(idx.ids()), new Set([hid(1), hid(2), hid(3)]));
  assert.deepEqual(
    [...idx.inPack(p1)].map(([id]) => id),
    [hid(1), hid(2)],
  );
  assert.deepEqual(idx.packs().get(p1), { blobs: 2, bytes: 328, end: 328 });
  // a returned entry is a copy
  idx.get(hid(1))!.offset = 999;
  assert.equal(idx.get(hid(1))!.offset, 0);
});

test('duplicates: the first usable copy wins; a rejected copy is replaced by a valid one', () => {
  const idx = new MasterIndex();
  const [pa, pb, pc] = [hid('a'), hid('b'), hid('c')];
  idx.addPack(pa, [blob(hid(1), 0)]);
  idx.addPack(pb, [blob(hid(1), 5), blob(hid(2), 6, { rawLength: 200 * 1024 * 1024 })]);
  assert.equal(idx.size, 1);
  assert.equal(idx.get(hid(1))!.pack, pa);
  assert.equal(idx.get(hid(1))!.offset, 0);
  assert.match(idx.rejected.get(hid(2))!.reason, /exceeds the format maximum/);
  assert.equal(idx.has(hid(2)), false);
  idx.addPack(pc, [blob(hid(2), 0)]);
  assert.equal(idx.rejected.has(hid(2)), false);
  assert.equal(idx.get(hid(2))!.pack, pc);
  idx.clear();
  assert.equal(idx.size, 0);
  assert.equal(idx.has(hid(1)), false);
});

test('many entries: 300,000 blobs over several blocks and table growths, all found, bytes per blob bounded', () => {
  const idx = new MasterIndex();
  const n = 300_000;
  const ids: string[] = [];
  for (let p = 0; p < n / 1000; p++) {
    const blobs: PackBlob[] = [];
    for (let i = 0; i < 1000; i++) {
      const id = hid(`b${p}-${i}`);
      ids.push(id);
      blobs.push(blob(id, i));
    }
    idx.addPack(hid(`p${p}`), blobs, true);
  }
  idx.computeDepths();
  assert.equal(idx.size, n);
  for (let i = 0; i < n; i += 7) {
    const e = idx.get(ids[i]!)!;
    assert.equal(e.offset, (i % 1000) * 100);
    assert.equal(e.pack, hid(`p${Math.floor(i / 1000)}`));
  }
  for (let i = 0; i < 1000; i++) assert.equal(idx.has(hid(`absent${i}`)), false);
  assert.equal(idx.packs().size, n / 1000);
  // 57 B of columns per slot (in 64 Ki-slot blocks) + a table of at most 4 slots of 4 B per blob
  const perBlob = idx.memoryBytes / n;
  assert.ok(perBlob <= 57 * (Math.ceil(n / 65536) * 65536) / n + 16, `${perBlob} B per blob`);
});

test('packBlobAt: the entry as an index file lists it (what prune writes back), for full, sketched and delta blobs', () => {
  const idx = new MasterIndex();
  const entries: PackBlob[] = [
    blob(hid('f1'), 0),
    blob(hid('t1'), 1, { type: 'tree', compression: 0, length: 228, rawLength: 200 }),
    blob(hid('s1'), 2, { sf: [1, 2, 3] }),
    blob(hid('d1'), 3, { base: hid('f1') }),
    blob(hid('d2'), 4, { compression: 2, base: hid('f1'), base2: hid('s1') }),
  ];
  idx.addPack(hid('p'), entries);
  for (const e of entries) assert.deepEqual(idx.packBlobAt(idx.slotOf(e.id)), e);
});

test('clear() and refill reuse the columns and the table: a reload needs no second copy, and nothing stale survives', () => {
  const idx = new MasterIndex();
  const fill = (tag: string, n: number, over: Partial<PackBlob> = {}) => {
    for (let p = 0; p < n / 1000; p++) {
      const blobs: PackBlob[] = [];
      for (let i = 0; i < 1000; i++) blobs.push(blob(hid(`${tag}${p}-${i}`), i, over));
      idx.addPack(hid(`${tag}p${p}`), blobs, true);
    }
    idx.computeDepths();
  };
  fill('a', 140_000, { sf: [7], base: hid('x') });
  const before = idx.memoryBytes;
  const gen = idx.generation;
  idx.clear();
  assert.notEqual(idx.generation, gen);
  assert.equal(idx.size, 0);
  assert.equal(idx.has(hid('a0-0')), false);
  assert.equal(idx.memoryBytes, before, 'the cleared columns are kept for the refill');
  fill('b', 100_000);
  assert.equal(idx.memoryBytes, before, 'the refill allocated nothing new');
  // every field of a reused slot is the new entry's: no base, sketch, depth or type of the old one
  for (let i = 0; i < 100_000; i += 997) {
    const id = hid(`b${Math.floor(i / 1000)}-${i % 1000}`);
    assert.deepEqual(idx.get(id), { pack: hid(`bp${Math.floor(i / 1000)}`), type: 'data', offset: (i % 1000) * 100, length: 100, rawLength: 200, compression: 1, depth: 0 });
  }
  assert.equal(idx.has(hid('a0-0')), false);
  assert.equal([...idx.deltas()].length, 0);
  idx.releaseSpare();
  assert.ok(idx.memoryBytes < before, 'the blocks the refill did not need are released');
});

test('delta depths, missing bases and cycles, whatever the load order', () => {
  const [a, b, c, d, x, y, z] = ['a', 'b', 'c', 'd', 'x', 'y', 'z'].map(hid) as [string, string, string, string, string, string, string];
  const delta = (id: string, base: string, base2?: string) => blob(id, 0, { compression: 2, base, ...(base2 ? { base2 } : {}) });
  const entries = [blob(a), delta(b, a), delta(c, b, a), delta(d, c), delta(x, z), delta(y, x), delta(z, y)];
  for (const order of [entries, [...entries].reverse()]) {
    const idx = new MasterIndex();
    for (const e of order) idx.addPack(hid('p'), [e], true);
    idx.computeDepths();
    assert.deepEqual([a, b, c, d].map((i) => idx.get(i)!.depth), [0, 1, 2, 3]);
    for (const i of [x, y, z]) {
      assert.equal(idx.get(i)!.depth, Infinity);
      assert.match(idx.chainProblem(i)!, /loops back on itself/);
    }
    assert.equal(idx.chainProblem(d), undefined);
    assert.deepEqual(new Set([...idx.chainProblems()].map(([i]) => i)), new Set([x, y, z]));
    assert.deepEqual(new Set([...idx.deltas()].map(([i]) => i)), new Set([b, c, d, x, y, z]));
  }
  // incremental adds (no deferred pass) also get depths right, including a base that arrives late
  const idx = new MasterIndex();
  idx.addPack(hid('p'), [delta(c, b)]);
  assert.equal(idx.get(c)!.depth, 1);
  idx.addPack(hid('p'), [delta(b, a)]);
  assert.equal(idx.get(c)!.depth, 2);
  idx.addPack(hid('p'), [blob(a)]);
  assert.equal(idx.get(c)!.depth, 2);
  // a chain deeper than the format maximum
  const deep = new MasterIndex();
  const chain = Array.from({ length: 70 }, (_, i) => hid(`deep${i}`));
  deep.addPack(hid('p'), [blob(chain[0]!), ...chain.slice(1).map((id, i) => delta(id, chain[i]!))].reverse(), true);
  deep.computeDepths();
  assert.equal(deep.get(chain[69]!)!.depth, 69);
  assert.match(deep.chainProblem(chain[69]!)!, /is 69 deep, more than the format maximum of 64/);
});

test('malformed index input is rejected', () => {
  const ok = { v: 1, packs: [{ id: hid('p'), blobs: [blob(hid(1))] }] };
  assert.equal(validateIndexFile(ok, 'f').packs[0]!.blobs.length, 1);
  const bad: unknown[] = [
    null,
    { v: 2, packs: [] },
    { v: 1, packs: {} },
    { v: 1, packs: [{ id: 'nothex', blobs: [] }] },
    { v: 1, packs: [{ id: hid('p'), blobs: [{ ...blob(hid(1)), id: hid(1).toUpperCase() }] }] },
    { v: 1, packs: [{ id: hid('p'), blobs: [{ ...blob(hid(1)), offset: -1 }] }] },
    { v: 1, packs: [{ id: hid('p'), blobs: [{ ...blob(hid(1)), offset: 2 ** 60 }] }] },
    { v: 1, packs: [{ id: hid('p'), blobs: [{ ...blob(hid(1)), compression: 2 }] }] },
    { v: 1, packs: [{ id: hid('p'), blobs: [{ ...blob(hid(1)), sf: [-1] }] }] },
  ];
  for (const b of bad) assert.throws(() => validateIndexFile(b, 'f'), IntegrityError, JSON.stringify(b));
  // an entry with an impossible position is refused at load, not stored (offsets beyond 32 bits never reach the table)
  const idx = new MasterIndex();
  idx.addPack(hid('p'), [blob(hid(1), 0, { offset: 2 ** 33 }), blob(hid(2), 0, { length: 10 })]);
  assert.equal(idx.size, 0);
  assert.match(idx.rejected.get(hid(1))!.reason, /beyond the largest possible pack/);
  assert.match(idx.rejected.get(hid(2))!.reason, /shorter than a seal/);
  assert.throws(() => idx.addPack(hid('p'), [blob('XYZ')]), IntegrityError);
});

test('sketches and delta bases in the compact side table: every entry comes back exactly, across its chunk boundaries and after clear()', () => {
  const idx = new MasterIndex();
  const n = 40_000; // > 2 record chunks (16 Ki), > 4 sketch chunks (64 Ki words), > 9 base-id chunks (4 Ki ids)
  let x = 99;
  const rnd = (m: number) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % m;
  };
  const want = new Map<string, PackBlob>();
  const order: string[] = [];
  for (let p = 0; p < n / 500; p++) {
    const blobs: PackBlob[] = [];
    for (let i = 0; i < 500; i++) {
      const id = hid(`x${p}-${i}`);
      const k = rnd(4);
      const over: Partial<PackBlob> = {};
      if (k !== 0) over.sf = Array.from({ length: rnd(17) }, () => (rnd(2) ? 0xffffffff - rnd(1000) : rnd(1 << 30)));
      if (k >= 2 && want.size > 0) {
        over.compression = 2;
        over.base = rnd(10) ? order[rnd(order.length)]! : hid(`missing${rnd(100)}`); // an earlier blob (no cycles), or one not in the index
        if (k === 3) over.base2 = rnd(2) ? order[order.length - 1 - rnd(Math.min(order.length, 50))]! : hid(`y${rnd(1000)}`);
      }
      const b = blob(id, i, over);
      blobs.push(b);
      want.set(id, b);
      order.push(id);
    }
    idx.addPack(hid(`px${p}`), blobs, true);
  }
  // entries the writer never produces (not checked by addPack): kept as they are
  const odd = [blob(hid('odd1'), 0, { sf: [-1, 1.5, 2 ** 33] }), blob(hid('odd2'), 1, { sf: [], compression: 2, base: 'NOT-HEX', base2: hid('x0-0') }), blob(hid('odd3'), 2, { compression: 2, base: 'A'.repeat(64) })];
  idx.addPack(hid('podd'), odd, true);
  for (const b of odd) want.set(b.id, b);
  idx.computeDepths();
  for (const [id, b] of want) assert.deepEqual(idx.packBlobAt(idx.slotOf(id)), b, id);
  const deltas = new Set([...idx.deltas()].map(([id]) => id));
  assert.deepEqual(deltas, new Set([...want.values()].filter((b) => b.base).map((b) => b.id)));
  // depths from the bases as the test wrote them (bases are earlier blobs: no cycles); a missing base counts 0
  const depth = new Map<string, number>();
  for (const id of order) {
    const b = want.get(id)!;
    depth.set(id, b.base ? 1 + Math.max(...[b.base, ...(b.base2 ? [b.base2] : [])].map((x) => depth.get(x) ?? 0)) : 0);
  }
  assert.ok(Math.max(...depth.values()) >= 3);
  for (const id of order) assert.equal(idx.get(id)!.depth, depth.get(id), id);
  // a returned sketch is a copy
  const some = [...want.values()].find((b) => b.sf && b.sf.length > 0)!;
  idx.get(some.id)!.sf![0] = 12345;
  assert.deepEqual(idx.get(some.id)!.sf, some.sf);
  idx.clear();
  idx.addPack(hid('pz'), [blob(hid('z1'), 0, { sf: [5] }), blob(hid('z2'), 1)]);
  assert.deepEqual(idx.get(hid('z1'))!.sf, [5]);
  assert.equal(idx.get(hid('z2'))!.sf, undefined);
  assert.equal([...idx.deltas()].length, 0);
});
