import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, closeSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import { Repository } from '../repo/repository.js';
import { backupPaths } from './archiver.js';
import { restoreSnapshot } from './restorer.js';
import { DirHandle, filesNative, finishFiles, mkdirOpen, nativeFinished, setDirsMeta } from './file-writer.js';

/**
 * The native "finish small files" batch (native/files.c through
 * file-writer.ts finishFiles) and its fallback (TempFile, the JavaScript
 * path: LIFEBOAT_RESTORE_NATIVE=0) restore the same tree: bytes, modes,
 * nanosecond mtimes, raw-byte names, links; and a file whose batch step fails
 * leaves nothing behind, neither the temporary name nor the final one.
 */

const native = filesNative() !== undefined;

/** Run with directory handles on (the native path needs them), whatever the environment says. */
async function withHandles(fn: () => Promise<void>): Promise<void> {
  const saved = process.env.LIFEBOAT_RESTORE_DIR_HANDLES;
  delete process.env.LIFEBOAT_RESTORE_DIR_HANDLES;
  try {
    await fn();
  } finally {
    if (saved !== undefined) process.env.LIFEBOAT_RESTORE_DIR_HANDLES = saved;
  }
}

/** Every entry below root: type, mode, mtime (ns), size, link target, link count, content hash. */
function snapshotTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: Buffer, rel: string) => {
    for (const name of readdirSync(dir, { encoding: 'buffer' })) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const r = `${rel}/${name.toString('hex')}`;
      const st = lstatSync(p, { bigint: true });
      let extra = '';
      if (st.isSymbolicLink()) extra = readlinkSync(p, { encoding: 'buffer' }).toString('hex');
      else if (st.isFile()) extra = readFileSync(p).toString('base64');
      // a directory's mtime is compared too (set last); its size is the file system's
      out.set(r, [st.mode.toString(8), st.isDirectory() ? '' : st.size, st.isSymbolicLink() ? '' : st.mtimeNs, st.isDirectory() ? '' : st.nlink, extra].join(' '));
      if (st.isDirectory()) walk(p, r);
    }
  };
  walk(Buffer.from(root), '');
  return out;
}

function makeData(dir: string): void {
  mkdirSync(path.join(dir, 'sub', 'deeper'), { recursive: true });
  const files: Array<[string, Buffer, number]> = [
    ['plain.txt', Buffer.from('hello\n'), 0o644],
    ['exec.sh', Buffer.from('#!/bin/sh\necho hi\n'), 0o755],
    ['private', randomBytes(5000), 0o600],
    ['setuid', randomBytes(100), 0o4755],
    ['world-writable', randomBytes(10), 0o666],
    ['read-only', randomBytes(300), 0o444],
    ['sub/one', randomBytes(40_000), 0o640],
    ['sub/deeper/two', randomBytes(1), 0o750],
    ['empty', Buffer.alloc(0), 0o644],
  ];
  for (const [name, data, mode] of files) {
    writeFileSync(path.join(dir, name), data);
    chmodSync(path.join(dir, name), mode);
  }
  // a name that is not UTF-8
  const raw = Buffer.concat([Buffer.from(dir), Buffer.from('/sub/raw-'), Buffer.from([0xff, 0xfe, 0x41])]);
  writeFileSync(raw, 'raw name');
  // a hard link, a symbolic link, a sparse file (holes: the TempFile path)
  linkSync(path.join(dir, 'plain.txt'), path.join(dir, 'sub', 'plain-link'));
  symlinkSync('../plain.txt', path.join(dir, 'sub', 'sym'));
  const fd = openSync(path.join(dir, 'sparse'), 'w');
  writeSync(fd, Buffer.from('end'), 0, 3, 1024 * 1024);
  closeSync(fd);
  // many small files in one directory (several per native batch)
  for (let i = 0; i < 60; i++) writeFileSync(path.join(dir, 'sub', `f${i}`), randomBytes(i * 37));
  // directories with their own modes and times (set last: setDirsMeta natively)
  mkdirSync(path.join(dir, 'sticky'));
  chmodSync(path.join(dir, 'sticky'), 0o1777);
  chmodSync(path.join(dir, 'sub', 'deeper'), 0o750);
  utimesSync(path.join(dir, 'sub', 'deeper'), 1_500_000_000.5, 1_500_000_000.5);
  // times with nanoseconds (utimes takes seconds as a double: set a fraction)
  for (const name of ['plain.txt', 'exec.sh', 'private', 'sub/one']) utimesSync(path.join(dir, name), 1_600_000_000.123456, 1_600_000_000.123456);
}

test('restore: the native batch and the TempFile fallback restore identical trees, with no temporary file left', { skip: !native && 'native/files.node not built' }, () => withHandles(async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lb-restore-native-'));
  const saved = process.env.LIFEBOAT_RESTORE_NATIVE;
  try {
    const data = path.join(tmp, 'data');
    mkdirSync(data);
    makeData(data);
    const repo = await Repository.init(new LocalStorage(path.join(tmp, 'repo')), 'pw');
    try {
      const r = await backupPaths(repo, { paths: [data] });
      const snap = await repo.loadSnapshot(r.snapshotId);
      const outs: Record<string, string> = {};
      for (const mode of ['native', 'js']) {
        const out = path.join(tmp, `out-${mode}`);
        if (mode === 'js') process.env.LIFEBOAT_RESTORE_NATIVE = '0';
        else delete process.env.LIFEBOAT_RESTORE_NATIVE;
        const before = nativeFinished.files;
        const sum = await restoreSnapshot(repo, snap, { target: out, subpath: data });
        assert.deepEqual(sum.errors, []);
        if (mode === 'native') assert.ok(nativeFinished.files - before >= 60, 'the small files went through the native batch');
        else assert.equal(nativeFinished.files, before, 'LIFEBOAT_RESTORE_NATIVE=0: the TempFile path only');
        outs[mode] = out;
      }
      const want = snapshotTree(data);
      const got = snapshotTree(outs.native!);
      assert.deepEqual(got, snapshotTree(outs.js!), 'both paths restore the same tree');
      assert.deepEqual(got, want, 'and it is the source tree (bytes, modes, ns mtimes, raw names, links)');
      for (const o of Object.values(outs)) assert.ok(![...snapshotTree(o).keys()].some((k) => Buffer.from(k.split('/').pop()!, 'hex').toString().startsWith('.lifeboat-')), 'no temporary file left');
    } finally {
      await repo.close();
    }
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_RESTORE_NATIVE;
    else process.env.LIFEBOAT_RESTORE_NATIVE = saved;
    rmSync(tmp, { recursive: true, force: true });
  }
}));

test('finishFiles: a file whose step fails leaves neither a temporary nor a final name; the others of the batch are published', { skip: !native && 'native/files.node not built' }, () => withHandles(async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lb-finish-files-'));
  try {
    const real = Buffer.from(tmp);
    const h = (await DirHandle.openRoot(real))!;
    assert.ok(h);
    try {
      // the final name of "blocked" is a non-empty directory: the rename fails after the file was written
      mkdirSync(path.join(tmp, 'blocked'));
      writeFileSync(path.join(tmp, 'blocked', 'keep'), 'x');
      const meta = { dirfd: h.fd, mode: 0o640, uid: 0, gid: 0, chown: false, mtimeNs: '1600000000123456789' };
      const errs = await finishFiles(
        [
          { ...meta, name: Buffer.from('ok-1') },
          { ...meta, name: Buffer.from('blocked') },
          { ...meta, name: Buffer.from('../escape') },
          { ...meta, name: Buffer.from('ok-2'), mtimeNs: '-1500000000' },
        ],
        [Buffer.from('one'), randomBytes(10_000), Buffer.from('no'), Buffer.alloc(0)],
        (i) => `#${i}`,
      );
      assert.equal(errs[0], undefined);
      assert.ok(errs[1] && /rename '#1'/.test(errs[1].message), String(errs[1]?.message));
      assert.equal(errs[2]?.syscall, 'name');
      assert.equal(errs[3], undefined);
      assert.deepEqual(readdirSync(tmp).sort(), ['blocked', 'ok-1', 'ok-2'], 'no temporary name is left, nothing written outside');
      assert.deepEqual(readdirSync(path.join(tmp, 'blocked')), ['keep']);
      assert.equal(readFileSync(path.join(tmp, 'ok-1'), 'utf8'), 'one');
      const st = lstatSync(path.join(tmp, 'ok-1'), { bigint: true });
      assert.equal(Number(st.mode & 0o7777n), 0o640);
      assert.equal(st.mtimeNs, 1600000000123456789n);
      assert.equal(lstatSync(path.join(tmp, 'ok-2'), { bigint: true }).mtimeNs, -1500000000n, 'a time before the epoch');

      // directories: made and opened in one call; metadata set below the root, never through a link
      const d = await mkdirOpen(h, Buffer.from('made'));
      assert.ok(d !== 'exists');
      d.unref();
      assert.equal(await mkdirOpen(h, Buffer.from('made')), 'exists');
      mkdirSync(path.join(tmp, 'made', 'inner'));
      symlinkSync(path.join(tmp, 'made'), path.join(tmp, 'link'));
      const dm = { mode: 0o751, uid: 0, gid: 0, chown: false, mtimeNs: '1400000000000000001' };
      const derrs = await setDirsMeta(
        h,
        [
          { ...dm, rel: Buffer.from('made/inner') },
          { ...dm, rel: Buffer.from('link/inner') },
          { ...dm, rel: Buffer.from('link') },
          { ...dm, rel: Buffer.from('made/../made') },
          { ...dm, rel: Buffer.from('made') },
        ],
        (i) => `#${i}`,
      );
      assert.equal(derrs[0], undefined);
      assert.ok(derrs[1] && derrs[2], 'a path through a symbolic link is refused');
      assert.equal(derrs[3]?.code, 'EINVAL', '".." is refused');
      assert.equal(derrs[4], undefined);
      for (const p of ['made', 'made/inner']) {
        const st = lstatSync(path.join(tmp, p), { bigint: true });
        assert.equal(Number(st.mode & 0o7777n), 0o751);
        assert.equal(st.mtimeNs, 1400000000000000001n);
      }
    } finally {
      h.unref();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}));

test('restore: into a directory with a default ACL, the native batch still gives each file its mode (the umask guess is checked with fstat)', { skip: !native && 'native/files.node not built' }, () => withHandles(async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lb-restore-acl-'));
  try {
    const data = path.join(tmp, 'data');
    mkdirSync(data);
    for (const [name, mode] of [['a', 0o644], ['b', 0o755], ['c', 0o640]] as const) {
      writeFileSync(path.join(data, name), name);
      chmodSync(path.join(data, name), mode);
    }
    // default ACL u::rwx g::--- o::---: files created below get no group/other bits, whatever the umask says
    const out = path.join(tmp, 'out');
    mkdirSync(out);
    const acl = Buffer.alloc(4 + 3 * 8);
    acl.writeUInt32LE(2, 0);
    [[0x01, 7], [0x04, 0], [0x20, 0]].forEach(([tag, perm], i) => {
      acl.writeUInt16LE(tag!, 4 + i * 8);
      acl.writeUInt16LE(perm!, 6 + i * 8);
      acl.writeUInt32LE(0xffffffff, 8 + i * 8);
    });
    const xattr = await import('fs-xattr');
    try {
      await xattr.setAttribute(out, 'system.posix_acl_default', acl);
    } catch {
      return; // a file system without POSIX ACLs: nothing to test here
    }
    const repo = await Repository.init(new LocalStorage(path.join(tmp, 'repo')), 'pw');
    try {
      const r = await backupPaths(repo, { paths: [data] });
      const before = nativeFinished.files;
      const sum = await restoreSnapshot(repo, await repo.loadSnapshot(r.snapshotId), { target: out, subpath: data });
      assert.deepEqual(sum.errors, []);
      assert.ok(nativeFinished.files - before >= 3, 'the files went through the native batch');
      for (const [name, mode] of [['a', 0o644], ['b', 0o755], ['c', 0o640]] as const) assert.equal((lstatSync(path.join(out, name)).mode & 0o7777).toString(8), mode.toString(8), name);
    } finally {
      await repo.close();
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}));
