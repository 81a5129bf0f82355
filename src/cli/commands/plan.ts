import { evaluateReplicas, replicasFromConfig, withFindings } from '../../ops/replica-monitor.js';
import { Command } from 'commander';
import { ConfigError, ExitCode } from '../../errors.js';
import { planCheck } from '../../policy/plan.js';
import { checkImmutability } from '../../config/repos.js';
import { SOURCE_CAPABILITIES } from '../../config/sources.js';
import { firstRunFromCatalog, runJob } from '../../ops/jobs.js';
import { catalogHooks, openConfigCatalog, startService } from '../../ops/service.js';
import { evaluate, jobsFromConfig, type MonitorReport } from '../../ops/monitor.js';
import { alertAfterRun } from '../../ops/run-hooks.js';
import { type CliContext, serviceSettings, sourceBackupSettings } from '../context.js';
import { formatBytes, formatElapsed as formatDuration } from '../../util/format.js';
import { table } from '../output.js';
import { JobSlots } from '../../ops/catalog/job-slots.js';
import { slotReport } from '../../ops/slot-report.js';
import { parseDuration } from '../../util/duration.js';
import { showProgress } from '../progress.js';

export function registerPlan(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const plan = program.command('plan').description('inspect the backup plan in the config');
  plan
    .command('check')
    .description('check the 3-2-1 rule for every source: >= 3 copies, >= 2 storage kinds, >= 1 off-site')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const res = planCheck(cfg);
      const locks = await checkImmutability(cfg);
      if (ctx.out.json) ctx.out.emit(locks.length ? { sources: res, objectLock: locks } : res);
      else {
        ctx.out.info(
          table(
            ['Source', 'Repositories', '3 copies', '2 kinds', '1 off-site'],
            res.map((r) => [
              r.source,
              r.repositories.map((x) => `${x.name} (${x.kind}${x.offsite ? ', off-site' : ''})`).join(', ') || '(no job)',
              ...r.rules.map((x) => (x.ok ? 'ok' : 'FAIL')),
            ]),
          ),
        );
        for (const r of res) for (const x of r.rules) if (!x.ok) ctx.out.info(`${r.source}: ${x.rule}: ${x.message}`);
        for (const l of locks) for (const line of l.lines) ctx.out.info(`repository ${l.repository}: object lock ${l.ok ? 'ok' : 'FAIL'}: ${line}`);
      }
      if (res.some((r) => !r.ok) || locks.some((l) => !l.ok)) process.exitCode = ExitCode.FATAL;
    });

  program
    .command('run')
    .description('run a job of the plan now: backup, copies, retention')
    .argument('<job>', 'job name from the config')
    .option('-v, --verbose', 'progress as a plain line every 10 s when stderr is not a terminal (logs); on a terminal a status line is always shown')
    .action(async (name: string, o: { verbose?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      if (!cfg.jobs[name]) throw new ConfigError(`unknown job "${name}" (defined in ${cfg.file}: ${Object.keys(cfg.jobs).join(', ') || 'none'})`);
      const controller = new AbortController();
      const onSig = () => controller.abort(new Error('interrupted'));
      process.once('SIGTERM', onSig);
      const catalog = await openConfigCatalog(cfg);
      // pings and alerts as from the daemon (same catalog state: a failing cron run pages once, not every time)
      const log = (m: string) => process.stderr.write(`lifeboat: ${m}\n`);
      const hooks = catalogHooks(cfg, catalog, () => alertAfterRun(cfg, catalog, [name], { log }), { log });
      const runId = await hooks.onRunStart(name, 1);
      let r;
      const shown = showProgress(ctx.out, { label: cfg.jobs[name]!.source, verbose: !!o.verbose });
      try {
        try {
          r = await runJob(ctx.plan(), name, { signal: controller.signal, log: (m) => ctx.out.info(m), retryLockMs: ctx.retryLockMs() || 60_000, firstRun: firstRunFromCatalog(catalog, name), opened: (_repo, source) => sourceBackupSettings(SOURCE_CAPABILITIES[source.kind].layout), ...(shown.progress ? { progress: shown.progress } : {}) });
        } finally {
          shown.stop();
        }
        await hooks.onRunEnd(r, runId, 1, true);
      } finally {
        process.off('SIGTERM', onSig);
        await catalog.close();
      }
      ctx.out.emit(r);
      for (const w of r.warnings) ctx.out.warn(w);
      if (r.status === 'failed') {
        process.stderr.write(`lifeboat: job ${name} failed: ${r.error}\n`);
        process.exitCode = r.exitCode ?? ExitCode.FATAL;
        return;
      }
      const s = r.summary!;
      ctx.out.info(
        `job ${name}: ${r.status}; snapshot ${r.snapshotId!.slice(0, 8)}; ${formatBytes(s.totalBytes)} processed, ${formatBytes(s.dataAdded)} added in ${formatDuration(
          r.finishedAt.getTime() - r.startedAt.getTime(),
        )}; ${r.copies.length} cop${r.copies.length === 1 ? 'y' : 'ies'}; ${r.forgotten} snapshot(s) forgotten by retention`,
      );
      if (r.status === 'partial') process.exitCode = ExitCode.PARTIAL;
    });

  program
    .command('daemon')
    .description('run the plan: every job on its schedule, with catalog, alerts, metrics and health endpoints, until SIGTERM/SIGINT')
    .option('--listen <host:port>', 'metrics/health server address (default: daemon.listen, 127.0.0.1:9187)')
    .action(async (o: { listen?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
      const idle = serviceSettings();
      // SIGTERM/SIGINT stop it gracefully (running jobs get daemon.shutdownGrace) from before it starts: a
      // signal during start-up, once jobs may be running (catch-up), is kept and acted on as soon as the
      // service is up; a second signal ends the process at once (exit 130), as it did at any time before
      let signalled: string | undefined;
      let wake: (() => void) | undefined;
      const onSignal = (sig: NodeJS.Signals) => {
        if (signalled) process.exit(ExitCode.INTERRUPTED);
        signalled = sig;
        log(`received ${sig}`);
        wake?.();
      };
      process.removeAllListeners('SIGTERM');
      process.removeAllListeners('SIGINT');
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      const service = await startService(cfg, { log, ...(o.listen ? { listen: o.listen } : {}), idle });
      if (!signalled) await new Promise<void>((resolve) => (wake = resolve));
      await service.stop();
      log('daemon stopped');
    });

  program
    .command('slots')
    .description('runOn: any jobs: each scheduled slot of the window done, running, orphaned (its agent died, not taken over yet), late or missed (no agent claimed it); exit 1 if any was missed')
    .option('--since <duration>', 'window: slots fired this long ago until now', '1h')
    .option('--job <name>', 'one job only')
    .action(async (o: { since: string; job?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const jobs = Object.entries(cfg.jobs)
        .filter(([name, j]) => j.runOn === 'any' && j.schedule && (!o.job || name === o.job))
        .map(([name, j]) => ({ name, schedule: j.schedule! }));
      if (o.job && !jobs.length) throw new ConfigError(`job "${o.job}" is not a scheduled runOn: any job`);
      const to = new Date();
      const from = new Date(to.getTime() - parseDuration(o.since));
      const catalog = await openConfigCatalog(cfg);
      try {
        const slots = new JobSlots(catalog.sql, 'report', { leaseMs: parseDuration(cfg.daemon.slots.lease), deadlineMs: 30_000 });
        const rows = await slots.list({ since: from, until: to, ...(o.job ? { job: o.job } : {}) });
        const report = slotReport(jobs, rows, { from, to, now: to, missedAfterMs: parseDuration(cfg.daemon.slots.missedAfter) });
        if (ctx.out.json) ctx.out.emit(report);
        else {
          ctx.out.info(
            table(
              ['Job', 'Slots', 'Done', 'Failed', 'Skipped', 'Running', 'Orphaned', 'Taken over', 'Late', 'Missed'],
              report.map((r) => [r.job, r.expected, r.done, r.failed, r.skipped, r.running, r.orphaned, r.takeovers, r.late.length, r.missed.length].map(String)),
            ),
          );
          for (const r of report) for (const m of r.missed.slice(-10)) ctx.out.info(`${r.job}: slot ${m} missed: no agent claimed it within ${cfg.daemon.slots.missedAfter}`);
        }
        if (report.some((r) => r.missed.length)) process.exitCode = ExitCode.FATAL;
      } finally {
        await catalog.close();
      }
    });

  program
    .command('status')
    .description('per job: age of the last good backup vs its RPO, size anomalies, repeated failures, repository free space')
    .option('-v, --verbose', 'every check of every job, with its full message')
    .action(async (o: { verbose?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const catalog = await openConfigCatalog(cfg);
      try {
        const replicas = replicasFromConfig(cfg);
        let report = await evaluate(catalog, jobsFromConfig(cfg));
        if (replicas.length) report = withFindings(report, await evaluateReplicas(replicas));
        if (ctx.out.json) ctx.out.emit(report);
        else ctx.out.info(o.verbose ? verboseStatus(report) : compactStatus(report, useColor(process.stdout)));
        if (report.state === 'critical') process.exitCode = ExitCode.FATAL;
      } finally {
        await catalog.close();
      }
    });
}

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function useColor(stream: { isTTY?: boolean }): boolean {
  return !!stream.isTTY && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

const SEVERITY_COLOR: Record<string, string> = { critical: '\x1b[31m', warning: '\x1b[33m', ok: '\x1b[32m' };

/** One short line per job (and repository): its state, the checks that are not ok, and the most important message. */
export function compactStatus(report: MonitorReport, color: boolean): string {
  const paint = (sev: string, s: string) => (color ? `${SEVERITY_COLOR[sev] ?? ''}${s}\x1b[0m` : s);
  const rank: Record<string, number> = { critical: 2, warning: 1, ok: 0 };
  const rows = Object.entries(report.jobs).map(([job, sev]) => {
    const own = report.findings.filter((f) => f.job === job);
    const bad = own.filter((f) => f.severity !== 'ok').sort((a, b) => rank[b.severity]! - rank[a.severity]!);
    const headline = bad[0] ?? own.find((f) => f.check === 'rpo') ?? own[0];
    const msg = headline ? headline.message : '';
    return [job, paint(sev, sev === 'ok' ? 'ok' : sev.toUpperCase()), bad.map((f) => f.check).join(', ') || '-', msg.length > 72 ? msg.slice(0, 71) + '…' : msg];
  });
  // padding must not count the colour codes
  const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');
  const head = ['JOB', 'STATE', 'PROBLEMS', 'DETAIL'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => plain(r[i]!).length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c + ' '.repeat(widths[i]! - plain(c).length))).join('  ').trimEnd();
  return [line(head), ...rows.map(line), '', `overall: ${paint(report.state, report.state)} (lifeboat status --verbose for every check)`].join('\n');
}

export function verboseStatus(report: MonitorReport): string {
  return (
    table(
      ['Job', 'Check', 'Severity', 'Message'],
      report.findings.map((f) => [f.job, f.check, f.severity === 'ok' ? 'ok' : f.severity.toUpperCase(), f.message]),
    ) + `\noverall: ${report.state}`
  );
}
