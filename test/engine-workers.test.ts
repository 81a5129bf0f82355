import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, unlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, textBytes, Rng } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';
import { BackupProgress } from '../src/engine/progress.js';

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
    // with the C encoder (native/encode.c) no worker at all; else the encode worker
    if (repo.nativeEncoder) assert.equal(repo.workersStarted, 0, 'a first backup with the C encoder started a worker');
    else assert.ok(repo.workersStarted > 0, 'a first backup of 4 MB encodes in workers');
    await repo.close();

    repo = await Repository.open(storage(), 'pw');
    const again = await backupPaths(repo, { paths: [data] });
    assert.equal(again.summary.filesUnmodified, 1506);
    // (its large parent tree may go to the C read pool, which starts no thread: Repository.decodeInline)
    assert.equal(repo.workerThreadsStarted, 0, 'the unchanged re-backup started a worker thread');
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
    // 4.6 MB to decode: under INLINE_DECODE_BEFORE_WORKERS, on the main thread (ranged reads included), or in the C read pool
    assert.equal(repo.workerThreadsStarted, 0, 'a restore of 4.6 MB started a worker thread');
    await repo.close();

    // the same restore with every range decoded in a worker gives the same files
    repo = await Repository.open(storage(), 'pw');
    repo.inlineUpTo(0);
    const out2 = path.join(t.dir, 'out2');
    await restoreSnapshot(repo, await repo.loadSnapshot(again.snapshotId), { target: out2, subpath: data });
    assert.ok(repo.workersStarted > 0, 'inlineUpTo(0): the restore decodes in a worker');
    await repo.close();
    const files = async (root: string): Promise<string[]> => (await fsp.readdir(root, { recursive: true })).map(String).sort();
    const names = await files(out);
    assert.deepEqual(await files(out2), names);
    assert.equal(names.length, 1500 + 6 + 1);
    for (const n of names) {
      if ((await fsp.stat(path.join(out, n))).isFile()) assert.deepEqual(await fsp.readFile(path.join(out2, n)), await fsp.readFile(path.join(out, n)), n);
    }
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

/**
 * Files of one chunk (smaller than the chunker's minimum) are read, hashed, encoded and
 * sketched in the workers (src/engine/small-files.ts): their index entries must be those the
 * main thread's path (Repository.saveBlob) makes, sketch included, or later backups would find
 * other delta bases. A small file with holes keeps them (it is read on the main thread).
 */
test('one-chunk files read in the workers get the index entries saveBlob makes (sketch included); a small sparse file keeps its holes', async () => {
  process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
  const t = tmpDir();
  try {
    const data = path.join(t.dir, 'data');
    await fsp.mkdir(data, { recursive: true });
    const rng = new Rng(9);
    const files: Record<string, Buffer> = {
      'text-4k': textBytes(4096, rng),
      'text-64k': textBytes(64 * 1024, rng),
      'text-100k': textBytes(100_000, rng),
      'text-500k': textBytes(500_000, rng),
      'random-200k': randomBytes(200_000),
    };
    for (const [n, b] of Object.entries(files)) await fsp.writeFile(path.join(data, n), b);
    // 400 KiB with 8 KiB of data at each end and a hole between
    const sparse = path.join(data, 'sparse');
    const head = textBytes(8192, rng);
    const tail = textBytes(8192, rng);
    const fh = await fsp.open(sparse, 'w');
    await fh.write(head, 0, head.length, 0);
    await fh.write(tail, 0, tail.length, 400 * 1024 - tail.length);
    await fh.close();
    const holey = (await fsp.stat(sparse)).blocks * 512 < 400 * 1024;

    const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
    const ref = await Repository.init(new LocalStorage(path.join(t.dir, 'ref')), 'pw');
    try {
      const r = await backupPaths(repo, { paths: [data] });
      assert.equal(r.summary.filesNew, 6);
      let tree = (await repo.loadTree((await repo.loadSnapshot(r.snapshotId)).tree));
      for (const part of data.split('/').filter(Boolean)) tree = await repo.loadTree(tree.nodes.find((n) => n.name === part)!.subtree!);
      for (const [n, b] of Object.entries(files)) {
        const node = tree.nodes.find((x) => x.name === n)!;
        assert.deepEqual(node.content, [repo.blobId(b)], n);
        const { id } = await ref.saveBlob('data', Buffer.from(b));
        await ref.flush();
        const got = repo.indexEntry(node.content![0]!)!;
        const want = ref.indexEntry(id)!;
        for (const k of ['type', 'rawLength', 'compression', 'length', 'sf'] as const) assert.deepEqual(got[k], want[k], `${n}: ${k}`);
        assert.equal(!!got.sf, b.length >= 64 * 1024 && !n.startsWith('random'), `${n}: sketched`);
      }
      const sp = tree.nodes.find((x) => x.name === 'sparse')!;
      if (holey) assert.deepEqual(sp.holes, [[8192, 400 * 1024 - 2 * 8192]], 'the hole is recorded');
      const out = path.join(t.dir, 'out');
      await restoreSnapshot(repo, await repo.loadSnapshot(r.snapshotId), { target: out, subpath: data });
      for (const [n, b] of Object.entries(files)) assert.deepEqual(await fsp.readFile(path.join(out, n)), b, n);
      const restored = await fsp.readFile(path.join(out, 'sparse'));
      assert.deepEqual(restored, Buffer.concat([head, Buffer.alloc(400 * 1024 - 2 * 8192), tail]));
      if (holey) assert.ok((await fsp.stat(path.join(out, 'sparse'))).blocks * 512 < 400 * 1024, 'restored with its hole');
    } finally {
      await repo.close();
      await ref.close();
    }
  } finally {
    t.cleanup();
  }
});

/**
 * The walk goes on to the next directory once a directory's files are under way, not saved
 * (src/engine/archiver.ts saveDir): the workers read the files of one directory while the next
 * is listed. Here the files of a/ cannot be stored until a file of b/ has started: a walk that
 * waited for a/ to be saved would never start b/ (the deadline then releases a/ and fails the test).
 */
test('the walk reaches the next directory while the files of the previous one are still being saved', async () => {
  process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
  const t = tmpDir();
  try {
    const data = path.join(t.dir, 'data');
    const rng = new Rng(11);
    await fsp.mkdir(path.join(data, 'a'), { recursive: true });
    await fsp.mkdir(path.join(data, 'b'));
    for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(data, 'a', `f${i}`), textBytes(2000 + i, rng));
    await fsp.writeFile(path.join(data, 'b', 'g'), textBytes(3000, rng));
    const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
    let bStarted!: () => void;
    const bStart = new Promise<void>((resolve) => (bStarted = resolve));
    let timedOut = false;
    const deadline = setTimeout(() => {
      timedOut = true;
      bStarted();
    }, 60_000);
    const progress = new BackupProgress();
    const started = progress.fileStarted.bind(progress);
    progress.fileStarted = (p) => {
      if (String(p).includes(`${path.sep}b${path.sep}`)) bStarted();
      started(p);
    };
    // the files of a/ are held until b/ is reached (real archiver, reader and workers; only this gate added)
    const saveEncoded = repo.saveEncoded.bind(repo);
    repo.saveEncoded = async (...args: Parameters<Repository['saveEncoded']>) => {
      await bStart;
      return saveEncoded(...args);
    };
    try {
      const r = await backupPaths(repo, { paths: [data], progress });
      assert.equal(timedOut, false, 'b/ was not reached before the files of a/ were saved');
      assert.equal(r.summary.filesNew, 21);
      const out = path.join(t.dir, 'out');
      await restoreSnapshot(repo, await repo.loadSnapshot(r.snapshotId), { target: out, subpath: data });
      assert.deepEqual(await fsp.readFile(path.join(out, 'b', 'g')), await fsp.readFile(path.join(data, 'b', 'g')));
      assert.equal((await fsp.readdir(path.join(out, 'a'))).length, 20);
    } finally {
      clearTimeout(deadline);
      await repo.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a file replaced by a FIFO between the scan and its read is skipped with a warning; the backup does not wait for a writer', { timeout: 60_000 }, async () => {
  // Opening a FIFO for reading blocks until someone opens it for writing: without O_NONBLOCK the backup (and a
  // thread of the pool) waited for good. Both read paths: a large file (archiver) and a small one (C or worker reader).
  const t = tmpDir();
  try {
    const data = path.join(t.dir, 'data');
    await fsp.mkdir(data);
    const rng = new Rng(5);
    await fsp.writeFile(path.join(data, 'big'), randomBytes(1 << 20));
    await fsp.writeFile(path.join(data, 'small'), textBytes(3000, rng));
    await fsp.writeFile(path.join(data, 'keep'), textBytes(5000, rng));
    const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
    const progress = new BackupProgress();
    const started = progress.fileStarted.bind(progress);
    const replaced = new Set<string>();
    progress.fileStarted = (p) => {
      const name = path.basename(String(p));
      if ((name === 'big' || name === 'small') && !replaced.has(name)) {
        replaced.add(name);
        unlinkSync(String(p));
        execFileSync('mkfifo', [String(p)]);
      }
      started(p);
    };
    try {
      const r = await backupPaths(repo, { paths: [data], progress });
      assert.deepEqual([...replaced].sort(), ['big', 'small'], 'both files were replaced just before they were read');
      assert.deepEqual(r.warnings.map((w) => path.basename(w.path)).sort(), ['big', 'small']);
      for (const w of r.warnings) assert.match(w.message, /no longer a regular file/);
      const out = path.join(t.dir, 'out');
      await restoreSnapshot(repo, await repo.loadSnapshot(r.snapshotId), { target: out, subpath: data });
      assert.deepEqual(await fsp.readFile(path.join(out, 'keep')), await fsp.readFile(path.join(data, 'keep')));
      assert.deepEqual((await fsp.readdir(out)).sort(), ['keep']);
    } finally {
      await repo.close();
    }
  } finally {
    t.cleanup();
  }
});
