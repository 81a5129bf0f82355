import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { rpoStatus } from '../policy/objectives.js';
import type { Catalog } from './catalog/types.js';
import type { JobSpec } from './monitor.js';

/**
 * Prometheus metrics, computed from the catalog at every scrape (refresh()),
 * so they are right after a restart and never double-count. Per job (label
 * `job`):
 *
 *   lifeboat_last_success_timestamp_seconds   start of the last successful backup (0 = never)
 *   lifeboat_backup_age_seconds               now − that time (absent when never succeeded)
 *   lifeboat_rpo_seconds                      the job's RPO
 *   lifeboat_rpo_compliant                    1 when the age is within the RPO, else 0
 *   lifeboat_last_run_timestamp_seconds       start of the last finished backup run, any status
 *   lifeboat_last_run_duration_seconds        its duration
 *   lifeboat_last_run_bytes_added             bytes it added to the repository
 *   lifeboat_last_run_success                 1 success, 0.5 partial, 0 failed
 *   lifeboat_last_backup_size_bytes           logical size of the latest successful snapshot
 *   lifeboat_runs_total{job,kind,status}      finished runs in the catalog (success|failed|partial)
 *   lifeboat_failures_total{job,kind}         failed runs in the catalog
 *   lifeboat_running_jobs{job}                runs currently `running`
 *
 * Counters are totals of the catalog (they only go down if runs are deleted
 * from it, which Prometheus treats as a counter reset).
 */

export interface OpsMetricsOptions {
  catalog: Catalog;
  /** Jobs to report (a function is re-read at every refresh, e.g. after a config reload). */
  jobs: readonly JobSpec[] | (() => readonly JobSpec[]);
  now?: () => Date;
  /** Default: a new Registry. */
  registry?: Registry;
  /** Also export process metrics (process_cpu_seconds_total, nodejs_heap_size_bytes...). Default false. */
  processMetrics?: boolean;
  /** A partial backup counts as a recovery point (default true, as in the monitor). */
  partialSatisfiesRpo?: boolean;
}

export class OpsMetrics {
  readonly registry: Registry;
  private readonly opts: OpsMetricsOptions;
  private readonly g: Record<
    | 'lastSuccess'
    | 'age'
    | 'rpo'
    | 'compliant'
    | 'lastRunTs'
    | 'lastRunDuration'
    | 'lastRunBytesAdded'
    | 'lastRunSuccess'
    | 'lastSize'
    | 'running',
    Gauge<string>
  >;
  private readonly runsTotal: Counter<string>;
  private readonly failuresTotal: Counter<string>;

  constructor(opts: OpsMetricsOptions) {
    this.opts = opts;
    this.registry = opts.registry ?? new Registry();
    const reg = [this.registry];
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['job'], registers: reg });
    this.g = {
      lastSuccess: gauge('lifeboat_last_success_timestamp_seconds', 'Start time of the last successful backup (unix seconds, 0 = never).'),
      age: gauge('lifeboat_backup_age_seconds', 'Seconds since the start of the last successful backup.'),
      rpo: gauge('lifeboat_rpo_seconds', 'Recovery point objective of the job in seconds.'),
      compliant: gauge('lifeboat_rpo_compliant', '1 when the last successful backup is within the RPO, else 0.'),
      lastRunTs: gauge('lifeboat_last_run_timestamp_seconds', 'Start time of the last finished backup run (unix seconds).'),
      lastRunDuration: gauge('lifeboat_last_run_duration_seconds', 'Duration of the last finished backup run.'),
      lastRunBytesAdded: gauge('lifeboat_last_run_bytes_added', 'Bytes the last finished backup run added to the repository.'),
      lastRunSuccess: gauge('lifeboat_last_run_success', 'Outcome of the last finished backup run: 1 success, 0.5 partial, 0 failed.'),
      lastSize: gauge('lifeboat_last_backup_size_bytes', 'Logical size of the latest successful snapshot.'),
      running: gauge('lifeboat_running_jobs', 'Runs of the job currently in progress.'),
    };
    this.runsTotal = new Counter({ name: 'lifeboat_runs_total', help: 'Finished runs recorded in the catalog.', labelNames: ['job', 'kind', 'status'], registers: reg });
    this.failuresTotal = new Counter({ name: 'lifeboat_failures_total', help: 'Failed runs recorded in the catalog.', labelNames: ['job', 'kind'], registers: reg });
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private jobs(): readonly JobSpec[] {
    return typeof this.opts.jobs === 'function' ? this.opts.jobs() : this.opts.jobs;
  }

  /** Re-read the catalog and set every metric. */
  async refresh(): Promise<void> {
    const { catalog } = this.opts;
    const now = this.opts.now?.() ?? new Date();
    // gather first, then apply synchronously so a scrape never sees half-reset values
    const jobs = this.jobs();
    const perJob = await Promise.all(
      jobs.map(async (job) => {
        const [last, recent, sizes] = await Promise.all([
          catalog.lastSuccess(job.name, { includePartial: this.opts.partialSatisfiesRpo ?? true }),
          catalog.runs({ job: job.name, kind: 'backup', status: ['success', 'failed', 'partial'], limit: 1 }),
          catalog.sizeHistory(job.name, 1),
        ]);
        return { job, last, lastRun: recent[0], size: sizes[0] };
      }),
    );
    const counts = await catalog.runCounts();

    for (const g of Object.values(this.g)) g.reset();
    this.runsTotal.reset();
    this.failuresTotal.reset();
    for (const { job, last, lastRun, size } of perJob) {
      const l = { job: job.name };
      this.g.rpo.set(l, job.rpoMs / 1000);
      this.g.lastSuccess.set(l, last ? last.startedAt.getTime() / 1000 : 0);
      if (last) this.g.age.set(l, Math.max(0, now.getTime() - last.startedAt.getTime()) / 1000);
      this.g.compliant.set(l, rpoStatus(last?.startedAt, job.rpoMs, now) === 'ok' ? 1 : 0);
      this.g.running.set(l, 0);
      if (lastRun) {
        this.g.lastRunTs.set(l, lastRun.startedAt.getTime() / 1000);
        if (lastRun.durationMs !== null) this.g.lastRunDuration.set(l, lastRun.durationMs / 1000);
        this.g.lastRunBytesAdded.set(l, lastRun.bytesAdded ?? 0);
        this.g.lastRunSuccess.set(l, lastRun.status === 'success' ? 1 : lastRun.status === 'partial' ? 0.5 : 0);
      }
      if (size) this.g.lastSize.set(l, size.totalSize);
    }
    const failures = new Map<string, { job: string; kind: string; n: number }>();
    for (const c of counts) {
      if (c.status === 'running') {
        this.g.running.inc({ job: c.job }, c.count);
        continue;
      }
      this.runsTotal.inc({ job: c.job, kind: c.kind, status: c.status }, c.count);
      const k = `${c.job}\0${c.kind}`;
      const f = failures.get(k) ?? { job: c.job, kind: c.kind, n: 0 };
      if (c.status === 'failed') f.n += c.count;
      failures.set(k, f);
    }
    for (const f of failures.values()) this.failuresTotal.inc({ job: f.job, kind: f.kind }, f.n);
  }

  /** refresh() then the text exposition format. */
  async render(): Promise<string> {
    await this.refresh();
    return this.registry.metrics();
  }
}
