import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tmpDir } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';

test('a long backup publishes index files as it goes (bounded pending entries), and every blob is indexed after reopening', async () => {
  const { dir, cleanup } = tmpDir();
  const repo = await Repository.init(new LocalStorage(dir), 'pw', { packSize: 1024 * 1024 });
  repo.indexFlushBlobs = 10;
  const ids: string[] = [];
  // 64 blobs of 64 KiB of random data: 4 packs of 1 MiB, 16 blobs each
  for (let i = 0; i < 64; i++) ids.push((await repo.saveBlob('data', randomBytes(64 * 1024))).id);
  // Packs finish in the background: wait (bounded) for index files to appear before any flush.
  let before = 0;
  for (let waited = 0; waited < 600 && before < 2; waited++) {
    await new Promise((r) => setTimeout(r, 50));
    before = (await repo.storage.list('index')).length;
  }
  assert.ok(before >= 2, `index files published before flush: ${before}`);
  await repo.flush();
  await repo.close();
  const again = await Repository.open(new LocalStorage(dir), 'pw');
  for (const id of ids) assert.ok(again.index.has(id), id);
  assert.equal(again.index.size, 64);
  for (const id of ids.slice(0, 5)) assert.equal((await again.loadBlob(id)).length, 64 * 1024);
  await again.close();
  cleanup();
});
