import { ConfigError, ExitCode, LifeboatError, NoRepositoryError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { copySnapshots } from '../repo/copy.js';
import type { Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId } from '../repo/snapshot.js';
import { applyRetention, isEmptyPolicy, type RetentionPolicy } from '../policy/retention.js';
import { prune } from '../repo/prune.js';
import { checkRepository } from '../verify/check.js';
import { backupSource, copySourceExtras } from '../sources/pipeline.js';
import { isSourceSnapshot } from '../sources/files/kind.js';
import type { ResolvedJob, ResolvedPlan } from '../config/resolve.js';
import type { BackupProgress } from '../engine/progress.js';

/** The job `name` of the plan, or a ConfigError naming the defined ones. */
export function planJob(plan: ResolvedPlan, name: string): ResolvedJob {
  const job = plan.jobs[name];
  if (!job) throw new ConfigError(`unknown job "${name}" (defined: ${Object.keys(plan.jobs).join(', ') || 'none'})`);
  return job;
}

/**
 * Running one job of the plan: back up its source into its repository, copy
 * the new snapshot to the job's further repositories (3-2-1), and apply the
 * retention policy to that source's snapshots in every one of them.
 */
export interface JobResult {
  job: string;
  source: string;
  repository: string;
  status: 'success' | 'partial' | 'failed';
  snapshotId?: string;
  summary?: BackupSummary;
  copies: Array<{ repository: string; snapshotId?: string; error?: string }>;
  /** Bytes moved to/from repository storage by this run (the repository and its copies). */
  transferred?: { bytesUploaded: number; bytesDownloaded: number };
  forgotten: number;
  warnings: string[];
  error?: string;
  /** The run was abandoned at the job's timeout. */
  timedOut?: boolean;
  /** For a failed job: the exit code of the error (src/errors.ts), e.g. 12 wrong password, 10 no repository. */
  exitCode?: number;
  startedAt: Date;
  finishedAt: Date;
}


export async function applyJobRetention(repo: Repository, source: string, policy: RetentionPolicy): Promise<number> {
  if (isEmptyPolicy(policy)) return 0;
  const lock = await repo.lock(false, 'forget');
  try {
    const snaps = (await repo.listSnapshots()).filter((s) => isSourceSnapshot(s, source));
    const d = applyRetention(snaps, policy);
    for (const s of d.remove) await repo.removeSnapshot(s.id);
    return d.remove.length;
  } finally {
    await lock.release();
  }
}

export interface RunJobOptions {
  signal?: AbortSignal;
  log?: (msg: string) => void;
  retryLockMs?: number;
  timeoutMs?: number;
  /**
   * The autoInit typo guard: whether this is the job's first run (no
   * successful or partial backup of it in the catalog yet). A repository with
   * `autoInit: true` is created only on a first run; on a later run a missing
   * repository is an error (its location may be mistyped). Entry points ask
   * the catalog (see firstRunFromCatalog); without it, autoInit applies as
   * configured (library use without a catalog).
   */
  firstRun?: () => Promise<boolean>;
  /** Counters the backup advances as it goes (the CLI's progress display reads them). */
  progress?: BackupProgress;
  /** The scheduled slot (ISO time) of a runOn: any job: its snapshot is tagged `slot:<time>`. */
  slot?: string;
  /**
   * Before backing up, look for a snapshot of this job tagged with the slot
   * (written by an agent that died before recording the slot as finished) and
   * return it instead of making a second one.
   */
  reuseSlotSnapshot?: boolean;
  /**
   * Called once the job's repository is open, before its backup: the entry point's settings for
   * the process doing this source's kind of work (`lifeboat run`: the same as `backup --source`,
   * cli/context.ts sourceBackupSettings).
   */
  opened?: (repo: Repository, source: ResolvedJob['source']) => void;
}

/** The first-run check of runJob from a catalog: no successful or partial backup of the job recorded yet. */
export function firstRunFromCatalog(catalog: { lastSuccess(job: string, opts?: { includePartial?: boolean }): Promise<unknown> }, job: string): () => Promise<boolean> {
  return async () => !(await catalog.lastSuccess(job, { includePartial: true }));
}

/**
 * Open a repository of a job's run: with autoInit, create it only on the
 * job's first run, and say so loudly (a warning in the log and in the run's
 * warnings); on a later run a missing repository is an error naming the
 * location, which may be mistyped.
 */
async function openJobRepository(plan: ResolvedPlan, jobName: string, name: string, firstRun: boolean, result: JobResult, log: (m: string) => void, opts: { retryLockMs: number; signal: AbortSignal }): Promise<Repository> {
  try {
    return await plan.openRepository(name, {
      retryLockMs: opts.retryLockMs,
      signal: opts.signal,
      allowInit: firstRun,
      onInit: (location) => {
        const m = `created a new empty repository at ${location} (repository ${name}, autoInit: first run of job ${jobName})`;
        result.warnings.push(m);
        log(`warning: ${m}`);
      },
    });
  } catch (err) {
    if (err instanceof NoRepositoryError && !firstRun && plan.repository(name).config.autoInit) {
      throw new LifeboatError(
        `no Lifeboat repository at ${plan.repository(name).location} (repository ${name}), but job ${jobName} has backed up before: autoInit creates a repository only on a job's first run. The location may be mistyped, or the repository was moved or deleted; fix repositories.${name}.location, or create it deliberately with "lifeboat init"`,
        ExitCode.NO_REPO,
      );
    }
    throw err;
  }
}

/**
 * Run a job, enforcing its `timeout` (or opts.timeoutMs) and opts.signal even
 * when storage or a source hangs: at the deadline the run's signal is aborted
 * (every storage request of the run ends at once, see storageFor) and the
 * result -- failed, "timed out after ..." -- is returned right away, without
 * waiting for calls that cannot be cancelled (a hung file system). Work still
 * running in the background after that cannot publish a snapshot: its storage
 * refuses every request.
 */
export async function runJob(
  plan: ResolvedPlan,
  jobName: string,
  opts: RunJobOptions = {},
): Promise<JobResult> {
  const resolved = planJob(plan, jobName);
  const { job } = resolved;
  const timeoutMs = opts.timeoutMs ?? parseDuration(job.timeout);
  const startedAt = new Date();
  const controller = new AbortController();
  const timedOut = new Error(`timed out after ${job.timeout}`);
  // (setTimeout holds at most ~24.8 days; a longer timeout is as good as none)
  const timer = setTimeout(() => controller.abort(timedOut), Math.min(timeoutMs, 2 ** 31 - 1));
  const onOuter = () => controller.abort(opts.signal!.reason ?? new Error('aborted'));
  if (opts.signal?.aborted) onOuter();
  else opts.signal?.addEventListener('abort', onOuter, { once: true });
  const signal = controller.signal;
  const work = runJobUnguarded(plan, resolved, { ...opts, signal });
  try {
    return await new Promise<JobResult>((resolve, reject) => {
      const onAbort = () => {
        const why = errorMessage(signal.reason);
        const repository = resolved.repository;
        (opts.log ?? (() => {}))(`job ${jobName}: ${why}; abandoning the run`);
        resolve({
          job: jobName,
          source: job.source,
          repository,
          status: 'failed',
          copies: [],
          forgotten: 0,
          warnings: [],
          error: signal.reason === timedOut ? `job ${jobName} timed out after ${job.timeout}; the run was abandoned (an unfinished backup writes no snapshot)` : `aborted: ${why}`,
          ...(signal.reason === timedOut ? { timedOut: true } : {}),
          startedAt,
          finishedAt: new Date(),
        });
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      work.then(
        (r) => {
          signal.removeEventListener('abort', onAbort);
          resolve(r);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onOuter);
    // a run abandoned at its deadline: its storage refuses further requests, so
    // its remaining work fails fast; errors from it are of no interest any more
    work.catch(() => {});
  }
}

async function runJobUnguarded(
  plan: ResolvedPlan,
  resolved: ResolvedJob,
  opts: RunJobOptions & { signal: AbortSignal },
): Promise<JobResult> {
  const { job, name: jobName } = resolved;
  const repoName = resolved.repository;
  const log = opts.log ?? (() => {});
  const result: JobResult = {
    job: jobName,
    source: job.source,
    repository: repoName,
    status: 'failed',
    copies: [],
    forgotten: 0,
    warnings: [],
    startedAt: new Date(),
    finishedAt: new Date(),
  };
  const policy = (resolved.retention ?? {}) as RetentionPolicy;
  let repo: Repository | undefined;
  try {
    const firstRun = opts.firstRun ? await opts.firstRun() : true;
    const open = (name: string) => openJobRepository(plan, jobName, name, firstRun, result, log, { retryLockMs: opts.retryLockMs ?? 60_000, signal: opts.signal });
    repo = await open(repoName);
    opts.opened?.(repo, resolved.source);
    const tags = [...job.tags, `job:${jobName}`];
    if (opts.slot) {
      const slotTag = `slot:${opts.slot}`;
      tags.push(slotTag);
      if (opts.reuseSlotSnapshot) {
        const done = (await repo.listSnapshots()).find((s) => s.tags.includes(slotTag) && s.tags.includes(`job:${jobName}`));
        if (done) {
          log(`job ${jobName}: slot ${opts.slot} already has snapshot ${done.id.slice(0, 8)} (its first agent stopped before recording it); not backing up again`);
          result.snapshotId = done.id;
          result.status = 'success';
          result.warnings.push(`slot ${opts.slot}: snapshot ${done.id} was written by the agent that held the slot before; not backed up again`);
          return result;
        }
      }
    }
    const r = await backupSource(repo, resolved.source, {
      tags,
      signal: opts.signal,
      onWarning: (p, m) => result.warnings.push(`${p}: ${m}`),
      ...(opts.progress ? { progress: opts.progress } : {}),
    });
    result.snapshotId = r.snapshotId;
    result.summary = r.summary;
    result.status = r.partial ? 'partial' : 'success';
    log(`job ${jobName}: snapshot ${result.snapshotId!.slice(0, 8)} in ${repoName}`);
    if (!isEmptyPolicy(policy)) result.forgotten += await applyJobRetention(repo, job.source, policy);

    for (const target of resolved.copies) {
      let dst: Repository | undefined;
      try {
        dst = await open(target);
        const snap = await repo.loadSnapshot(result.snapshotId!);
        const c = await copySnapshots(repo, dst, [snap]);
        // what else a restore from the copy needs (PostgreSQL physical: the WAL archive; MySQL with binlog: the binary logs)
        await copySourceExtras(resolved.source, repo, dst);
        result.copies.push({ repository: target, snapshotId: c.copied[0]?.target ?? c.skipped[0] });
        if (!isEmptyPolicy(policy)) result.forgotten += await applyJobRetention(dst, job.source, policy);
        log(`job ${jobName}: copied to ${target}`);
      } catch (err) {
        result.copies.push({ repository: target, error: (err as Error).message });
        result.status = 'partial';
        result.warnings.push(`copy to ${target} failed: ${(err as Error).message}`);
      } finally {
        addTransferred(result, dst);
        await dst?.close();
      }
    }
  } catch (err) {
    result.status = 'failed';
    result.error = err instanceof LifeboatError ? err.message : `unexpected: ${(err as Error).message}`;
    result.exitCode = err instanceof LifeboatError ? err.exitCode : ExitCode.FATAL;
  } finally {
    addTransferred(result, repo);
    await repo?.close().catch(() => {});
    result.finishedAt = new Date();
  }
  return result;
}

/** Add a repository's storage byte counters (storage/limits.ts) to the run's. */
function addTransferred(result: JobResult, repo: Repository | undefined): void {
  const t = repo?.storage.transferred?.();
  if (!t) return;
  result.transferred = {
    bytesUploaded: (result.transferred?.bytesUploaded ?? 0) + t.bytesUploaded,
    bytesDownloaded: (result.transferred?.bytesDownloaded ?? 0) + t.bytesDownloaded,
  };
}

export interface MaintenanceResult {
  repository: string;
  pruned?: { packsDeleted: number; bytesFreed: number };
  check?: { ok: boolean; problems: number; packsRead: number; subset?: string };
  error?: string;
}

/**
 * Scheduled repository maintenance (daemon.maintenance): prune every
 * repository of the plan (waiting for running backups: prune needs the
 * exclusive lock) and read a rotating subset of the data with check.
 */
export async function runMaintenance(
  plan: ResolvedPlan,
  opts: {
    log?: (m: string) => void;
    /** Rotating subsets (src/verify/drill-rotation.ts): the subset this run reads, e.g. "2/10". Default: the configured subset. */
    subsetFor?: (repositoryId: string, repositoryName: string, subset: string) => Promise<string>;
  } = {},
): Promise<MaintenanceResult[]> {
  const m = plan.daemon.maintenance;
  const out: MaintenanceResult[] = [];
  if (!m) return out;
  for (const name of plan.repositories) {
    const res: MaintenanceResult = { repository: name };
    let repo: Repository | undefined;
    try {
      repo = await plan.openRepository(name, { retryLockMs: 30 * 60_000, allowInit: false });
      if (m.prune) {
        const p = await prune(repo, { retryLockMs: 30 * 60_000 });
        res.pruned = { packsDeleted: p.packsDeleted, bytesFreed: p.bytesFreed };
      }
      if (m.checkReadDataSubset) {
        const lock = await repo.lock(false, 'check');
        try {
          const subset = opts.subsetFor ? await opts.subsetFor(repo.config.id, name, m.checkReadDataSubset) : m.checkReadDataSubset;
          const c = await checkRepository(repo, { readData: true, subset });
          res.check = { ok: c.ok, problems: c.problems.length, packsRead: c.packsRead, subset };
        } finally {
          await lock.release();
        }
      }
      opts.log?.(`maintenance ${name}: ${res.pruned ? `pruned ${res.pruned.packsDeleted} pack(s)` : ''}${res.check ? `, check ${res.check.ok ? 'ok' : `${res.check.problems} problem(s)`}` : ''}`);
    } catch (err) {
      res.error = (err as Error).message;
      opts.log?.(`maintenance ${name}: ${res.error}`);
    } finally {
      await repo?.close().catch(() => {});
    }
    out.push(res);
  }
  return out;
}
