import { Command } from 'commander';
import { lockStatus, removeLocks, type LockStatus } from '../../repo/lock.js';
import { leaseOf } from '../../repo/lock-staleness.js';
import { ConfigError } from '../../errors.js';
import { type CliContext, WITHOUT_INDEX } from '../context.js';
import { table } from '../output.js';

/** One lock as `list locks --json` and `unlock --json` show it. */
function lockJson(l: LockStatus): Record<string, unknown> {
  const i = l.info;
  return {
    name: l.name,
    objects: l.names,
    id: i.nonce || null,
    operation: i.operation,
    exclusive: i.exclusive,
    hostname: i.hostname,
    pid: i.pid,
    created: i.created ?? i.time,
    refreshed: i.refreshed ?? i.time,
    leaseMs: leaseOf(i),
    seq: i.seq ?? null,
    storageTime: l.mtime?.toISOString() ?? null,
    unreadable: !!l.unreadable,
    stale: l.verdict.stale,
    reason: l.verdict.reason,
  };
}

/** Registers `unlock` (remove stale locks) and `list locks`. */
export function registerLocks(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('unlock')
    .description('remove stale locks (not refreshed within their lease: crashed processes)')
    .option('--remove-all', 'remove all locks, even live ones (dangerous: their holders stop when they notice)')
    .action(async (o: { removeAll?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const removed = await removeLocks(repo.storage, repo.key.encKey, !!o.removeAll);
        for (const l of removed) {
          ctx.out.info(`removed lock ${l.info.nonce || l.name.slice(0, 12)} of "${l.info.operation}" (pid ${l.info.pid} on ${l.info.hostname}): ${l.verdict.stale ? l.verdict.reason : `live (${l.verdict.reason}), removed by --remove-all`}`);
        }
        ctx.out.info(`removed ${removed.length} lock(s)`);
        ctx.out.emit({ removed: removed.flatMap((l) => l.names), locks: removed.map(lockJson) });
      }, WITHOUT_INDEX);
    });

  program
    .command('list')
    .description('list repository objects of one kind (locks)')
    .argument('<kind>', 'what to list: locks')
    .action(async (kind: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (kind !== 'locks') throw new ConfigError(`list ${kind}: unknown kind (known: locks)`);
      await ctx.withRepo(async (repo) => {
        const locks = await lockStatus(repo.storage, repo.key.encKey);
        ctx.out.emit(locks.map(lockJson));
        ctx.out.info(
          table(
            ['ID', 'Operation', 'Mode', 'Holder', 'Refreshed (holder clock)', 'Lease', 'State'],
            locks.map((l) => [
              l.info.nonce || l.name.slice(0, 12),
              l.info.operation,
              l.info.exclusive ? 'exclusive' : 'shared',
              `pid ${l.info.pid} on ${l.info.hostname}`,
              (l.info.refreshed ?? l.info.time).slice(0, 19),
              `${Math.round(leaseOf(l.info) / 1000)}s`,
              `${l.verdict.stale ? 'stale' : 'live'}: ${l.verdict.reason}`,
            ]),
          ),
        );
        ctx.out.info(`${locks.length} lock(s)`);
      }, WITHOUT_INDEX);
    });
}
