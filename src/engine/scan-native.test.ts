import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { disableScanNative, scanAddon, scanDir, unpack, NumStat, nsString } from './scan-native.js';
import { listDir } from './dir-prefetch.js';
import { backupPaths, matcher } from './archiver.js';
import { LocalStorage } from '../storage/local.js';
import { Repository } from '../repo/repository.js';
import type { TreeNode } from '../repo/tree.js';
import { scanPaths } from './scanner.js';
import { BackupProgress } from './progress.js';

const scratch = () => mkdtempSync(path.join(os.tmpdir(), 'lb-scan-native-'));
const b = (s: string) => Buffer.from(s);
const cat = (...p: Array<string | Buffer>) => Buffer.concat(p.map((x) => (typeof x === 'string' ? b(x) : x)));
const native = scanAddon() !== undefined;
const KINDS = ['isFile', 'isDirectory', 'isSymbolicLink', 'isFIFO', 'isCharacterDevice', 'isBlockDevice', 'isSocket'] as const;

/** A directory with every kind of entry the walk meets (names whose byte order differs from their string order, one not UTF-8). */
function makeTree(dir: string): string {
  const d = path.join(dir, 'd');
  mkdirSync(d);
  for (const n of [b('b'), b('a'), Buffer.from([0x66, 0xff, 0x6f]), b('\u00e9'), b('Z')]) writeFileSync(cat(d, '/', n), 'x'.repeat(n.length));
  mkdirSync(path.join(d, 'sub'));
  writeFileSync(path.join(d, 'sub', 'inner'), 'inner');
  symlinkSync('sub', path.join(d, 'link-to-dir'));
  symlinkSync('/nonexistent/target', path.join(d, 'dangling'));
  linkSync(path.join(d, 'a'), path.join(d, 'a-hardlink'));
  execFileSync('mkfifo', [path.join(d, 'fifo')]);
  // times with nanoseconds, one before 1970
  execFileSync('touch', ['-d', '@1500000000.987654321', path.join(d, 'b')]);
  execFileSync('touch', ['-d', '@-1000.25', path.join(d, 'Z')]);
  return d;
}

test('scanDir: the listing of readdir, sorted bytewise, with each entry\'s lstat (symlinks not followed)', { skip: !native && 'native addon not built' }, async () => {
  const dir = scratch();
  try {
    const d = makeTree(dir);
    const got = await scanDir(b(d));
    const js = await listDir(b(d), false);
    assert.deepEqual(
      got.map((e) => e.name.toString('latin1')),
      js.map((e) => e.name.toString('latin1')),
    );
    assert.deepEqual(
      got.map((e) => e.name.toString('latin1')),
      ['Z', 'a', 'a-hardlink', 'b', 'dangling', 'fifo', 'f\xffo', 'link-to-dir', 'sub', '\xc3\xa9'],
    );
    for (const e of got) {
      const want = lstatSync(cat(d, '/', e.name), { bigint: true });
      assert.ok(!(e.stat instanceof Error), e.name.toString());
      const st = e.stat as NumStat;
      assert.deepEqual({ ...st }, { ...NumStat.fromBig(want) }, e.name.toString());
      for (const k of KINDS) assert.equal(st[k](), want[k](), `${e.name.toString()} ${k}`);
      assert.equal(e.isDirectory(), want.isDirectory());
    }
    assert.equal(got.find((e) => e.name.equals(b('link-to-dir')))!.isDirectory(), false, 'a symlink to a directory is a symlink');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scanDir: errors of the directory itself are fs-style errors; a final symlink is not followed', { skip: !native && 'native addon not built' }, async () => {
  const dir = scratch();
  try {
    writeFileSync(path.join(dir, 'file'), '');
    mkdirSync(path.join(dir, 'real'));
    symlinkSync('real', path.join(dir, 'link'));
    await assert.rejects(scanDir(b(path.join(dir, 'missing'))), (err: NodeJS.ErrnoException) => err.code === 'ENOENT' && err.message === `ENOENT: no such file or directory, scandir '${path.join(dir, 'missing')}'`);
    await assert.rejects(scanDir(b(path.join(dir, 'file'))), { code: 'ENOTDIR' });
    await assert.rejects(scanDir(b(path.join(dir, 'link'))), (err: NodeJS.ErrnoException) => err.code === 'ELOOP' || err.code === 'ENOTDIR');
    assert.deepEqual(await scanDir(b(path.join(dir, 'real'))), [], 'an empty directory');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('scanDir unpack: an entry whose lstat failed (vanished after the listing) carries the error; a malformed result is refused', () => {
  const F = 14;
  const names = b('goneok');
  const out = Buffer.alloc(2 * F * 8 + 2 * 4 + names.length);
  const f = new Float64Array(out.buffer, out.byteOffset, 2 * F);
  f[F - 1] = 2; // ENOENT for 'gone'
  f[F + 2] = 0o100644; // 'ok': a regular file
  f[F + 9] = 12;
  f[F + 10] = 5;
  const ends = new Uint32Array(out.buffer, out.byteOffset + 2 * F * 8, 2);
  ends[0] = 4;
  ends[1] = 6;
  names.copy(out, 2 * F * 8 + 8);
  const [gone, ok] = unpack(b('/x'), 2, out);
  assert.ok(gone!.stat instanceof Error);
  assert.equal((gone!.stat as NodeJS.ErrnoException).code, 'ENOENT');
  assert.equal((gone!.stat as Error).message, "ENOENT: no such file or directory, lstat '/x/gone'");
  assert.equal(gone!.isDirectory(), false);
  assert.ok(ok!.stat instanceof NumStat);
  assert.equal((ok!.stat as NumStat).mtimeNs, '12000000005');
  assert.equal((ok!.stat as NumStat).isFile(), true);
  // counts, offsets and name ends are checked
  assert.throws(() => unpack(b('/x'), 3, out), /malformed/);
  assert.throws(() => unpack(b('/x'), -1, out), /malformed/);
  ends[1] = 99;
  assert.throws(() => unpack(b('/x'), 2, out), /malformed/);
  ends[1] = 4;
  assert.throws(() => unpack(b('/x'), 2, out), /malformed/, 'an empty name');
  assert.deepEqual(unpack(b('/x'), 0, Buffer.alloc(0)), []);
});

test('NumStat: times from seconds + nanoseconds are those of the BigInt lstat (exact ns string, ms as Number(ns) / 1e6)', () => {
  const F = 14;
  const f = new Float64Array(F);
  for (const [sec, nsec] of [[1796119460, 470821954], [1500000000, 987654321], [1, 5], [0, 7], [0, 0], [-1, 500000000], [-1001, 750000000], [-5, 0], [4102444800, 999999999], [1796119471, 1]]) {
    f[9] = sec!;
    f[10] = nsec!;
    f[11] = sec!;
    f[12] = nsec!;
    f[1] = 2 ** 53 + 2; // an inode beyond 2^53: no hard-link key
    const ns = BigInt(sec!) * 1_000_000_000n + BigInt(nsec!);
    const st = NumStat.fromFields(f, 0);
    assert.equal(nsString(sec!, nsec!), ns.toString());
    assert.equal(st.mtimeNs, ns.toString());
    assert.equal(st.mtimeMs, Number(ns) / 1e6, `${sec} ${nsec}`);
    assert.equal(st.ctimeMs, Number(ns) / 1e6);
    assert.equal(st.linkKey, undefined);
  }
});

test('backup walk: the native listing and the JavaScript one give the same snapshot (first and unchanged re-backup)', async () => {
  const dir = scratch();
  try {
    const src = makeTree(dir);
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      const subtreeOf = async (tree: string): Promise<string> => {
        let id = tree;
        for (const part of src.split('/').filter(Boolean)) id = (await repo.loadTree(id)).nodes.find((n) => n.name === part)!.subtree!;
        return id;
      };
      const runs: Array<{ tree: string; unmodified: number; errors: number; dirs: number }> = [];
      for (const off of [false, true, false, true]) {
        disableScanNative(off);
        // the first two runs read every file (no parent), the last two are unchanged re-backups
        const r = await backupPaths(repo, { paths: [src], parent: runs.length < 2 ? 'none' : 'auto' });
        const snap = await repo.findSnapshot(r.snapshotId);
        runs.push({ tree: await subtreeOf(snap.tree), unmodified: r.summary.filesUnmodified, errors: r.summary.errors, dirs: r.summary.dirs });
      }
      assert.equal(new Set(runs.map((r) => r.tree)).size, 1, JSON.stringify(runs));
      assert.deepEqual(
        runs.map((r) => r.unmodified),
        [1, 1, 7, 7], // a later hard link of a file saved in the same snapshot counts as unmodified; 7 files
      );
      assert.ok(runs.every((r) => r.errors === 0 && r.dirs === runs[0]!.dirs));
      const t = await repo.loadTree(runs[0]!.tree);
      assert.deepEqual(
        t.nodes.map((n) => `${n.name}:${n.type}`),
        ['Z:file', 'a:file', 'a-hardlink:file', 'b:file', 'dangling:symlink', 'fifo:fifo', 'f\\xffo:file', 'link-to-dir:symlink', 'sub:dir', '\u00e9:file'],
      );
      assert.equal(t.nodes.find((n) => n.name === 'b')!.mtimeNs, '1500000000987654321');
      assert.equal(t.nodes.find((n) => n.name === 'Z')!.mtimeNs, '-1000250000000');
    } finally {
      disableScanNative(false);
      await repo.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('unchanged re-backup: parent nodes and trees are reused only when nothing differs (content, excludes, deletions, foreign fields, --force)', async () => {
  for (const off of [false, true]) {
    disableScanNative(off);
    const dir = scratch();
    try {
      const src = makeTree(dir);
      writeFileSync(path.join(src, 'sub', 'other'), 'other');
      const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
      try {
        const treeAt = async (snapId: string, rel: string[] = []): Promise<{ id: string; nodes: TreeNode[] }> => {
          let id = (await repo.findSnapshot(snapId)).tree;
          for (const part of [...src.split('/').filter(Boolean), ...rel]) id = (await repo.loadTree(id)).nodes.find((n) => n.name === part)!.subtree!;
          return { id, nodes: (await repo.loadTree(id)).nodes };
        };
        const names = (t: { nodes: TreeNode[] }) => t.nodes.map((n) => n.name);
        const s1 = (await backupPaths(repo, { paths: [src] })).snapshotId;
        const cache = (repo as unknown as { cache: { size: number } }).cache;
        const cachedBefore = cache.size;
        const s2 = (await backupPaths(repo, { paths: [src] })).snapshotId;
        assert.ok(cache.size <= cachedBefore + src.split('/').filter(Boolean).length, 'the parent trees walked are not kept in the blob cache');
        assert.equal((await treeAt(s2)).id, (await treeAt(s1)).id, 'unchanged: the same tree');
        // new content in a subdirectory: that tree and its parent's change, and the new content is there
        writeFileSync(path.join(src, 'sub', 'inner'), 'changed!');
        const s3 = (await backupPaths(repo, { paths: [src] })).snapshotId;
        const sub3 = await treeAt(s3, ['sub']);
        assert.notEqual(sub3.id, (await treeAt(s2, ['sub'])).id);
        assert.notEqual((await treeAt(s3)).id, (await treeAt(s2)).id);
        assert.equal(sub3.nodes.find((n) => n.name === 'inner')!.size, 8);
        // an exclude pattern: nothing changed on disk, but the entry is gone from the tree
        const s4 = (await backupPaths(repo, { paths: [src], excludes: ['other'] })).snapshotId;
        assert.deepEqual(names(await treeAt(s4, ['sub'])), ['inner']);
        // and back: the tree of s3 again
        const s5 = (await backupPaths(repo, { paths: [src] })).snapshotId;
        assert.equal((await treeAt(s5, ['sub'])).id, sub3.id);
        // a parent node with a field this code does not write is not carried into the new snapshot
        const top = await treeAt(s5);
        // 'a' (2 links) and 'Z' (1 link) with a foreign field; 'b' pointing at content the repository does not hold
        const missing = '0'.repeat(64);
        const forged = top.nodes.map((n) => (n.name === 'a' || n.name === 'Z' ? { ...n, foreign: 1 } : n.name === 'b' ? { ...n, content: [missing] } : n)) as TreeNode[];
        let id = await repo.saveTree({ nodes: forged });
        const parts = src.split('/').filter(Boolean);
        for (let i = parts.length - 1; i >= 0; i--) {
          let up = (await repo.findSnapshot(s5)).tree;
          for (const part of parts.slice(0, i)) up = (await repo.loadTree(up)).nodes.find((n) => n.name === part)!.subtree!;
          const t = await repo.loadTree(up);
          id = await repo.saveTree({ nodes: t.nodes.map((n) => (n.name === parts[i] ? { ...n, subtree: id } : n)) });
        }
        await repo.flush();
        const snap5 = await repo.findSnapshot(s5);
        const forgedSnap = await repo.saveSnapshot({ time: new Date().toISOString(), tree: id, paths: snap5.paths, tags: [] });
        const s6 = (await backupPaths(repo, { paths: [src], parent: forgedSnap })).snapshotId;
        const t6 = await treeAt(s6);
        assert.ok(!('foreign' in t6.nodes.find((n) => n.name === 'a')!), 'the foreign field is not carried over');
        assert.ok(!('foreign' in t6.nodes.find((n) => n.name === 'Z')!), 'the foreign field is not carried over (one link)');
        assert.ok(repo.hasBlob(t6.nodes.find((n) => n.name === 'b')!.content![0]!), 'content the repository lacks is read again');
        assert.equal(t6.id, top.id, 'the tree is the one this code writes');
        // --force: every file read again, same tree
        const r7 = await backupPaths(repo, { paths: [src], force: true });
        assert.equal(r7.summary.filesUnmodified, 1, 'only the later hard link');
        assert.equal((await treeAt(r7.snapshotId)).id, top.id);
      } finally {
        await repo.close();
      }
    } finally {
      disableScanNative(false);
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('scanPaths (progress totals): the same counts with the native listing and without (excludes, nested directories)', async () => {
  const dir = scratch();
  try {
    const src = makeTree(dir);
    mkdirSync(path.join(src, 'sub', 'deeper'));
    writeFileSync(path.join(src, 'sub', 'deeper', 'f'), '12345');
    writeFileSync(path.join(src, 'sub', 'skip.tmp'), '1234567');
    const totals: string[] = [];
    for (const off of [false, true]) {
      disableScanNative(off);
      const p = new BackupProgress();
      await scanPaths([src], p, { matchExcluded: matcher(['*.tmp']), oneFileSystem: false, signal: new AbortController().signal });
      totals.push(`${p.scan} ${p.totalFiles} ${p.totalBytes}`);
    }
    disableScanNative(false);
    // Z a a-hardlink b f\xffo é (1+1+1+1+3+2 bytes), sub/inner (5), sub/deeper/f (5); not skip.tmp, not the fifo
    assert.deepEqual(totals, ['done 8 19', 'done 8 19']);
  } finally {
    disableScanNative(false);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backup walk: extended attributes of directories are saved with the native "none" check and without it', async (t) => {
  const xattr = await import('fs-xattr');
  const dir = scratch();
  try {
    const src = makeTree(dir);
    mkdirSync(path.join(src, 'plain'));
    try {
      await xattr.setAttribute(path.join(src, 'sub'), 'user.note', 'dir');
    } catch (err) {
      t.skip(`extended attributes not supported here: ${(err as Error).message}`);
      return;
    }
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      for (const off of [false, true]) {
        disableScanNative(off);
        const r = await backupPaths(repo, { paths: [src], parent: 'none' });
        let id = (await repo.findSnapshot(r.snapshotId)).tree;
        for (const part of src.split('/').filter(Boolean)) id = (await repo.loadTree(id)).nodes.find((n) => n.name === part)!.subtree!;
        const nodes = (await repo.loadTree(id)).nodes;
        const xa = (name: string) => nodes.find((n) => n.name === name)!.xattrs?.map((x) => `${x.name}=${Buffer.from(x.value, 'base64')}`);
        assert.deepEqual(xa('sub'), ['user.note=dir'], `native off: ${off}`);
        assert.equal(xa('plain'), undefined);
      }
    } finally {
      disableScanNative(false);
      await repo.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
