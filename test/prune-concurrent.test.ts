import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { prune } from '../src/repo/prune.js';
import { describeTree, makeTree, runCli, tmpDir } from './helpers/tmp.js';

/**
 * A long-lived process (the daemon) opens a repository, and before its prune
 * gets the exclusive lock another process finishes a backup. Prune must see
 * that backup's packs as used (it re-reads the index under its lock): no
 * refusal, nothing deleted, the new snapshot restores byte-identical.
 */
test('prune in a long-lived process keeps what other processes wrote after it opened the repository', async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const env = { LIFEBOAT_PASSWORD: 'pw' };
  const repoDir = path.join(dir, 'repo');
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  await makeTree(a, { files: 40, seed: 1 });
  await makeTree(b, { files: 40, seed: 2 });
  assert.equal((await runCli(['init', '--repo', repoDir], { env })).code, 0);
  assert.equal((await runCli(['backup', a, '--repo', repoDir], { env })).code, 0);

  const repo = await Repository.open(new LocalStorage(repoDir), 'pw');
  try {
    // another process: a new snapshot with new packs and a new index file
    const bk = await runCli(['backup', b, '--repo', repoDir, '--json'], { env });
    assert.equal(bk.code, 0, bk.stderr);
    const packsBefore = (await fsp.readdir(path.join(repoDir, 'data'), { recursive: true })).filter((f) => String(f).length > 60).length;
    const r = await prune(repo);
    assert.equal(r.packsDeleted, 0, 'nothing is garbage: both snapshots are alive');
    const packsAfter = (await fsp.readdir(path.join(repoDir, 'data'), { recursive: true })).filter((f) => String(f).length > 60).length;
    assert.equal(packsAfter, packsBefore);
  } finally {
    await repo.close();
  }
  const chk = await runCli(['check', '--read-data', '--repo', repoDir], { env });
  assert.equal(chk.code, 0, chk.stdout + chk.stderr);
  const out = path.join(dir, 'out');
  const snaps = JSON.parse((await runCli(['snapshots', '--json', '--repo', repoDir], { env })).stdout) as Array<{ id: string; paths: string[] }>;
  const second = snaps.find((s) => s.paths.includes(b))!;
  assert.equal((await runCli(['restore', second.id, '--target', out, '--repo', repoDir], { env })).code, 0);
  assert.deepEqual(await describeTree(path.join(out, b)), await describeTree(b));
});
