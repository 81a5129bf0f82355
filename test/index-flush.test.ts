import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpDir } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository, openJson } from '../src/repo/repository.js';
import { type PackBlob, parsePackHeader } from '../src/repo/pack.js';

test('a long backup publishes index files as it goes (bounded pending entries), and every blob is indexed after reopening', async () => {
  const { dir, cleanup } = tmpDir();
  const repo = await Repository.init(new LocalStorage(dir), 'pw', { packSize: 1024 * 1024 });
  repo.indexFlushBlobs = 10;
  const ids: string[] = [];
  // 64 blobs of 64 KiB of random data: 4 packs of 1 MiB, 16 blobs each
  for (let i = 0; i < 64; i++) ids.push((await repo.saveBlob('data', randomBytes(64 * 1024))).id);
  // Packs finish in the background: wait (bounded) for index files to appear before any flush.
  let before = 0;
  for (let waited = 0; waited < 600 && before < 2; waited++) {
    await new Promise((r) => setTimeout(r, 50));
    before = (await repo.storage.list('index')).length;
  }
  assert.ok(before >= 2, `index files published before flush: ${before}`);
  await repo.flush();
  await repo.close();
  const again = await Repository.open(new LocalStorage(dir), 'pw');
  for (const id of ids) assert.ok(again.index.has(id), id);
  assert.equal(again.index.size, 64);
  for (const id of ids.slice(0, 5)) assert.equal((await again.loadBlob(id)).length, 64 * 1024);
  await again.close();
  cleanup();
});

/** 64 KiB that zstd shrinks (so it gets a resemblance sketch), different for each seed. */
function text(seed: number): Buffer {
  const words = ['backup', 'restore', 'pack', 'index', 'delta', 'chunk', 'tree', 'blob', 'snapshot', 'lifeboat'];
  let x = (seed * 2654435761) >>> 0 || 1;
  const parts: string[] = [];
  let n = 0;
  while (n < 64 * 1024) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const w = `${words[x % words.length]}${x % 1000} `;
    parts.push(w);
    n += w.length;
  }
  return Buffer.from(parts.join('')).subarray(0, 64 * 1024);
}

/** Entries with their keys in one order (the index file and the pack header may list them differently). */
const norm = (b: PackBlob): string => JSON.stringify(Object.fromEntries(Object.entries(b).sort(([x], [y]) => (x < y ? -1 : 1))));

type Pending = { id: string; blobs: PackBlob[]; slots?: Int32Array };

test('packs waiting for their index file are held as index slots; the index file made from them lists what each pack header lists (sketches, delta bases, an entry the index had already, across a reload)', async () => {
  const { dir, cleanup } = tmpDir();
  const repo = await Repository.init(new LocalStorage(dir), 'pw', { packSize: 1024 * 1024 });
  // packs of a few blobs each (the format's minimum of 1 MiB holds ~60 of these): a pack is closed when it reaches the open repository's size
  (repo.config as { packSize: number }).packSize = 96 * 1024;
  const pending = () => (repo as unknown as { newPacks: Pending[] }).newPacks;
  const first: string[] = [];
  for (let i = 0; i < 8; i++) first.push((await repo.saveBlob('data', text(i))).id);
  await repo.flush();
  // Near copies of the first blobs (deltas on them), new blobs, and one blob the index takes from elsewhere before its pack is done.
  const second: string[] = [];
  for (let i = 0; i < 8; i++) {
    const near = text(i);
    near.write('changed!', 1000 + i);
    second.push((await repo.saveBlob('data', near, { deltaBases: [first[i]!] })).id);
  }
  for (let i = 100; i < 112; i++) second.push((await repo.saveBlob('data', text(i))).id);
  const dup = text(999);
  const dupId = (await repo.saveBlob('data', dup)).id;
  repo.index.addPack('f'.repeat(64), [{ id: dupId, type: 'data', offset: 0, length: dup.length + 28, rawLength: dup.length, compression: 0 }]);
  for (let i = 200; i < 212; i++) second.push((await repo.saveBlob('data', text(i))).id);
  const holdsDup = () => pending().some((p) => p.blobs.some((b) => b.id === dupId));
  for (let waited = 0; waited < 600 && (pending().length < 4 || !holdsDup()); waited++) await new Promise((r) => setTimeout(r, 20));
  const held = pending().filter((p) => p.slots);
  assert.ok(held.length >= 4, `packs waiting as slots: ${held.length}`);
  // No entry objects are kept, but for the one blob the index did not take.
  assert.deepEqual(
    held.flatMap((p) => p.blobs.map((b) => b.id)),
    [dupId],
  );
  assert.ok(
    held.every((p) => p.slots!.length > 0 && [...p.slots!].every((s) => s >= -p.blobs.length)),
    'slots',
  );
  await repo.flush();
  const deltas = second.slice(0, 8).filter((id) => repo.indexEntry(id)?.compression === 2);
  assert.ok(deltas.length >= 4, `deltas: ${deltas.length}`);
  assert.ok(second.slice(8).every((id) => (repo.indexEntry(id)?.sf?.length ?? 0) > 0), 'sketches');
  const written = pending().length;
  assert.equal(written, 0);

  // A reload while packs wait: their entries are kept whole, and the index file still lists them.
  const third: string[] = [];
  for (let i = 300; i < 316; i++) third.push((await repo.saveBlob('data', text(i))).id);
  for (let waited = 0; waited < 600 && pending().length < 2; waited++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(pending().length >= 2 && pending().every((p) => p.slots));
  await repo.reloadIndex();
  assert.ok(pending().every((p) => !p.slots && p.blobs.length > 0), 'entries kept whole across a reload');
  await repo.flush();

  // Every index file lists, for each pack, exactly the entries of the pack's own header.
  const st = new LocalStorage(dir);
  let packs = 0;
  const listed = new Set<string>();
  for (const { name } of await st.list('index')) {
    const file = openJson(repo.key.encKey, await st.load('index', name), 'index') as { packs: Array<{ id: string; blobs: PackBlob[] }> };
    for (const p of file.packs) {
      packs++;
      const header = parsePackHeader(repo.key.encKey, await st.load('data', p.id), p.id);
      assert.deepEqual(p.blobs.map(norm), header.map(norm), `pack ${p.id}`);
      for (const b of p.blobs) listed.add(b.id);
    }
  }
  assert.ok(packs >= 8, `packs: ${packs}`);
  for (const id of [...first, ...second, dupId, ...third]) assert.ok(listed.has(id), id);
  await repo.close();
  const again = await Repository.open(new LocalStorage(dir), 'pw');
  for (const id of [...second.slice(0, 8), ...third]) assert.ok((await again.loadBlob(id)).length === 64 * 1024, id);
  assert.equal((await again.loadBlob(dupId)).compare(dup), 0);
  await again.close();
  cleanup();
});
