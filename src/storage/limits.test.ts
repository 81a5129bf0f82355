import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LimitedStorage, TokenBucket } from './limits.js';
import { LocalStorage } from './local.js';
import { AppendOnlyError } from './retry.js';
import type { FileType } from './types.js';

const id = (n: number) => 'a1'.repeat(31) + n.toString(16).padStart(2, '0');

describe('TokenBucket', () => {
  it('pays for every byte beyond the one-second burst at the configured rate (virtual clock)', async () => {
    let now = 0;
    const slept: number[] = [];
    const b = new TokenBucket(
      1000,
      () => now,
      async (ms) => {
        slept.push(ms);
        now += ms;
      },
    );
    await b.take(1000); // the burst
    assert.deepEqual(slept, []);
    await b.take(500);
    await b.take(2000);
    assert.equal(Math.round(slept.reduce((a, x) => a + x, 0)), 2500);
    // idle time refills, at most one second's worth
    now += 10_000;
    slept.length = 0;
    await b.take(1000);
    assert.deepEqual(slept, []);
    await b.take(1);
    assert.equal(slept.length, 1);
  });

  it('queues concurrent callers in order so the long-run rate holds', async () => {
    let now = 0;
    const b = new TokenBucket(100, () => now, async (ms) => {
      now += ms;
    });
    await Promise.all(Array.from({ length: 10 }, () => b.take(100)));
    assert.equal(Math.round(now), 9000); // 900 bytes beyond the 100-byte burst at 100 B/s
  });
});

describe('LimitedStorage', () => {
  it('counts bytes, caps concurrent uploads, refuses deletes and overwrites when append-only', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'lb-limits-'));
    try {
      let inFlight = 0;
      let peak = 0;
      class Counting extends LocalStorage {
        override async save(type: FileType, name: string, data: Uint8Array): Promise<void> {
          inFlight++;
          peak = Math.max(peak, inFlight);
          try {
            await new Promise((r) => setTimeout(r, 20));
            await super.save(type, name, data);
          } finally {
            inFlight--;
          }
        }
      }
      const st = new LimitedStorage(new Counting(dir), { uploadConcurrency: 2 });
      await st.create();
      await Promise.all(Array.from({ length: 8 }, (_, i) => st.save('data', id(i), Buffer.alloc(1000 + i))));
      assert.equal(peak, 2);
      await st.load('data', id(1));
      await st.load('data', id(2), { offset: 10, length: 100 });
      assert.deepEqual(st.transferred(), { bytesUploaded: 8 * 1000 + 28, bytesDownloaded: 1001 + 100, uploads: 8, downloads: 2 });

      const ao = new LimitedStorage(new LocalStorage(dir), { appendOnly: true });
      assert.equal(ao.appendOnly, true);
      await assert.rejects(ao.remove('data', id(1)), AppendOnlyError);
      await assert.rejects(ao.save('data', id(1), Buffer.alloc(3)), AppendOnlyError);
      await ao.save('data', id(99), Buffer.alloc(3)); // new objects are fine
      await ao.save('lock', id(1), Buffer.alloc(3));
      await ao.save('lock', id(1), Buffer.alloc(4)); // locks may be rewritten ...
      await ao.remove('lock', id(1)); // ... and removed
      assert.equal((await ao.load('data', id(1))).length, 1001);

      // saveFile (packs built as files): forwarded with the same append-only check and counters
      assert.equal(typeof ao.saveFile, 'function');
      const tmp = await ao.tempDir!();
      const file = path.join(tmp, '.tmp-pack-test');
      writeFileSync(file, Buffer.alloc(5000, 7));
      await assert.rejects(ao.saveFile!('data', id(1), file, 5000), AppendOnlyError);
      await assert.rejects(ao.saveFile!('data', id(98), file, 4999), /holds 5000 bytes, expected 4999/);
      const before = ao.transferred();
      await ao.saveFile!('data', id(98), file, 5000);
      assert.deepEqual(await ao.load('data', id(98)), Buffer.alloc(5000, 7));
      assert.equal(ao.transferred().bytesUploaded - before.bytesUploaded, 5000);
      assert.equal(ao.transferred().uploads - before.uploads, 1);
      assert.deepEqual(readdirSync(tmp).filter((n) => n.startsWith('.tmp-')), [], 'the file was moved into place');
      assert.ok(!(await ao.list('data')).some((o) => o.name.startsWith('.tmp-')));
      // a storage without saveFile is not given one
      assert.equal(new LimitedStorage({ ...new LocalStorage(dir), saveFile: undefined, tempDir: undefined } as never).saveFile, undefined);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
