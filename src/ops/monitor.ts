import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import type { LifeboatConfig } from '../config/config.js';
import { resolvePlan, type ResolvedPlan } from '../config/resolve.js';
import { sourceKind } from '../sources/registry.js';
import { errorMessage } from '../errors.js';
import { describeRpo, resolveObjectives, rpoStatus } from '../policy/objectives.js';
import { type Tier, TIERS } from '../config/tiers.js';
import { parseLocation } from '../storage/open.js';
import { parseBytes, parseFreeThreshold, type FreeThreshold } from '../config/alerts.js';
import { formatDuration } from '../util/format.js';
import { parseDuration } from '../util/duration.js';
import type { Catalog, RunRecord, Severity, SizePoint } from './catalog/types.js';

/**
 * Health evaluation of the backup plan from catalog data and objectives.
 *
 * Checks (each yields one Finding per job, or per repository for free-space):
 *   rpo         age of the last successful backup vs the job's RPO (rpoStatus:
 *               ok ≤ RPO < warning ≤ 2×RPO < critical; never succeeded = critical),
 *               or vs the absolute jobs.NAME.alerts.age { warn, critical } when set
 *   size        latest successful snapshot's logical size vs the median of the
 *               previous N successful ones: below minRatio (default 0.5) is
 *               critical (a dump that silently shrank is likely missing data),
 *               above maxRatio (default 2.0) is a warning; absolute limits
 *               (jobs.NAME.alerts.size): below min critical, above max warning
 *   failures    consecutive failed runs (retried attempts not counted):
 *               ≥ warnAfter (1) warning, ≥ criticalAfter (3) critical; a last
 *               run that was partial (unreadable files, failed copy) is a warning
 *   free-space  free space of local repositories (statfs): below warnPercent
 *               (10%) warning, below criticalPercent (5%) critical, or the
 *               repository's own alerts.freeSpace { warn, critical } (bytes or
 *               percent); S3 is reported ok with `measurable: false`
 *
 * The check functions (checkRpo, checkSize, checkFailures, checkFreeSpace) are
 * pure; evaluate() gathers the data and calls them.
 */

export const CHECKS = ['rpo', 'size', 'failures', 'free-space'] as const;
/** The monitor's own checks, plus findings raised by other modules (restore drills, `lifeboat check`). */
export type CheckName = (typeof CHECKS)[number] | 'drill' | 'integrity' | 'replica' | 'heartbeat' | 'slots';

export interface Finding {
  /** Job name; for repository checks "repo:NAME". */
  job: string;
  check: CheckName;
  severity: Severity;
  /** Tier used for routing (for repository checks: the highest tier of the jobs using it). */
  tier: Tier;
  /** One line, no secrets. */
  message: string;
  details: Record<string, unknown>;
}

export interface MonitorReport {
  at: Date;
  /** Worst severity of all findings. */
  state: Severity;
  findings: Finding[];
  /** Worst severity per job (repository findings under "repo:NAME"). */
  jobs: Record<string, Severity>;
}

export interface RepositorySpec {
  name: string;
  /** Location as configured (no credentials). */
  location: string;
  /** Absolute directory for local repositories; undefined for S3 (free space not measurable). */
  localPath?: string;
  /** repositories.NAME.alerts.freeSpace: overrides the monitor's percent defaults. */
  freeSpace?: { warn?: FreeThreshold; critical?: FreeThreshold };
}

export interface JobSpec {
  name: string;
  tier: Tier;
  rpoMs: number;
  /**
   * A recovery point newer than the last backup run, if the job has one:
   * for PostgreSQL point-in-time recovery, the newest archived WAL file (data
   * up to then is restorable on top of the last base backup).
   */
  recoveryPoint?: () => Promise<Date | undefined>;
  /** Primary repository first, then copy targets. */
  repositories: RepositorySpec[];
  /** jobs.NAME.alerts.age: absolute age thresholds instead of RPO / 2×RPO (either may be given). */
  age?: { warnMs?: number; criticalMs?: number };
  /** jobs.NAME.alerts.size: absolute snapshot size limits in bytes. */
  sizeLimits?: { min?: number; max?: number };
}

/** The age thresholds of a job: absolute ones when configured, else RPO (warning) and 2×RPO (critical). */
export function ageThresholds(job: Pick<JobSpec, 'rpoMs' | 'age'>): { warnMs: number; criticalMs: number } {
  const warnMs = job.age?.warnMs ?? job.rpoMs;
  const criticalMs = job.age?.criticalMs ?? Math.max(warnMs, 2 * job.rpoMs);
  return { warnMs, criticalMs };
}

export interface MonitorOptions {
  now?: Date;
  /** A partial backup (snapshot written, some files unreadable) counts as a recovery point for RPO (default true). */
  partialSatisfiesRpo?: boolean;
  size?: {
    /** How many previous successful backups form the baseline (default 5). */
    window?: number;
    /** Fewer previous backups than this: no verdict (default 3). */
    minHistory?: number;
    /** latest / median below this: critical (default 0.5). */
    minRatio?: number;
    /** latest / median above this: warning (default 2.0). */
    maxRatio?: number;
  };
  failures?: { warnAfter?: number; criticalAfter?: number };
  freeSpace?: { warnPercent?: number; criticalPercent?: number; /** also critical below this many bytes */ criticalBytes?: number };
  /** Skip checks (e.g. ['free-space']). */
  skip?: CheckName[];
}

const SEVERITY_RANK: Record<Severity, number> = { ok: 0, warning: 1, critical: 2 };

export function worstSeverity(list: Iterable<Severity>): Severity {
  let w: Severity = 'ok';
  for (const s of list) if (SEVERITY_RANK[s] > SEVERITY_RANK[w]) w = s;
  return w;
}

export function severityRank(s: Severity): number {
  return SEVERITY_RANK[s];
}

function fmtBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// --- pure checks -------------------------------------------------------------

export function checkRpo(job: JobSpec, lastSuccess: RunRecord | undefined, now: Date, walAt?: Date): Finding {
  // archived WAL only counts on top of a base backup that succeeded
  const at = lastSuccess && walAt && walAt > lastSuccess.startedAt ? walAt : lastSuccess?.startedAt;
  const ageMs = at ? Math.max(0, now.getTime() - at.getTime()) : null;
  let severity: Severity;
  let text: string;
  if (job.age) {
    const { warnMs, criticalMs } = ageThresholds(job);
    severity = ageMs === null ? 'critical' : ageMs > criticalMs ? 'critical' : ageMs > warnMs ? 'warning' : 'ok';
    const limits = `warn after ${formatDuration(warnMs)}, critical after ${formatDuration(criticalMs)}`;
    text = ageMs === null ? `no successful backup (${limits}): ${severity}` : `last success ${formatDuration(ageMs)} ago (${limits}): ${severity}`;
  } else {
    severity = rpoStatus(at, job.rpoMs, now);
    text = describeRpo(at, job.rpoMs, now);
  }
  const { warnMs, criticalMs } = ageThresholds(job);
  return {
    job: job.name,
    check: 'rpo',
    severity,
    tier: job.tier,
    message: `${job.name}: ${text}${at && at === walAt ? ' (newest archived WAL)' : ''}`,
    details: {
      rpoMs: job.rpoMs,
      warnAfterMs: warnMs,
      criticalAfterMs: criticalMs,
      lastSuccessAt: at?.toISOString() ?? null,
      ...(walAt ? { walArchivedAt: walAt.toISOString() } : {}),
      ageMs,
      lastSuccessRunId: lastSuccess?.id ?? null,
      snapshotId: lastSuccess?.snapshotId ?? null,
    },
  };
}

/** `history` newest first (Catalog.sizeHistory): [latest, previous...]. Relative check, then the absolute limits (the worse verdict wins). */
export function checkSize(job: JobSpec, history: readonly SizePoint[], opts: MonitorOptions['size'] = {}): Finding {
  const rel = checkSizeRatio(job, history, opts);
  const latest = history[0];
  const lim = job.sizeLimits;
  if (!latest || !lim) return rel;
  const details = { ...rel.details, latestSize: latest.totalSize, ...(lim.min !== undefined ? { minBytes: lim.min } : {}), ...(lim.max !== undefined ? { maxBytes: lim.max } : {}) };
  if (lim.min !== undefined && latest.totalSize < lim.min) {
    return { ...rel, severity: 'critical', message: `${job.name}: latest backup is ${fmtBytes(latest.totalSize)}, under the minimum of ${fmtBytes(lim.min)}`, details };
  }
  if (lim.max !== undefined && latest.totalSize > lim.max && severityRank(rel.severity) < severityRank('warning')) {
    return { ...rel, severity: 'warning', message: `${job.name}: latest backup is ${fmtBytes(latest.totalSize)}, over the maximum of ${fmtBytes(lim.max)}`, details };
  }
  return { ...rel, details };
}

function checkSizeRatio(job: JobSpec, history: readonly SizePoint[], opts: MonitorOptions['size'] = {}): Finding {
  const window = opts.window ?? 5;
  const minHistory = opts.minHistory ?? 3;
  const minRatio = opts.minRatio ?? 0.5;
  const maxRatio = opts.maxRatio ?? 2.0;
  const base = { job: job.name, check: 'size' as const, tier: job.tier };
  const [latest, ...prev] = history;
  const previous = prev.slice(0, window);
  if (!latest || previous.length < minHistory) {
    return {
      ...base,
      severity: 'ok',
      message: `${job.name}: size baseline not established yet (${previous.length} of ${minHistory} earlier successful backups)`,
      details: { latestSize: latest?.totalSize ?? null, history: previous.length, minHistory },
    };
  }
  const med = median(previous.map((p) => p.totalSize));
  const ratio = med === 0 ? (latest.totalSize === 0 ? 1 : Infinity) : latest.totalSize / med;
  const details = {
    latestSize: latest.totalSize,
    medianSize: med,
    ratio,
    minRatio,
    maxRatio,
    window: previous.length,
    runId: latest.runId,
    snapshotId: latest.snapshotId,
    at: latest.startedAt.toISOString(),
  };
  const pct = Number.isFinite(ratio) ? `${Math.round(ratio * 100)}%` : 'from zero';
  if (ratio < minRatio) {
    return {
      ...base,
      severity: 'critical',
      message: `${job.name}: latest backup is ${fmtBytes(latest.totalSize)}, ${pct} of the median ${fmtBytes(med)} of the previous ${previous.length}: the source shrank by ${Math.round((1 - ratio) * 100)}%`,
      details,
    };
  }
  if (ratio > maxRatio) {
    return {
      ...base,
      severity: 'warning',
      message: `${job.name}: latest backup is ${fmtBytes(latest.totalSize)}, ${pct} of the median ${fmtBytes(med)} of the previous ${previous.length}`,
      details,
    };
  }
  return { ...base, severity: 'ok', message: `${job.name}: latest backup ${fmtBytes(latest.totalSize)} (${pct} of the median)`, details };
}

/** `lastRun`: the newest finished run of the job that is not a retried attempt. */
export function checkFailures(job: JobSpec, streak: number, lastRun: RunRecord | undefined, opts: MonitorOptions['failures'] = {}): Finding {
  const warnAfter = opts.warnAfter ?? 1;
  const criticalAfter = opts.criticalAfter ?? 3;
  const base = { job: job.name, check: 'failures' as const, tier: job.tier };
  const details = {
    streak,
    warnAfter,
    criticalAfter,
    lastRunId: lastRun?.id ?? null,
    lastStatus: lastRun?.status ?? null,
    lastError: lastRun?.error ?? null,
  };
  if (streak > 0 && streak >= warnAfter) {
    const severity: Severity = streak >= criticalAfter ? 'critical' : 'warning';
    const why = lastRun?.status === 'failed' && lastRun.error ? `: ${lastRun.error.split('\n')[0]}` : '';
    return { ...base, severity, message: `${job.name}: ${streak} consecutive failed run${streak > 1 ? 's' : ''}${why}`, details };
  }
  if (streak === 0 && lastRun?.status === 'partial') {
    const what = lastRun.errors ? `${lastRun.errors} item(s) could not be read` : lastRun.error ?? 'partial';
    return { ...base, severity: 'warning', message: `${job.name}: last run was partial: ${what.split('\n')[0]}`, details };
  }
  return { ...base, severity: 'ok', message: `${job.name}: ${streak === 0 ? 'no failures' : `${streak} failure(s), below threshold`}`, details };
}

export interface FreeSpace {
  /** Bytes available to an unprivileged user. */
  available: number;
  total: number;
}

export function checkFreeSpace(repo: RepositorySpec, tier: Tier, space: FreeSpace | undefined, opts: MonitorOptions['freeSpace'] = {}, error?: string): Finding {
  const warnPercent = opts.warnPercent ?? 10;
  const criticalPercent = opts.criticalPercent ?? 5;
  const base = { job: `repo:${repo.name}`, check: 'free-space' as const, tier };
  if (!space) {
    return {
      ...base,
      severity: 'ok',
      message: `repository ${repo.name}: free space not measurable${error ? ` (${error})` : repo.localPath ? '' : ' (object storage)'}`,
      details: { repository: repo.name, measurable: false, ...(error ? { error } : {}) },
    };
  }
  const percent = space.total > 0 ? (space.available / space.total) * 100 : 0;
  // the repository's own thresholds replace the defaults, each level separately
  const below = (t: FreeThreshold | undefined, defaultPercent: number) =>
    t === undefined ? percent < defaultPercent : 'bytes' in t ? space.available < t.bytes : percent < t.percent;
  const show = (t: FreeThreshold | undefined, defaultPercent: number) => (t === undefined ? `${defaultPercent}%` : 'bytes' in t ? fmtBytes(t.bytes) : `${t.percent}%`);
  const details = {
    repository: repo.name,
    measurable: true,
    availableBytes: space.available,
    totalBytes: space.total,
    freePercent: percent,
    warnPercent,
    criticalPercent,
    ...(repo.freeSpace ? { warnBelow: show(repo.freeSpace.warn, warnPercent), criticalBelow: show(repo.freeSpace.critical, criticalPercent) } : {}),
  };
  const desc = `${fmtBytes(space.available)} free of ${fmtBytes(space.total)} (${percent.toFixed(1)}%)`;
  if (below(repo.freeSpace?.critical, criticalPercent) || (opts.criticalBytes !== undefined && space.available < opts.criticalBytes)) {
    return { ...base, severity: 'critical', message: `repository ${repo.name}: ${desc}, below ${show(repo.freeSpace?.critical, criticalPercent)}`, details };
  }
  if (below(repo.freeSpace?.warn, warnPercent)) return { ...base, severity: 'warning', message: `repository ${repo.name}: ${desc}, below ${show(repo.freeSpace?.warn, warnPercent)}`, details };
  return { ...base, severity: 'ok', message: `repository ${repo.name}: ${desc}`, details };
}

// --- data gathering ------------------------------------------------------------

/** statfs of the directory, or of its nearest existing parent (a repository not created yet). */
export async function measureFreeSpace(dir: string): Promise<FreeSpace> {
  let p = path.resolve(dir);
  for (;;) {
    try {
      const s = await fsp.statfs(p);
      return { available: s.bavail * s.bsize, total: s.blocks * s.bsize };
    } catch (err) {
      const parent = path.dirname(p);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || parent === p) throw err;
      p = parent;
    }
  }
}

/** The jobs of a config as monitor specs: for entry points that hold a config (resolves the plan; see jobsFromPlan). */
export function jobsFromConfig(cfg: LifeboatConfig): JobSpec[] {
  return jobsFromPlan(resolvePlan(cfg));
}

/** The jobs of the plan as monitor specs (objectives resolved, repository locations resolved). */
export function jobsFromPlan(plan: ResolvedPlan): JobSpec[] {
  const repoSpec = (name: string): RepositorySpec => {
    const { location, config: conf } = plan.repository(name);
    const parsed = parseLocation(location);
    const fs = conf.alerts?.freeSpace;
    return {
      name,
      location: conf.location,
      ...(parsed.kind === 'local' ? { localPath: path.resolve(parsed.path) } : {}),
      ...(fs
        ? { freeSpace: { ...(fs.warn !== undefined ? { warn: parseFreeThreshold(fs.warn) } : {}), ...(fs.critical !== undefined ? { critical: parseFreeThreshold(fs.critical) } : {}) } }
        : {}),
    };
  };
  return Object.values(plan.jobs).map((resolved) => {
    const { name, job } = resolved;
    const o = resolveObjectives(job.tier, { ...(job.rpo ? { rpo: job.rpo } : {}), ...(job.rto ? { rto: job.rto } : {}) });
    const repos = [resolved.repository, ...resolved.copies];
    const spec: JobSpec = { name, tier: o.tier, rpoMs: o.rpoMs, repositories: [...new Set(repos)].map(repoSpec) };
    const a = job.alerts;
    if (a?.age && (a.age.warn || a.age.critical)) {
      spec.age = { ...(a.age.warn ? { warnMs: parseDuration(a.age.warn) } : {}), ...(a.age.critical ? { criticalMs: parseDuration(a.age.critical) } : {}) };
    }
    if (a?.size && (a.size.min !== undefined || a.size.max !== undefined)) {
      spec.sizeLimits = { ...(a.size.min !== undefined ? { min: parseBytes(a.size.min) } : {}), ...(a.size.max !== undefined ? { max: parseBytes(a.size.max) } : {}) };
    }
    // point-in-time kinds: the newest recovery point is the newest archived log (WAL, binary log), not the last backup
    const logType = sourceKind(resolved.source.kind).recoveryLog?.(resolved.source.config);
    if (logType) {
      const primary = resolved.repository;
      spec.recoveryPoint = async () => {
        const storage = plan.openStorage(primary);
        try {
          let newest: Date | undefined;
          for (const o of await storage.list(logType)) if (o.mtime && (!newest || o.mtime > newest)) newest = o.mtime;
          return newest;
        } finally {
          await storage.close();
        }
      };
    }
    return spec;
  });
}

/** A job's extra recovery point; a failure to read it only loses the extra information. */
async function recoveryPointOf(job: JobSpec): Promise<Date | undefined> {
  try {
    return await job.recoveryPoint?.();
  } catch {
    return undefined;
  }
}

async function lastFinalRun(catalog: Catalog, job: string): Promise<RunRecord | undefined> {
  const runs = await catalog.runs({ job, kind: 'backup', status: ['success', 'failed', 'partial'], limit: 20 });
  return runs.find((r) => !r.willRetry) ?? runs[0];
}

/** Evaluate every check for every job. Never throws for one job's data problem: that job's check becomes a warning. */
export async function evaluate(catalog: Catalog, jobs: readonly JobSpec[], opts: MonitorOptions = {}): Promise<MonitorReport> {
  const now = opts.now ?? new Date();
  const skip = new Set(opts.skip ?? []);
  const findings: Finding[] = [];
  // the thresholds the backup_status view grades with (a read-only catalog only loses that)
  await syncJobThresholds(catalog, jobs, now).catch(() => {});
  const guard = async (job: string, check: CheckName, tier: Tier, f: () => Promise<Finding>) => {
    try {
      findings.push(await f());
    } catch (err) {
      findings.push({ job, check, tier, severity: 'warning', message: `${job}: ${check} check failed: ${errorMessage(err)}`, details: { error: errorMessage(err) } });
    }
  };
  for (const job of jobs) {
    if (!skip.has('rpo')) {
      await guard(job.name, 'rpo', job.tier, async () =>
        checkRpo(job, await catalog.lastSuccess(job.name, { includePartial: opts.partialSatisfiesRpo ?? true }), now, await recoveryPointOf(job)),
      );
    }
    if (!skip.has('size')) {
      await guard(job.name, 'size', job.tier, async () => checkSize(job, await catalog.sizeHistory(job.name, (opts.size?.window ?? 5) + 1), opts.size));
    }
    if (!skip.has('failures')) {
      await guard(job.name, 'failures', job.tier, async () =>
        checkFailures(job, await catalog.failureStreak(job.name), await lastFinalRun(catalog, job.name), opts.failures),
      );
    }
  }
  if (!skip.has('free-space')) {
    const repos = new Map<string, { spec: RepositorySpec; tier: Tier }>();
    for (const job of jobs) {
      for (const r of job.repositories) {
        const cur = repos.get(r.name);
        // highest tier = lowest index in TIERS
        if (!cur || TIERS.indexOf(job.tier) < TIERS.indexOf(cur.tier)) repos.set(r.name, { spec: r, tier: job.tier });
      }
    }
    for (const { spec, tier } of repos.values()) {
      if (!spec.localPath) {
        findings.push(checkFreeSpace(spec, tier, undefined, opts.freeSpace));
        continue;
      }
      try {
        findings.push(checkFreeSpace(spec, tier, await measureFreeSpace(spec.localPath), opts.freeSpace));
      } catch (err) {
        findings.push(checkFreeSpace(spec, tier, undefined, opts.freeSpace, (err as NodeJS.ErrnoException).code ?? errorMessage(err)));
      }
    }
  }
  const perJob: Record<string, Severity> = {};
  for (const f of findings) perJob[f.job] = worstSeverity([perJob[f.job] ?? 'ok', f.severity]);
  return { at: now, state: worstSeverity(findings.map((f) => f.severity)), findings, jobs: perJob };
}

export interface BackupHealth {
  /** true when every job's last success is within its RPO. */
  ok: boolean;
  at: Date;
  jobs: Array<{ job: string; status: Severity; lastSuccessAt: string | null; ageSeconds: number | null; rpoSeconds: number; reason: string }>;
  failing: Array<{ job: string; status: Severity; reason: string }>;
}

/** RPO compliance of every job (GET /health/backup). A job is failing when its RPO status is not ok. */
export async function backupHealth(catalog: Catalog, jobs: readonly JobSpec[], opts: { now?: Date; partialSatisfiesRpo?: boolean } = {}): Promise<BackupHealth> {
  const now = opts.now ?? new Date();
  const out: BackupHealth = { ok: true, at: now, jobs: [], failing: [] };
  for (const job of jobs) {
    const f = checkRpo(job, await catalog.lastSuccess(job.name, { includePartial: opts.partialSatisfiesRpo ?? true }), now, await recoveryPointOf(job));
    const ageMs = f.details.ageMs as number | null;
    out.jobs.push({
      job: job.name,
      status: f.severity,
      lastSuccessAt: f.details.lastSuccessAt as string | null,
      ageSeconds: ageMs === null ? null : Math.round(ageMs / 1000),
      rpoSeconds: job.rpoMs / 1000,
      reason: f.message,
    });
    if (f.severity !== 'ok') {
      out.ok = false;
      out.failing.push({ job: job.name, status: f.severity, reason: f.message });
    }
  }
  return out;
}

/**
 * Write each job's age thresholds into the catalog's job_thresholds table,
 * which the backup_status view grades with (docs/catalog-views.md).
 */
export async function syncJobThresholds(catalog: Catalog, jobs: readonly JobSpec[], now: Date = new Date()): Promise<void> {
  const sql = catalog.sql;
  for (const job of jobs) {
    const { warnMs, criticalMs } = ageThresholds(job);
    await sql.exec(
      `INSERT INTO ${sql.t('job_thresholds')} (job, warn_after_seconds, critical_after_seconds, updated_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (job) DO UPDATE SET warn_after_seconds = excluded.warn_after_seconds, critical_after_seconds = excluded.critical_after_seconds, updated_at = excluded.updated_at`,
      [job.name, Math.round(warnMs / 1000), Math.round(criticalMs / 1000), now],
    );
  }
}
