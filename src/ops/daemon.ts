import { Cron } from 'croner';
import type { ResolvedPlan } from '../config/resolve.js';
import { parseDuration } from '../util/duration.js';
import { Semaphore } from '../util/sync.js';
import { LifeboatError, errorMessage } from '../errors.js';
import { runJob, runMaintenance, type JobResult, type MaintenanceResult } from './jobs.js';
import { startBinlogArchivers, type BinlogArchivers } from '../sources/mysql/archivers.js';

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
 *
 * Jobs with `runOn: any` (high-availability scheduling, with `claims`): their
 * schedule is evaluated in UTC and each fire time is a slot, claimed in the
 * shared catalog before it runs, so every slot runs on exactly one agent of
 * the fleet (see catalog/job-slots.ts). While the run (all its attempts)
 * goes on, a timer independent of the run renews the slot's lease every
 * lease/4. If a renewal says the slot is no longer ours, or no renewal has
 * succeeded for half a lease (catalog unreachable), the run is aborted at
 * once -- an aborted backup writes no snapshot -- so a slot taken over after
 * its lease expired is never run by two agents at the same time, and the
 * re-run (with the slot's tag) finds the snapshot if the first holder wrote
 * it before dying. An agent scans for slots whose lease expired (its holder
 * died) every lease/4 and takes over those of jobs it is not running itself
 * (one per scan when all its run slots are busy: the slot then keeps its
 * lease while it waits). On stop(), unfinished slots are released for
 * another agent to take over at once.
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
  /**
   * True while the job has no successful or partial backup yet: autoInit may then
   * create its repository (the typo guard of runJob; firstRunFromCatalog in
   * ops/jobs.ts is the rule). Without it, autoInit applies as configured.
   */
  firstRun?(job: string): Promise<boolean>;
  log?(msg: string): void;
  /** Run a restore drill of a job (jobs with drill.schedule are scheduled only when this is set). */
  runDrill?(job: string, signal: AbortSignal): Promise<unknown>;
  /** Rotating read-data checks: the subset this maintenance run reads (see runMaintenance). */
  checkSubset?(repositoryId: string, repositoryName: string, subset: string): Promise<string>;
}

/** The claims of runOn: any slots (catalog/job-slots.ts JobSlots). */
export interface SlotClaims {
  readonly agentId: string;
  readonly leaseMs: number;
  claim(job: string, slot: Date): Promise<boolean>;
  renew(job: string, slot: Date): Promise<boolean>;
  finish(job: string, slot: Date, result: string): Promise<boolean>;
  release(job: string, slot: Date): Promise<boolean>;
  /** After a won claim: the result "skipped: …" (recorded) when the job's previous slot still runs on another agent. */
  skipIfOverlapping?(job: string, slot: Date): Promise<string | undefined>;
  takeOver(jobs: readonly string[]): Promise<{ job: string; slot: Date; previousAgent: string; expiredAt: Date; takenOverAt: Date } | undefined>;
  prune?(before: Date): Promise<number>;
  takeStats?(): { claims: number; won: number; takeovers: number; queries: number; errors: number; claimMs: number[] };
}

/** The scheduled slot a cron callback fires for: the latest fire time at or before `now`. */
export function slotAt(cron: Cron, now: Date): Date {
  return cron.previousRuns(1, new Date(now.getTime() + 1))[0] ?? new Date(Math.floor(now.getTime() / 1000) * 1000);
}

export interface DaemonOptions {
  /** Replace the job runner (tests). */
  run?: typeof runJob;
  /** Do not start the binary log archivers of mysql sources with binlog.archive (tests). */
  noBinlogArchivers?: boolean;
  maintenance?: typeof runMaintenance;
  /** Slot claims in the shared catalog: required when a job has runOn: any. */
  claims?: SlotClaims;
  /** Called each time the last running job, drill or maintenance run ends (the entry point gives memory back). */
  idle?: () => void;
}

export class Daemon {
  private readonly crons: Cron[] = [];
  private readonly running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  /** Maintenance runs (prune, check) in progress: stop() waits for them too (they hold the repository lock). */
  private readonly maintenanceRuns = new Set<Promise<void>>();
  private readonly slots: Semaphore;
  private stopping = false;
  private binlogArchivers: BinlogArchivers | undefined;
  readonly skippedOverlaps = new Map<string, number>();
  private scanTimer: NodeJS.Timeout | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  /** Slots (job -> slot) this agent holds and has not finished: released on shutdown. */
  private readonly held = new Map<string, Date>();

  constructor(
    /** The plan, resolved once by the entry point that starts the daemon (config/resolve.ts resolvePlan). */
    private readonly plan: ResolvedPlan,
    private readonly hooks: DaemonHooks = {},
    private readonly opts: DaemonOptions = {},
  ) {
    this.slots = new Semaphore(plan.daemon.concurrency);
  }

  /** A job, drill (`name`) or maintenance run has ended: when nothing else runs, the idle hook. */
  private ended(name?: string): void {
    if (name !== undefined) this.running.delete(name);
    if (this.running.size || this.maintenanceRuns.size || this.stopping) return;
    try {
      this.opts.idle?.();
    } catch (err) {
      this.log(`daemon: idle hook: ${errorMessage(err)}`);
    }
  }

  private log(msg: string): void {
    this.hooks.log?.(msg);
  }

  /** The runOn: any jobs of the plan with a schedule. */
  private anyJobs(): string[] {
    return Object.entries(this.plan.jobs)
      .filter(([, { job }]) => job.runOn === 'any' && job.schedule)
      .map(([name]) => name);
  }

  async start(): Promise<void> {
    const anyJobs = this.anyJobs();
    if (anyJobs.length && !this.opts.claims) throw new LifeboatError(`jobs ${anyJobs.join(', ')} have runOn: any but the daemon has no shared catalog to claim their slots in`);
    for (const name of anyJobs) {
      const { job } = this.plan.jobs[name]!;
      // UTC, so every agent computes the same slots whatever its time zone
      const cron = new Cron(job.schedule!, { protect: false, timezone: 'Etc/UTC', catch: (e) => this.log(`job ${name}: scheduler error ${String(e)}`) }, () => {
        this.triggerSlot(name, slotAt(cron, new Date()), 'schedule');
      });
      this.crons.push(cron);
      if (job.catchUp && this.hooks.lastSuccess) {
        // the latest slot: claimed (and run) unless an agent already has it; runs of other agents count
        const last = await this.hooks.lastSuccess(name);
        const slot = slotAt(cron, new Date());
        if (!last || last.getTime() < slot.getTime()) this.triggerSlot(name, slot, 'catch-up');
      }
    }
    if (anyJobs.length) this.startSlotScans(anyJobs);
    for (const [name, { job }] of Object.entries(this.plan.jobs)) {
      if (!job.schedule || job.runOn === 'any') continue;
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
    for (const [name, job] of Object.entries(this.plan.jobs)) {
      const schedule = job.drill?.schedule;
      if (!schedule || !this.hooks.runDrill) continue;
      this.crons.push(new Cron(schedule, { protect: false, catch: (e) => this.log(`drill ${name}: scheduler error ${String(e)}`) }, () => void this.triggerDrill(name)));
    }
    const m = this.plan.daemon.maintenance;
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
            const r = await (this.opts.maintenance ?? runMaintenance)(this.plan, {
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
            this.ended();
          }
        }),
      );
    }
    if (!this.opts.noBinlogArchivers) {
      this.binlogArchivers = startBinlogArchivers(this.plan, (m) => this.log(m));
      if (this.binlogArchivers.sources.length) this.log(`archiving binary logs of ${this.binlogArchivers.sources.join(', ')}`);
    }
    this.log(`daemon started: ${this.crons.length} scheduled job(s), concurrency ${this.plan.daemon.concurrency}`);
  }

  /** Start a job now unless it is already running. Returns false if skipped. */
  trigger(name: string, why: string): boolean {
    return this.launch(name, why) !== undefined;
  }

  /**
   * Run a job now (a fleet run request) under the same rules as a scheduled
   * run (concurrency limit, retries, no overlap). Resolves with the final
   * attempt's result; 'busy' when it is already running or the daemon stops.
   */
  async runNow(name: string, why: string): Promise<JobResult | 'busy'> {
    const run = this.launch(name, why);
    return run ? ((await run) ?? 'busy') : 'busy';
  }

  private launch(name: string, why: string): Promise<JobResult | undefined> | undefined {
    if (this.stopping) return undefined;
    if (this.running.has(name)) {
      this.skippedOverlaps.set(name, (this.skippedOverlaps.get(name) ?? 0) + 1);
      this.log(`job ${name}: still running, skipping this ${why} run`);
      return undefined;
    }
    const controller = new AbortController();
    const run = this.runWithRetries(name, controller).finally(() => this.ended(name));
    this.running.set(name, { controller, done: run.then(() => {}) });
    return run;
  }

  /**
   * Run a slot of a runOn: any job unless this agent already runs the job:
   * claim it first (unless `claimed`: a takeover already holds it), run it
   * with its lease renewed, record its outcome. Returns false if skipped.
   */
  triggerSlot(name: string, slot: Date, why: string, claimedAt?: number): boolean {
    const claimed = claimedAt !== undefined;
    if (this.stopping || this.running.has(name)) {
      if (!this.stopping) {
        this.skippedOverlaps.set(name, (this.skippedOverlaps.get(name) ?? 0) + 1);
        this.log(`job ${name}: still running here, not claiming slot ${slot.toISOString()} (${why}); another agent may`);
      }
      if (claimed) void this.opts.claims!.release(name, slot).catch(() => {});
      return false;
    }
    const controller = new AbortController();
    const done = this.runSlot(name, slot, why, claimedAt, controller).finally(() => this.ended(name));
    this.running.set(name, { controller, done });
    return true;
  }

  private async runSlot(name: string, slot: Date, why: string, claimedAt: number | undefined, controller: AbortController): Promise<void> {
    const claims = this.opts.claims!;
    const iso = slot.toISOString();
    // a taken-over slot is ours from the takeover on: keep its lease while waiting for a free run slot
    let lease = claimedAt !== undefined ? this.holdLease(name, slot, controller, claimedAt) : undefined;
    if (lease) this.held.set(name, slot);
    await this.slots.acquire();
    try {
      if (this.stopping || lease?.lost) {
        lease?.stop();
        if (lease && !lease.lost) await claims.release(name, slot).catch(() => {});
        this.held.delete(name);
        return;
      }
      if (!lease) {
        const claimSent = Date.now();
        try {
          if (!(await claims.claim(name, slot))) return; // another agent has it
          const skipped = await claims.skipIfOverlapping?.(name, slot);
          if (skipped) {
            // the previous slot still runs on another agent: never two runs of one job at once
            this.skippedOverlaps.set(name, (this.skippedOverlaps.get(name) ?? 0) + 1);
            this.log(`job ${name}: slot ${iso} ${skipped}`);
            return;
          }
        } catch (err) {
          this.log(`job ${name}: cannot claim slot ${iso}: ${(err as Error).message}; not running it here (if the claim did commit, another agent takes the slot over after its lease)`);
          return;
        }
        const lateMs = Date.now() - slot.getTime();
        if (why !== 'schedule') this.log(`job ${name}: slot ${iso} claimed (${why})`);
        else if (lateMs > parseDuration(this.plan.daemon.slots.missedAfter)) {
          this.log(`job ${name}: slot ${iso} claimed ${Math.round(lateMs / 1000)} s after its fire time (late: every agent was busy or down)`);
        }
        this.held.set(name, slot);
        lease = this.holdLease(name, slot, controller, claimSent);
      }
      let result: JobResult | undefined;
      try {
        result = await this.attempts(name, controller, { slot: iso, takeover: why === 'takeover' });
      } finally {
        lease.stop();
      }
      if (lease.lost) {
        this.held.delete(name);
        this.log(`job ${name}: slot ${iso}: ${lease.lost}; the run was aborted and the slot is left to the agent that holds it now`);
        return;
      }
      if (this.stopping && (controller.signal.aborted || !result)) {
        // shut down mid-run: give the slot back for another agent to run now
        await claims.release(name, slot).then(
          (ok) => ok && this.log(`job ${name}: slot ${iso} released for another agent (shutting down)`),
          (err) => this.log(`job ${name}: slot ${iso}: release failed: ${(err as Error).message}; another agent takes it over after its lease`),
        );
        this.held.delete(name);
        return;
      }
      const outcome = result ? `${result.status}${result.snapshotId ? ` ${result.snapshotId}` : ''}${result.error ? `: ${result.error}` : ''}` : 'failed';
      await this.finishSlot(name, slot, outcome);
      this.held.delete(name);
    } finally {
      this.slots.release();
    }
  }

  /** Record a slot's outcome, retrying within its lease (an unrecorded slot would be taken over and run again). */
  private async finishSlot(name: string, slot: Date, outcome: string): Promise<void> {
    const claims = this.opts.claims!;
    const until = Date.now() + claims.leaseMs / 2;
    for (let i = 1; ; i++) {
      try {
        if (!(await claims.finish(name, slot, outcome))) this.log(`job ${name}: slot ${slot.toISOString()} was no longer ours when it finished (taken over after its lease expired)`);
        return;
      } catch (err) {
        if (Date.now() >= until) {
          this.log(`job ${name}: could not record the end of slot ${slot.toISOString()} (${(err as Error).message}); after its lease another agent runs it again`);
          return;
        }
        await new Promise((r) => setTimeout(r, Math.min(1000, claims.leaseMs / 16) * i));
      }
    }
  }

  /**
   * Renew a held slot's lease every lease/4, on a timer of its own. Sets
   * `lost` and aborts the run when the slot is no longer ours, or when no
   * renewal succeeded for half a lease (the other half is the margin for
   * the abort to take effect before another agent may take the slot over).
   */
  private holdLease(name: string, slot: Date, controller: AbortController, lastOkAt: number): { stop(): void; readonly lost: string | undefined } {
    const claims = this.opts.claims!;
    const every = claims.leaseMs / 4;
    let lost: string | undefined;
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const lose = (why: string) => {
      lost = why;
      controller.abort(new Error(why));
    };
    const tick = async () => {
      if (stopped) return;
      const sentAt = Date.now();
      try {
        const ok = await claims.renew(name, slot);
        if (stopped) return;
        if (!ok) return lose('lost the slot: another agent took it over');
        lastOkAt = sentAt;
      } catch (err) {
        if (stopped) return;
        this.log(`job ${name}: slot ${slot.toISOString()}: lease renewal failed: ${(err as Error).message}`);
      }
      if (Date.now() - lastOkAt >= claims.leaseMs / 2) return lose(`no lease renewal succeeded for ${Math.round((Date.now() - lastOkAt) / 1000)} s (catalog unreachable?): stopping before another agent may take the slot over`);
      timer = setTimeout(() => void tick(), every);
    };
    timer = setTimeout(() => void tick(), every);
    return {
      stop() {
        stopped = true;
        clearTimeout(timer);
      },
      get lost() {
        return lost;
      },
    };
  }

  /** Every lease/4: take over slots whose holder died (lease expired), of jobs this agent is not running. */
  private startSlotScans(jobs: string[]): void {
    const claims = this.opts.claims!;
    const every = Math.max(100, claims.leaseMs / 4);
    let scanning = false;
    const scan = async () => {
      if (scanning || this.stopping) return;
      scanning = true;
      try {
        // one takeover per scan even when every run slot is busy (the slot keeps its lease while it
        // waits; left alone it could wait for ever on a saturated fleet); more while there is room
        for (let n = 0; ; n++) {
          const free = jobs.filter((j) => !this.running.has(j));
          if (!free.length || (n > 0 && this.running.size >= this.plan.daemon.concurrency)) return;
          const sentAt = Date.now();
          const t = await claims.takeOver(free);
          if (!t) return;
          this.log(
            `job ${t.job}: took over slot ${t.slot.toISOString()} from agent ${t.previousAgent} (its lease expired ${((t.takenOverAt.getTime() - t.expiredAt.getTime()) / 1000).toFixed(1)} s ago); running it again`,
          );
          this.triggerSlot(t.job, t.slot, 'takeover', sentAt);
        }
      } catch (err) {
        this.log(`slots: takeover scan failed: ${(err as Error).message}`);
      } finally {
        scanning = false;
      }
    };
    // a little jitter, so agents started together do not scan in lockstep
    this.scanTimer = setInterval(() => void scan(), every * (0.9 + Math.random() * 0.2));
    this.scanTimer.unref();
    const keepMs = parseDuration(this.plan.daemon.slots.keep);
    const summary = () => {
      const s = claims.takeStats?.();
      if (!s || s.claims + s.takeovers + s.errors === 0) return;
      const sorted = [...s.claimMs].sort((a, b) => a - b);
      const q = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)]! : 0);
      this.log(
        `slots: ${s.claims} claims (${s.won} won), ${s.takeovers} takeovers, ${s.queries} catalog calls, ${s.errors} errors; claim latency p50 ${q(0.5).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, max ${q(1).toFixed(1)} ms`,
      );
    };
    this.statsTimer = setInterval(() => {
      summary();
      void claims.prune?.(new Date(Date.now() - keepMs)).catch((e) => this.log(`slots: prune failed: ${(e as Error).message}`));
    }, 60_000);
    this.statsTimer.unref();
    this.logSlotSummary = summary;
  }

  private logSlotSummary: (() => void) | undefined;

  /** Start a restore drill of a job now unless one is already running. Returns false if skipped. */
  triggerDrill(name: string): boolean {
    return this.startDrill(name) !== undefined;
  }

  /** Run a restore drill now (a fleet run request); resolves with what runDrill returned or threw; 'busy' when one runs already. */
  async drillNow(name: string): Promise<{ ok: true; value: unknown } | { ok: false; error: Error } | 'busy'> {
    return (await this.startDrill(name)) ?? 'busy';
  }

  private startDrill(name: string): Promise<{ ok: true; value: unknown } | { ok: false; error: Error } | undefined> | undefined {
    const key = `drill:${name}`;
    if (this.stopping || !this.hooks.runDrill) return undefined;
    if (this.running.has(key)) {
      this.log(`drill ${name}: still running, skipping this run`);
      return undefined;
    }
    const controller = new AbortController();
    const run = (async (): Promise<{ ok: true; value: unknown } | { ok: false; error: Error } | undefined> => {
      await this.slots.acquire();
      try {
        if (this.stopping) return undefined;
        return { ok: true, value: await this.hooks.runDrill!(name, controller.signal) };
      } catch (err) {
        this.log(`drill ${name}: ${(err as Error).message}`);
        return { ok: false, error: err as Error };
      } finally {
        this.slots.release();
      }
    })().finally(() => this.ended(key));
    this.running.set(key, { controller, done: run.then(() => {}) });
    return run;
  }

  isRunning(name: string): boolean {
    return this.running.has(name);
  }

  private async runWithRetries(name: string, controller: AbortController): Promise<JobResult | undefined> {
    await this.slots.acquire();
    try {
      return await this.attempts(name, controller);
    } finally {
      this.slots.release();
    }
  }

  /** A job's attempts (retries with backoff); the last result, undefined if none ran. */
  private async attempts(name: string, controller: AbortController, slot?: { slot: string; takeover: boolean }): Promise<JobResult | undefined> {
    const { job } = this.plan.jobs[name]!;
    const run = this.opts.run ?? runJob;
    let last: JobResult | undefined;
    const firstRun = this.hooks.firstRun?.bind(this.hooks);
    for (let attempt = 1; ; attempt++) {
      if (attempt > 1 && (this.stopping || controller.signal.aborted)) return last;
      const runId = await this.hooks.onRunStart?.(name, attempt);
      // runJob enforces the job's timeout itself, without waiting for hung I/O
      const result = await run(this.plan, name, {
        signal: controller.signal,
        log: (m) => this.log(m),
        timeoutMs: parseDuration(job.timeout),
        // autoInit creates a repository only on the job's first run (typo guard, see runJob)
        ...(firstRun ? { firstRun: () => firstRun(name) } : {}),
        // a re-run of a taken-over slot first looks for the snapshot its dead holder may have written
        ...(slot ? { slot: slot.slot, reuseSlotSnapshot: slot.takeover } : {}),
      });
      last = result;
      const final = result.status !== 'failed' || attempt > job.retries || controller.signal.aborted || this.stopping || !!result.timedOut;
      await this.hooks.onRunEnd?.(result, runId, attempt, final);
      this.log(`job ${name}: attempt ${attempt} ${result.status}${result.error ? `: ${result.error}` : ''}`);
      if (final) return result;
      const delay = parseDuration(job.retryDelay) * 2 ** (attempt - 1);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, delay);
        controller.signal.addEventListener('abort', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * Stop scheduling; let running jobs finish for `graceMs`, then abort them
   * (each run is recorded as failed: "aborted: daemon shutting down"). Returns
   * at most `abortWaitMs` after the grace period, whatever the runs do.
   */
  async stop(graceMs = parseDuration(this.plan.daemon.shutdownGrace), abortWaitMs = ABORT_WAIT_MS): Promise<void> {
    this.stopping = true;
    for (const c of this.crons) c.stop();
    clearInterval(this.scanTimer);
    clearInterval(this.statsTimer);
    // continuous binlog archivers: stop streaming, archive what is complete
    const archivers = this.binlogArchivers?.stop(abortWaitMs + graceMs);
    this.binlogArchivers = undefined;
    await this.stopRuns(graceMs, abortWaitMs);
    // slots whose runs did not settle (hung I/O): give them back for another agent
    for (const [name, slot] of this.held) await this.opts.claims?.release(name, slot).catch(() => {});
    this.logSlotSummary?.();
    await archivers;
  }

  private async stopRuns(graceMs: number, abortWaitMs: number): Promise<void> {
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
