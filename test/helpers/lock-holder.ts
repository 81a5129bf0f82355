import { existsSync } from 'node:fs';
import { openStorage } from '../../src/storage/open.js';
import { Repository } from '../../src/repo/repository.js';
import { lockLeaseFromEnv } from '../../src/config/repos.js';

/**
 * A second process for the repository lock tests (test/locks.test.ts): opens
 * the repository at LB_LOCATION (credentials from the standard environment),
 * takes a lock (LB_EXCLUSIVE=1: exclusive "prune"; else shared "backup") with
 * the lease of LIFEBOAT_LOCK_LEASE, holds it for LB_HOLD_MS while checking it
 * every 100 ms, and releases it. LB_RELEASE_FILE: hold on after LB_HOLD_MS
 * until that file exists (the test says when, so a slow test never finds the
 * lock released under its feet), then LB_HOLD_AFTER_MS more. LB_HOST: the host name the lock records. JSON lines on stdout: {t:'locked',id,name},
 * {t:'lost',message} (the lock was lost: exit 11), {t:'released',seq}.
 * Run: node dist/test/helpers/lock-holder.js
 */
const out = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);

async function main(): Promise<number> {
  const repo = await Repository.open(openStorage(process.env.LB_LOCATION!), process.env.LIFEBOAT_PASSWORD!);
  repo.lockLeaseMs = lockLeaseFromEnv() ?? repo.lockLeaseMs;
  // LB_HOST: record another host name, as an agent on a different machine would (its pid means nothing here)
  if (process.env.LB_HOST) repo.lockHost = process.env.LB_HOST;
  const exclusive = process.env.LB_EXCLUSIVE === '1';
  const lock = await repo.lock(exclusive, exclusive ? 'prune' : 'backup', Number(process.env.LB_RETRY_MS ?? 0));
  out({ t: 'locked', id: lock.info.nonce, name: lock.name, at: Date.now() });
  const until = Date.now() + Number(process.env.LB_HOLD_MS ?? 60_000);
  const releaseFile = process.env.LB_RELEASE_FILE;
  const holdAfter = Number(process.env.LB_HOLD_AFTER_MS ?? 0);
  try {
    const hold = async (cond: () => boolean) => {
      while (cond()) {
        lock.check();
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await hold(() => Date.now() < until || (!!releaseFile && !existsSync(releaseFile)));
    const after = Date.now() + holdAfter;
    await hold(() => Date.now() < after);
    lock.check();
    // Still ours at the end: nobody judged it stale and removed it.
    await repo.storage.stat('lock', lock.name);
    out({ t: 'released', seq: lock.info.seq, at: Date.now() });
    return 0;
  } catch (err) {
    out({ t: 'lost', message: (err as Error).message, at: Date.now() });
    return 11;
  } finally {
    await lock.release();
    await repo.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`lock-holder: ${(err as Error).message}\n`);
    process.exit(1);
  },
);
