import { agentIdOf } from '../config/agent-id.js';
import type { ResolvedJob, ResolvedPlan } from '../config/resolve.js';
import { ConfigError, LifeboatError, errorMessage } from '../errors.js';
import type { Catalog } from '../ops/catalog/types.js';
import { isSourceSnapshot } from '../sources/files/kind.js';
import type { Finding } from '../ops/monitor.js';
import { AlertManager } from '../ops/notify/manager.js';
import { parseNotifiersConfig } from '../config/notifiers.js';
import { resolveObjectives } from '../policy/objectives.js';
import { parseDuration } from '../util/duration.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { listWal } from '../repo/wal.js';
import { DEFAULT_ARCHIVE } from '../repo/wal-names.js';
import { listBinlogs } from '../repo/binlog.js';
import { formatDurationPrecise as formatDuration } from '../util/format.js';
import { drillConfigSchema, type DrillConfig } from '../config/drill.js';
import { runQueries, runQueryCommand } from './drill-queries.js';
import { recordDrill } from './drill-store.js';
import { SQL_KINDS } from '../sources/scratch.js';
import { SOURCE_KINDS } from '../sources/registry.js';
import type { DrillCheck, QueryValue, ScratchTarget } from '../sources/scratch.js';
import type { DrillPhase, DrillResult } from './drill-types.js';

/**
 * Restore drills: prove that the newest (or a chosen) snapshot of a job's
 * source restores, within the job's RTO, into a scratch target that is not the
 * live data; check what arrived; run the operator's verification queries;
 * always remove the scratch target again.
 *
 * Phases, each timed: locate (open the repository, pick the snapshot),
 * restore, integrity (kind-specific checks), queries, cleanup. The measured
 * restore time is restore + integrity (until the data is known usable); it is
 * compared with the job's RTO. A drill fails when the restore fails, any check
 * or query fails, or the restore took longer than the RTO. The RPO is compared
 * with the age of the newest restorable snapshot at drill time (reported,
 * does not fail the drill: the monitor's rpo check alerts on it).
 */


export interface DrillOptions {
  /** Snapshot id (prefix) to drill instead of the newest one of the source. */
  snapshot?: string;
  signal?: AbortSignal;
  log?: (m: string) => void;
  /** Record the result (drills table + a runs row of kind 'drill') and alert through the notifiers. */
  catalog?: Catalog;
  /** Alert through cfg.notifiers (default true when a catalog is given). */
  notify?: boolean;
  /** Keep the scratch target (overrides drill.keepTarget). */
  keepTarget?: boolean;
}


/** The drill settings of a job (defaults when it has no `drill` block). */
export function jobDrillConfig(job: ResolvedJob): DrillConfig {
  return job.drill ?? drillConfigSchema.parse({});
}

function sourceSnapshots(snaps: SnapshotWithId[], source: string): SnapshotWithId[] {
  return snaps.filter((s) => isSourceSnapshot(s, source)).sort((a, b) => Date.parse(a.time) - Date.parse(b.time));
}

export async function runDrill(plan: ResolvedPlan, job: string, opts: DrillOptions = {}): Promise<DrillResult> {
  const resolved = plan.jobs[job];
  if (!resolved) throw new ConfigError(`unknown job "${job}" (defined: ${Object.keys(plan.jobs).join(', ') || 'none'})`);
  const jobCfg = resolved.job;
  const src = resolved.source.config;
  const drill = jobDrillConfig(resolved);
  for (const [i, q] of drill.queries.entries()) {
    if (q.sql !== undefined && !SQL_KINDS.has(src.kind)) {
      throw new ConfigError(`jobs.${job}.drill.queries.${i}.sql: ${src.kind} sources have no SQL; use "command" (the scratch target is in LIFEBOAT_DRILL_TARGET)`);
    }
  }
  const objectives = resolveObjectives(jobCfg.tier, { ...(jobCfg.rpo ? { rpo: jobCfg.rpo } : {}), ...(jobCfg.rto ? { rto: jobCfg.rto } : {}) });
  const repoName = resolved.repository;
  const log = opts.log ?? (() => {});
  const keep = opts.keepTarget ?? drill.keepTarget;
  const timeoutMs = parseDuration(drill.timeout);

  // abort on the caller's signal or the drill timeout
  const controller = new AbortController();
  const onOuter = () => controller.abort(opts.signal?.reason ?? new Error('aborted'));
  if (opts.signal?.aborted) onOuter();
  opts.signal?.addEventListener('abort', onOuter, { once: true });
  const timer = setTimeout(() => controller.abort(new Error(`drill timeout after ${drill.timeout}`)), timeoutMs);
  const signal = controller.signal;
  const deadline = Date.now() + timeoutMs;

  const startedAt = new Date();
  const phases: DrillPhase[] = [];
  const checks: DrillCheck[] = [];
  let error: string | undefined;
  let errorExitCode: number | undefined;
  let cleanupError: string | undefined;
  let snapshot: SnapshotWithId | undefined;
  let newest: SnapshotWithId | undefined;
  let newestPointMs: number | undefined;
  let target: ScratchTarget | undefined;
  let repo: Repository | undefined;

  const runId = opts.catalog ? await opts.catalog.startRun({ job, source: jobCfg.source, kind: 'drill', repository: repoName, startedAt, agentId: agentIdOf(plan.daemon) }) : undefined;

  /** Run one timed phase; a failure is recorded and rethrown. */
  const phase = async <T>(name: string, fn: () => Promise<T>, detail?: (v: T) => string | undefined): Promise<T> => {
    const t0 = new Date();
    try {
      // cleanup runs also after an abort/timeout
      if (signal.aborted && name !== 'cleanup') throw new LifeboatError(`drill aborted: ${errorMessage(signal.reason)}`);
      const v = await fn();
      const d = detail?.(v);
      phases.push({ name, startedAt: t0, ms: Date.now() - t0.getTime(), ok: true, ...(d ? { detail: d } : {}) });
      log(`drill ${job}: ${name} ${formatDuration(Date.now() - t0.getTime())}`);
      return v;
    } catch (err) {
      const why = errorMessage(signal.reason);
      const msg = signal.aborted && !errorMessage(err).includes(why) ? `${errorMessage(err)} (${why})` : errorMessage(err);
      phases.push({ name, startedAt: t0, ms: Date.now() - t0.getTime(), ok: false, detail: msg });
      log(`drill ${job}: ${name} failed: ${msg}`);
      throw new LifeboatError(`${name}: ${msg}`, err instanceof LifeboatError && !signal.aborted ? err.exitCode : undefined);
    }
  };

  try {
    await phase(
      'locate',
      async () => {
        repo = await plan.openRepository(repoName, { retryLockMs: 60_000, allowInit: false });
        const snaps = sourceSnapshots(await repo.listSnapshots(), jobCfg.source);
        newest = snaps[snaps.length - 1];
        // point-in-time recovery: the newest restorable point is the newest archived WAL, not the base backup
        const recoveryLog = newest ? SOURCE_KINDS[src.kind].recoveryLog?.(src) : undefined;
        if (recoveryLog === 'wal' && newest) {
          const archive = String((newest.source as { archive?: string } | undefined)?.archive ?? DEFAULT_ARCHIVE);
          const wal = await listWal(repo, { archive, onError: () => {} });
          const last = wal.reduce((m, e) => Math.max(m, Date.parse(e.time)), 0);
          if (last > Date.parse(newest.time)) newestPointMs = last;
        }
        // mysql with archived binary logs: likewise the newest archived binary log
        if (recoveryLog === 'binlog' && newest) {
          const archive = (newest.source as { binlog?: { archive?: string } } | undefined)?.binlog?.archive;
          const logs = archive ? await listBinlogs(repo, { archive, onError: () => {} }) : [];
          const last = logs.reduce((m, e) => Math.max(m, Date.parse(e.time)), 0);
          if (last > Date.parse(newest.time)) newestPointMs = last;
        }
        if (opts.snapshot && opts.snapshot !== 'latest') {
          const s = await repo.findSnapshot(opts.snapshot);
          if (!isSourceSnapshot(s, jobCfg.source)) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} is not a snapshot of source ${jobCfg.source}`, 2);
          snapshot = s;
        } else {
          if (!newest) throw new LifeboatError(`repository ${repoName} has no snapshot of source ${jobCfg.source}: nothing to restore`);
          snapshot = newest;
        }
        const kind = SOURCE_KINDS[src.kind];
        if (!kind.drill) throw new ConfigError(`job ${job}: drills of ${src.kind} sources are not supported yet`);
        target = kind.drill({ cfg: { dir: plan.dir, file: plan.file }, job, repository: repoName, repositoryPassword: () => plan.repositoryPassword(repoName), drill, sourceName: jobCfg.source, src, repo, snapshot, signal, log });
      },
      () => `snapshot ${snapshot!.id.slice(0, 8)} of ${snapshot!.time} in ${repoName}`,
    );
    try {
      await phase('restore', () => target!.restore(), () => target!.description);
      const integrity = await phase('integrity', () => target!.integrity(), (c) => `${c.filter((x) => x.ok).length}/${c.length} check(s) passed`);
      checks.push(...integrity);
      if (drill.queries.length) {
        const results = await phase(
          'queries',
          () =>
            runQueries(drill.queries, async (q): Promise<QueryValue> => {
              if (signal.aborted) throw new LifeboatError(`drill aborted: ${errorMessage(signal.reason)}`);
              try {
                if (q.sql !== undefined) return await target!.sql!(q.sql);
                return await runQueryCommand(q.command!, target!.env(), plan.dir, deadline - Date.now());
              } catch (err) {
                // a query the drill's timeout ended ("Connection terminated"): say why
                const why = errorMessage(signal.reason);
                if (signal.aborted && !errorMessage(err).includes(why)) throw new LifeboatError(`${errorMessage(err)} (${why})`);
                throw err;
              }
            }, {
              values: snapshot!.source?.verification as Record<string, string | null> | undefined,
              errors: snapshot!.source?.verificationErrors as Record<string, string> | undefined,
            }),
          (c) => `${c.filter((x) => x.ok).length}/${c.length} query(ies) passed`,
        );
        checks.push(...results);
      }
    } finally {
      if (target && !keep) {
        await phase('cleanup', () => target!.cleanup(), () => `removed ${target!.description}`).catch((err: unknown) => {
          // loud: a scratch database left behind uses space on the server
          cleanupError = `${errorMessage(err)} (the scratch target may be left behind: ${target!.description})`;
        });
      } else if (target && keep) {
        log(`drill ${job}: keeping the scratch target: ${target.description}`);
      }
    }
  } catch (err) {
    error ??= errorMessage(err);
    errorExitCode ??= err instanceof LifeboatError ? err.exitCode : undefined;
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener('abort', onOuter);
    await (repo as Repository | undefined)?.close().catch(() => {});
  }

  if (cleanupError) error = error ? `${error}; ${cleanupError}` : cleanupError;
  const finishedAt = new Date();
  const restorePhase = phases.find((p) => p.name === 'restore');
  const integrityPhase = phases.find((p) => p.name === 'integrity');
  const restoreMs = (restorePhase?.ms ?? 0) + (integrityPhase?.ms ?? 0);
  const restored = !!restorePhase?.ok && !!integrityPhase?.ok;
  const rtoMet = restored && restoreMs <= objectives.rtoMs;
  const newestPoint = newestPointMs ?? (newest ? Date.parse(newest.time) : undefined);
  const backupAgeMs = newestPoint !== undefined ? Math.max(0, startedAt.getTime() - newestPoint) : null;
  const rpoMet = backupAgeMs !== null && backupAgeMs <= objectives.rpoMs;
  const failedChecks = checks.filter((c) => !c.ok);
  if (!error && failedChecks.length) error = `${failedChecks.length} check(s) failed: ${failedChecks.map((c) => `${c.name}: ${c.detail}`).join('; ')}`;
  if (!error && !rtoMet) error = `restore took ${formatDuration(restoreMs)}, longer than the RTO of ${formatDuration(objectives.rtoMs)}`;
  const snap = snapshot as SnapshotWithId | undefined;
  const result: DrillResult = {
    job,
    source: jobCfg.source,
    kind: src.kind,
    snapshotId: snap?.id ?? null,
    snapshotTime: snap ? new Date(snap.time) : null,
    startedAt,
    finishedAt,
    status: error ? 'failed' : 'success',
    restoreMs,
    totalMs: finishedAt.getTime() - startedAt.getTime(),
    rtoMs: objectives.rtoMs,
    rtoMet,
    rpoMs: objectives.rpoMs,
    backupAgeMs,
    rpoMet,
    phases,
    checks,
    target: (target as ScratchTarget | undefined)?.description ?? '-',
    ...(error ? { error } : {}),
    ...(error && errorExitCode !== undefined ? { exitCode: errorExitCode } : {}),
  };
  log(`drill ${job}: ${result.status}: restore ${formatDuration(restoreMs)} (RTO ${formatDuration(objectives.rtoMs)})${error ? `: ${error}` : ''}`);

  if (opts.catalog) {
    const catalog = opts.catalog;
    await catalog.finishRun(runId!, {
      status: result.status === 'success' ? 'success' : 'failed',
      finishedAt,
      repository: repoName,
      ...(result.snapshotId ? { snapshotId: result.snapshotId } : {}),
      ...(snap?.summary ? { totalSize: snap.summary.totalBytes } : {}),
      ...(error ? { error } : {}),
      logTail: phases.map((p) => `${p.name}: ${p.ok ? 'ok' : 'FAILED'} ${p.ms} ms${p.detail ? ` ${p.detail}` : ''}`).join('\n'),
    });
    await recordDrill(catalog, result, runId !== undefined ? { runId } : {});
    if (opts.notify !== false && plan.notifiers) {
      const alerts = AlertManager.fromConfig(parseNotifiersConfig(plan.notifiers), { catalog, baseDir: plan.dir, log });
      try {
        await alerts.process([drillFinding(result, objectives.tier)]);
      } finally {
        await alerts.close();
      }
    }
  }
  return result;
}

/**
 * The alert finding of a drill (check name 'drill', one per job): critical
 * when the restore or a check failed, warning when only the RTO was missed,
 * ok (resolving a firing alert) when it passed.
 */
export function drillFinding(r: DrillResult, tier: Finding['tier']): Finding {
  const onlyRto = r.status === 'failed' && r.checks.every((c) => c.ok) && r.phases.every((p) => p.ok) && !r.rtoMet;
  const severity = r.status === 'success' ? 'ok' : onlyRto ? 'warning' : 'critical';
  const message =
    r.status === 'success'
      ? `${r.job}: restore drill passed: restored in ${formatDuration(r.restoreMs)} (RTO ${formatDuration(r.rtoMs)})`
      : onlyRto
        ? `${r.job}: restore drill missed the RTO: restore took ${formatDuration(r.restoreMs)}, RTO ${formatDuration(r.rtoMs)}`
        : `${r.job}: restore drill FAILED: ${r.error ?? 'unknown error'}`;
  return {
    job: r.job,
    check: 'drill',
    severity,
    tier,
    message: message.length > 500 ? message.slice(0, 497) + '...' : message,
    details: {
      drillId: r.id ?? null,
      snapshotId: r.snapshotId,
      restoreMs: r.restoreMs,
      rtoMs: r.rtoMs,
      rtoMet: r.rtoMet,
      backupAgeMs: r.backupAgeMs,
      rpoMs: r.rpoMs,
      rpoMet: r.rpoMet,
      failedChecks: r.checks.filter((c) => !c.ok).map((c) => c.name),
    },
  };
}
