import type { LifeboatConfig } from '../config/config.js';
import type { AlertRecord, Catalog, RunRecord, Severity } from '../ops/catalog/types.js';
import { jobRepository } from '../config/repos.js';
import { evaluate, jobsFromConfig, worstSeverity, type Finding } from '../ops/monitor.js';
import { resolveObjectives } from '../policy/objectives.js';
import { planCheck } from '../policy/plan.js';
import { lastDrill } from '../verify/drill-store.js';
import { errorMessage } from '../errors.js';
import type { ServiceAvailability } from '../ops/availability.js';

/**
 * The dashboard overview: per job, everything an operator needs to judge
 * recoverability at a glance, with one traffic-light color:
 *
 *   red    a finding is critical, or the last run failed
 *   amber  a finding is a warning, 3-2-1 is not met, the last drill failed or
 *          missed the RTO, or no drill has ever been run
 *   green  otherwise
 */

export type Light = 'green' | 'amber' | 'red';

export interface HistoryPoint {
  runId: number;
  startedAt: string;
  status: string;
  durationMs: number | null;
  totalSize: number | null;
  bytesAdded: number | null;
}

export interface JobOverview {
  job: string;
  source: string;
  sourceKind: string;
  tier: string;
  repository: string;
  copyTo: string[];
  schedule: string | null;
  services: string[];
  rpoMs: number;
  rtoMs: number;
  lastBackup: { runId: number; at: string; status: string; snapshotId: string | null; durationMs: number | null; totalSize: number | null } | null;
  backupAgeMs: number | null;
  rpoStatus: Severity;
  lastRun: { runId: number; at: string; status: string; error: string | null } | null;
  lastDrill: { id: number | null; at: string; status: string; restoreMs: number; rtoMet: boolean; error: string | null } | null;
  rtoStatus: 'ok' | 'missed' | 'failed' | 'never';
  threeTwoOne: { ok: boolean; failing: string[] };
  health: Severity;
  findings: Array<Pick<Finding, 'check' | 'severity' | 'message'>>;
  alerts: Array<Pick<AlertRecord, 'key' | 'check' | 'severity' | 'state' | 'firstAt' | 'message'>>;
  light: Light;
  history: HistoryPoint[];
}

export interface Overview {
  generatedAt: string;
  light: Light;
  jobs: JobOverview[];
  /** Every non-ok finding plus repository findings (free space). */
  alerts: Array<{ job: string; check: string; severity: Severity; message: string }>;
  /**
   * Per service: its light (worst of its jobs) and its measured availability
   * over 30 and 90 days from every incident, private ones included (the
   * internal view; the public page counts only published incidents).
   */
  services: Array<{ name: string; description: string | null; jobs: string[]; light: Light; availability: { target: number | null; windows: ServiceAvailability['windows']; days: ServiceAvailability['days'] } | null }>;
  /** Why availability is missing (the incident store could not be read), or null. */
  availabilityError: string | null;
  /** Open incidents (private ones included: this is the operators' console). */
  incidents: Array<{ id: number; title: string; status: string; impact: string; visibility: string; services: string[]; startedAt: string }>;
  /** Maintenance windows in progress or scheduled. */
  maintenance: Array<{ id: number; title: string; state: string; services: string[]; startsAt: string; endsAt: string }>;
}

/**
 * Why a job is not green, as alert lines: the monitor's findings plus what the
 * overview itself judges (3-2-1, drills), so that every amber or red light has
 * its reason in the alert list and nothing in the list leaves a job green.
 */
function lightReasons(
  job: string,
  findings: Array<{ check: string; severity: Severity; message: string }>,
  threeTwoOne: { ok: boolean; failing: string[] },
  drill: JobOverview['lastDrill'],
  rtoMs: number,
  lastRun: { status: string; error: string | null } | null,
): Array<{ job: string; check: string; severity: Severity; message: string }> {
  const out = findings.filter((f) => f.severity !== 'ok').map((f) => ({ job, check: f.check, severity: f.severity, message: f.message }));
  if (lastRun?.status === 'failed' && !out.some((f) => f.severity === 'critical')) out.push({ job, check: 'last-run', severity: 'critical', message: `the last backup failed${lastRun.error ? `: ${lastRun.error}` : ''}` });
  if (!threeTwoOne.ok) out.push({ job, check: '3-2-1', severity: 'warning', message: `3-2-1 not met: ${threeTwoOne.failing.join('; ')}` });
  if (!drill) out.push({ job, check: 'drill', severity: 'warning', message: 'no restore drill has been run: the RTO is unproven' });
  else if (drill.status !== 'success') out.push({ job, check: 'drill', severity: 'warning', message: `the last restore drill failed${drill.error ? `: ${drill.error}` : ''}` });
  else if (!drill.rtoMet) out.push({ job, check: 'drill', severity: 'warning', message: `the last restore drill took ${Math.round(drill.restoreMs / 1000)} s, over the RTO of ${Math.round(rtoMs / 1000)} s` });
  return out;
}

function runSummary(r: RunRecord) {
  return { runId: r.id, at: r.startedAt.toISOString(), status: r.status, snapshotId: r.snapshotId, durationMs: r.durationMs, totalSize: r.totalSize };
}

export async function buildOverview(
  cfg: LifeboatConfig,
  catalog: Catalog,
  opts: {
    now?: Date;
    historyPoints?: number;
    incidents?: () => Promise<Overview['incidents']>;
    maintenance?: () => Promise<Overview['maintenance']>;
    availability?: () => Promise<ServiceAvailability[]>;
  } = {},
): Promise<Overview> {
  const now = opts.now ?? new Date();
  const specs = jobsFromConfig(cfg);
  const report = await evaluate(catalog, specs, { now });
  const plans = new Map(planCheck(cfg).map((p) => [p.source, p]));
  const firing = await catalog.listAlerts({ state: 'firing' });
  const jobs: JobOverview[] = [];
  const alerts: Overview['alerts'] = [];
  for (const spec of specs) {
    const conf = cfg.jobs[spec.name]!;
    const src = cfg.sources[conf.source]!;
    const o = resolveObjectives(conf.tier, { ...(conf.rpo ? { rpo: conf.rpo } : {}), ...(conf.rto ? { rto: conf.rto } : {}) });
    const last = await catalog.lastSuccess(spec.name, { includePartial: true });
    const [lastRun] = await catalog.runs({ job: spec.name, kind: 'backup', status: ['success', 'failed', 'partial'], limit: 1 });
    const history = (await catalog.runs({ job: spec.name, kind: 'backup', status: ['success', 'partial', 'failed'], limit: opts.historyPoints ?? 30 }))
      .reverse()
      .map((r) => ({ runId: r.id, startedAt: r.startedAt.toISOString(), status: r.status, durationMs: r.durationMs, totalSize: r.totalSize, bytesAdded: r.bytesAdded }));
    let drill: JobOverview['lastDrill'] = null;
    try {
      const d = await lastDrill(catalog, spec.name);
      if (d) drill = { id: d.id ?? null, at: d.startedAt.toISOString(), status: d.status, restoreMs: d.restoreMs, rtoMet: d.rtoMet, error: d.error ?? null };
    } catch (err) {
      drill = null;
      void errorMessage(err);
    }
    const findings = report.findings.filter((f) => f.job === spec.name);
    const health = worstSeverity(findings.map((f) => f.severity));
    const rpo = findings.find((f) => f.check === 'rpo');
    const plan = plans.get(conf.source);
    const threeTwoOne = { ok: plan?.ok ?? false, failing: plan ? plan.rules.filter((r) => !r.ok).map((r) => r.rule) : ['no plan'] };
    const rtoStatus: JobOverview['rtoStatus'] = !drill ? 'never' : drill.status !== 'success' ? 'failed' : drill.rtoMet ? 'ok' : 'missed';
    const reasons = lightReasons(spec.name, findings, threeTwoOne, drill, o.rtoMs, lastRun ? { status: lastRun.status, error: lastRun.error } : null);
    alerts.push(...reasons);
    // the light is the worst of its reasons: the alert list always explains it
    const light: Light = reasons.some((r) => r.severity === 'critical') ? 'red' : reasons.length ? 'amber' : 'green';
    jobs.push({
      job: spec.name,
      source: conf.source,
      sourceKind: src.kind,
      tier: o.tier,
      repository: jobRepository(cfg, conf),
      copyTo: conf.copyTo,
      schedule: conf.schedule ?? null,
      services: Object.entries(cfg.services)
        .filter(([, s]) => s.jobs.includes(spec.name))
        .map(([n]) => n),
      rpoMs: o.rpoMs,
      rtoMs: o.rtoMs,
      lastBackup: last ? runSummary(last) : null,
      backupAgeMs: last ? Math.max(0, now.getTime() - last.startedAt.getTime()) : null,
      rpoStatus: rpo?.severity ?? 'critical',
      lastRun: lastRun ? { runId: lastRun.id, at: lastRun.startedAt.toISOString(), status: lastRun.status, error: lastRun.error } : null,
      lastDrill: drill,
      rtoStatus,
      threeTwoOne,
      health,
      findings: findings.filter((f) => f.severity !== 'ok').map((f) => ({ check: f.check, severity: f.severity, message: f.message })),
      alerts: firing.filter((a) => a.job === spec.name).map((a) => ({ key: a.key, check: a.check, severity: a.severity, state: a.state, firstAt: a.firstAt, message: a.message })),
      light,
      history,
    });
  }
  const rank: Record<Light, number> = { green: 0, amber: 1, red: 2 };
  const worst = (ls: Light[]): Light => ls.reduce<Light>((w, l) => (rank[l] > rank[w] ? l : w), 'green');
  const byJob = new Map(jobs.map((j) => [j.job, j]));
  let availability: ServiceAvailability[] = [];
  let availabilityError: string | null = null;
  try {
    availability = opts.availability ? await opts.availability() : [];
  } catch (err) {
    availabilityError = errorMessage(err);
  }
  return {
    generatedAt: now.toISOString(),
    light: worst(jobs.map((j) => j.light)),
    jobs,
    alerts: [...alerts, ...report.findings.filter((f) => f.severity !== 'ok' && !byJob.has(f.job)).map((f) => ({ job: f.job, check: f.check, severity: f.severity, message: f.message }))],
    services: Object.entries(cfg.services).map(([name, s]) => ({
      name,
      description: s.description ?? null,
      jobs: s.jobs,
      light: worst(s.jobs.map((j) => byJob.get(j)?.light ?? 'amber')),
      availability: ((a) => (a ? { target: a.target, windows: a.windows, days: a.days } : null))(availability.find((a) => a.service === name)),
    })),
    availabilityError,
    incidents: opts.incidents ? await opts.incidents() : [],
    maintenance: opts.maintenance ? await opts.maintenance() : [],
  };
}
