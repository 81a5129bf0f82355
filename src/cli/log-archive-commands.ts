import type { Command } from 'commander';
import type { LogEntryWithId, LogRetentionPlan } from '../repo/log-archive.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { formatBytes } from '../util/format.js';
import type { CliContext } from './context.js';
import { table } from './output.js';

/**
 * The list and prune commands of a log archive (`pg wal-list` / `wal-prune`,
 * `mysql binlog-list` / `binlog-prune`): the same commands over
 * repo/log-archive.ts, differing only in the archive's functions and words.
 */

export interface LogArchiveCommandSpec<E extends LogEntryWithId> {
  /** Command name prefix: 'wal' → wal-list, wal-prune; 'binlog' → binlog-list, binlog-prune. */
  prefix: string;
  listDescription: string;
  pruneDescription: string;
  /** "N <files>" in summaries: 'WAL file(s)', 'binary log(s)'. */
  files: string;
  list(repo: Repository, opts: { archive?: string }): Promise<E[]>;
  validateArchive(name: string): string;
  applyRetention(repo: Repository, snaps: SnapshotWithId[], opts: { dryRun?: boolean; check?: () => void }): Promise<LogRetentionPlan<E>>;
  /** The line per archive about what prune keeps (c undefined: nothing to cut at). */
  cutoffLine(archive: string, c: string | undefined): string;
  /** Appended to the prune summary. */
  pruneHint?: string;
}

export function registerLogArchiveCommands<E extends LogEntryWithId>(parent: Command, ctxOf: (cmd: Command) => CliContext, spec: LogArchiveCommandSpec<E>): void {
  parent
    .command(`${spec.prefix}-list`)
    .description(spec.listDescription)
    .option('--archive <name>', 'only this archive')
    .action(async (o: { archive?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const all = await ctx.withRepo((repo) => spec.list(repo, o.archive ? { archive: spec.validateArchive(o.archive) } : {}));
      ctx.out.emit(all.map((e) => ({ archive: e.archive, name: e.name, size: e.size, sha256: e.sha256, time: e.time, hostname: e.hostname })));
      ctx.out.info(table(['Archive', 'Name', 'Size', 'Archived'], all.map((e) => [e.archive, e.name, formatBytes(e.size), e.time.slice(0, 19)])));
      ctx.out.info(`${all.length} ${spec.files}`);
    });

  parent
    .command(`${spec.prefix}-prune`)
    .description(spec.pruneDescription)
    .option('-n, --dry-run', 'only show what would be removed')
    .action(async (o: { dryRun?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const plan = await ctx.withRepo(async (repo) => {
        const lock = await repo.lock(true, `${spec.prefix}-prune`, ctx.retryLockMs());
        try {
          return await spec.applyRetention(repo, await repo.listSnapshots(), { dryRun: !!o.dryRun, check: () => lock.check() });
        } catch (err) {
          throw lock.cause(err);
        } finally {
          await lock.release();
        }
      });
      ctx.out.emit({ message_type: `${spec.prefix}-prune`, dryRun: !!o.dryRun, removed: plan.remove.map((e) => `${e.archive}/${e.name}`), kept: plan.keep.length, cutoff: Object.fromEntries(plan.cutoff) });
      for (const [a, c] of plan.cutoff) ctx.out.info(spec.cutoffLine(a, c));
      ctx.out.info(`${o.dryRun ? 'would remove' : 'removed'} ${plan.remove.length} ${spec.files}, kept ${plan.keep.length}${spec.pruneHint ?? ''}`);
    });
}
