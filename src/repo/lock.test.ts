import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { readLocks, removeLocks } from './lock.js';
import { Repository } from './repository.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

test('readLocks: a lock refreshed between the listing and the read (its listed object gone, the next one not listed) is still seen', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-lock-race-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      const lock = await repo.lock(true, 'prune');
      let raced = false;
      // the holder's refresh runs right after the reader listed the lock objects
      const storage = new Proxy(repo.storage, {
        get(target, prop, recv) {
          if (prop === 'list') {
            return async (...args: Parameters<Storage['list']>) => {
              const listed = await target.list(...args);
              if (args[0] === 'lock' && !raced) {
                raced = true;
                await lock.refresh();
              }
              return listed;
            };
          }
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const seen = await readLocks(storage, repo.key.encKey);
      assert.ok(raced, 'the refresh ran between listing and reading');
      assert.equal(seen.length, 1, 'the live exclusive lock is seen');
      assert.equal(seen[0]!.info.exclusive, true);
      assert.equal(seen[0]!.info.seq, 1);
      await lock.release();
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readLocks: a lock refreshed after every one of many listings (more than a handful: a slow storage, a loaded machine) is still seen', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-lock-race-many-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      const lock = await repo.lock(true, 'prune');
      const RACES = 7;
      let listings = 0;
      // each of the first RACES listings is followed by the holder's refresh before the reader reads what it listed
      const storage = new Proxy(repo.storage, {
        get(target, prop, recv) {
          if (prop === 'list') {
            return async (...args: Parameters<Storage['list']>) => {
              const listed = await target.list(...args);
              if (args[0] === 'lock' && ++listings <= RACES) await lock.refresh();
              return listed;
            };
          }
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const seen = await readLocks(storage, repo.key.encKey);
      assert.ok(listings > RACES, `listed ${listings} times`);
      assert.equal(seen.length, 1, 'the live exclusive lock is seen');
      assert.equal(seen[0]!.info.exclusive, true);
      assert.equal(seen[0]!.info.seq, RACES);
      await lock.release();
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readLocks: lock objects that vanish after every listing, without end, fail clearly instead of answering "no lock"', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-lock-race-endless-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      const lock = await repo.lock(true, 'prune');
      const storage = new Proxy(repo.storage, {
        get(target, prop, recv) {
          if (prop === 'list') {
            return async (...args: Parameters<Storage['list']>) => {
              const listed = await target.list(...args);
              if (args[0] === 'lock') await lock.refresh();
              return listed;
            };
          }
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      await assert.rejects(readLocks(storage, repo.key.encKey), /lock objects of .* kept changing while they were read/);
      await lock.release();
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('removeLocks (unlock --remove-all): a holder whose refresh runs between the listing and the removal still loses its lock and notices', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-lock-removeall-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      const lock = await repo.lock(true, 'prune');
      let raced = false;
      // the holder's whole refresh (write seq + 1, remove seq) runs just before our first removal
      const storage = new Proxy(repo.storage, {
        get(target, prop, recv) {
          if (prop === 'remove') {
            return async (...args: Parameters<Storage['remove']>) => {
              if (args[0] === 'lock' && !raced) {
                raced = true;
                await lock.refresh();
                assert.equal(lock.lost, false, 'the refresh itself saw nothing wrong');
              }
              return target.remove(...args);
            };
          }
          const v = Reflect.get(target, prop, recv) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
      const removed = await removeLocks(storage, repo.key.encKey, true);
      assert.ok(raced, 'the refresh ran between listing and removal');
      assert.equal(removed.length, 1);
      assert.deepEqual(await readLocks(repo.storage, repo.key.encKey), [], 'no object of the lock is left');
      await lock.refresh();
      assert.equal(lock.lost, true, 'the holder notices at its next refresh');
      await lock.release();
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
