import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { tmpDir, runCli } from './helpers/tmp.js';
import { countTreeReads } from './helpers/tree-reads.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { collectUsedBlobs } from '../src/repo/walk.js';
import { prune } from '../src/repo/prune.js';
import { repoStats } from '../src/repo/inspect.js';
import { errorMessage } from '../src/errors.js';

/**
 * check walks the trees several at a time (collectUsedBlobs `concurrency`): the
 * blobs it finds and the trees it cannot read are those of the one-at-a-time walk.
 */
const env = { LIFEBOAT_PASSWORD: 'walk-pw' };

async function walk(repo: Repository, roots: string[], concurrency: number): Promise<{ used: string[]; errors: Array<[string, string]> }> {
  const errors: Array<[string, string]> = [];
  const used = await collectUsedBlobs(repo, roots, (id, err) => errors.push([id, errorMessage(err)]), undefined, false, concurrency);
  return { used: [...used].sort(), errors: errors.sort(([a], [b]) => (a < b ? -1 : 1)) };
}

test('collectUsedBlobs: several trees at a time find what one at a time finds, with damaged trees too', { timeout: 120_000 }, async () => {
  const t = tmpDir();
  try {
    const src = path.join(t.dir, 'src');
    // 3 levels of 4 directories (85 trees), a few files in each
    const mk = async (dir: string, depth: number): Promise<void> => {
      await fsp.mkdir(dir, { recursive: true });
      for (let f = 0; f < 3; f++) await fsp.writeFile(path.join(dir, `f${f}`), `${dir} ${f}\n`.repeat(50 + f));
      if (depth < 3) for (let d = 0; d < 4; d++) await mk(path.join(dir, `d${d}`), depth + 1);
    };
    await mk(src, 0);
    const repoDir = path.join(t.dir, 'repo');
    assert.equal((await runCli(['init', '-q', '-r', repoDir], { env })).code, 0);
    assert.equal((await runCli(['backup', '-q', '-r', repoDir, src], { env })).code, 0);
    process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
    let repo = await Repository.open(new LocalStorage(repoDir), env.LIFEBOAT_PASSWORD);
    const roots = (await repo.listSnapshots()).map((s) => s.tree);
    const serial = await walk(repo, roots, 1);
    assert.ok(serial.used.length > 85 + 3 * 85);
    assert.deepEqual(serial.errors, []);
    assert.deepEqual(await walk(repo, roots, 8), serial);

    // damage two subtrees (not the root): their loads fail, everything below them is not reached
    const trees = [...repo.index.values()].filter(([id, e]) => e.type === 'tree' && !roots.includes(id)).slice(0, 2);
    assert.equal(trees.length, 2);
    for (const [, e] of trees) {
      const file = path.join(repoDir, 'data', e.pack.slice(0, 2), e.pack);
      const buf = await fsp.readFile(file);
      buf[e.offset + 20]! ^= 1;
      await fsp.writeFile(file, buf);
    }
    await repo.close();
    repo = await Repository.open(new LocalStorage(repoDir), env.LIFEBOAT_PASSWORD);
    try {
      const damagedSerial = await walk(repo, roots, 1);
      assert.deepEqual(damagedSerial.errors.map(([id]) => id), trees.map(([id]) => id).sort());
      assert.ok(damagedSerial.used.length < serial.used.length);
      for (const c of [2, 8, 64]) assert.deepEqual(await walk(repo, roots, c), damagedSerial, `concurrency ${c}`);
    } finally {
      await repo.close();
    }
  } finally {
    t.cleanup();
  }
});

test('prune and stats walk several trees at a time (WALK_TREES), and find every tree', { timeout: 120_000 }, async () => {
  const t = tmpDir();
  try {
    const src = path.join(t.dir, 'src');
    // 2 levels of 5 directories (31 trees)
    for (let a = 0; a < 5; a++)
      for (let b = 0; b < 5; b++) {
        await fsp.mkdir(path.join(src, `a${a}`, `b${b}`), { recursive: true });
        await fsp.writeFile(path.join(src, `a${a}`, `b${b}`, 'f'), `${a} ${b}\n`);
      }
    const repoDir = path.join(t.dir, 'repo');
    assert.equal((await runCli(['init', '-q', '-r', repoDir], { env })).code, 0);
    assert.equal((await runCli(['backup', '-q', '-r', repoDir, src], { env })).code, 0);
    process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
    const repo = await Repository.open(new LocalStorage(repoDir), env.LIFEBOAT_PASSWORD);
    try {
      const reads = countTreeReads(repo);
      const trees = [...repo.index.values()].filter(([, e]) => e.type === 'tree').length;
      const r = await prune(repo, { dryRun: true });
      assert.equal(r.blobsRemoved, 0, 'every blob is found in use');
      assert.equal(reads.loads, trees, 'each tree read once');
      assert.ok(reads.most >= 4, `prune: ${reads.most} tree reads at once`);
      reads.most = 0;
      const s = await repoStats(repo, await repo.listSnapshots());
      assert.ok(s.uniqueBlobs > trees);
      assert.ok(reads.most >= 4, `stats: ${reads.most} tree reads at once`);
    } finally {
      await repo.close();
    }
  } finally {
    t.cleanup();
  }
});
