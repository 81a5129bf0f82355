import { writeFileSync, renameSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, ExitCode } from '../../errors.js';
import { openConfigCatalog } from '../../ops/service.js';
import { formatDurationPrecise as formatDuration } from '../../util/format.js';
import { runDrill } from '../../verify/drill.js';
import type { DrillResult } from '../../verify/drill-types.js';
import { listDrills } from '../../verify/drill-store.js';
import { buildReport, renderReportHtml, renderReportMarkdown } from '../../verify/report.js';
import type { CliContext } from '../context.js';
import { table } from '../output.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`expected a positive whole number, got "${v}"`);
  return n;
}

function yesNo(b: boolean): string {
  return b ? 'yes' : 'NO';
}

function printDrill(ctx: CliContext, r: DrillResult): void {
  ctx.out.info(`drill of job ${r.job} (source ${r.source}, ${r.kind}): ${r.status === 'success' ? 'PASSED' : 'FAILED'}`);
  ctx.out.info(`snapshot: ${r.snapshotId ? `${r.snapshotId.slice(0, 8)} of ${r.snapshotTime!.toISOString()}` : '-'}`);
  ctx.out.info(`target:   ${r.target}`);
  ctx.out.info('');
  ctx.out.info(table(['Phase', 'Time', 'Result', 'Detail'], r.phases.map((p) => [p.name, formatDuration(p.ms), p.ok ? 'ok' : 'FAILED', p.detail ?? ''])));
  if (r.checks.length) {
    ctx.out.info('');
    ctx.out.info(table(['Check', 'Result', 'Detail'], r.checks.map((c) => [c.name, c.ok ? 'ok' : 'FAILED', c.detail])));
  }
  ctx.out.info('');
  ctx.out.info(`restore time: ${formatDuration(r.restoreMs)} (RTO ${formatDuration(r.rtoMs)}: ${r.rtoMet ? 'met' : 'MISSED'})`);
  ctx.out.info(`backup age:   ${r.backupAgeMs === null ? 'no snapshot' : formatDuration(r.backupAgeMs)} (RPO ${formatDuration(r.rpoMs)}: ${r.rpoMet ? 'met' : 'MISSED'})`);
  ctx.out.info(`total:        ${formatDuration(r.totalMs)}`);
}

export function registerDrill(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('drill')
    .description("restore drill: restore the job's newest snapshot into a scratch target, verify it, time it against the RTO, drop the target")
    .argument('<job>', 'job name from the config')
    .option('--snapshot <id>', 'drill this snapshot instead of the newest one')
    .option('--keep-target', 'leave the scratch database/directory in place for inspection')
    .option('--no-notify', 'do not alert through the configured notifiers')
    .action(async (job: string, o: { snapshot?: string; keepTarget?: boolean; notify: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      if (!cfg.jobs[job]) throw new ConfigError(`unknown job "${job}" (defined in ${cfg.file}: ${Object.keys(cfg.jobs).join(', ') || 'none'})`);
      const controller = new AbortController();
      const onSig = () => controller.abort(new Error('interrupted'));
      process.once('SIGTERM', onSig);
      const catalog = await openConfigCatalog(cfg);
      let r: DrillResult;
      try {
        r = await runDrill(ctx.plan(), job, {
          ...(o.snapshot ? { snapshot: o.snapshot } : {}),
          ...(o.keepTarget ? { keepTarget: true } : {}),
          signal: controller.signal,
          catalog,
          notify: o.notify,
          log: (m) => {
            if (!ctx.out.json && !ctx.out.quiet) process.stderr.write(`${m}\n`);
          },
        });
      } finally {
        process.off('SIGTERM', onSig);
        await catalog.close();
      }
      if (ctx.out.json) ctx.out.emit(r);
      else printDrill(ctx, r);
      if (r.status !== 'success') {
        process.stderr.write(`lifeboat: drill of job ${job} failed: ${r.error}\n`);
        process.exitCode = r.exitCode ?? ExitCode.FATAL;
      }
    });

  program
    .command('drills')
    .description('list recorded restore drills, newest first')
    .option('--job <job>', 'only this job')
    .option('--limit <n>', 'at most n drills', positiveInt, 50)
    .action(async (o: { job?: string; limit: number }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const catalog = await openConfigCatalog(cfg);
      try {
        const list = await listDrills(catalog, { ...(o.job ? { job: o.job } : {}), limit: o.limit });
        if (ctx.out.json) ctx.out.emit(list);
        else if (!list.length) ctx.out.info('no drills recorded');
        else {
          ctx.out.info(
            table(
              ['ID', 'Started', 'Job', 'Kind', 'Snapshot', 'Status', 'Restore', 'RTO met', 'Backup age', 'RPO met', 'Error'],
              list.map((r) => [
                String(r.id),
                r.startedAt.toISOString().slice(0, 19).replace('T', ' '),
                r.job,
                r.kind,
                r.snapshotId?.slice(0, 8) ?? '-',
                r.status,
                formatDuration(r.restoreMs),
                yesNo(r.rtoMet),
                r.backupAgeMs === null ? '-' : formatDuration(r.backupAgeMs),
                yesNo(r.rpoMet),
                (r.error ?? '').slice(0, 80),
              ]),
            ),
          );
        }
      } finally {
        await catalog.close();
      }
    });

  program
    .command('report')
    .description('recoverability report: per job last backup vs RPO, last verified restore vs RTO, 3-2-1 status, history charts')
    .option('--format <format>', 'md or html', 'md')
    .option('--out <file>', 'write to this file (default: stdout)')
    .option('--days <n>', 'history window in days', positiveInt, 30)
    .action(async (o: { format: string; out?: string; days: number }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (o.format !== 'md' && o.format !== 'html') throw new ConfigError(`--format: expected md or html, got "${o.format}"`);
      const cfg = ctx.config(true)!;
      const catalog = await openConfigCatalog(cfg);
      let text: string;
      let report;
      try {
        report = await buildReport(cfg, catalog, { days: o.days });
        text = o.format === 'html' ? renderReportHtml(report) : renderReportMarkdown(report);
      } finally {
        await catalog.close();
      }
      if (ctx.out.json && !o.out) {
        ctx.out.emit(report);
        return;
      }
      if (o.out) {
        const dest = path.resolve(o.out);
        const tmp = path.join(path.dirname(dest), `.${path.basename(dest)}.${process.pid}.tmp`);
        writeFileSync(tmp, text);
        renameSync(tmp, dest);
        ctx.out.info(`report written to ${dest}`);
        ctx.out.emit({ message_type: 'report', file: dest, format: o.format });
      } else process.stdout.write(text);
    });
}
