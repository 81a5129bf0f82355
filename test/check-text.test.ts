import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { makeTree, runCli, tmpDir } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { checkRepository } from '../src/verify/check.js';
import { requireAddon } from '../src/util/native.js';
import { startupTextReleases } from '../src/util/startup-text.js';
import { heapTrimStats } from '../src/util/heap-trim.js';

/**
 * check --read-data gives the executable's pages back again and again while it reads the packs
 * (util/startup-text.ts releaseStartupTextEvery), and trims the C heap as it reads (util/heap-trim.ts);
 * both stop once it is done. The reads are slowed down here so that they outlast several intervals.
 */
const skip =
  typeof requireAddon<{ dropExecutableText?: unknown }>('mem')?.dropExecutableText === 'function' && existsSync('/proc/self/smaps') ? false : 'native/mem.c did not build, or no /proc';
const env = { LIFEBOAT_PASSWORD: 'text-pw' };

/**
 * A repository of 30 files (seed `seed`) in `dir`, opened with every read of a pack 40 ms slower (the reads
 * outlast several intervals); the environment's `settings` set for the time of `f`.
 */
async function withSlowRepo(seed: number, settings: Record<string, string>, f: (repo: Repository) => Promise<void>): Promise<void> {
  const t = tmpDir();
  const saved = Object.fromEntries(Object.keys(settings).map((k) => [k, process.env[k]]));
  try {
    const src = path.join(t.dir, 'src');
    await makeTree(src, { files: 30, seed, maxSize: 300_000 });
    const repoDir = path.join(t.dir, 'repo');
    assert.equal((await runCli(['init', '-q', '-r', repoDir], { env })).code, 0);
    assert.equal((await runCli(['backup', '-q', '-r', repoDir, src], { env })).code, 0);
    process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
    const storage = new LocalStorage(repoDir);
    const slow = <A extends unknown[], R>(g: (...a: A) => Promise<R>) =>
      async (...a: A): Promise<R> => {
        if (a[0] === 'data') await new Promise((r) => setTimeout(r, 40));
        return g(...a);
      };
    storage.load = slow(storage.load.bind(storage));
    storage.loadInto = slow(storage.loadInto.bind(storage));
    const repo = await Repository.open(storage, env.LIFEBOAT_PASSWORD);
    try {
      Object.assign(process.env, settings);
      await f(repo);
    } finally {
      await repo.close();
    }
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    t.cleanup();
  }
}

test('check --read-data drops the executable pages every interval while it reads, and no more afterwards', { skip, timeout: 120_000 }, async () => {
  await withSlowRepo(11, { LIFEBOAT_RELEASE_TEXT_EVERY_MS: '10' }, async (repo) => {
    const before = startupTextReleases().releases;
    const started = Date.now();
    const res = await checkRepository(repo, { readData: true });
    const took = Date.now() - started;
    assert.equal(res.ok, true, JSON.stringify(res.problems));
    assert.ok(res.packsRead > 0);
    const during = startupTextReleases().releases - before;
    // one at the start and about one per 10 ms of reads (timers run late on a busy machine)
    assert.ok(took >= 100, `the reads took ${took} ms`);
    assert.ok(during >= 4, `${during} drops in a check of ${took} ms`);
    const after = startupTextReleases().releases;
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(startupTextReleases().releases, after, 'no drop once the check is over');
  });
});

test('check --read-data trims the heap every interval while it reads (util/heap-trim.ts), and stops once it is done', { skip: heapTrimStats() ? false : 'native/mem.c did not build', timeout: 120_000 }, async () => {
  assert.equal(heapTrimStats()!.intervalMs, 0, 'no trims before the check');
  await withSlowRepo(12, { LIFEBOAT_TRIM_MS: '10' }, async (repo) => {
    const before = heapTrimStats()!.runs;
    const seen = new Set<number>();
    const res = await checkRepository(repo, { readData: true, onProgress: () => seen.add(heapTrimStats()!.intervalMs) });
    assert.equal(res.ok, true, JSON.stringify(res.problems));
    assert.ok(res.packsRead > 0);
    assert.deepEqual([...seen], [10], 'every pack was read while the trims ran every 10 ms');
    const stopped = heapTrimStats()!;
    assert.equal(stopped.intervalMs, 0, 'stopped once the check is over');
    assert.ok(stopped.runs - before >= 1, `${stopped.runs - before} trims during the reads`);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(heapTrimStats()!.runs, stopped.runs, 'no trim once the check is over');
  });
});
