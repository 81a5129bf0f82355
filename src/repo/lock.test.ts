import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { type Lock, readLocks, removeLocks } from './lock.js';
import { Repository } from './repository.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

/** A repository holding an exclusive "prune" lock, for `fn`; removed afterwards. */
async function withLockedRepo(prefix: string, fn: (repo: Repository, lock: Lock) => Promise<void>): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      const lock = await repo.lock(true, 'prune');
      await fn(repo, lock);
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
}

/**
 * `storage` whose lock listings (`list`) or lock removals (`remove`) run `race` around the real
 * call: after a listing (what it listed is returned), before a removal.
 */
function racing(storage: Storage, op: 'list' | 'remove', race: () => Promise<void>): Storage {
  return new Proxy(storage, {
    get(target, prop, recv) {
      if (prop === 'list' && op === 'list') {
        return async (...args: Parameters<Storage['list']>) => {
          const listed = await target.list(...args);
          if (args[0] === 'lock') await race();
          return listed;
        };
      }
      if (prop === 'remove' && op === 'remove') {
        return async (...args: Parameters<Storage['remove']>) => {
          if (args[0] === 'lock') await race();
          return target.remove(...args);
        };
      }
      const v = Reflect.get(target, prop, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test('readLocks: a lock refreshed between the listing and the read (its listed object gone, the next one not listed) is still seen', async () => {
  await withLockedRepo('lb-lock-race-', async (repo, lock) => {
    let raced = false;
    // the holder's refresh runs right after the reader listed the lock objects
    const storage = racing(repo.storage, 'list', async () => {
      if (raced) return;
      raced = true;
      await lock.refresh();
    });
    const seen = await readLocks(storage, repo.key.encKey);
    assert.ok(raced, 'the refresh ran between listing and reading');
    assert.equal(seen.length, 1, 'the live exclusive lock is seen');
    assert.equal(seen[0]!.info.exclusive, true);
    assert.equal(seen[0]!.info.seq, 1);
    await lock.release();
  });
});

test('readLocks: a lock refreshed after every one of many listings (more than a handful: a slow storage, a loaded machine) is still seen', async () => {
  await withLockedRepo('lb-lock-race-many-', async (repo, lock) => {
    const RACES = 7;
    let listings = 0;
    // each of the first RACES listings is followed by the holder's refresh before the reader reads what it listed
    const storage = racing(repo.storage, 'list', async () => {
      if (++listings <= RACES) await lock.refresh();
    });
    const seen = await readLocks(storage, repo.key.encKey);
    assert.ok(listings > RACES, `listed ${listings} times`);
    assert.equal(seen.length, 1, 'the live exclusive lock is seen');
    assert.equal(seen[0]!.info.exclusive, true);
    assert.equal(seen[0]!.info.seq, RACES);
    await lock.release();
  });
});

test('readLocks: lock objects that vanish after every listing, without end, fail clearly instead of answering "no lock"', async () => {
  await withLockedRepo('lb-lock-race-endless-', async (repo, lock) => {
    const storage = racing(repo.storage, 'list', () => lock.refresh());
    await assert.rejects(readLocks(storage, repo.key.encKey), /lock objects of .* kept changing while they were read/);
    await lock.release();
  });
});

test('removeLocks (unlock --remove-all): a holder whose refresh runs between the listing and the removal still loses its lock and notices', async () => {
  await withLockedRepo('lb-lock-removeall-', async (repo, lock) => {
    let raced = false;
    // the holder's whole refresh (write seq + 1, remove seq) runs just before our first removal
    const storage = racing(repo.storage, 'remove', async () => {
      if (raced) return;
      raced = true;
      await lock.refresh();
      assert.equal(lock.lost, false, 'the refresh itself saw nothing wrong');
    });
    const removed = await removeLocks(storage, repo.key.encKey, true);
    assert.ok(raced, 'the refresh ran between listing and removal');
    assert.equal(removed.length, 1);
    assert.deepEqual(await readLocks(repo.storage, repo.key.encKey), [], 'no object of the lock is left');
    await lock.refresh();
    assert.equal(lock.lost, true, 'the holder notices at its next refresh');
    await lock.release();
  });
});

test('readLocks: an object listed while it is being written (it does not decode yet) is read again before it is judged, so a refreshing lock is one live lock; one that stays undecodable is an unreadable lock', async () => {
  await withLockedRepo('lb-lock-partial-', async (repo, lock) => {
    await lock.refresh();
    const name = (await repo.storage.list('lock'))[0]!.name;
    // the first read of the lock's object finds it half-written (as rclone's local remote lists a file being written)
    let loads = 0;
    const storage = new Proxy(repo.storage, {
      get(target, prop, recv) {
        if (prop === 'load') {
          return async (...args: Parameters<Storage['load']>) => {
            const b = await target.load(...args);
            return args[0] === 'lock' && args[1] === name && ++loads === 1 ? b.subarray(0, Math.floor(b.length / 2)) : b;
          };
        }
        const v = Reflect.get(target, prop, recv) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const seen = await readLocks(storage, repo.key.encKey);
    assert.equal(loads, 2, 'read again');
    assert.equal(seen.length, 1);
    assert.equal(seen[0]!.unreadable, undefined, 'not judged from the half-written bytes');
    assert.equal(seen[0]!.info.exclusive, true);
    assert.equal(seen[0]!.info.seq, 1);

    // an object that never decodes is still an unreadable lock of its own
    await repo.storage.save('lock', 'f'.repeat(64), Buffer.from('not a lock'));
    const both = await readLocks(repo.storage, repo.key.encKey);
    assert.equal(both.length, 2);
    assert.deepEqual(both.map((l) => !!l.unreadable).sort(), [false, true]);
    await repo.storage.remove('lock', 'f'.repeat(64));
    await lock.release();
  });
});
