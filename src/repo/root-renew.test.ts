import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import { Repository, renewRootShare } from './repository.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

/** Text rows of a dump's chunk: version 0, then rows rewritten; `drift` of every 100 rows differ from version 0 (the first `drift`). */
function rows(n: number, drift: number, day: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const changed = i % 100 < drift;
    lines.push(`(${i}, 'name ${i}', ${changed ? `${(i * 2654435761) % 1000003}${day}` : i * 7}, '${changed ? `x${(i * 40503) % 99991}-${day}` : 'f'.repeat(i % 50)}'),`);
  }
  return Buffer.from(lines.join('\n'));
}

/**
 * maxDeltaDepth 1: version 1 is a delta on version 0; version 2's chain (on version 1) is at its
 * limit, so it is encoded against the root, version 0. `drift`: how far version 2 is from the root.
 * `mode`: the C encoder (the default), or the JavaScript paths (inline on this thread, the encode
 * worker given the base's sealed chain, the encode worker given the base's plaintext: `pool`, when no
 * worker runs yet as the delta is chosen).
 */
type Mode = 'native' | 'inline' | 'worker' | 'pool';
function setMode(repo: Repository, mode: Mode): void {
  if (mode !== 'native') (repo as unknown as { nativeEncoderInstance: null }).nativeEncoderInstance = null;
  if (mode === 'worker' || mode === 'pool') repo.inlineUpTo(0);
  else if (mode === 'inline') repo.inlineUpTo(1 << 30);
}
async function thirdVersion(drift: number, mode: Mode) {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-root-renew-'));
  try {
    let repo = await Repository.init(new LocalStorage(dir), 'pw', { maxDeltaDepth: 1 });
    const ids: string[] = [];
    const versions = [rows(20000, 0, 0), rows(20000, 1, 1), rows(20000, drift, 2)];
    let root: number;
    let renewed = 0;
    try {
      setMode(repo, mode === 'pool' ? 'inline' : mode);
      for (const [i, v] of versions.entries()) {
        if (mode === 'pool' && i === 2) {
          // a new session: no worker runs when the delta's base is chosen, so the worker gets the base's plaintext
          await repo.close();
          repo = await Repository.open(new LocalStorage(dir), 'pw');
          setMode(repo, mode);
          assert.equal(repo.workersStarted, 0);
        }
        if (mode === 'worker' && i === 2) assert.ok(repo.workersStarted > 0, 'the encode worker runs: the base goes there as its sealed chain');
        const { id } = await repo.saveBlob('data', Buffer.from(v), i > 0 ? { deltaBases: [ids[i - 1]!] } : {});
        await repo.flush();
        ids.push(id);
      }
      root = repo.indexEntry(ids[0]!)!.length;
      renewed = repo.rootsRenewed;
      assert.equal(repo.indexEntry(ids[1]!)!.base, ids[0], 'version 1 is a delta on the root');
    } finally {
      await repo.close();
    }
    const r = await Repository.open(new LocalStorage(dir), 'pw');
    try {
      for (const [i, v] of versions.entries()) assert.deepEqual(await r.loadBlob(ids[i]!), v, `version ${i} reads back`);
      const e = r.indexEntry(ids[2]!)!;
      return { e, root, renewed, root0: ids[0]! };
    } finally {
      await r.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

for (const mode of ['native', 'inline', 'worker', 'pool'] as const) {
  test(`a chunk whose delta against its chain's root has grown past ${renewRootShare()} of the root's size is stored in full and starts a chain of its own (${mode})`, async () => {
    const far = await thirdVersion(60, mode);
    assert.equal(far.renewed, 1);
    assert.equal(far.e.compression, 1, 'stored in full');
    assert.equal(far.e.depth, 0);
    assert.equal(far.e.base, undefined);

    const near = await thirdVersion(2, mode);
    assert.equal(near.renewed, 0, 'a small drift keeps the delta');
    assert.equal(near.e.compression, 2);
    assert.equal(near.e.base, near.root0, 'a delta on the root (the chain was at its depth limit)');
    assert.ok(near.e.length <= renewRootShare() * near.root);
  });
}

test('LIFEBOAT_RENEW_ROOT=0 keeps any delta that saves bytes, however far the chunk has drifted from the root', async () => {
  const before = process.env.LIFEBOAT_RENEW_ROOT;
  process.env.LIFEBOAT_RENEW_ROOT = '0';
  try {
    const far = await thirdVersion(60, 'native');
    assert.equal(far.renewed, 0);
    assert.equal(far.e.compression, 2);
    assert.equal(far.e.base, far.root0);
    assert.ok(far.e.length > 0.4 * far.root, `the drifted delta (${far.e.length} bytes) is over 40% of the root (${far.root})`);
  } finally {
    if (before === undefined) delete process.env.LIFEBOAT_RENEW_ROOT;
    else process.env.LIFEBOAT_RENEW_ROOT = before;
  }
});
