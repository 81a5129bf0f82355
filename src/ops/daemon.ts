import { Cron } from 'croner';
import type { LifeboatConfig } from '../config/load.js';
import { parseDuration } from '../policy/retention.js';
import { Semaphore } from '../util/sync.js';
import { runJob, runMaintenance, type JobResult, type MaintenanceResult } from './jobs.js';

/**
 * The scheduler: runs the plan's jobs on their cron schedules with a
 * concurrency limit, never two runs of the same job at once, retries with
 * exponential backoff, a timeout per job, catch-up of runs missed while the
 * daemon was down, and graceful shutdown (running jobs get a grace period to
 * finish, then are aborted: an aborted backup writes no snapshot).
 *
 * Neither a job's timeout nor shutdown waits for hung I/O: runJob gives up on
 * a run at its deadline, and stop() returns at most ABORT_WAIT_MS after the
 * grace period even if a run (or a drill, or a hook) never settles.
 */

/** After the grace period and the abort, how long stop() waits for runs to record their end. */
export const ABORT_WAIT_MS = 5_000;

export interface DaemonHooks {
  /** Called when an attempt starts; may return a run id passed back to onRunEnd. */
  onRunStart?(job: string, attempt: number): Promise<string | number | undefined> | string | number | undefined;
  onRunEnd?(result: JobResult, runId: string | number | undefined, attempt: number, final: boolean): Promise<void> | void;
  onMaintenance?(results: MaintenanceResult[]): Promise<void> | void;
  /** Last successful run of a job (for catch-up). */
  lastSuccess?(job: string): Promise<Date | undefined> | Date | undefined;
  log?(msg: string): void;
  /** Run a restore drill of a job (jobs with drill.schedule are scheduled only when this is set). */
  runDrill?(job: string, signal: AbortSignal): Promise<void>;
  /** Rotating read-data checks: the subset this maintenance run reads (see runMaintenance). */
  checkSubset?(repositoryId: string, repositoryName: string, subset: string): Promise<string>;
}

export interface DaemonOptions {
  /** Replace the job runner (tests). */
  run?: typeof runJob;
  maintenance?: typeof runMaintenance;
}

export class Daemon {
  private readonly crons: Cron[] = [];
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  /** Maintenance runs (prune, check) in progress: stop() waits for them too (they hold the repository lock). */
  private readonly maintenanceRuns = new Set<Promise<void>>();
  private readonly slots: Semaphore;
  private stopping = false;
  readonly skippedOverlaps = new Map<string, number>();

  constructor(
    private readonly cfg: LifeboatConfig,
    private readonly hooks: DaemonHooks = {},
    private readonly opts: DaemonOptions = {},
  ) {
    this.slots = new Semaphore(cfg.daemon.concurrency);
  }

  private log(msg: string): void {
    this.hooks.log?.(msg);
  }

  async start(): Promise<void> {
    for (const [name, job] of Object.entries(this.cfg.jobs)) {
      if (!job.schedule) continue;
      const cron = new Cron(job.schedule, { protect: false, catch: (e) => this.log(`job ${name}: scheduler error ${String(e)}`) }, () => {
        this.trigger(name, 'schedule');
      });
      this.crons.push(cron);
      if (job.catchUp && this.hooks.lastSuccess) {
        const last = await this.hooks.lastSuccess(name);
        // the first scheduled time after the last success: if it is past, a run was missed
        const due = last ? cron.nextRun(last) : null;
        if (!last || (due && due.getTime() < Date.now())) {
          this.log(`job ${name}: ${last ? `missed the run due ${due!.toISOString()}` : 'has never succeeded'}; catching up now`);
          this.trigger(name, 'catch-up');
        }
      }
    }
    for (const [name, job] of Object.entries(this.cfg.jobs)) {
      const schedule = job.drill?.schedule;
      if (!schedule || !this.hooks.runDrill) continue;
      this.crons.push(new Cron(schedule, { protect: false, catch: (e) => this.log(`drill ${name}: scheduler error ${String(e)}`) }, () => void this.triggerDrill(name)));
    }
    const m = this.cfg.daemon.maintenance;
    if (m) {
      this.crons.push(
        new Cron(m.schedule, { protect: true, catch: (e) => this.log(`maintenance: ${String(e)}`) }, async () => {
          if (this.stopping) return;
          await this.slots.acquire();
          if (this.stopping) {
            this.slots.release();
            return;
          }
          // tracked, so stop() waits for a running prune/check (it holds the repository lock)
          const run = (async () => {
            const r = await (this.opts.maintenance ?? runMaintenance)(this.cfg, {
              log: (msg) => this.log(msg),
              ...(this.hooks.checkSubset ? { subsetFor: this.hooks.checkSubset.bind(this.hooks) } : {}),
            });
            await this.hooks.onMaintenance?.(r);
          })();
          this.maintenanceRuns.add(run);
          try {
            await run;
          } finally {
            this.maintenanceRuns.delete(run);
            this.slots.release();
          }
        }),
      );
    }
    this.log(`daemon started: ${this.crons.length} scheduled job(s), concurrency ${this.cfg.daemon.concurrency}`);
  }

  /** Start a job now unless it is already running. Returns false if skipped. */
  trigger(name: string, why: string): boolean {
    if (this.stopping) return false;
    if (this.running.has(name)) {
      this.skippedOverlaps.set(name, (this.skippedOverlaps.get(name) ?? 0) + 1);
      this.log(`job ${name}: still running, skipping this ${why} run`);
      return false;
    }
    const controller = new AbortController();
    const done = this.runWithRetries(name, controller).finally(() => this.running.delete(name));
    this.running.set(name, { controller, done });
    return true;
  }

  /** Start a restore drill of a job now unless one is already running. Returns false if skipped. */
  triggerDrill(name: string): boolean {
    const key = `drill:${name}`;
    if (this.stopping || !this.hooks.runDrill) return false;
    if (this.running.has(key)) {
      this.log(`drill ${name}: still running, skipping this run`);
      return false;
    }
    const controller = new AbortController();
    const done = (async () => {
      await this.slots.acquire();
      try {
        if (!this.stopping) await this.hooks.runDrill!(name, controller.signal);
      } catch (err) {
        this.log(`drill ${name}: ${(err as Error).message}`);
      } finally {
        this.slots.release();
      }
    })().finally(() => this.running.delete(key));
    this.running.set(key, { controller, done });
    return true;
  }

  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  private async runWithRetries(name: string, controller: AbortController): Promise<void> {
    const job = this.cfg.jobs[name]!;
    const run = this.opts.run ?? runJob;
    await this.slots.acquire();
    try {
      for (let attempt = 1; ; attempt++) {
        if (this.stopping && attempt > 1) return;
        const runId = await this.hooks.onRunStart?.(name, attempt);
        // runJob enforces the job's timeout itself, without waiting for hung I/O
        const result = await run(this.cfg, name, { signal: controller.signal, log: (m) => this.log(m), timeoutMs: parseDuration(job.timeout) });
        const final = result.status !== 'failed' || attempt > job.retries || controller.signal.aborted || this.stopping || !!result.timedOut;
        await this.hooks.onRunEnd?.(result, runId, attempt, final);
        this.log(`job ${name}: attempt ${attempt} ${result.status}${result.error ? `: ${result.error}` : ''}`);
        if (final) return;
        const delay = parseDuration(job.retryDelay) * 2 ** (attempt - 1);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          controller.signal.addEventListener('abort', () => {
            clearTimeout(t);
            resolve();
          });
        });
        if (controller.signal.aborted) return;
      }
    } finally {
      this.slots.release();
    }
  }

  /**
   * Stop scheduling; let running jobs finish for `graceMs`, then abort them
   * (each run is recorded as failed: "aborted: daemon shutting down"). Returns
   * at most `abortWaitMs` after the grace period, whatever the runs do.
   */
  async stop(graceMs = parseDuration(this.cfg.daemon.shutdownGrace), abortWaitMs = ABORT_WAIT_MS): Promise<void> {
    this.stopping = true;
    for (const c of this.crons) c.stop();
    const entries = [...this.running.entries()];
    const maintenance = [...this.maintenanceRuns];
    if (entries.length === 0 && maintenance.length === 0) return;
    this.log(`shutting down: waiting up to ${graceMs} ms for ${entries.length} running job(s)${maintenance.length ? ' and maintenance' : ''}`);
    const settled = Promise.allSettled([...entries.map(([, r]) => r.done), ...maintenance]);
    let graceTimer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'grace'>((resolve) => {
      graceTimer = setTimeout(() => resolve('grace'), graceMs);
    });
    if ((await Promise.race([settled.then(() => 'done' as const), graceOver])) === 'done') {
      clearTimeout(graceTimer);
      return;
    }
    const abort = new Error('daemon shutting down');
    for (const [, r] of entries) r.controller.abort(abort);
    let waitTimer: NodeJS.Timeout | undefined;
    const waitOver = new Promise<'late'>((resolve) => {
      waitTimer = setTimeout(() => resolve('late'), abortWaitMs);
    });
    const outcome = await Promise.race([settled.then(() => 'done' as const), waitOver]);
    clearTimeout(waitTimer);
    if (outcome === 'late') {
      const stuck = entries.filter(([name]) => this.running.has(name)).map(([name]) => name);
      this.log(`shutting down: ${stuck.join(', ')} did not stop ${abortWaitMs} ms after being aborted (hung I/O?); not waiting for them`);
    }
  }
}
