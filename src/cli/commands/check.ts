import { Command } from 'commander';
import { ConfigError, ExitCode } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { checkRepository } from '../../verify/check.js';
import type { RotationStep } from '../../verify/drill-rotation.js';
import type { CliContext } from '../context.js';
import { formatBytes } from '../../util/format.js';
import { withoutOptimizer } from '../../util/jit.js';

/** `check --rotate`: the next part of the repository's rotation (catalog of the config). */
async function cliRotation(ctx: CliContext, repo: Repository, subset: string | undefined): Promise<RotationStep> {
  if (!subset) throw new ConfigError('--rotate needs --read-data-subset (e.g. 10%)');
  const cfg = ctx.config();
  if (!cfg) throw new ConfigError('--rotate keeps its counter in the catalog: pass --config FILE');
  const [{ openConfigCatalog }, { nextRotation }] = await Promise.all([import('../../ops/service.js'), import('../../verify/drill-rotation.js')]);
  const catalog = await openConfigCatalog(cfg);
  try {
    return await nextRotation(catalog, repo.config.id, ctx.repositoryTarget().name ?? repo.storage.location, subset);
  } finally {
    await catalog.close();
  }
}

/** Registers the `check` command: verify the repository (optionally reading data, rotating through it). */
export function registerCheck(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('check')
    .description('check the repository for errors (--read-data also reads and verifies every blob)')
    .option('--read-data', 'read all data packs and verify every blob')
    .option('--read-data-subset <subset>', 'read only a subset: "n/m" (part n of m) or "x%" (random sample)')
    .option('--rotate', 'with --read-data-subset: read the next part of a rotation kept in the catalog, so N runs read everything')
    .action(async (o: { readData?: boolean; readDataSubset?: string; rotate?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      // with a config that has notifiers: recorded in the catalog and alerted (check "integrity" of repo:NAME) like the daemon's runs
      const cfg = ctx.config();
      const repoName = cfg?.notifiers ? ctx.repositoryTarget().name : undefined;
      // The catalog and notifier code (ops/: ~200 modules, zod schemas) is loaded only when it is used: importing it
      // up front cost every check ~0.3 CPU s and ~18 MB of RSS (bench/results/check5.md).
      const hooks = repoName ? await Promise.all([import('../../ops/run-hooks.js'), import('../../ops/service.js')]) : undefined;
      const reporter = hooks ? new hooks[0].CommandRunReporter(cfg!, () => hooks[1].openConfigCatalog(cfg!), (m) => process.stderr.write(`lifeboat: ${m}\n`)) : undefined;
      const end = await reporter?.begin(`repo:${repoName}`, 'check', { source: repoName!, repository: repoName! });
      const finding = (ok: boolean, message: string) =>
        reporter?.addFinding({ job: `repo:${repoName}`, check: 'integrity', severity: ok ? 'ok' : 'critical', tier: hooks![0].repositoryTier(cfg!, repoName!), message, details: { repository: repoName } });
      let reported = false;
      try {
        await checkCommand(ctx, o, async (ok, message) => {
          reported = true;
          await end?.({ status: ok ? 'success' : 'failed', exitCode: ok ? ExitCode.OK : ExitCode.INTEGRITY, ...(ok ? {} : { error: message }) });
          finding(ok, message);
        });
      } catch (err) {
        if (!reported) {
          await end?.({ status: 'failed', exitCode: ExitCode.FATAL, error: (err as Error).message });
          finding(false, `repository ${repoName}: check failed: ${(err as Error).message}`);
        }
        throw err;
      } finally {
        await reporter?.close();
      }
    });
}

async function checkCommand(
  ctx: CliContext,
  o: { readData?: boolean; readDataSubset?: string; rotate?: boolean },
  done: (ok: boolean, message: string) => Promise<void>,
): Promise<void> {
  const repo = await ctx.openRepo({ allowInit: false });
  const lock = await repo.lock(false, 'check', ctx.retryLockMs());
  try {
    const rotation = o.rotate ? await cliRotation(ctx, repo, o.readDataSubset) : undefined;
    if (rotation) {
      o.readDataSubset = rotation.subset;
      ctx.out.info(`rotating check: reading part ${rotation.part} of ${rotation.parts}`);
    }
    // reading the data waits on the thread pool (decode, the packs' SHA-256), not on its JavaScript: no
    // optimizing compiler once the walk of the trees is over, as in a restore (util/jit.ts). The walk itself
    // (every tree decoded and validated, every blob id looked up) keeps the main thread busy while it lasts:
    // optimized, check --read-data took 12% less wall time (docs/benchmarks.md, "check's walk optimized").
    // LIFEBOAT_CHECK_WALK_OPT=0: no optimizing compiler from here, walk included (as before; measurements)
    const readData = !!(o.readData || o.readDataSubset);
    const walkUnoptimized = readData && process.env.LIFEBOAT_CHECK_WALK_OPT === '0';
    if (walkUnoptimized) withoutOptimizer();
    const bar = ctx.out.progress(undefined, 'read data');
    const r = await checkRepository(repo, {
      readData,
      ...(readData && !walkUnoptimized ? { onWalkDone: () => void withoutOptimizer() } : {}),
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
    const first = r.problems[0];
    await done(r.ok, r.ok ? `repository checked: no errors` : `check found ${r.problems.length} problem(s)${first ? `, first: ${first.kind} ${first.object}: ${first.message}` : ''}`);
  } finally {
    await lock.release();
    await repo.close();
  }
}
