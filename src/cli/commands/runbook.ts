import { renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import type { Catalog } from '../../ops/catalog/types.js';
import { INCIDENT_IMPACTS, INCIDENT_STATUSES, IncidentStore, renderIncidentHtml, renderIncidentMarkdown, type Incident, type IncidentImpact, type IncidentStatus } from '../../ops/incidents.js';
import { openConfigCatalog } from '../../ops/service.js';
import { confirmManualStep, defaultActor, getRunbookRun, listRunbookRuns, planRunbook, resolveStepRef, resumeRunbook, runRunbook } from '../../runbook/engine.js';
import type { RunbookRun } from '../../runbook/store.js';
import { listRunbooks } from '../../runbook/load.js';
import type { ManualPrompt } from '../../runbook/steps.js';
import { previewPublish } from '../../server/api/publish.js';
import type { CliContext } from '../context.js';
import { collectRaw, table } from '../output.js';
import { formatElapsed as formatDuration } from '../../util/format.js';

/**
 * `lifeboat runbook ...` and `lifeboat incident ...`: thin wrappers over
 * src/runbook/engine.ts and src/ops/incidents.ts. Runs execute in this
 * process (no daemon needed); state lives in the catalog (daemon.catalog).
 *
 * Exit codes: run/resume 0 = success, 1 = a step failed (rolled back or not),
 * 130 = interrupted (resume it), 2 = usage/config errors, 11 = the run is
 * owned by another live process.
 */

function runId(v: string): number {
  const n = Number(v.replace(/^#/, ''));
  if (!Number.isInteger(n) || n < 1) throw new ConfigError(`expected a run/incident id (a positive number), got "${v}"`);
  return n;
}

const ts = (d: Date | null) => (d ? d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '-');

async function withCatalog<T>(ctx: CliContext, fn: (c: Catalog) => Promise<T>): Promise<T> {
  const cfg = ctx.config(true)!;
  const catalog = await openConfigCatalog(cfg);
  try {
    return await fn(catalog);
  } finally {
    await catalog.close();
  }
}

function printRun(ctx: CliContext, r: RunbookRun): void {
  ctx.out.info(`run #${r.id} of runbook ${r.runbook}: ${r.status.toUpperCase()}`);
  ctx.out.info(`started ${ts(r.startedAt)} by ${r.actor}${r.finishedAt ? `, finished ${ts(r.finishedAt)} (${formatDuration(r.finishedAt.getTime() - r.startedAt.getTime())})` : ''}${r.incidentId !== null ? `, incident #${r.incidentId}` : ''}`);
  ctx.out.info('');
  ctx.out.info(
    table(
      ['#', 'Step', 'Type', 'Status', 'Time', 'Detail'],
      r.steps.map((s) => [
        String(s.index),
        s.name,
        s.type,
        s.status,
        s.startedAt && s.finishedAt ? formatDuration(s.finishedAt.getTime() - s.startedAt.getTime()) : s.startedAt ? 'running' : '',
        (s.error ?? s.output.split('\n').filter(Boolean).slice(-1)[0] ?? '').slice(0, 100) + (s.confirmedBy ? ` (confirmed by ${s.confirmedBy})` : ''),
      ]),
    ),
  );
  for (const s of r.steps) {
    const rb = (s as { rollback?: { status: string; error?: string } | null }).rollback;
    if (rb) ctx.out.info(`  rollback of step ${s.index}: ${rb.status}${rb.error ? `: ${rb.error}` : ''}`);
  }
}

function exitFor(r: RunbookRun): void {
  if (r.status === 'success') return;
  process.exitCode = r.status === 'interrupted' ? ExitCode.INTERRUPTED : ExitCode.FATAL;
}

/** Interactive confirmation on a terminal; other processes may confirm meanwhile (the prompt is then cancelled). */
const ttyPrompt: ManualPrompt = async ({ index, name, instructions, signal }) => {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    process.stderr.write(`\n>>> step ${index} "${name}": ${instructions}\n`);
    const a = (await rl.question('Done? [y]es / [n]o (reject) — optional note after a space: ', { signal })).trim();
    const [word, ...rest] = a.split(/\s+/);
    const note = rest.join(' ') || undefined;
    if (/^(y|yes)$/i.test(word ?? '')) return { ok: true, ...(note ? { note } : {}) };
    if (/^(n|no)$/i.test(word ?? '')) return { ok: false, ...(note ? { note } : {}) };
    process.stderr.write('no answer recorded; confirm with "lifeboat runbook confirm" from another terminal\n');
    return undefined;
  } catch {
    return undefined;
  } finally {
    rl.close();
  }
};

function printIncident(ctx: CliContext, i: Incident): void {
  ctx.out.info(`incident #${i.id}: ${i.title}`);
  ctx.out.info(`status ${i.status}, impact ${i.impact}, services ${i.services.join(', ') || 'none'}`);
  ctx.out.info(`status page: ${i.visibility === 'public' ? `public${i.publicTitle ? ` as "${i.publicTitle}"` : ''}` : 'private (not shown; publish with: lifeboat incident publish ' + i.id + ' --message TEXT)'}`);
  ctx.out.info(`started ${ts(i.startedAt)}${i.resolvedAt ? `, resolved ${ts(i.resolvedAt)} (${formatDuration(i.resolvedAt.getTime() - i.startedAt.getTime())})` : ''}${i.runbookRunId !== null ? `, runbook run #${i.runbookRunId}` : ''}`);
  if (i.rootCause) ctx.out.info(`root cause: ${i.rootCause}`);
  if (i.lessonsLearned) ctx.out.info(`lessons learned: ${i.lessonsLearned}`);
  for (const a of i.actionItems) ctx.out.info(`action item: ${a}`);
  ctx.out.info('');
  for (const e of i.timeline) ctx.out.info(`${ts(e.at)}  ${e.kind.padEnd(14)} ${e.text.split('\n').join('\n' + ' '.repeat(36))}`);
}

function writeAtomic(file: string, text: string): void {
  const abs = path.resolve(file);
  const tmp = `${abs}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, abs);
}

export function registerRunbook(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const rb = program.command('runbook').description('disaster-recovery runbooks: list, plan (dry run), run, resume, confirm manual steps');

  rb.command('list')
    .description('list the runbooks of the config (validates them all)')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const all = listRunbooks(ctx.config(true)!);
      ctx.out.emit(all);
      if (!all.length) return ctx.out.info('no runbooks configured (runbooks: in the config)');
      ctx.out.info(table(['Name', 'Scenario', 'Severity', 'Steps', 'Est.', 'Services', 'Title'], all.map((r) => [r.name, r.scenario, r.severity, String(r.steps.length), r.estimatedMinutes !== undefined ? `${r.estimatedMinutes}m` : '', r.services.join(','), r.title])));
    });

  rb.command('plan')
    .description('dry run: what each step would do, with the snapshots it would restore resolved now')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const p = await planRunbook(ctx.config(true)!, name);
      ctx.out.emit(p);
      ctx.out.info(`runbook ${p.runbook.name}: ${p.runbook.title} (${p.runbook.scenario}, severity ${p.runbook.severity}${p.runbook.estimatedMinutes !== undefined ? `, about ${p.runbook.estimatedMinutes} min` : ''})`);
      if (p.runbook.description) ctx.out.info(p.runbook.description.trim());
      if (p.runbook.services.length) ctx.out.info(`services: ${p.runbook.services.join(', ')}`);
      ctx.out.info('');
      for (const s of p.steps) {
        ctx.out.info(`${s.index}. [${s.type}] ${s.name}${s.idempotent ? '' : ' (not idempotent)'}: ${s.description}`);
        if (s.rollback) ctx.out.info(`   rollback: ${s.rollback}`);
      }
    });

  rb.command('run')
    .description('run a runbook now (in this process); opens an incident; rolls back completed steps on failure')
    .argument('<name>')
    .option('--actor <name>', 'who runs it (default $LIFEBOAT_ACTOR or user@host)')
    .option('--no-prompt', 'never ask on the terminal for manual steps (confirm them with "runbook confirm")')
    .action(async (name: string, o: { actor?: string; prompt: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const r = await withCatalog(ctx, (catalog) =>
        runRunbook(cfg, catalog, name, {
          ...(o.actor ? { actor: o.actor } : {}),
          log: (m) => (ctx.out.json ? process.stderr.write(m + '\n') : ctx.out.info(m)),
          ...(o.prompt && process.stdin.isTTY && !ctx.out.json ? { prompt: ttyPrompt } : {}),
        }),
      );
      ctx.out.emit(r);
      ctx.out.info('');
      printRun(ctx, r);
      exitFor(r);
    });

  rb.command('resume')
    .description('continue a run after Lifeboat itself died (completed steps are not re-run)')
    .argument('<run>', 'run id')
    .option('--retry-step', 'run again the non-idempotent step that was running when Lifeboat died')
    .option('--skip-step', 'treat the step that was running when Lifeboat died as done')
    .option('--force', 'take over a run whose process was on another host')
    .option('--actor <name>')
    .option('--no-prompt', 'never ask on the terminal for manual steps')
    .action(async (id: string, o: { retryStep?: boolean; skipStep?: boolean; force?: boolean; actor?: string; prompt: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (o.retryStep && o.skipStep) throw new ConfigError('give either --retry-step or --skip-step');
      const cfg = ctx.config(true)!;
      const r = await withCatalog(ctx, (catalog) =>
        resumeRunbook(cfg, catalog, runId(id), {
          ...(o.actor ? { actor: o.actor } : {}),
          ...(o.retryStep ? { decision: 'retry' as const } : o.skipStep ? { decision: 'skip' as const } : {}),
          ...(o.force ? { force: true } : {}),
          log: (m) => (ctx.out.json ? process.stderr.write(m + '\n') : ctx.out.info(m)),
          ...(o.prompt && process.stdin.isTTY && !ctx.out.json ? { prompt: ttyPrompt } : {}),
        }),
      );
      ctx.out.emit(r);
      ctx.out.info('');
      printRun(ctx, r);
      exitFor(r);
    });

  rb.command('runs')
    .description('recent runbook runs, newest first')
    .option('--runbook <name>')
    .option('--limit <n>', 'at most this many', '20')
    .action(async (o: { runbook?: string; limit: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const runs = await withCatalog(ctx, (c) => listRunbookRuns(c, { ...(o.runbook ? { runbook: o.runbook } : {}), limit: runId(o.limit) }));
      ctx.out.emit(runs);
      if (!runs.length) return ctx.out.info('no runbook runs yet');
      ctx.out.info(
        table(
          ['Run', 'Runbook', 'Status', 'Started', 'Duration', 'Steps ok', 'Incident', 'Actor'],
          runs.map((r) => [
            String(r.id),
            r.runbook,
            r.status,
            ts(r.startedAt),
            r.finishedAt ? formatDuration(r.finishedAt.getTime() - r.startedAt.getTime()) : '',
            `${r.steps.filter((s) => s.status === 'success').length}/${r.steps.length}`,
            r.incidentId === null ? '' : `#${r.incidentId}`,
            r.actor,
          ]),
        ),
      );
    });

  rb.command('show')
    .description('one run: every step with its status, timing and output')
    .argument('<run>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const r = await withCatalog(ctx, (c) => getRunbookRun(c, runId(id)));
      if (!r) throw new LifeboatError(`no runbook run #${id}`, 2);
      ctx.out.emit(r);
      printRun(ctx, r);
      for (const s of r.steps) {
        if (!s.output && !s.error) continue;
        ctx.out.info(`\n--- step ${s.index} "${s.name}" ---`);
        if (s.output) ctx.out.info(s.output);
        if (s.error) ctx.out.info(`error: ${s.error}`);
      }
    });

  rb.command('confirm')
    .description('confirm (or --reject) a manual step a run is waiting for; works from any process')
    .argument('<run>', 'run id')
    .argument('<step>', 'step number (1-based) or name')
    .option('--reject', 'the step could not be done: fail it (the run rolls back)')
    .option('--note <text>', 'a note recorded with the confirmation')
    .option('--actor <name>')
    .action(async (id: string, step: string, o: { reject?: boolean; note?: string; actor?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const actor = o.actor ?? defaultActor();
      await withCatalog(ctx, async (c) => {
        const idx = await resolveStepRef(c, runId(id), step);
        await confirmManualStep(c, runId(id), idx, actor, { ok: !o.reject, ...(o.note ? { note: o.note } : {}) });
        ctx.out.emit({ run: runId(id), step: idx, confirmed: !o.reject, actor });
        ctx.out.info(`step ${idx} of run #${id} ${o.reject ? 'rejected' : 'confirmed'} by ${actor}`);
      });
    });

  registerIncident(program, ctxOf);
}

function parseImpact(v: string): IncidentImpact {
  if (!(INCIDENT_IMPACTS as readonly string[]).includes(v)) throw new ConfigError(`--impact ${v}: use ${INCIDENT_IMPACTS.join(', ')}`);
  return v as IncidentImpact;
}
/** `--audience users,partners --audience regulators` → [users, partners, regulators] */
function audienceList(v: string[]): string[] {
  return [...new Set(v.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean))];
}
function parseStatus(v: string): IncidentStatus {
  if (!(INCIDENT_STATUSES as readonly string[]).includes(v)) throw new ConfigError(`--status ${v}: use ${INCIDENT_STATUSES.join(', ')}`);
  return v as IncidentStatus;
}

function registerIncident(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const inc = program.command('incident').description('incidents: open, update, resolve, post-incident review and report');
  const store = (ctx: CliContext, c: Catalog) => new IncidentStore(c, { config: ctx.config(true)!, log: (m) => ctx.out.warn(m) });

  inc
    .command('list')
    .description('incidents, newest first')
    .option('--open', 'only unresolved incidents')
    .option('--limit <n>', 'at most this many', '20')
    .action(async (o: { open?: boolean; limit: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const all = await withCatalog(ctx, (c) => store(ctx, c).list({ ...(o.open ? { open: true } : {}), limit: runId(o.limit) }));
      ctx.out.emit(all);
      if (!all.length) return ctx.out.info(o.open ? 'no open incidents' : 'no incidents');
      ctx.out.info(table(['#', 'Status', 'Impact', 'Started', 'Duration', 'Services', 'Title'], all.map((i) => [String(i.id), i.status, i.impact, ts(i.startedAt), i.resolvedAt ? formatDuration(i.resolvedAt.getTime() - i.startedAt.getTime()) : 'open', i.services.join(','), i.title])));
    });

  inc
    .command('show')
    .description('one incident: status, services, updates, timeline, review')
    .argument('<id>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const i = await withCatalog(ctx, (c) => store(ctx, c).get(runId(id)));
      if (!i) throw new LifeboatError(`no incident #${id}`, 2);
      ctx.out.emit(i);
      printIncident(ctx, i);
    });

  inc
    .command('open')
    .description('open an incident by hand (notifies incidents.channels)')
    .requiredOption('--title <text>')
    .option('--impact <impact>', `one of ${INCIDENT_IMPACTS.join(', ')}`, 'minor')
    .option('--service <name>', 'affected service (repeatable)', collectRaw)
    .option('--message <text>', 'first update')
    .option('--status <status>', 'investigating (default) or identified / monitoring')
    .option('--private', 'keep it off the public status page (publish later with "incident publish")')
    .option('--audience <names>', 'also tell these incidents.audiences (comma-separated, repeatable), each with its own channels and template', collectRaw)
    .option('--author <name>')
    .action(async (o: { title: string; impact: string; service?: string[]; message?: string; status?: string; author?: string; private?: boolean; audience?: string[] }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      for (const s of o.service ?? []) if (!cfg.services[s]) throw new ConfigError(`unknown service "${s}" (defined: ${Object.keys(cfg.services).join(', ') || 'none'})`);
      const i = await withCatalog(ctx, (c) =>
        store(ctx, c).create({
          title: o.title,
          impact: parseImpact(o.impact),
          services: o.service ?? [],
          author: o.author ?? defaultActor(),
          visibility: o.private ? 'private' : 'public',
          ...(o.audience ? { audiences: audienceList(o.audience) } : {}),
          ...(o.message ? { message: o.message } : {}),
          ...(o.status ? { status: parseStatus(o.status) } : {}),
        }),
      );
      ctx.out.emit(i);
      ctx.out.info(`incident #${i.id} opened${o.private ? ' (private: not on the status page)' : ''}`);
    });

  inc
    .command('publish')
    .description('put an incident on the public status page (shows exactly what will be public); runbook incidents are private until published')
    .argument('<id>')
    .option('--message <text>', 'public update: the text the status page shows')
    .option('--title <text>', 'public headline (default: the incident title)')
    .option('--dry-run', 'only show what the status page would show')
    .option('--author <name>')
    .action(async (id: string, o: { message?: string; title?: string; dryRun?: boolean; author?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const n = runId(id);
      const req = { ...(o.message !== undefined ? { message: o.message } : {}), ...(o.title !== undefined ? { title: o.title } : {}) };
      const r = await withCatalog(ctx, async (c) => {
        const cur = await store(ctx, c).get(n);
        if (!cur) throw new LifeboatError(`no incident #${id}`, 2);
        const preview = previewPublish(cur, req);
        return { preview, incident: o.dryRun ? cur : await store(ctx, c).publish(n, { ...req, author: o.author ?? defaultActor() }) };
      });
      const p = r.preview.incident;
      ctx.out.emit(o.dryRun ? r.preview : r.incident);
      ctx.out.info(`${o.dryRun ? 'the status page would show' : `incident #${n} published; the status page shows`}:`);
      ctx.out.info(`  ${p.title} (${p.impact} impact, ${p.status}${p.services.length ? `, affects ${p.services.join(', ')}` : ''})`);
      if (!p.updates.length) ctx.out.info('  (no public updates: give --message to say something)');
      for (const u of p.updates) ctx.out.info(`  ${u.at.replace('T', ' ').slice(0, 16)} UTC  ${u.status ?? 'update'}: ${u.message}`);
    });

  inc
    .command('unpublish')
    .description('take an incident off the public status page')
    .argument('<id>')
    .option('--author <name>')
    .action(async (id: string, o: { author?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const i = await withCatalog(ctx, (c) => store(ctx, c).unpublish(runId(id), { author: o.author ?? defaultActor() }));
      ctx.out.emit(i);
      ctx.out.info(`incident #${i.id} is private: no longer on the status page`);
    });

  inc
    .command('update')
    .description('post an update (optionally a new status); notifies incidents.channels')
    .argument('<id>')
    .requiredOption('--message <text>')
    .option('--status <status>', INCIDENT_STATUSES.join(' | '))
    .option('--internal', 'not public (not on the status page, not notified)')
    .option('--audience <names>', 'also tell these incidents.audiences (comma-separated, repeatable), each with its own channels and template', collectRaw)
    .option('--author <name>')
    .action(async (id: string, o: { message: string; status?: string; internal?: boolean; author?: string; audience?: string[] }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const i = await withCatalog(ctx, (c) =>
        store(ctx, c).addUpdate(runId(id), {
          message: o.message,
          author: o.author ?? defaultActor(),
          ...(o.status ? { status: parseStatus(o.status) } : {}),
          ...(o.internal ? { public: false } : {}),
          ...(o.audience ? { audiences: audienceList(o.audience) } : {}),
        }),
      );
      ctx.out.emit(i);
      ctx.out.info(`incident #${i.id} updated (status ${i.status})`);
    });

  inc
    .command('resolve')
    .description('mark resolved; sends the "resolved" message')
    .argument('<id>')
    .option('--message <text>', 'resolution note', 'Resolved.')
    .option('--audience <names>', 'also tell these incidents.audiences (comma-separated, repeatable)', collectRaw)
    .option('--author <name>')
    .action(async (id: string, o: { message: string; author?: string; audience?: string[] }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const i = await withCatalog(ctx, (c) => store(ctx, c).resolve(runId(id), { message: o.message, author: o.author ?? defaultActor(), ...(o.audience ? { audiences: audienceList(o.audience) } : {}) }));
      ctx.out.emit(i);
      ctx.out.info(`incident #${i.id} resolved after ${formatDuration(i.resolvedAt!.getTime() - i.startedAt.getTime())}`);
    });

  inc
    .command('postmortem')
    .description('record the post-incident review')
    .argument('<id>')
    .option('--summary <text>')
    .option('--root-cause <text>')
    .option('--lessons <text>', 'lessons learned')
    .option('--action <text>', 'action item (repeatable; replaces the list)', collectRaw)
    .action(async (id: string, o: { summary?: string; rootCause?: string; lessons?: string; action?: string[] }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const i = await withCatalog(ctx, (c) =>
        store(ctx, c).setPostmortem(runId(id), {
          ...(o.summary !== undefined ? { summary: o.summary } : {}),
          ...(o.rootCause !== undefined ? { rootCause: o.rootCause } : {}),
          ...(o.lessons !== undefined ? { lessonsLearned: o.lessons } : {}),
          ...(o.action !== undefined ? { actionItems: o.action } : {}),
        }),
      );
      ctx.out.emit(i);
      ctx.out.info(`incident #${i.id}: post-incident review saved`);
    });

  inc
    .command('report')
    .description('post-incident report (Markdown or self-contained HTML)')
    .argument('<id>')
    .option('--format <fmt>', 'md or html', 'md')
    .option('--out <file>', 'write to this file (default stdout)')
    .action(async (id: string, o: { format: string; out?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (o.format !== 'md' && o.format !== 'html') throw new ConfigError(`--format ${o.format}: use md or html`);
      const i = await withCatalog(ctx, (c) => store(ctx, c).get(runId(id)));
      if (!i) throw new LifeboatError(`no incident #${id}`, 2);
      const text = o.format === 'html' ? renderIncidentHtml(i) : renderIncidentMarkdown(i);
      if (o.out) {
        writeAtomic(o.out, text);
        ctx.out.info(`report written to ${o.out}`);
      } else process.stdout.write(text);
    });
}
