import { Command } from 'commander';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import { Repository, filterSnapshots } from '../../repo/repository.js';
import { copySnapshots } from '../../repo/copy.js';
import { copyWal } from '../../repo/wal.js';
import { prune, repairIndex } from '../../repo/prune.js';
import { removeLocks } from '../../repo/lock.js';
import { createKeyFile, listKeys } from '../../repo/keys.js';
import { checkRepository } from '../../verify/check.js';
import { nextRotation, type RotationStep } from '../../verify/drill-rotation.js';
import { openConfigCatalog } from '../../ops/service.js';
import { applyRetention, groupSnapshots, isEmptyPolicy, type RetentionPolicy } from '../../policy/retention.js';
import { parseSize } from '../../config/schema.js';
import { resolveSecret } from '../../config/password.js';
import { collect, collectRaw } from '../output.js';
import type { CliContext } from '../context.js';
import { formatBytes, table } from '../output.js';

function intOpt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < -1) throw new ConfigError(`expected a whole number >= -1, got "${v}"`);
  return n;
}

function newPassword(o: { newPasswordFile?: string }): string {
  if (o.newPasswordFile) return resolveSecret({ file: o.newPasswordFile }, 'new password (--new-password-file)');
  if (process.env.LIFEBOAT_NEW_PASSWORD) return process.env.LIFEBOAT_NEW_PASSWORD;
  throw new ConfigError('no new password: pass --new-password-file FILE or set LIFEBOAT_NEW_PASSWORD');
}

/** `check --rotate`: the next part of the repository's rotation (catalog of the config). */
async function cliRotation(ctx: CliContext, repo: Repository, subset: string | undefined): Promise<RotationStep> {
  if (!subset) throw new ConfigError('--rotate needs --read-data-subset (e.g. 10%)');
  const cfg = ctx.config();
  if (!cfg) throw new ConfigError('--rotate keeps its counter in the catalog: pass --config FILE');
  const catalog = await openConfigCatalog(cfg);
  try {
    return await nextRotation(catalog, repo.config.id, ctx.repositoryTarget().name ?? repo.storage.location, subset);
  } finally {
    await catalog.close();
  }
}

export function registerMaintenance(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('init')
    .description('create a new repository')
    .option('--chunk-min <size>', 'minimum chunk size (default 512KiB)')
    .option('--chunk-avg <size>', 'average chunk size, a power of two (default 1MiB)')
    .option('--chunk-max <size>', 'maximum chunk size (default 8MiB)')
    .option('--pack-size <size>', 'target pack file size (default 16MiB)')
    .option('--compression-level <n>', 'zstd level 1..19 (default 3)')
    .action(async (o: { chunkMin?: string; chunkAvg?: string; chunkMax?: string; packSize?: string; compressionLevel?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const t = ctx.repositoryTarget();
      const sz = (v: string | undefined, what: string) => {
        if (v === undefined) return undefined;
        if (!/^\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB)?$/i.test(v)) throw new ConfigError(`${what}: invalid size "${v}"`);
        return parseSize(v);
      };
      const chunker = {
        ...(o.chunkMin ? { min: sz(o.chunkMin, '--chunk-min')! } : {}),
        ...(o.chunkAvg ? { avg: sz(o.chunkAvg, '--chunk-avg')! } : {}),
        ...(o.chunkMax ? { max: sz(o.chunkMax, '--chunk-max')! } : {}),
      };
      const repo = await Repository.init(ctx.storageFor(t.location, t.conf), ctx.password(t.conf, { confirm: true }), {
        chunker,
        ...(o.packSize ? { packSize: sz(o.packSize, '--pack-size')! } : {}),
        ...(o.compressionLevel ? { compressionLevel: Number(o.compressionLevel) } : {}),
      });
      ctx.out.info(`created Lifeboat repository ${repo.config.id.slice(0, 10)} at ${repo.storage.location}\n\nPlease note that knowledge of your password is required to access\nthe repository. Losing your password means that your data is irrecoverably lost.`);
      ctx.out.emit({ message_type: 'initialized', id: repo.config.id, repository: repo.storage.location });
      await repo.close();
    });

  program
    .command('check')
    .description('check the repository for errors (--read-data also reads and verifies every blob)')
    .option('--read-data', 'read all data packs and verify every blob')
    .option('--read-data-subset <subset>', 'read only a subset: "n/m" (part n of m) or "x%" (random sample)')
    .option('--rotate', 'with --read-data-subset: read the next part of a rotation kept in the catalog, so N runs read everything')
    .action(async (o: { readData?: boolean; readDataSubset?: string; rotate?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const repo = await ctx.openRepo({ allowInit: false });
      const lock = await repo.lock(false, 'check', ctx.retryLockMs());
      try {
        const rotation = o.rotate ? await cliRotation(ctx, repo, o.readDataSubset) : undefined;
        if (rotation) {
          o.readDataSubset = rotation.subset;
          ctx.out.info(`rotating check: reading part ${rotation.part} of ${rotation.parts}`);
        }
        const bar = ctx.out.progress(undefined, 'read data');
        const r = await checkRepository(repo, {
          readData: !!(o.readData || o.readDataSubset),
          ...(o.readDataSubset ? { subset: o.readDataSubset } : {}),
          onProgress: (d, t) => {
            bar.setTotal(t);
            bar.update(d);
          },
        }).finally(() => bar.stop());
        if (ctx.out.json) ctx.out.emit(rotation ? { ...r, rotation } : r);
        else {
          ctx.out.info(
            `checked ${r.snapshots} snapshots, ${r.blobs} blobs in ${r.packs} packs` +
              (r.walFiles ? `, ${r.walFiles} archived WAL file(s)` : '') +
              (r.packsRead ? `; read ${r.packsRead} packs (${formatBytes(r.bytesRead)})` : ''),
          );
          if (r.unreferencedPacks.length) ctx.out.info(`${r.unreferencedPacks.length} unreferenced pack(s) (left by interrupted backups; "prune" removes them)`);
        }
        for (const p of r.problems) {
          process.stderr.write(
            `error: ${p.kind} ${p.object}: ${p.message}` +
              (p.snapshots?.length ? `\n       affects snapshot(s): ${p.snapshots.map((s) => s.slice(0, 8)).join(', ')}` : '') +
              '\n',
          );
        }
        if (!r.ok) {
          process.stderr.write(`lifeboat: check found ${r.problems.length} problem(s)\n`);
          process.exitCode = ExitCode.INTEGRITY;
        } else ctx.out.info('no errors were found');
      } finally {
        await lock.release();
        await repo.close();
      }
    });

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
        const repo = await ctx.openRepo({ allowInit: false });
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
                ctx.out.info(table(['ID', 'Time', 'Reasons'], d.keep.map((k) => [k.snapshot.id.slice(0, 8), k.snapshot.time.slice(0, 19), k.reasons.join(', ')])));
                if (d.remove.length) {
                  ctx.out.info(`remove ${d.remove.length} snapshot(s):`);
                  ctx.out.info(table(['ID', 'Time'], d.remove.map((s) => [s.id.slice(0, 8), s.time.slice(0, 19)])));
                }
                ctx.out.info('');
              }
              toRemove.push(...d.remove.map((s) => s.id));
            }
          }
          if (!o.dryRun) {
            for (const id of toRemove) {
              await repo.removeSnapshot(id);
              removed++;
            }
          }
          ctx.out.emit({ message_type: 'forget', dry_run: !!o.dryRun, removed: toRemove, groups: report });
          ctx.out.info(o.dryRun ? `would remove ${toRemove.length} snapshot(s)` : `removed ${removed} snapshot(s)`);
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

  program
    .command('prune')
    .description('remove data no snapshot references; repack partly used packs')
    .option('-n, --dry-run', 'only show what would be done')
    .option('--max-unused <percent>', 'repack packs with at least this share of unused data', '10')
    .action(async (o: { dryRun?: boolean; maxUnused: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        await runPrune(ctx, repo, o);
      });
    });

  program
    .command('copy')
    .description('copy snapshots from another repository into this one (3-2-1 copies), deduplicated, without re-reading the source')
    .argument('[snapshots...]', 'snapshot ids to copy (default: all)')
    .requiredOption('--from-repo <location>', 'source repository (location or config name)')
    .option('--from-password-file <file>', 'password file of the source repository (or env LIFEBOAT_FROM_PASSWORD)')
    .option('--host <host>', 'only snapshots from this host')
    .option('--tag <tag>', 'only snapshots with these tags (repeatable, comma-separated)', collect)
    .option('--no-wal', 'do not copy the archived PostgreSQL WAL (copied by default, so PITR works from the copy)')
    .action(async (ids: string[], o: { fromRepo: string; fromPasswordFile?: string; host?: string; tag?: string[]; wal: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const src = await ctx.openOtherRepo(o.fromRepo, o.fromPasswordFile);
      try {
        const dst = await ctx.openRepo();
        try {
          let snaps = ids.length ? await Promise.all(ids.map((id) => src.findSnapshot(id))) : await src.listSnapshots();
          snaps = filterSnapshots(snaps, { ...(o.host ? { host: o.host } : {}), ...(o.tag ? { tags: o.tag } : {}) });
          const r = await copySnapshots(src, dst, snaps, (m) => ctx.out.info(m));
          ctx.out.info(`copied ${r.copied.length} snapshot(s), ${r.skipped.length} already present; added ${formatBytes(r.dataAdded)} (${r.blobsNew} new blobs)`);
          const wal = o.wal ? await copyWal(src, dst) : undefined;
          if (wal && wal.copied + wal.present + wal.conflicts.length > 0) {
            ctx.out.info(`copied ${wal.copied} archived WAL file(s), ${wal.present} already present; added ${formatBytes(wal.dataAdded)}`);
            for (const c of wal.conflicts) ctx.out.warn(`WAL ${c} exists in the destination with different content; left as it is`);
          }
          ctx.out.emit({ message_type: 'copy', ...r, ...(wal ? { wal } : {}) });
          if (wal?.conflicts.length) process.exitCode = ExitCode.PARTIAL;
        } finally {
          await dst.close();
        }
      } finally {
        await src.close();
      }
    });

  program
    .command('unlock')
    .description('remove stale locks (of crashed processes)')
    .option('--remove-all', 'remove all locks, even live ones (dangerous)')
    .action(async (o: { removeAll?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const removed = await removeLocks(repo.storage, repo.key.encKey, !!o.removeAll);
        ctx.out.info(`removed ${removed.length} lock(s)`);
        ctx.out.emit({ removed });
      });
    });

  const repair = program.command('repair').description('repair repository metadata');
  repair
    .command('index')
    .description('rebuild the index from the pack files (after a lost or damaged index file)')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const r = await repairIndex(repo, (p, m) => ctx.out.warn(`pack ${p}: ${m}`));
        ctx.out.info(`rebuilt the index: ${r.blobs} blobs in ${r.packs} packs` + (r.badPacks ? `; ${r.badPacks} unreadable pack(s) left out` : ''));
        ctx.out.emit(r);
        if (r.badPacks) process.exitCode = ExitCode.INTEGRITY;
      });
    });

  const key = program.command('key').description('manage repository passwords (key files)');
  key
    .command('list')
    .description('list key files')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const keys = await listKeys(repo.storage, repo.keyName);
        if (ctx.out.json) ctx.out.emit(keys);
        else ctx.out.info(table([' ', 'ID', 'User', 'Host', 'Created'], keys.map((k) => [k.current ? '*' : ' ', k.name.slice(0, 8), k.username, k.hostname, k.created.slice(0, 19)])));
      });
    });
  key
    .command('add')
    .description('add a new password (key file)')
    .option('--new-password-file <file>', 'file containing the new password (or env LIFEBOAT_NEW_PASSWORD)')
    .action(async (o: { newPasswordFile?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const name = await createKeyFile(repo.storage, newPassword(o), repo.key);
        ctx.out.info(`saved new key ${name.slice(0, 8)}`);
        ctx.out.emit({ id: name });
      });
    });
  key
    .command('remove')
    .description('remove a key file (its password stops working)')
    .argument('<id>', 'key id or unique prefix')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const keys = await listKeys(repo.storage, repo.keyName);
        const hits = keys.filter((k) => k.name.startsWith(id));
        if (hits.length !== 1) throw new LifeboatError(hits.length ? `key prefix ${id} is ambiguous` : `no key ${id}`, 2);
        if (hits[0]!.current) throw new LifeboatError('refusing to remove the key currently in use; open the repository with another password first', 2);
        await repo.storage.remove('key', hits[0]!.name);
        ctx.out.info(`removed key ${hits[0]!.name.slice(0, 8)}`);
      });
    });
  key
    .command('passwd')
    .description('change the password of the current key (adds a new key file, then removes the old one)')
    .option('--new-password-file <file>', 'file containing the new password (or env LIFEBOAT_NEW_PASSWORD)')
    .action(async (o: { newPasswordFile?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const name = await createKeyFile(repo.storage, newPassword(o), repo.key);
        await repo.storage.remove('key', repo.keyName);
        ctx.out.info(`password changed (key ${repo.keyName.slice(0, 8)} replaced by ${name.slice(0, 8)})`);
      });
    });
}

async function runPrune(ctx: CliContext, repo: Repository, o: { dryRun?: boolean; maxUnused?: string }): Promise<void> {
  const pct = o.maxUnused !== undefined ? Number(o.maxUnused) : 10;
  if (!(pct >= 0 && pct <= 100)) throw new ConfigError('--max-unused must be a percentage 0..100');
  const r = await prune(repo, {
    maxUnusedFraction: pct / 100,
    dryRun: !!o.dryRun,
    retryLockMs: ctx.retryLockMs(),
    onProgress: (m) => ctx.out.info(m),
  });
  ctx.out.emit({ message_type: 'prune', ...r });
  ctx.out.info(
    `${r.dryRun ? 'would delete' : 'deleted'} ${r.packsDeleted} of ${r.packsBefore} pack(s) (${r.packsRepacked} repacked into ${r.packsWritten}), ` +
      `${r.blobsRemoved} unused blob(s); ${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.bytesFreed)} of ${formatBytes(r.bytesBefore)}` +
      (r.walRemoved ? `; ${r.dryRun ? 'would remove' : 'removed'} ${r.walRemoved} archived WAL file(s) older than every kept base backup` : ''),
  );
}
