import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { LocalStorage } from '../storage/local.js';
import { LimitedStorage } from '../storage/limits.js';
import { Repository } from './repository.js';
import { COMPACT_SLACK, prune, STALE_TEMP_MS } from './prune.js';
import { repoStats, walkSnapshot } from './inspect.js';

test('prune removes temporary files a killed writer left (older than the cut-off), keeps fresh ones and every object', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-prune-tmp-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    const old = (Date.now() - STALE_TEMP_MS - 60_000) / 1000;
    const stale = [
      path.join(dir, 'data', '.tmp-pack-0123456789abcdef'),
      path.join(dir, 'data', 'ab', '.tmp-new-0011223344'),
      path.join(dir, 'index', '.tmp-ffee-0011223344'),
      path.join(dir, '.tmp-config-aabbccddeeff'),
    ];
    mkdirSync(path.join(dir, 'data', 'ab'), { recursive: true });
    for (const f of stale) {
      writeFileSync(f, Buffer.alloc(1000));
      utimesSync(f, old, old);
    }
    const fresh = path.join(dir, 'data', '.tmp-pack-fedcba9876543210');
    writeFileSync(fresh, 'being written');
    // an object whose name merely contains tmp is never touched, however old
    const keysBefore = readdirSync(path.join(dir, 'keys'));
    const r = await prune(repo);
    assert.equal(r.tempRemoved, 4);
    assert.equal(r.tempBytesRemoved, 4000);
    for (const f of stale) assert.equal(existsSync(f), false, f);
    assert.equal(existsSync(fresh), true);
    assert.deepEqual(readdirSync(path.join(dir, 'keys')), keysBefore);
    assert.ok(existsSync(path.join(dir, 'config')));
    // nothing left to remove: no count
    assert.equal((await prune(repo)).tempRemoved, undefined);
    // an append-only storage never deletes them (the method is absent)
    assert.equal(new LimitedStorage(new LocalStorage(dir), { appendOnly: true }).removeStaleTemp, undefined);
    assert.equal(typeof new LimitedStorage(new LocalStorage(dir), {}).removeStaleTemp, 'function');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prune walks the snapshots without keeping their trees in the blob cache (each is visited once; repoStats and ls\'s walkSnapshot too)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-prune-cache-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    // 40 directories of 60 small files each, under one root: ~40 trees of ~10 kB
    const dirs = [];
    for (let d = 0; d < 40; d++) {
      const nodes = [];
      for (let f = 0; f < 60; f++) {
        const { id } = await repo.saveBlob('data', Buffer.from(`dir ${d} file ${f}\n`));
        nodes.push({ name: `file-${f}.txt`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 1, ctime: 1, size: 20, content: [id] });
      }
      const subtree = await repo.saveTree({ nodes });
      dirs.push({ name: `d${d}`, type: 'dir' as const, mode: 0o755, uid: 0, gid: 0, mtime: 1, ctime: 1, size: 0, subtree });
    }
    const tree = await repo.saveTree({ nodes: dirs });
    await repo.flush();
    await repo.saveSnapshot({ time: new Date().toISOString(), tree, paths: ['/x'], tags: [] });
    const cache = (r: Repository) => (r as unknown as { cache: { trees: { bytes: number; size: number } } }).cache.trees;
    const opened = await Repository.open(new LocalStorage(dir), 'pw');
    const r = await prune(opened);
    assert.equal(r.blobsKept, 41 + 40 * 60);
    assert.equal(cache(opened).size, 0, `trees cached after prune: ${cache(opened).size} (${cache(opened).bytes} bytes)`);
    const stats = await repoStats(opened, await opened.listSnapshots());
    assert.equal(stats.uniqueBlobs, 41 + 40 * 60);
    assert.equal(cache(opened).size, 0, `trees cached after repoStats: ${cache(opened).size}`);
    let walked = 0;
    for await (const _ of walkSnapshot(opened, tree)) walked++;
    assert.equal(walked, 40 + 40 * 60);
    assert.equal(cache(opened).size, 0, `trees cached after walkSnapshot (ls): ${cache(opened).size}`);
    // a walk that asks for them keeps them (the cache works: the assertions above can fail)
    await opened.loadTree(tree);
    assert.equal(cache(opened).size, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prune leaves the index files alone when nothing changes, and rewrites them when something is removed', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-prune-same-'));
  try {
    class Counting extends LocalStorage {
      indexSaves = 0;
      override save(type: Parameters<LocalStorage['save']>[0], name: string, data: Uint8Array): Promise<void> {
        if (type === 'index') this.indexSaves++;
        return super.save(type, name, data);
      }
    }
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    // two snapshots, each flushed on its own: two index files
    const snaps: string[] = [];
    for (const s of ['a', 'b']) {
      const nodes = [];
      for (let f = 0; f < 5; f++) {
        const { id } = await repo.saveBlob('data', Buffer.from(`snapshot ${s} file ${f}\n`));
        nodes.push({ name: `f${f}`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 1, ctime: 1, size: 18, content: [id] });
      }
      const tree = await repo.saveTree({ nodes });
      await repo.flush();
      snaps.push(await repo.saveSnapshot({ time: new Date().toISOString(), tree, paths: [`/${s}`], tags: [] }));
    }
    const indexFiles = () => readdirSync(path.join(dir, 'index')).filter((n) => !n.startsWith('.')).sort();
    const before = indexFiles();
    assert.equal(before.length, 2);

    const storage = new Counting(dir);
    const r = await prune(await Repository.open(storage, 'pw'));
    assert.equal(r.blobsRemoved, 0);
    assert.equal(r.packsDeleted, 0);
    assert.equal(storage.indexSaves, 0, 'an index file was written by a prune that removed nothing');
    assert.deepEqual(indexFiles(), before);

    // snapshot a forgotten: its blobs are unused, the index is written anew and the old files removed
    await repo.removeSnapshot(snaps[0]!);
    const storage2 = new Counting(dir);
    const opened = await Repository.open(storage2, 'pw');
    const r2 = await prune(opened);
    assert.equal(r2.blobsRemoved, 6);
    assert.ok(storage2.indexSaves >= 1);
    const after = indexFiles();
    assert.equal(after.filter((n) => before.includes(n)).length, 0, 'old index files left behind');
    const again = await Repository.open(new LocalStorage(dir), 'pw');
    assert.equal(again.index.size, 6);
    for (const s of await again.listSnapshots()) assert.ok((await again.loadTree(s.tree)).nodes.length === 5);

    // more small index files than COMPACT_SLACK beyond one: joined into one, though nothing is removed
    for (let k = 0; k < COMPACT_SLACK + 1; k++) {
      const { id } = await repo.saveBlob('data', Buffer.from(`more ${k}\n`));
      const tree = await repo.saveTree({ nodes: [{ name: 'm', type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 1, ctime: 1, size: 7, content: [id] }] });
      await repo.flush();
      await repo.saveSnapshot({ time: new Date().toISOString(), tree, paths: [`/m${k}`], tags: [] });
    }
    assert.equal(indexFiles().length, after.length + COMPACT_SLACK + 1);
    const storage3 = new Counting(dir);
    const r3 = await prune(await Repository.open(storage3, 'pw'));
    assert.equal(r3.blobsRemoved, 0);
    assert.equal(storage3.indexSaves, 1);
    assert.equal(indexFiles().length, 1);
    assert.equal((await Repository.open(new LocalStorage(dir), 'pw')).index.size, 6 + 2 * (COMPACT_SLACK + 1));

    // an empty repository: nothing to write, nothing fails
    const empty = mkdtempSync(path.join(tmpdir(), 'lb-prune-empty-'));
    try {
      const es = new Counting(empty);
      const e = await prune(await Repository.init(es, 'pw'));
      assert.equal(e.blobsKept, 0);
      assert.equal(es.indexSaves, 0);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
