import { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { applyRetention, groupSnapshots, isEmptyPolicy, type RetentionPolicy } from '../../policy/retention.js';
import { type CliContext, WITHOUT_INDEX } from '../context.js';
import { collect, table } from '../output.js';
import { runPrune } from './prune.js';

function intOpt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < -1) throw new ConfigError(`expected a whole number >= -1, got "${v}"`);
  return n;
}

/** Registers the `forget` command: remove snapshots by id or by a retention policy. */
export function registerForget(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('forget')
    .description('remove snapshots, by id or by a retention policy (then run "prune" to free space)')
    .argument('[snapshots...]', 'snapshot ids to remove')
    .option('-l, --keep-last <n>', 'keep the last n snapshots', intOpt)
    .option('-H, --keep-hourly <n>', 'keep the last n hourly snapshots', intOpt)
    .option('-d, --keep-daily <n>', 'keep the last n daily snapshots', intOpt)
    .option('-w, --keep-weekly <n>', 'keep the last n weekly snapshots', intOpt)
    .option('-m, --keep-monthly <n>', 'keep the last n monthly snapshots', intOpt)
    .option('-y, --keep-yearly <n>', 'keep the last n yearly snapshots', intOpt)
    .option('--keep-within <duration>', 'keep snapshots newer than this before the latest one (restic syntax: 1y2m3d4h, where m = months)')
    .option('--keep-tag <tag>', 'keep snapshots with any of these tags (repeatable, comma-separated)', collect)
    .option('--group-by <keys>', 'group snapshots by host,paths,tags,source before applying the policy', 'host,paths,source')
    .option('--prune', 'run prune afterwards')
    .option('-n, --dry-run', 'show what would be removed')
    .action(
      async (
        ids: string[],
        o: {
          keepLast?: number;
          keepHourly?: number;
          keepDaily?: number;
          keepWeekly?: number;
          keepMonthly?: number;
          keepYearly?: number;
          keepWithin?: string;
          keepTag?: string[];
          groupBy: string;
          prune?: boolean;
          dryRun?: boolean;
        },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        const policy: RetentionPolicy = {
          ...(o.keepLast !== undefined ? { keepLast: o.keepLast } : {}),
          ...(o.keepHourly !== undefined ? { keepHourly: o.keepHourly } : {}),
          ...(o.keepDaily !== undefined ? { keepDaily: o.keepDaily } : {}),
          ...(o.keepWeekly !== undefined ? { keepWeekly: o.keepWeekly } : {}),
          ...(o.keepMonthly !== undefined ? { keepMonthly: o.keepMonthly } : {}),
          ...(o.keepYearly !== undefined ? { keepYearly: o.keepYearly } : {}),
          ...(o.keepWithin ? { keepWithin: o.keepWithin } : {}),
          ...(o.keepTag ? { keepTags: o.keepTag } : {}),
        };
        if (ids.length && !isEmptyPolicy(policy)) throw new ConfigError('give either snapshot ids or a --keep-* policy, not both');
        if (!ids.length && isEmptyPolicy(policy)) {
          throw new ConfigError('no policy given: refusing to remove snapshots (use --keep-last/--keep-daily/... or give snapshot ids)');
        }
        const keys = o.groupBy.split(',').map((k) => k.trim()).filter(Boolean);
        for (const k of keys) if (!['host', 'paths', 'tags', 'source'].includes(k)) throw new ConfigError(`--group-by: unknown key "${k}"`);
        // snapshots only; --prune reads the index itself once it holds its lock (repo/prune.ts)
        const repo = await ctx.openRepo(WITHOUT_INDEX);
        const lock = await repo.lock(false, 'forget', ctx.retryLockMs());
        let removed = 0;
        try {
          const all = await repo.listSnapshots();
          const toRemove: string[] = [];
          const report: unknown[] = [];
          if (ids.length) {
            for (const id of ids) toRemove.push((await repo.findSnapshot(id)).id);
          } else {
            const groups = groupSnapshots(all, (s) =>
              keys
                .map((k) =>
                  k === 'host' ? s.hostname : k === 'paths' ? [...s.paths].sort().join(',') : k === 'tags' ? [...s.tags].sort().join(',') : (s.source?.name ?? ''),
                )
                .join(' | '),
            );
            for (const [group, snaps] of groups) {
              const d = applyRetention(snaps, policy);
              report.push({
                group,
                keep: d.keep.map((k) => ({ id: k.snapshot.id, time: k.snapshot.time, reasons: k.reasons })),
                remove: d.remove.map((s) => ({ id: s.id, time: s.time })),
              });
              if (!ctx.out.json) {
                ctx.out.info(`group: ${group}\nkeep ${d.keep.length} snapshot(s):`);
                ctx.out.info(table(['ID', 'Time (UTC)', 'Reasons'], d.keep.map((k) => [k.snapshot.id.slice(0, 8), k.snapshot.time.slice(0, 19), k.reasons.join(', ')])));
                if (d.remove.length) {
                  ctx.out.info(`remove ${d.remove.length} snapshot(s):`);
                  ctx.out.info(table(['ID', 'Time (UTC)'], d.remove.map((s) => [s.id.slice(0, 8), s.time.slice(0, 19)])));
                }
                ctx.out.info('');
              }
              toRemove.push(...d.remove.map((s) => s.id));
            }
          }
          if (!o.dryRun) {
            for (const id of toRemove) {
              lock.check();
              await repo.removeSnapshot(id);
              removed++;
            }
          }
          ctx.out.emit({ message_type: 'forget', dry_run: !!o.dryRun, removed: toRemove, groups: report });
          ctx.out.info(o.dryRun ? `would remove ${toRemove.length} snapshot(s)` : `removed ${removed} snapshot(s)`);
        } catch (err) {
          throw lock.cause(err);
        } finally {
          await lock.release();
        }
        try {
          if (o.prune && !o.dryRun && removed > 0) await runPrune(ctx, repo, {});
        } finally {
          await repo.close();
        }
      },
    );
}
