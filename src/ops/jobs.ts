import type { LifeboatConfig } from '../config/load.js';
import { configPath } from '../config/paths.js';
import type { JobConfig } from '../config/schema.js';
import { jobRepository, openConfiguredRepo } from '../config/repos.js';
import { ConfigError, ExitCode, LifeboatError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { copySnapshots } from '../repo/copy.js';
import { copyWal, DEFAULT_ARCHIVE } from '../repo/wal.js';
import type { Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId } from '../repo/snapshot.js';
import { applyRetention, isEmptyPolicy, type RetentionPolicy } from '../policy/retention.js';
import { backupPaths } from '../engine/archiver.js';
import { prune } from '../repo/prune.js';
import { checkRepository } from '../verify/check.js';
import { runSourceBackup } from '../sources/run.js';

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

export { jobRepository } from '../config/repos.js';

/** Snapshots that belong to a source: tagged source:NAME (files) or source.name (streams). */
export function isSourceSnapshot(s: SnapshotWithId, source: string): boolean {
  return s.source?.name === source || s.tags.includes(`source:${source}`);
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
  cfg: LifeboatConfig,
  jobName: string,
  opts: { signal?: AbortSignal; log?: (msg: string) => void; retryLockMs?: number; timeoutMs?: number } = {},
): Promise<JobResult> {
  const job = cfg.jobs[jobName];
  if (!job) throw new ConfigError(`unknown job "${jobName}" (defined: ${Object.keys(cfg.jobs).join(', ') || 'none'})`);
  const src = cfg.sources[job.source];
  if (!src) throw new ConfigError(`job ${jobName}: unknown source "${job.source}"`);
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
  const work = runJobUnguarded(cfg, jobName, { ...opts, signal });
  try {
    return await new Promise<JobResult>((resolve, reject) => {
      const onAbort = () => {
        const why = errorMessage(signal.reason);
        const repository = jobRepository(cfg, job);
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
  cfg: LifeboatConfig,
  jobName: string,
  opts: { signal: AbortSignal; log?: (msg: string) => void; retryLockMs?: number },
): Promise<JobResult> {
  const job = cfg.jobs[jobName]!;
  const src = cfg.sources[job.source]!;
  const repoName = jobRepository(cfg, job);
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
  const policy = (job.retention ?? cfg.defaults.retention ?? {}) as RetentionPolicy;
  let repo: Repository | undefined;
  try {
    repo = await openConfiguredRepo(cfg, repoName, { retryLockMs: opts.retryLockMs ?? 60_000, signal: opts.signal });
    const tags = [...job.tags, `job:${jobName}`];
    if (src.kind === 'files') {
      const r = await backupPaths(repo, {
        paths: src.paths.map((p) => configPath(cfg, p)),
        excludes: src.excludes,
        oneFileSystem: src.oneFileSystem,
        tags: [...src.tags, ...tags, `source:${job.source}`],
        signal: opts.signal,
        onWarning: (p, m) => result.warnings.push(`${p}: ${m}`),
      });
      result.snapshotId = r.snapshotId;
      result.summary = r.summary;
      result.status = r.summary.errors > 0 ? 'partial' : 'success';
    } else {
      const r = await runSourceBackup(repo, job.source, src, cfg, { tags, signal: opts.signal });
      result.snapshotId = r.snapshotId;
      result.summary = r.summary;
      result.status = 'success';
    }
    log(`job ${jobName}: snapshot ${result.snapshotId!.slice(0, 8)} in ${repoName}`);
    if (!isEmptyPolicy(policy)) result.forgotten += await applyJobRetention(repo, job.source, policy);

    for (const target of job.copyTo) {
      let dst: Repository | undefined;
      try {
        dst = await openConfiguredRepo(cfg, target, { retryLockMs: opts.retryLockMs ?? 60_000, signal: opts.signal });
        const snap = await repo.loadSnapshot(result.snapshotId!);
        const c = await copySnapshots(repo, dst, [snap]);
        // physical PostgreSQL backups: the copy also needs the WAL archive for point-in-time recovery
        if (src.kind === 'postgres-physical') await copyWal(repo, dst, { archive: src.archive ?? DEFAULT_ARCHIVE });
        result.copies.push({ repository: target, snapshotId: c.copied[0]?.target ?? c.skipped[0] });
        if (!isEmptyPolicy(policy)) result.forgotten += await applyJobRetention(dst, job.source, policy);
        log(`job ${jobName}: copied to ${target}`);
      } catch (err) {
        result.copies.push({ repository: target, error: (err as Error).message });
        result.status = 'partial';
        result.warnings.push(`copy to ${target} failed: ${(err as Error).message}`);
      } finally {
        await dst?.close();
      }
    }
  } catch (err) {
    result.status = 'failed';
    result.error = err instanceof LifeboatError ? err.message : `unexpected: ${(err as Error).message}`;
    result.exitCode = err instanceof LifeboatError ? err.exitCode : ExitCode.FATAL;
  } finally {
    await repo?.close().catch(() => {});
    result.finishedAt = new Date();
  }
  return result;
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
  cfg: LifeboatConfig,
  opts: {
    log?: (m: string) => void;
    /** Rotating subsets (src/verify/drill-rotation.ts): the subset this run reads, e.g. "2/10". Default: the configured subset. */
    subsetFor?: (repositoryId: string, repositoryName: string, subset: string) => Promise<string>;
  } = {},
): Promise<MaintenanceResult[]> {
  const m = cfg.daemon.maintenance;
  const out: MaintenanceResult[] = [];
  if (!m) return out;
  const names = new Set<string>();
  for (const j of Object.values(cfg.jobs)) {
    names.add(jobRepository(cfg, j));
    for (const c of j.copyTo) names.add(c);
  }
  for (const name of names) {
    const res: MaintenanceResult = { repository: name };
    let repo: Repository | undefined;
    try {
      repo = await openConfiguredRepo(cfg, name, { retryLockMs: 30 * 60_000, allowInit: false });
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
