import { resolvePlan, type ResolvedPlan } from '../config/resolve.js';
import { hostname, userInfo } from 'node:os';
import type { LifeboatConfig } from '../config/config.js';
import { LifeboatError, errorMessage } from '../errors.js';
import { PROCESS_INSTANCE } from '../ops/catalog/instance.js';
import type { Catalog } from '../ops/catalog/types.js';
import { IncidentStore, incidentsConfig, type IncidentImpact } from '../ops/incidents.js';
import { getRunbook, summarize, type RunbookSummary } from './load.js';
import { stepName } from '../config/runbook-check.js';
import { runbookIncident, type RollbackStep, type RunbookDef, type RunbookSeverity } from '../config/runbook.js';
import { RunStore, isOrphaned, publicRun, tail, type RunStatus, type StoredRun } from './store.js';
import { StepAborted, StepFailure, describeRestoreSnapshot, describeStep, executeStep, isIdempotent, type ManualPrompt, type StepContext } from './steps.js';

import type { RunbookRun } from './store.js';

/**
 * The runbook engine. A run executes the steps in order in this process
 * (no daemon needed), timing each one and persisting its state in the
 * catalog before and after it runs. On the first failing step it stops and
 * runs the rollbacks of the completed steps in reverse order. Every run opens
 * an incident whose timeline records each step. That incident is private
 * (not on the status page) unless the runbook says `incident.publish: true`;
 * what Lifeboat writes into it (who started what, step errors) is recorded as
 * system updates and timeline events, which never reach the public page.
 *
 * Crash safety: if Lifeboat itself dies, `resumeRunbook` continues the run
 * from the stored state. Completed steps are never re-run; a step that was
 * running when Lifeboat died is re-run only if it is idempotent (default for
 * http-check, wait, manual and read-only sql) — otherwise the operator
 * decides: `decision: 'retry'` or `'skip'` (CLI --retry-step / --skip-step).
 */

export interface RunOptions {
  actor?: string;
  signal?: AbortSignal;
  log?: (m: string) => void;
  onStarted?: (runId: number) => void;
  /** Interactive confirmation of manual steps (CLI on a TTY). */
  prompt?: ManualPrompt;
  /** Poll interval of waiting manual steps (default 500 ms). */
  pollMs?: number;
}

export interface ResumeOptions extends Omit<RunOptions, 'onStarted'> {
  /** What to do with a non-idempotent step that was running when Lifeboat died. */
  decision?: 'retry' | 'skip';
  /** Take over a run owned by a process on another host. */
  force?: boolean;
}

export function defaultActor(): string {
  if (process.env.LIFEBOAT_ACTOR) return process.env.LIFEBOAT_ACTOR;
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  return `${user}@${hostname()}`;
}

export function impactOf(severity: RunbookSeverity | string): IncidentImpact {
  return severity === 'critical' ? 'critical' : severity === 'high' ? 'major' : 'minor';
}

const fmtMs = (ms: number) => (ms < 1000 ? `${ms} ms` : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`);

export async function planRunbook(
  cfg: LifeboatConfig,
  name: string,
  opts: { catalog?: Catalog } = {},
): Promise<{ runbook: RunbookSummary; steps: Array<{ index: number; name: string; type: string; description: string; rollback?: string; idempotent: boolean }> }> {
  void opts;
  const rb = getRunbook(cfg, name);
  incidentsConfig(cfg); // validate channels now rather than mid-run
  let plan: ResolvedPlan | undefined;
  const describe = async (s: RollbackStep) => {
    if (s.type !== 'restore') return describeStep(s);
    const snap = await describeRestoreSnapshot((plan ??= resolvePlan(cfg)), s);
    return `restore ${snap}${s.to ? ` into ${s.to}` : ' into the source itself'}${s.clean ? ' (clean)' : ''}${s.targetTime ? `, point in time ${s.targetTime}` : ''}`;
  };
  const steps = [];
  for (const [i, s] of rb.def.steps.entries()) {
    steps.push({
      index: i + 1,
      name: stepName(s, i + 1),
      type: s.type,
      description: await describe(s),
      ...(s.rollback ? { rollback: `${s.rollback.type}: ${await describe(s.rollback)}` } : {}),
      idempotent: isIdempotent(s),
    });
  }
  return { runbook: summarize(rb.name, rb.def, rb.file), steps };
}

interface Drive {
  cfg: LifeboatConfig;
  /** The plan, resolved once per run: restore steps take their source and repository from it. */
  plan: ResolvedPlan;
  runs: RunStore;
  incidents: IncidentStore;
  runId: number;
  name: string;
  def: RunbookDef;
  actor: string;
  incidentId: number | null;
  opts: ResumeOptions;
  log: (m: string) => void;
}

async function event(d: Drive, kind: string, text: string): Promise<void> {
  if (d.incidentId === null) return;
  await d.incidents.addEvent(d.incidentId, kind, text).catch((e: unknown) => d.log(`warning: incident #${d.incidentId}: cannot record event: ${errorMessage(e)}`));
}

class Interrupted extends Error {}

function ctxFor(d: Drive, index: number, name: string, phase: 'step' | 'rollback'): StepContext {
  return {
    cfg: d.cfg,
    plan: d.plan,
    runs: d.runs,
    runId: d.runId,
    runbook: d.name,
    def: d.def,
    index,
    stepName: name,
    phase,
    incidents: d.incidents,
    incidentId: d.incidentId,
    actor: d.actor,
    signal: d.opts.signal,
    log: d.log,
    prompt: d.opts.prompt,
    pollMs: d.opts.pollMs ?? 500,
    onWaiting: async (waiting) => {
      if (phase === 'step') await d.runs.setStep(d.runId, index, { status: waiting ? 'waiting' : 'running' });
      await d.runs.setRun(d.runId, { status: waiting ? 'waiting' : 'running' });
      if (waiting) await event(d, 'waiting', `step ${index} "${name}" waits for confirmation (lifeboat runbook confirm ${d.runId} ${index})`);
    },
  };
}

/** Run one forward step; true = success. Throws Interrupted on abort. */
async function runStep(d: Drive, index: number, step: RollbackStep): Promise<boolean> {
  const name = stepName(step, index);
  const n = d.def.steps.length;
  const t0 = new Date();
  await d.runs.setStep(d.runId, index, { status: 'running', startedAt: t0, finishedAt: null, error: null, attempts: 'inc' });
  d.log(`[${index}/${n}] ${step.type} "${name}": ${describeStep(step)}`);
  await event(d, 'step', `step ${index}/${n} "${name}" (${step.type}) started`);
  try {
    const output = await executeStep(step, ctxFor(d, index, name, 'step'));
    const t1 = new Date();
    const ms = t1.getTime() - t0.getTime();
    await d.runs.setStep(d.runId, index, { status: 'success', finishedAt: t1, output });
    d.log(`[${index}/${n}] ok in ${fmtMs(ms)}${output ? `: ${tail(output, 300).split('\n').slice(-3).join(' / ')}` : ''}`);
    await event(d, 'step', `step ${index}/${n} "${name}" (${step.type}) succeeded in ${fmtMs(ms)}${output ? `\n${tail(output, 1500)}` : ''}`);
    return true;
  } catch (err) {
    if (err instanceof StepAborted || d.opts.signal?.aborted) throw new Interrupted();
    const t1 = new Date();
    const ms = t1.getTime() - t0.getTime();
    const msg = errorMessage(err);
    const output = err instanceof StepFailure ? err.output : '';
    await d.runs.setStep(d.runId, index, { status: 'failed', finishedAt: t1, output, error: msg });
    d.log(`[${index}/${n}] FAILED after ${fmtMs(ms)}: ${msg}`);
    await event(d, 'step-failed', `step ${index}/${n} "${name}" (${step.type}) FAILED after ${fmtMs(ms)}: ${msg}${output ? `\n${tail(output, 1500)}` : ''}`);
    return false;
  }
}

/** Rollbacks of the completed steps, newest first. Returns [ran, failed]. */
async function rollBack(d: Drive, run: StoredRun): Promise<{ ran: number; failed: number }> {
  let ran = 0;
  let failed = 0;
  const todo = run.steps.filter((s) => (s.status === 'success' || s.status === 'rollback-failed') && d.def.steps[s.index - 1]?.rollback).reverse();
  if (todo.length) d.log(`rolling back ${todo.length} completed step(s): ${todo.map((s) => s.index).join(', ')}`);
  for (const s of todo) {
    const rb = d.def.steps[s.index - 1]!.rollback!;
    if (s.rollback?.status === 'success') continue;
    if (s.status === 'rollback-failed' && s.rollback?.status === 'failed') {
      failed++;
      continue;
    }
    const rbName = `${s.name}:rollback`;
    const t0 = new Date();
    await d.runs.setStep(d.runId, s.index, { rbStatus: 'running', rbStartedAt: t0, rbFinishedAt: null, rbError: null });
    d.log(`[rollback ${s.index}] ${rb.type} "${rbName}": ${describeStep(rb)}`);
    await event(d, 'rollback', `rollback of step ${s.index} "${s.name}" (${rb.type}) started`);
    ran++;
    try {
      const output = await executeStep(rb, ctxFor(d, s.index, rbName, 'rollback'));
      const t1 = new Date();
      await d.runs.setStep(d.runId, s.index, { status: 'rolled-back', rbStatus: 'success', rbFinishedAt: t1, rbOutput: output });
      d.log(`[rollback ${s.index}] ok in ${fmtMs(t1.getTime() - t0.getTime())}`);
      await event(d, 'rollback', `rollback of step ${s.index} "${s.name}" succeeded in ${fmtMs(t1.getTime() - t0.getTime())}${output ? `\n${tail(output, 1500)}` : ''}`);
    } catch (err) {
      if (err instanceof StepAborted || d.opts.signal?.aborted) throw new Interrupted();
      const t1 = new Date();
      const msg = errorMessage(err);
      failed++;
      await d.runs.setStep(d.runId, s.index, { status: 'rollback-failed', rbStatus: 'failed', rbFinishedAt: t1, rbOutput: err instanceof StepFailure ? err.output : '', rbError: msg });
      d.log(`[rollback ${s.index}] FAILED: ${msg}`);
      await event(d, 'rollback-failed', `rollback of step ${s.index} "${s.name}" FAILED after ${fmtMs(t1.getTime() - t0.getTime())}: ${msg}`);
    }
  }
  return { ran, failed };
}

async function finish(d: Drive, status: RunStatus, error: string | null, text: string): Promise<RunbookRun> {
  const now = new Date();
  await d.runs.setRun(d.runId, { status, finishedAt: now, error });
  d.log(text);
  if (d.incidentId !== null) {
    try {
      // A published incident is resolved when the run succeeds, so the public
      // page does not keep showing an outage that is over.
      const published = status === 'success' && !d.def.resolveOnSuccess ? (await d.incidents.get(d.incidentId))?.visibility === 'public' : false;
      if (status === 'success' && (d.def.resolveOnSuccess || published)) await d.incidents.resolve(d.incidentId, { message: text, author: d.actor, system: true });
      else await d.incidents.addUpdate(d.incidentId, { status: status === 'success' ? 'monitoring' : 'investigating', message: text, author: d.actor, system: true });
    } catch (e) {
      d.log(`warning: incident #${d.incidentId}: ${errorMessage(e)}`);
    }
  }
  return publicRun((await d.runs.get(d.runId))!);
}

async function drive(d: Drive): Promise<RunbookRun> {
  try {
    let run = (await d.runs.get(d.runId))!;
    if (run.phase !== 'rollback') {
      let failedAt: number | undefined;
      for (const [i, step] of d.def.steps.entries()) {
        const index = i + 1;
        const st = run.steps[i]!;
        if (st.status === 'success' || st.status === 'skipped') continue;
        if (st.status === 'failed' && step.continueOnError) continue;
        if (st.status === 'running' && d.opts.decision === 'skip' && !isIdempotent(step)) {
          await d.runs.setStep(d.runId, index, { status: 'skipped', finishedAt: new Date(), output: `skipped on resume by ${d.actor} (was running when Lifeboat stopped)` });
          await event(d, 'step', `step ${index} "${st.name}" skipped on resume by ${d.actor}`);
          continue;
        }
        const ok = await runStep(d, index, step);
        if (!ok && !step.continueOnError) {
          failedAt = index;
          break;
        }
      }
      const started = run.startedAt.getTime();
      if (failedAt === undefined) {
        run = (await d.runs.get(d.runId))!;
        const failedSoft = run.steps.filter((s) => s.status === 'failed').length;
        return await finish(
          d,
          'success',
          null,
          `Runbook "${d.name}" completed in ${fmtMs(Date.now() - started)}: ${d.def.steps.length} step(s)${failedSoft ? `, ${failedSoft} failed but marked continueOnError` : ''}.`,
        );
      }
      await d.runs.setRun(d.runId, { phase: 'rollback' });
    }
    run = (await d.runs.get(d.runId))!;
    const failed = run.steps.find((s) => s.status === 'failed' && !d.def.steps[s.index - 1]!.continueOnError);
    const { failed: rbFailed } = await rollBack(d, run);
    run = (await d.runs.get(d.runId))!;
    const rolled = run.steps.filter((s) => s.status === 'rolled-back').map((s) => s.index).reverse();
    const why = failed ? `step ${failed.index} "${failed.name}" failed: ${failed.error ?? 'unknown error'}` : 'a step failed';
    if (rbFailed) return await finish(d, 'failed', why, `Runbook "${d.name}" FAILED: ${why}. ${rbFailed} rollback(s) FAILED${rolled.length ? `; rolled back steps ${rolled.join(', ')}` : ''}. Manual intervention needed.`);
    if (rolled.length) return await finish(d, 'rolled-back', why, `Runbook "${d.name}" FAILED: ${why}. Rolled back steps ${rolled.join(', ')} (in that order).`);
    return await finish(d, 'failed', why, `Runbook "${d.name}" FAILED: ${why}. No rollback steps to run.`);
  } catch (err) {
    if (!(err instanceof Interrupted)) throw err;
    await d.runs.setRun(d.runId, { status: 'interrupted' });
    d.log(`runbook run #${d.runId} interrupted; continue it with: lifeboat runbook resume ${d.runId}`);
    await event(d, 'interrupted', `run #${d.runId} interrupted`);
    return publicRun((await d.runs.get(d.runId))!);
  }
}

/** Starts a run and resolves when it ends. Manual steps wait (status 'waiting') until confirmManualStep is called — from this process or another one. */
export async function runRunbook(cfg: LifeboatConfig, catalog: Catalog, name: string, opts: RunOptions = {}): Promise<RunbookRun> {
  const rb = getRunbook(cfg, name);
  incidentsConfig(cfg);
  const log = opts.log ?? (() => {});
  const actor = opts.actor ?? defaultActor();
  const runs = new RunStore(catalog);
  const startedAt = new Date();
  const runId = await runs.create(name, rb.def, actor, rb.def.steps.map((s, i) => ({ name: stepName(s, i + 1), type: s.type })), startedAt);
  log(`runbook ${name}: run #${runId} started by ${actor}`);
  opts.onStarted?.(runId);
  const incidents = new IncidentStore(catalog, { config: cfg, log });
  let incidentId: number | null = null;
  const ic = runbookIncident(rb.def);
  if (ic.open) {
    try {
      const inc = await incidents.create({
        title: rb.def.title,
        impact: ic.impact ?? impactOf(rb.def.severity),
        services: rb.def.services,
        message: `Runbook "${name}" started by ${actor} (run #${runId}, ${rb.def.steps.length} steps, scenario ${rb.def.scenario}).`,
        author: actor,
        runbookRunId: runId,
        startedAt,
        system: true,
        visibility: 'private',
        ...(ic.publicTitle ? { publicTitle: ic.publicTitle } : {}),
      });
      incidentId = inc.id;
      await runs.setRun(runId, { incidentId });
      log(`incident #${incidentId} opened`);
    } catch (err) {
      log(`warning: could not open an incident: ${errorMessage(err)}`);
    }
    // publishing is the runbook author's explicit choice, with their own words
    if (incidentId !== null && ic.publish && ic.publicMessage) {
      await incidents
        .publish(incidentId, { message: ic.publicMessage, title: ic.publicTitle ?? rb.def.title })
        .then(() => log(`incident #${incidentId} published on the status page`))
        .catch((err: unknown) => log(`warning: incident #${incidentId}: could not publish it: ${errorMessage(err)}`));
    }
  }
  return drive({ cfg, plan: resolvePlan(cfg), runs, incidents, runId, name, def: rb.def, actor, incidentId, opts, log });
}

export async function resumeRunbook(cfg: LifeboatConfig, catalog: Catalog, runId: number, opts: ResumeOptions = {}): Promise<RunbookRun> {
  const log = opts.log ?? (() => {});
  const actor = opts.actor ?? defaultActor();
  const runs = new RunStore(catalog);
  const run = await runs.get(runId);
  if (!run) throw new LifeboatError(`no runbook run #${runId}`, 2);
  if (run.storedStatus !== 'running' && run.storedStatus !== 'waiting' && run.storedStatus !== 'interrupted') {
    throw new LifeboatError(`run #${runId} already finished (${run.storedStatus} at ${run.finishedAt?.toISOString()}); start a new run instead`, 2);
  }
  if (run.storedStatus !== 'interrupted' && !isOrphaned(run) && run.instance !== PROCESS_INSTANCE) {
    if (run.host === hostname()) throw new LifeboatError(`run #${runId} is still being executed by process ${run.pid} on this host`, 11);
    if (!opts.force) throw new LifeboatError(`run #${runId} is owned by a process on host ${run.host}; if that process is gone, resume with --force`, 11);
  }
  const def = run.definition;
  const pending: string[] = [];
  if (run.phase !== 'rollback') {
    for (const s of run.steps) {
      const step = def.steps[s.index - 1]!;
      if (s.status === 'running' && !isIdempotent(step) && !opts.decision) pending.push(`step ${s.index} "${s.name}" (${s.type})`);
    }
  } else {
    for (const s of run.steps) {
      const rb = def.steps[s.index - 1]?.rollback;
      if (rb && s.rollback?.status === 'running' && !isIdempotent(rb) && opts.decision !== 'retry') pending.push(`the rollback of step ${s.index} "${s.name}" (${rb.type})`);
    }
  }
  if (pending.length) {
    throw new LifeboatError(
      `run #${runId}: ${pending.join(', ')} was running when Lifeboat stopped and is not marked idempotent, so it may have had part of its effect. ` +
        `Check its effect, then resume with --retry-step (run it again) or --skip-step (treat it as done)${run.phase === 'rollback' ? ' (--retry-step for a rollback)' : ''}.`,
      2,
    );
  }
  if (!(await runs.claim(runId, run.instance))) throw new LifeboatError(`run #${runId} was taken over by another process just now`, 11);
  await runs.setRun(runId, { status: 'running', finishedAt: null });
  const incidents = new IncidentStore(catalog, { config: cfg, log });
  const d: Drive = { cfg, plan: resolvePlan(cfg), runs, incidents, runId, name: run.runbook, def, actor, incidentId: run.incidentId, opts, log };
  const done = run.steps.filter((s) => s.status === 'success').map((s) => s.index);
  log(`resuming run #${runId} of runbook ${run.runbook} (completed steps: ${done.join(', ') || 'none'})`);
  await event(d, 'resumed', `run #${runId} resumed by ${actor}${opts.decision ? ` (${opts.decision} the interrupted step)` : ''}; completed steps ${done.join(', ') || 'none'} are not re-run`);
  return drive(d);
}

export async function getRunbookRun(catalog: Catalog, runId: number): Promise<RunbookRun | undefined> {
  const r = await new RunStore(catalog).get(runId);
  return r ? publicRun(r) : undefined;
}

export async function listRunbookRuns(catalog: Catalog, filter: { runbook?: string; limit?: number } = {}): Promise<RunbookRun[]> {
  return (await new RunStore(catalog).list(filter)).map(publicRun);
}

export async function confirmManualStep(catalog: Catalog, runId: number, stepIndex: number, actor: string, opts: { ok?: boolean; note?: string } = {}): Promise<void> {
  await new RunStore(catalog).confirm(runId, stepIndex, actor, opts.ok ?? true, opts.note, new Date());
}

/** Resolve a step reference (1-based number or name) of a run. */
export async function resolveStepRef(catalog: Catalog, runId: number, ref: string): Promise<number> {
  const run = await getRunbookRun(catalog, runId);
  if (!run) throw new LifeboatError(`no runbook run #${runId}`, 2);
  if (/^\d+$/.test(ref)) {
    const n = Number(ref);
    if (n < 1 || n > run.steps.length) throw new LifeboatError(`run #${runId} has steps 1-${run.steps.length}, not ${n}`, 2);
    return n;
  }
  const s = run.steps.find((x) => x.name === ref);
  if (!s) throw new LifeboatError(`run #${runId} has no step named "${ref}" (steps: ${run.steps.map((x) => x.name).join(', ')})`, 2);
  return s.index;
}
