import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { Rng, makeTree, runCli, textBytes, tmpDir } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import type { Storage } from '../src/storage/types.js';
import { Repository } from '../src/repo/repository.js';
import { basesOf } from '../src/repo/pack.js';
import { checkRepository } from '../src/verify/check.js';

/**
 * check --read-data reads the packs that hold delta blobs or their bases (their chains are decoded)
 * only once the walk of the trees has ended: run beside the walk, the two phases' memory added up.
 * The walk's tree reads are slowed down here, so that without the wait the data phase would reach
 * those packs while the walk still runs.
 */
const env = { LIFEBOAT_PASSWORD: 'order-pw' };

/** `target` with some of its methods replaced; the others are its own, bound to it. */
function withMethods(target: Storage, methods: Record<string, (...a: never[]) => unknown>): Storage {
  return new Proxy(target, {
    get(t, prop, recv) {
      if (typeof prop === 'string' && Object.hasOwn(methods, prop)) return methods[prop];
      const v = Reflect.get(t, prop, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}

test('check --read-data: packs with deltas or delta bases are read after the walk, the others beside it', { timeout: 180_000 }, async () => {
  const t = tmpDir();
  try {
    const src = path.join(t.dir, 'src');
    await makeTree(src, { files: 60, seed: 7, maxSize: 200_000 });
    const repoDir = path.join(t.dir, 'repo');
    assert.equal((await runCli(['init', '-q', '-r', repoDir], { env })).code, 0);
    assert.equal((await runCli(['backup', '-q', '-r', repoDir, src], { env })).code, 0);
    // a dump on two days: the second day's chunks are deltas on the first's
    const day0 = textBytes(6 * 1024 * 1024, new Rng(3));
    const day1 = Buffer.from(day0);
    for (let i = 0; i < 40; i++) day1.write('CHANGED', (i * 150_001) % (day1.length - 8));
    for (const day of [day0, day1]) {
      assert.equal((await runCli(['backup', '-q', '-r', repoDir, '--stdin', '--stdin-filename', 'dump.sql'], { env, input: day })).code, 0);
    }

    process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
    const log: Array<{ pack: string; offset: number; length: number }> = [];
    let treeAt = new Set<string>();
    const inner = new LocalStorage(repoDir);
    const storage = withMethods(inner, {
      load: async (kind: string, name: string, range?: { offset: number; length: number }) => {
        if (kind === 'data') {
          log.push({ pack: name, offset: range?.offset ?? 0, length: range?.length ?? -1 });
          if (range && treeAt.has(`${name}:${range.offset}:${range.length}`)) await new Promise((r) => setTimeout(r, 150));
        }
        return inner.load(kind as never, name, range);
      },
      loadInto: async (kind: string, name: string, offset: number, into: Buffer) => {
        if (kind === 'data') log.push({ pack: name, offset, length: into.length });
        return inner.loadInto!(kind as never, name, offset, into);
      },
    });
    const repo = await Repository.open(storage, env.LIFEBOAT_PASSWORD);
    try {
      const entries = [...repo.index.values()];
      treeAt = new Set(entries.filter(([, e]) => e.type === 'tree').map(([, e]) => `${e.pack}:${e.offset}:${e.length}`));
      const heavy = new Set<string>();
      for (const [, e] of repo.index.deltas()) {
        heavy.add(e.pack);
        for (const b of basesOf(e)) heavy.add(repo.index.packOf(b)!);
      }
      assert.ok([...repo.index.deltas()].length > 0, 'the second day is stored as deltas');
      const plain = new Set(entries.map(([, e]) => e.pack).filter((p) => !heavy.has(p)));
      assert.ok(plain.size > 0);

      // the CLI turns V8's optimizing compiler off here (cli/commands/check.ts): it must come after the walk's
      // last tree read and before the packs with deltas are read
      const walkDone: number[] = [];
      const res = await checkRepository(repo, { readData: true, onWalkDone: () => walkDone.push(log.length) });
      assert.equal(res.ok, true, JSON.stringify(res.problems));
      assert.equal(res.packsRead, res.packs);

      const isWalk = (x: { pack: string; offset: number; length: number }) => treeAt.has(`${x.pack}:${x.offset}:${x.length}`);
      let lastWalk = -1;
      log.forEach((x, i) => isWalk(x) && (lastWalk = i));
      const firstHeavy = log.findIndex((x) => heavy.has(x.pack) && !isWalk(x));
      const firstPlain = log.findIndex((x) => plain.has(x.pack) && !isWalk(x));
      assert.ok(lastWalk > 0 && firstHeavy > 0 && firstPlain >= 0);
      assert.ok(firstHeavy > lastWalk, `a pack with deltas was read (log entry ${firstHeavy}) before the walk's last tree read (${lastWalk})`);
      assert.ok(firstPlain < lastWalk, 'the other packs are read beside the walk');
      assert.equal(walkDone.length, 1, 'onWalkDone is called once');
      assert.ok(walkDone[0]! > lastWalk && walkDone[0]! <= firstHeavy, `onWalkDone at log entry ${walkDone[0]}: the walk's last tree read is ${lastWalk}, the first delta pack read ${firstHeavy}`);

      // a walk that fails (the snapshots cannot be listed) still says it is over, once
      const failing = withMethods(storage, {
        list: async (kind: string) => {
          if (kind === 'snapshot') throw new Error('listing refused');
          return storage.list(kind as never);
        },
      });
      const repo2 = await Repository.open(failing, env.LIFEBOAT_PASSWORD);
      try {
        let calls = 0;
        await assert.rejects(checkRepository(repo2, { readData: true, onWalkDone: () => calls++ }), /listing refused/);
        assert.equal(calls, 1, 'onWalkDone is called once when the walk fails');
      } finally {
        await repo2.close();
      }
    } finally {
      await repo.close();
    }
  } finally {
    t.cleanup();
  }
});
