import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { backupPaths } from '../src/engine/archiver.js';
import { Repository } from '../src/repo/repository.js';
import { LocalStorage } from '../src/storage/local.js';
import { backupStream } from '../src/sources/stream.js';
import { tmpDir } from './helpers/tmp.js';

/**
 * Two writers of one repository (two agents of a fleet running consecutive
 * slots of one job): the parent of a stream backup may be a snapshot another
 * writer made after this one opened the repository. Its blobs are then in
 * index files this writer has not read; the backup reads the index again.
 */
test('a stream backup whose parent was written by another writer after it opened the repository', async () => {
  const t = tmpDir();
  try {
    const data = randomBytes(3 << 20);
    const init = await Repository.init(new LocalStorage(t.dir), 'pw', { packSize: 1 << 20 });
    await init.close();
    const a = await Repository.open(new LocalStorage(t.dir), 'pw'); // opened first: has not seen b's snapshot
    const b = await Repository.open(new LocalStorage(t.dir), 'pw');
    try {
      const first = await backupStream(b, Readable.from([data]), { filename: 'dump.sql', tags: ['b'] });
      await b.close();
      const second = await backupStream(a, Readable.from([Buffer.concat([data, Buffer.from('more')])]), { filename: 'dump.sql', tags: ['a'] });
      assert.equal(second.parent, first.snapshotId);
      // the unchanged data was deduplicated against the parent, not stored again
      assert.ok(second.summary.dataAdded < 1 << 20, `added ${second.summary.dataAdded} bytes`);
    } finally {
      await a.close();
    }
  } finally {
    t.cleanup();
  }
});

test('a files backup whose parent was written by another writer after it opened the repository', async () => {
  const t = tmpDir();
  try {
    const src = path.join(t.dir, 'src');
    await fsp.mkdir(path.join(src, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(src, 'sub', 'a.bin'), randomBytes(1 << 20));
    const repoDir = path.join(t.dir, 'repo');
    const init = await Repository.init(new LocalStorage(repoDir), 'pw', { packSize: 1 << 20 });
    await init.close();
    const a = await Repository.open(new LocalStorage(repoDir), 'pw');
    const b = await Repository.open(new LocalStorage(repoDir), 'pw');
    try {
      const first = await backupPaths(b, { paths: [src] });
      await b.close();
      const second = await backupPaths(a, { paths: [src] });
      assert.equal(second.parent, first.snapshotId);
    } finally {
      await a.close();
    }
  } finally {
    t.cleanup();
  }
});
