import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { HardlinkGroups, readSmallFile } from './archiver.js';
import { countFullCollections } from '../../test/helpers/gc-count.js';

test('readSmallFile: exact size owns its buffer; a file that grew or shrank since lstat is read as it is now', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-small-'));
  try {
    const f = path.join(dir, 'f');
    const data = randomBytes(5000);
    await fsp.writeFile(f, data);
    const read = async (size: number) => {
      const fh = await fsp.open(f);
      try {
        return await readSmallFile(fh, size);
      } finally {
        await fh.close();
      }
    };
    const same = await read(5000);
    assert.deepEqual(same, data);
    assert.equal(same.buffer.byteLength, 5000); // transferable without a copy
    assert.deepEqual(await read(3000), data); // grew after the size was taken: all of it
    assert.deepEqual(await read(9000), data); // shrank: what is there
    await fsp.writeFile(f, '');
    assert.equal((await read(0)).length, 0);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('HardlinkGroups: a group is dropped at its last link (memory per open group, not per hard-linked file ever seen)', () => {
  const g = new HardlinkGroups<string>();
  // 1000 groups of 3 links each, walked one group after another (as in a directory of linked files)
  for (let i = 0; i < 1000; i++) {
    const key = `1:${i}`;
    assert.equal(g.later(key), undefined, 'first link: nothing known yet');
    g.first(key, 3, `node${i}`);
    assert.equal(g.later(key), `node${i}`);
    assert.equal(g.size, 1, 'one link still to come');
    assert.equal(g.later(key), `node${i}`);
    assert.equal(g.size, 0, 'all three links seen: forgotten');
  }
  // links outside the backup: the group stays (a later link must still find it)
  g.first('1:x', 2, 'x');
  g.first('1:y', 5, 'y');
  assert.equal(g.size, 2);
  assert.equal(g.later('1:y'), 'y');
  assert.equal(g.size, 2);
  // a link beyond the count (a link made during the backup): not found, saved again as a new group
  assert.equal(g.later('1:x'), 'x');
  assert.equal(g.later('1:x'), undefined);
  g.first('1:nl1', 1, 'single'); // nlink 1 (the other link went away): nothing to remember
  assert.equal(g.size, 1);
});

test('backup walk: a re-backup runs a full collection whenever the heap grew by LIFEBOAT_BACKUP_HEAP_GC_MB (forced GCs counted by perf_hooks); not a first backup; 0 turns it off', async () => {
  const { mkdirSync, writeFileSync } = await import('node:fs');
  const { backupPaths } = await import('./archiver.js');
  const { LocalStorage } = await import('../storage/local.js');
  const { Repository } = await import('../repo/repository.js');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-walk-gc-'));
  const saved = process.env.LIFEBOAT_BACKUP_HEAP_GC_MB;
  try {
    // 400 directories of 20 small files: the walk's per-directory state adds up to several MB of heap
    const src = path.join(dir, 'src');
    for (let d = 0; d < 400; d++) {
      const sub = path.join(src, `d${d}`);
      mkdirSync(sub, { recursive: true });
      for (let f = 0; f < 20; f++) writeFileSync(path.join(sub, `file-with-a-longer-name-${f}.txt`), `${d}/${f}\n`);
    }
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      /** Forced (gc()) major collections on this thread during a backup with `mb` (parent 'auto': an unchanged re-backup). */
      const forced = async (mb: string, parent: 'auto' | 'none' = 'auto'): Promise<number> => {
        process.env.LIFEBOAT_BACKUP_HEAP_GC_MB = mb;
        const count = countFullCollections(true);
        try {
          const r = await backupPaths(repo, { paths: [src], parent });
          assert.equal(r.summary.filesUnmodified, parent === 'auto' ? 8000 : 0);
        } finally {
          await count.stop();
        }
        return count.stop();
      };
      assert.equal(await forced('0.25', 'none'), 0, 'a first backup (no parent): none');
      const withCap = await forced('0.25');
      assert.ok(withCap >= 2, `a 0.25 MB cap: full collections during the walk (${withCap})`);
      assert.equal(await forced('0'), 0, 'LIFEBOAT_BACKUP_HEAP_GC_MB=0: none');
    } finally {
      await repo.close();
    }
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_BACKUP_HEAP_GC_MB;
    else process.env.LIFEBOAT_BACKUP_HEAP_GC_MB = saved;
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("a large file's chunk ids are computed on the thread pool (Repository.blobIdAsync) and are the same ids as on this thread", async (t) => {
  const { backupPaths } = await import('./archiver.js');
  const { LocalStorage } = await import('../storage/local.js');
  const { Repository } = await import('../repo/repository.js');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-async-ids-'));
  try {
    const src = path.join(dir, 'src');
    await fsp.mkdir(src);
    const data = randomBytes(6 * 1024 * 1024); // several chunks at the default chunker's sizes
    await fsp.writeFile(path.join(src, 'big.bin'), data);
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      if (repo.blobIdAsync(Buffer.alloc(1)) === undefined) {
        t.skip('native/hash.c not built: the ids are computed on this thread');
        return;
      }
      let calls = 0;
      const orig = repo.blobIdAsync.bind(repo);
      repo.blobIdAsync = (b: Uint8Array) => {
        calls++;
        return orig(b);
      };
      await backupPaths(repo, { paths: [src], parent: 'none' });
      // the chunks the backup cut, cut again here: each is in the index under the id of its bytes
      const ch = repo.newChunker();
      const chunks = ch.push(data);
      const cut = chunks.length;
      const last = ch.finish();
      if (last) chunks.push(last);
      assert.ok(chunks.length >= 3, `cut into several chunks (${chunks.length})`);
      for (const [i, c] of chunks.entries()) assert.ok(repo.indexEntry(repo.blobId(c)), `chunk ${i} stored under the id of its bytes`);
      // every chunk cut while reading had its id computed on the pool (the rest, cut at the end, is stored right away)
      assert.equal(calls, cut, 'pool jobs for the chunks');
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
