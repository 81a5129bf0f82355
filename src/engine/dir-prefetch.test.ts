import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, renameSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DirPrefetch, listDir } from './dir-prefetch.js';
import { backupPaths } from './archiver.js';
import { LocalStorage } from '../storage/local.js';
import { Repository } from '../repo/repository.js';
import type { Tree } from '../repo/tree.js';

const scratch = () => mkdtempSync(path.join(os.tmpdir(), 'lb-dir-prefetch-'));
const b = (s: string) => Buffer.from(s);
const names = (l: Array<{ name: Buffer }>) => l.map((e) => e.name.toString('latin1'));

test('DirPrefetch: a listing read ahead is the sorted raw listing, taken once; parent trees only for the same id', async () => {
  const dir = scratch();
  try {
    const d = path.join(dir, 'd');
    mkdirSync(d);
    // a non-UTF-8 name and names whose byte order differs from their string order
    for (const n of [b('b'), b('a'), Buffer.from([0x66, 0xff, 0x6f]), b('\u00e9'), b('Z')]) writeFileSync(Buffer.concat([b(d + '/'), n]), 'x');
    const loads: string[] = [];
    const tree: Tree = { nodes: [] };
    const pf = new DirPrefetch(async (id) => (loads.push(id), tree));
    pf.ahead(b(d), 'tree-1');
    pf.ahead(b(d), 'tree-1'); // already pending: not requested twice
    assert.equal(pf.size, 1);
    assert.deepEqual(loads, ['tree-1']);
    assert.equal(await pf.parentTree(b(d), 'tree-1'), tree);
    assert.equal(pf.parentTree(b(d), 'tree-2'), undefined, 'another id is not answered from the read-ahead');
    const got = await pf.listing(b(d));
    assert.deepEqual(names(got), names(await listDir(b(d))));
    assert.deepEqual(names(got), ['Z', 'a', 'b', 'f\xffo', '\xc3\xa9']);
    assert.equal(pf.size, 0, 'taken');
    writeFileSync(path.join(d, 'later'), 'y');
    assert.ok(names(await pf.listing(b(d))).includes('later'), 'not read ahead any more: listed now');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DirPrefetch: bounded by directories and by entries; errors are readdir errors; dropped entries are forgotten', async () => {
  const dir = scratch();
  try {
    for (const n of ['a', 'b', 'c']) mkdirSync(path.join(dir, n));
    for (let i = 0; i < 5; i++) writeFileSync(path.join(dir, 'c', `f${i}`), '');
    const pf = new DirPrefetch(async () => undefined, 2, 3);
    pf.ahead(b(path.join(dir, 'a')), undefined);
    pf.ahead(b(path.join(dir, 'b')), undefined);
    pf.ahead(b(path.join(dir, 'c')), undefined);
    assert.equal(pf.size, 2, 'at most 2 directories ahead');
    pf.drop(b(path.join(dir, 'b')));
    assert.equal(pf.size, 1);
    pf.ahead(b(path.join(dir, 'c')), undefined);
    // 5 entries > maxEntries 3: not kept, but the walk still gets the whole listing
    assert.equal((await pf.listing(b(path.join(dir, 'c')))).length, 5);
    pf.ahead(b(path.join(dir, 'missing')), undefined);
    await assert.rejects(pf.listing(b(path.join(dir, 'missing'))), { code: 'ENOENT' });
    // a directory that became a symlink after it was read ahead: listing() answers the read-ahead
    // (the archiver only asks after its own lstat found a directory, and drops it otherwise)
    pf.ahead(b(path.join(dir, 'a')), undefined);
    pf.drop(b(path.join(dir, 'a')));
    assert.equal(pf.size, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('backup with directories read ahead: every directory saved with its own entries and parent tree', async () => {
  const dir = scratch();
  try {
    const src = path.join(dir, 'src');
    // wide and deep: 30 directories of 3 levels, each with a file named after it
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 4; j++) {
        const d = path.join(src, `d${i}`, `e${j}`);
        mkdirSync(d, { recursive: true });
        writeFileSync(path.join(d, `f-${i}-${j}`), `${i}/${j}`);
      }
      writeFileSync(path.join(src, `d${i}`, `g-${i}`), `${i}`);
    }
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      const first = await backupPaths(repo, { paths: [src] });
      assert.equal(first.summary.filesNew, 30);
      // the second backup uses the read-ahead parent trees: every file found unchanged in its own
      // directory's parent tree (not the root tree id: /tmp above the source changes meanwhile)
      const second = await backupPaths(repo, { paths: [src] });
      assert.equal(second.summary.filesUnmodified, 30);
      assert.equal(second.summary.filesNew + second.summary.filesChanged, 0);
      // d2 became a symlink and d3/e1 a file after the first backups: saved as what they are now
      renameSync(path.join(src, 'd2'), path.join(dir, 'moved'));
      symlinkSync(path.join(dir, 'moved'), path.join(src, 'd2'));
      rmSync(path.join(src, 'd3', 'e1'), { recursive: true });
      writeFileSync(path.join(src, 'd3', 'e1'), 'now a file');
      const third = await backupPaths(repo, { paths: [src] });
      const walk = async (id: string, at: string, out: Map<string, string>) => {
        for (const n of (await repo.loadTree(id)).nodes) {
          const p = `${at}/${n.name}`;
          out.set(p, n.type);
          if (n.type === 'dir') await walk(n.subtree!, p, out);
        }
        return out;
      };
      const seen = await walk((await repo.loadSnapshot(third.snapshotId)).tree, '', new Map());
      const base = src.split('/').filter(Boolean).map((x) => `/${x}`).join('');
      assert.equal(seen.get(`${base}/d2`), 'symlink');
      assert.equal(seen.get(`${base}/d3/e1`), 'file');
      assert.equal(seen.get(`${base}/d4/e2/f-4-2`), 'file');
      assert.equal(seen.get(`${base}/d5/g-5`), 'file');
      assert.ok(![...seen.keys()].some((k) => k.startsWith(`${base}/d2/`)), 'nothing below the symlink');
      assert.equal([...seen.values()].filter((t) => t === 'file').length, 30 - 5 - 1 + 1, 'files: 30 minus those of d2 (5) minus d3/e1/f-3-1, plus the file d3/e1');
    } finally {
      await repo.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
