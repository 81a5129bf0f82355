import { agentIdOf } from '../config/agent-id.js';
import type { LifeboatConfig } from '../config/config.js';
import { jobRepository, secretFromConfig } from '../config/repos.js';
import { ExitCode, errorMessage } from '../errors.js';
import { TIERS, type Tier } from '../config/tiers.js';
import { parseDuration } from '../util/duration.js';
import type { Catalog, FinalRunStatus, RunKind } from './catalog/types.js';
import type { JobResult } from './jobs.js';
import { evaluate, jobsFromConfig, syncJobThresholds, type Finding } from './monitor.js';
import { AlertManager } from './notify/manager.js';
import { Pinger, type PingOutcome } from './notify/ping.js';
import { parseNotifiersConfig } from '../config/notifiers.js';
import { redactText } from './templates.js';

/**
 * What every run does besides its work, whoever starts it (the daemon,
 * `lifeboat run`, `backup --config`, `check`): pings (jobs.NAME.ping) and
 * alerts through the configured notifiers after the monitor has looked at the
 * catalog. The alert state lives in the catalog's `alerts` table, the same
 * one the daemon uses, so a cron job that keeps failing pages once (then a
 * reminder per reminderInterval, an escalation at the critical streak, and a
 * "resolved" when it recovers), not once per run.
 *
 * Nothing here fails a run: ping and alert problems are logged.
 */

type Log = (msg: string) => void;

/** The pinger of a job, or undefined when it has none (or its URL secret cannot be read: logged). */
export function pingerFor(cfg: LifeboatConfig, job: string, log: Log): Pinger | undefined {
  const j = cfg.jobs[job];
  const p = j?.ping ?? j?.healthcheck;
  if (!p) return undefined;
  try {
    const url = typeof p.url === 'string' ? p.url : secretFromConfig(cfg, p.url, `jobs.${job}.ping.url`);
    new URL(url);
    if (!/^https?:/i.test(url)) throw new Error('not an http(s) URL');
    return new Pinger({
      url,
      style: p.style,
      start: p.start,
      exitCode: p.exitCode,
      timeoutMs: parseDuration(p.timeout),
      retries: p.retries,
      retryDelayMs: parseDuration(p.retryDelay),
      log,
    });
  } catch (err) {
    log(`job ${job}: ping disabled: ${redactText(errorMessage(err))}`);
    return undefined;
  }
}

/** The exit code a run ends with (as `lifeboat run` exits). */
export function exitCodeOf(r: Pick<JobResult, 'status' | 'exitCode'>): number {
  if (r.status === 'success') return ExitCode.OK;
  if (r.status === 'partial') return ExitCode.PARTIAL;
  return r.exitCode ?? ExitCode.FATAL;
}

/** The ping of a finished job run: error tail for failures and partial runs, a summary line for successes. */
export function pingOutcomeOf(r: JobResult): PingOutcome {
  const exitCode = exitCodeOf(r);
  const problems = [r.error, ...r.copies.filter((c) => c.error).map((c) => `copy to ${c.repository} failed: ${c.error}`), ...r.warnings].filter(Boolean) as string[];
  return {
    exitCode,
    durationMs: r.finishedAt.getTime() - r.startedAt.getTime(),
    ...(exitCode !== 0 ? { error: problems.join('\n') || `exit code ${exitCode}` } : {}),
    ...(r.snapshotId ? { summary: `snapshot ${r.snapshotId.slice(0, 8)}${r.summary ? `, ${r.summary.totalBytes} bytes` : ''}` } : {}),
  };
}

/**
 * Pings around the runs of a scheduler or a CLI command: started() at the
 * first attempt (not awaited by the run: a slow ping server never delays a
 * backup), finished() at the final attempt (after the start ping went out).
 */
export class RunPings {
  readonly #pending = new Map<string, { pinger: Pinger; started: Promise<boolean> }>();
  constructor(
    private readonly cfg: LifeboatConfig,
    private readonly log: Log,
  ) {}

  started(job: string): void {
    const pinger = pingerFor(this.cfg, job, this.log);
    if (pinger) this.#pending.set(job, { pinger, started: pinger.start() });
  }

  async finished(job: string, outcome: PingOutcome): Promise<void> {
    const p = this.#pending.get(job);
    if (!p) return;
    this.#pending.delete(job);
    await p.started;
    await p.pinger.finish(outcome);
  }
}

/** The highest tier of the jobs that use a repository (repository findings are routed by it). */
export function repositoryTier(cfg: LifeboatConfig, repo: string): Tier {
  let best: Tier = 'normal';
  for (const j of Object.values(cfg.jobs)) {
    if (jobRepository(cfg, j) !== repo && !j.copyTo.includes(repo)) continue;
    if (TIERS.indexOf(j.tier) < TIERS.indexOf(best)) best = j.tier;
  }
  return best;
}

/**
 * Evaluate the monitor for these jobs (and their repositories) and send what
 * is due through the notifiers, with the daemon's dedup state. `extra`:
 * findings of the command itself (a failed check). Never throws.
 */
export async function alertAfterRun(cfg: LifeboatConfig, catalog: Catalog, jobNames: readonly string[], opts: { log: Log; extra?: Finding[] }): Promise<void> {
  let alerts: AlertManager | undefined;
  try {
    const wanted = new Set(jobNames);
    const jobs = jobsFromConfig(cfg).filter((j) => wanted.has(j.name));
    // keep backup_status's thresholds current even without notifiers
    if (!cfg.notifiers) return void (await syncJobThresholds(catalog, jobs).catch(() => {}));
    const report = jobs.length ? await evaluate(catalog, jobs) : { findings: [] as Finding[] };
    alerts = AlertManager.fromConfig(parseNotifiersConfig(cfg.notifiers), { catalog, baseDir: cfg.dir, log: opts.log });
    await alerts.process([...report.findings, ...(opts.extra ?? [])]);
  } catch (err) {
    opts.log(`alerts: ${redactText(errorMessage(err))}`);
  } finally {
    await alerts?.close().catch(() => {});
  }
}

/** Something worth recording: notifiers or pings are configured. */
export function reportsRuns(cfg: LifeboatConfig, jobs: readonly string[] = Object.keys(cfg.jobs)): boolean {
  return !!cfg.notifiers || jobs.some((j) => !!(cfg.jobs[j]?.ping ?? cfg.jobs[j]?.healthcheck));
}

/** The jobs that back up a source (`backup --config --source NAME` runs count as theirs). */
export function jobsOfSource(cfg: LifeboatConfig, source: string): string[] {
  return Object.entries(cfg.jobs)
    .filter(([, j]) => j.source === source)
    .map(([n]) => n);
}

export interface CommandRunOutcome {
  status: FinalRunStatus;
  exitCode: number;
  error?: string;
  summary?: string;
  snapshotId?: string;
  totalSize?: number;
  bytesAdded?: number;
  bytesRead?: number;
  files?: number;
  errors?: number;
}

/**
 * The catalog run, pings and alerts of a CLI command that is not a job run
 * (`backup --config` per source, `check` per repository). Opened lazily: a
 * config without notifiers and pings records nothing (as before).
 */
export class CommandRunReporter {
  #catalog: Catalog | undefined;
  readonly #pings: RunPings;
  readonly #touched = new Set<string>();
  readonly #extra: Finding[] = [];

  constructor(
    private readonly cfg: LifeboatConfig,
    private readonly openCatalog: () => Promise<Catalog>,
    private readonly log: Log,
  ) {
    this.#pings = new RunPings(cfg, log);
  }

  /** Start a run of `job` (a job name, or "repo:NAME" for a check). Returns the end function; never throws. */
  async begin(job: string, kind: RunKind, info: { source: string; repository?: string }): Promise<(o: CommandRunOutcome) => Promise<void>> {
    const startedAt = new Date();
    let runId: number | undefined;
    try {
      this.#catalog ??= await this.openCatalog();
      runId = await this.#catalog.startRun({ job, source: info.source, kind, ...(info.repository ? { repository: info.repository } : {}), startedAt, agentId: agentIdOf(this.cfg.daemon) });
    } catch (err) {
      this.log(`catalog: cannot record the run of ${job}: ${redactText(errorMessage(err))}`);
    }
    if (kind === 'backup') this.#pings.started(job);
    return async (o) => {
      try {
        if (runId !== undefined) {
          await this.#catalog!.finishRun(runId, {
            status: o.status,
            ...(o.error ? { error: o.error } : {}),
            ...(o.snapshotId ? { snapshotId: o.snapshotId } : {}),
            ...(o.totalSize !== undefined ? { totalSize: o.totalSize } : {}),
            ...(o.bytesAdded !== undefined ? { bytesAdded: o.bytesAdded } : {}),
            ...(o.bytesRead !== undefined ? { bytesRead: o.bytesRead } : {}),
            ...(o.files !== undefined ? { files: o.files } : {}),
            ...(o.errors !== undefined ? { errors: o.errors } : {}),
          });
        }
      } catch (err) {
        this.log(`catalog: cannot record the end of ${job}: ${redactText(errorMessage(err))}`);
      }
      if (kind === 'backup') {
        this.#touched.add(job);
        await this.#pings.finished(job, {
          exitCode: o.exitCode,
          durationMs: Date.now() - startedAt.getTime(),
          ...(o.error ? { error: o.error } : {}),
          ...(o.summary ? { summary: o.summary } : {}),
        });
      }
    };
  }

  /** A finding of the command itself (e.g. check integrity), alerted at close(). */
  addFinding(f: Finding): void {
    this.#extra.push(f);
  }

  /** Alert for every job run through this reporter, then close the catalog. Never throws. */
  async close(): Promise<void> {
    try {
      if (this.#catalog && (this.#touched.size || this.#extra.length)) await alertAfterRun(this.cfg, this.#catalog, [...this.#touched], { log: this.log, extra: this.#extra });
    } finally {
      await this.#catalog?.close().catch(() => {});
    }
  }
}
