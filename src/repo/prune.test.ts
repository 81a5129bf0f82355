import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, utimesSync, writeFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { LocalStorage } from '../storage/local.js';
import { LimitedStorage } from '../storage/limits.js';
import { Repository } from './repository.js';
import { prune, STALE_TEMP_MS } from './prune.js';
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
