import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, textBytes, Rng } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';

/**
 * Worker threads cost start-up time and memory: a command with little to
 * encode or decode (an unchanged re-backup: a few new trees, a few large
 * parent trees) does it on the main thread and starts none
 * (INLINE_BEFORE_WORKERS in src/repo/repository.ts), and a bulk job still
 * goes to the workers.
 */
test('an unchanged re-backup starts no worker thread; a first backup of real data does, and both restore the same', async () => {
  process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
  const t = tmpDir();
  try {
    const data = path.join(t.dir, 'data');
    const rng = new Rng(5);
    // one directory with 1,500 entries: its tree blob is larger than 64 KiB (decoded in a worker above that size)
    await fsp.mkdir(path.join(data, 'wide'), { recursive: true });
    for (let i = 0; i < 1500; i++) await fsp.writeFile(path.join(data, 'wide', `entry-with-a-longish-name-${i}.txt`), textBytes(100 + (i % 300), rng));
    for (let i = 0; i < 6; i++) await fsp.writeFile(path.join(data, `big${i}.bin`), i % 2 ? randomBytes(700_000) : textBytes(700_000, rng));
    const storage = () => new LocalStorage(path.join(t.dir, 'repo'));
    let repo = await Repository.init(storage(), 'pw');
    const first = await backupPaths(repo, { paths: [data] });
    assert.ok(repo.workersStarted > 0, 'a first backup of 4 MB encodes in workers');
    await repo.close();

    repo = await Repository.open(storage(), 'pw');
    const again = await backupPaths(repo, { paths: [data] });
    assert.equal(again.summary.filesUnmodified, 1506);
    assert.equal(repo.workersStarted, 0, 'the unchanged re-backup started a worker');
    const snaps = await repo.listSnapshots();
    assert.equal(snaps.length, 2);
    // same content, same tree for the data (the wide tree was read on the main thread); the root trees may
    // differ: they hold the metadata of the ancestors (/tmp changes whenever another test makes a directory)
    const subtree = async (root: string): Promise<string> => {
      let id = root;
      for (const part of data.split('/').filter(Boolean)) id = (await repo.loadTree(id)).nodes.find((n) => n.name === part)!.subtree!;
      return id;
    };
    assert.equal(await subtree(snaps[0]!.tree), await subtree(snaps[1]!.tree));
    await repo.close();

    repo = await Repository.open(storage(), 'pw');
    const out = path.join(t.dir, 'out');
    await restoreSnapshot(repo, await repo.loadSnapshot(again.snapshotId), { target: out, subpath: data });
    assert.deepEqual(await fsp.readFile(path.join(out, 'big1.bin')), await fsp.readFile(path.join(data, 'big1.bin')));
    assert.equal((await fsp.readdir(path.join(out, 'wide'))).length, 1500);
    assert.ok(first.snapshotId !== again.snapshotId);
    await repo.close();
  } finally {
    t.cleanup();
  }
});

test('a directory unchanged since the parent snapshot keeps its extended attributes; one whose attributes changed is read again', async (t) => {
  process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
  const xattr = await import('fs-xattr');
  const tmp = tmpDir();
  try {
    const data = path.join(tmp.dir, 'data');
    await fsp.mkdir(path.join(data, 'sub'), { recursive: true });
    await fsp.mkdir(path.join(data, 'other'));
    await fsp.writeFile(path.join(data, 'sub', 'f.txt'), 'x');
    try {
      await xattr.setAttribute(path.join(data, 'sub'), 'user.note', 'one');
      await xattr.setAttribute(path.join(data, 'other'), 'user.keep', 'kept');
    } catch (err) {
      t.skip(`extended attributes not supported here: ${(err as Error).message}`);
      return;
    }
    const repo = await Repository.init(new LocalStorage(path.join(tmp.dir, 'repo')), 'pw');
    const attrs = async (snapshotId: string, dir: string) => {
      const snap = await repo.loadSnapshot(snapshotId);
      let tree = await repo.loadTree(snap.tree);
      for (const part of path.join(data, dir).split('/').filter(Boolean)) {
        const n = tree.nodes.find((x) => x.name === part)!;
        if (part === dir) return Object.fromEntries((n.xattrs ?? []).map((a) => [a.name, Buffer.from(a.value, 'base64').toString()]));
        tree = await repo.loadTree(n.subtree!);
      }
      throw new Error('not found');
    };
    const s1 = await backupPaths(repo, { paths: [data] });
    const s2 = await backupPaths(repo, { paths: [data] });
    assert.deepEqual(await attrs(s2.snapshotId, 'sub'), { 'user.note': 'one' });
    assert.deepEqual(await attrs(s2.snapshotId, 'other'), { 'user.keep': 'kept' });
    await xattr.setAttribute(path.join(data, 'sub'), 'user.note', 'two'); // changes the ctime, not the mtime
    const s3 = await backupPaths(repo, { paths: [data] });
    assert.deepEqual(await attrs(s3.snapshotId, 'sub'), { 'user.note': 'two' });
    assert.deepEqual(await attrs(s3.snapshotId, 'other'), { 'user.keep': 'kept' });
    assert.deepEqual(await attrs(s1.snapshotId, 'sub'), { 'user.note': 'one' });
    await repo.close();
  } finally {
    tmp.cleanup();
  }
});
