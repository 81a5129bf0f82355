import { Command } from 'commander';
import { ConfigError, ExitCode } from '../../errors.js';
import { planCheck } from '../../policy/plan.js';
import { runJob } from '../../ops/jobs.js';
import { catalogHooks, openConfigCatalog, startService } from '../../ops/service.js';
import { evaluate, jobsFromConfig } from '../../ops/monitor.js';
import type { CliContext } from '../context.js';
import { formatBytes, formatDuration, table } from '../output.js';

export function registerPlan(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const plan = program.command('plan').description('inspect the backup plan in the config');
  plan
    .command('check')
    .description('check the 3-2-1 rule for every source: >= 3 copies, >= 2 storage kinds, >= 1 off-site')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const res = planCheck(cfg);
      if (ctx.out.json) ctx.out.emit(res);
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
      }
      if (res.some((r) => !r.ok)) process.exitCode = ExitCode.FATAL;
    });

  program
    .command('run')
    .description('run a job of the plan now: backup, copies, retention')
    .argument('<job>', 'job name from the config')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      if (!cfg.jobs[name]) throw new ConfigError(`unknown job "${name}" (defined in ${cfg.file}: ${Object.keys(cfg.jobs).join(', ') || 'none'})`);
      const controller = new AbortController();
      const onSig = () => controller.abort(new Error('interrupted'));
      process.once('SIGTERM', onSig);
      const catalog = await openConfigCatalog(cfg);
      const hooks = catalogHooks(cfg, catalog);
      const runId = await hooks.onRunStart(name, 1);
      let r;
      try {
        r = await runJob(cfg, name, { signal: controller.signal, log: (m) => ctx.out.info(m), retryLockMs: ctx.retryLockMs() || 60_000 });
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
      const service = await startService(cfg, { log, ...(o.listen ? { listen: o.listen } : {}) });
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log(`received ${sig}`);
          void service.stop().then(resolve);
        };
        process.removeAllListeners('SIGTERM');
        process.removeAllListeners('SIGINT');
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      log('daemon stopped');
    });

  program
    .command('status')
    .description('per job: age of the last good backup vs its RPO, size anomalies, repeated failures, repository free space')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const catalog = await openConfigCatalog(cfg);
      try {
        const report = await evaluate(catalog, jobsFromConfig(cfg));
        if (ctx.out.json) ctx.out.emit(report);
        else {
          ctx.out.info(
            table(
              ['Job', 'Check', 'Severity', 'Message'],
              report.findings.map((f) => [f.job, f.check, f.severity === 'ok' ? 'ok' : f.severity.toUpperCase(), f.message]),
            ) + `\noverall: ${report.state}`,
          );
        }
        if (report.state === 'critical') process.exitCode = ExitCode.FATAL;
      } finally {
        await catalog.close();
      }
    });
}
