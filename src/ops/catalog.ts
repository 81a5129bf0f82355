import { mkdirSync } from 'node:fs';
import { hostname } from 'node:os';
import * as path from 'node:path';
import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';
import { ConfigError, LifeboatError, errorMessage } from '../errors.js';
import type { JobResult } from './jobs.js';
import { redactText } from './templates.js';

/**
 * The run catalog: one row per run of a job (backup, forget, prune, check,
 * drill, copy) and the dedup state of alerts. Two implementations of the same
 * `Catalog` interface: SQLite (default, a local file in WAL mode) and
 * PostgreSQL (a schema in an existing database, for several hosts or for
 * dashboards).
 *
 * Times: `started_at` is when the run began, i.e. the recovery point of a
 * backup: the data in its snapshot is at least that old. RPO age is measured
 * from it. SQLite stores times as integer milliseconds since the epoch,
 * PostgreSQL as timestamptz.
 *
 * Error messages and log tails are passed through redactText() before they
 * are stored (URLs cut to scheme://host, `password=...` values removed), and
 * truncated (message 4 KiB, log tail 16 KiB).
 */

export const RUN_KINDS = ['backup', 'forget', 'prune', 'check', 'drill', 'copy'] as const;
export type RunKind = (typeof RUN_KINDS)[number];
export const RUN_STATUSES = ['running', 'success', 'failed', 'partial'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export type FinalRunStatus = Exclude<RunStatus, 'running'>;

export const MAX_ERROR_CHARS = 4096;
export const MAX_LOG_TAIL_CHARS = 16384;

export interface RunStart {
  job: string;
  /** Source name (default: the job name). */
  source?: string;
  kind?: RunKind; // default 'backup'
  repository?: string;
  startedAt?: Date; // default now
  /** Attempt number within one scheduled run (1 = first try). */
  attempt?: number;
  toolVersions?: Record<string, string>;
}

export interface RunFinish {
  status: FinalRunStatus;
  finishedAt?: Date; // default now
  /** Bytes read from the source. */
  bytesRead?: number;
  /** Bytes added to the repository (compressed, encrypted). */
  bytesAdded?: number;
  /** Logical size of the snapshot (all files / the whole dump), the "size" the monitor watches. */
  totalSize?: number;
  files?: number;
  /** Items that could not be read (partial backups). */
  errors?: number;
  snapshotId?: string;
  repository?: string;
  toolVersions?: Record<string, string>;
  /** Failure reason; redacted and truncated before it is stored. */
  error?: string;
  /** Last lines of the run's log; redacted and truncated before it is stored. */
  logTail?: string;
  /**
   * This failed attempt will be retried (the daemon's retry loop): it is kept
   * as history but does not count towards failureStreak().
   */
  willRetry?: boolean;
}

export interface RunRecord {
  id: number;
  job: string;
  source: string;
  kind: RunKind;
  repository: string | null;
  status: RunStatus;
  startedAt: Date;
  finishedAt: Date | null;
  durationMs: number | null;
  attempt: number;
  willRetry: boolean;
  bytesRead: number | null;
  bytesAdded: number | null;
  totalSize: number | null;
  files: number | null;
  errors: number | null;
  snapshotId: string | null;
  toolVersions: Record<string, string> | null;
  error: string | null;
  logTail: string | null;
  host: string | null;
  pid: number | null;
}

export interface RunFilter {
  job?: string;
  kind?: RunKind | RunKind[];
  status?: RunStatus | RunStatus[];
  /** started_at >= since */
  since?: Date;
  /** started_at < until */
  until?: Date;
  limit?: number;
  /** By started_at; default 'desc' (newest first). */
  order?: 'asc' | 'desc';
}

export interface SizePoint {
  runId: number;
  startedAt: Date;
  totalSize: number;
  bytesAdded: number | null;
  snapshotId: string | null;
}

export interface RunCount {
  job: string;
  kind: RunKind;
  status: RunStatus;
  count: number;
}

export type AlertStateName = 'firing' | 'resolved';
export type Severity = 'ok' | 'warning' | 'critical';

/** Dedup state of one alert (key = "job/check"). */
export interface AlertRecord {
  key: string;
  job: string;
  check: string;
  state: AlertStateName;
  /** Current severity while firing; last severity seen once resolved. */
  severity: Severity;
  /** Start of the current episode (when it last started firing). */
  firstAt: Date;
  /** Last state change or severity change. */
  lastChangeAt: Date;
  /** Last successful delivery (firing, reminder or resolved) in this episode; null if none. */
  lastSentAt: Date | null;
  /** Notifications delivered in this episode. */
  count: number;
  /** What receivers were last told: null (nothing yet), 'firing' or 'resolved'. */
  notified: AlertStateName | null;
  /** Highest severity delivered in this episode. */
  notifiedSeverity: Severity | null;
  resolvedAt: Date | null;
  /** Latest finding message. */
  message: string;
}

export interface DeliveryRecord {
  id?: number;
  alertKey: string;
  kind: 'firing' | 'reminder' | 'resolved';
  channel: string;
  at: Date;
  ok: boolean;
  attempts: number;
  /** Redacted failure reason. */
  error: string | null;
}

export interface MarkInterruptedOptions {
  /** Message stored on the runs (default explains the crash). */
  message?: string;
  /**
   * Default false: only runs started on this host by a process that is no
   * longer alive. true: every run still `running` that this process did not
   * start (use when one process owns the catalog).
   */
  allHosts?: boolean;
  now?: Date;
}

export interface Catalog {
  readonly backend: 'sqlite' | 'postgres';
  /** Human-readable location without credentials. */
  readonly location: string;

  startRun(run: RunStart): Promise<number>;
  /** Throws LifeboatError for an unknown id. */
  finishRun(id: number, result: RunFinish): Promise<void>;
  getRun(id: number): Promise<RunRecord | undefined>;
  /** Latest run (by started_at) with status success (and partial if includePartial) of that kind (default backup). */
  lastSuccess(job: string, opts?: { kind?: RunKind; includePartial?: boolean }): Promise<RunRecord | undefined>;
  /** Newest first, any kind and status. */
  recentRuns(job: string, n: number): Promise<RunRecord[]>;
  runs(filter?: RunFilter): Promise<RunRecord[]>;
  /**
   * Failed runs of that kind (default backup) since the last success or
   * partial, not counting attempts marked willRetry.
   */
  failureStreak(job: string, opts?: { kind?: RunKind }): Promise<number>;
  /** Successful backups with a known totalSize, newest first. */
  sizeHistory(job: string, n: number): Promise<SizePoint[]>;
  /** Runs left `running` by a process that died become `failed`. Returns how many. */
  markInterruptedRuns(opts?: MarkInterruptedOptions): Promise<number>;
  /** Distinct job names that have runs. */
  jobs(): Promise<string[]>;
  /** Number of runs per job, kind and status (metrics). */
  runCounts(): Promise<RunCount[]>;
  /** Delete finished runs that started before `before`. Returns how many. */
  deleteRunsBefore(before: Date): Promise<number>;

  getAlert(key: string): Promise<AlertRecord | undefined>;
  listAlerts(filter?: { state?: AlertStateName }): Promise<AlertRecord[]>;
  /** Insert or replace by key. */
  saveAlert(alert: AlertRecord): Promise<void>;
  recordDelivery(d: DeliveryRecord): Promise<void>;
  /** Newest first. */
  deliveries(filter?: { alertKey?: string; limit?: number }): Promise<DeliveryRecord[]>;

  /** Applied migration versions, ascending. */
  migrations(): Promise<number[]>;
  /**
   * Raw SQL access for the modules that own further tables (drills,
   * incidents, runbook runs, status page, users). They declare their tables
   * as Migrations with their own version range and apply them with
   * ensureMigrations() before first use.
   */
  readonly sql: SqlAccess;
  /** Apply the migrations of this list that are not applied yet (idempotent, safe across processes). */
  ensureMigrations(list: readonly Migration[]): Promise<void>;
  close(): Promise<void>;
}

export type SqlParam = string | number | boolean | Date | null;
export type SqlRow = Record<string, unknown>;

/**
 * Portable SQL over either backend. Write statements with `?` placeholders
 * and table names through t('name'); Dates, booleans and numbers are converted
 * per backend (SQLite: integer ms / 0-1; PostgreSQL: timestamptz / boolean).
 */
export interface SqlAccess {
  readonly backend: 'sqlite' | 'postgres';
  t(table: string): string;
  all(sql: string, params?: SqlParam[]): Promise<SqlRow[]>;
  /** Returns the number of changed rows. */
  exec(sql: string, params?: SqlParam[]): Promise<number>;
  /** INSERT returning the new row's `id` column. */
  insertId(sql: string, params: SqlParam[]): Promise<number>;
  /** Read back a stored time column. */
  toDate(v: unknown): Date | null;
}

/** Identifies this process's runs (see markInterruptedRuns). */
export const PROCESS_INSTANCE = randomUUID();

// ---------------------------------------------------------------------------
// Migrations. Numbered, applied in order, each in its own transaction together
// with its row in schema_migrations. Never edit a released migration: add one.

/**
 * Version ranges: 1-99 core (runs, alerts), 100-199 drills and reports,
 * 200-299 incidents and runbook runs, 300-399 server (users, sessions,
 * status page). `postgres` receives the quoted schema name.
 */
export interface Migration {
  version: number;
  name: string;
  sqlite: string[];
  postgres: (schema: string) => string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'runs',
    sqlite: [
      `CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('backup','forget','prune','check','drill','copy')),
        repository TEXT,
        status TEXT NOT NULL CHECK (status IN ('running','success','failed','partial')),
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        attempt INTEGER NOT NULL DEFAULT 1,
        will_retry INTEGER NOT NULL DEFAULT 0,
        bytes_read INTEGER,
        bytes_added INTEGER,
        total_size INTEGER,
        files INTEGER,
        errors INTEGER,
        snapshot_id TEXT,
        tool_versions TEXT,
        error TEXT,
        log_tail TEXT,
        host TEXT,
        pid INTEGER,
        instance TEXT
      )`,
      'CREATE INDEX runs_job_started_idx ON runs (job, started_at)',
      'CREATE INDEX runs_status_idx ON runs (status)',
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.runs (
        id BIGSERIAL PRIMARY KEY,
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('backup','forget','prune','check','drill','copy')),
        repository TEXT,
        status TEXT NOT NULL CHECK (status IN ('running','success','failed','partial')),
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        attempt INTEGER NOT NULL DEFAULT 1,
        will_retry BOOLEAN NOT NULL DEFAULT false,
        bytes_read BIGINT,
        bytes_added BIGINT,
        total_size BIGINT,
        files BIGINT,
        errors BIGINT,
        snapshot_id TEXT,
        tool_versions JSONB,
        error TEXT,
        log_tail TEXT,
        host TEXT,
        pid INTEGER,
        instance TEXT
      )`,
      `CREATE INDEX runs_job_started_idx ON ${s}.runs (job, started_at)`,
      `CREATE INDEX runs_status_idx ON ${s}.runs (status)`,
    ],
  },
  {
    version: 2,
    name: 'alerts',
    sqlite: [
      `CREATE TABLE alerts (
        key TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        check_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing','resolved')),
        severity TEXT NOT NULL,
        first_at INTEGER NOT NULL,
        last_change_at INTEGER NOT NULL,
        last_sent_at INTEGER,
        count INTEGER NOT NULL DEFAULT 0,
        notified TEXT,
        notified_severity TEXT,
        resolved_at INTEGER,
        message TEXT NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        alert_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        at INTEGER NOT NULL,
        ok INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT
      )`,
      'CREATE INDEX alert_deliveries_key_idx ON alert_deliveries (alert_key, at)',
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.alerts (
        key TEXT PRIMARY KEY,
        job TEXT NOT NULL,
        check_name TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('firing','resolved')),
        severity TEXT NOT NULL,
        first_at TIMESTAMPTZ NOT NULL,
        last_change_at TIMESTAMPTZ NOT NULL,
        last_sent_at TIMESTAMPTZ,
        count INTEGER NOT NULL DEFAULT 0,
        notified TEXT,
        notified_severity TEXT,
        resolved_at TIMESTAMPTZ,
        message TEXT NOT NULL DEFAULT ''
      )`,
      `CREATE TABLE ${s}.alert_deliveries (
        id BIGSERIAL PRIMARY KEY,
        alert_key TEXT NOT NULL,
        kind TEXT NOT NULL,
        channel TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL,
        ok BOOLEAN NOT NULL,
        attempts INTEGER NOT NULL,
        error TEXT
      )`,
      `CREATE INDEX alert_deliveries_key_idx ON ${s}.alert_deliveries (alert_key, at)`,
    ],
  },
];

// ---------------------------------------------------------------------------
// Shared SQL. Written with `?` placeholders (converted to $n for PostgreSQL);
// table names go through t(). Params: Date, boolean, number, string, null; each
// backend converts them.

type Param = SqlParam;
type Row = SqlRow;

function truncateTail(s: string, max: number): string {
  return s.length <= max ? s : '…' + s.slice(s.length - max + 1);
}
function truncateHead(s: string, max: number): string {
  return s.length <= max ? s : s.slice(0, max - 1) + '…';
}

function checkNonNegative(v: number | undefined, what: string): number | null {
  if (v === undefined) return null;
  if (!Number.isFinite(v) || v < 0) throw new LifeboatError(`catalog: ${what} must be a non-negative number, got ${v}`);
  return Math.round(v);
}

function asList<T>(v: T | T[] | undefined): T[] | undefined {
  return v === undefined ? undefined : Array.isArray(v) ? v : [v];
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

abstract class SqlCatalog implements Catalog {
  abstract readonly backend: 'sqlite' | 'postgres';
  abstract readonly location: string;

  protected abstract t(table: string): string;
  protected abstract all(sql: string, params?: Param[]): Promise<Row[]>;
  /** Returns the number of changed rows. */
  protected abstract exec(sql: string, params?: Param[]): Promise<number>;
  protected abstract insertId(sql: string, params: Param[]): Promise<number>;
  protected abstract toDate(v: unknown): Date | null;
  abstract migrations(): Promise<number[]>;
  abstract ensureMigrations(list: readonly Migration[]): Promise<void>;
  abstract close(): Promise<void>;

  get sql(): SqlAccess {
    return {
      backend: this.backend,
      t: (table) => this.t(table),
      all: (sql, params) => this.all(sql, params),
      exec: (sql, params) => this.exec(sql, params),
      insertId: (sql, params) => this.insertId(sql, params),
      toDate: (v) => this.toDate(v),
    };
  }

  private async one(sql: string, params: Param[] = []): Promise<Row | undefined> {
    return (await this.all(sql, params))[0];
  }

  protected runFromRow(r: Row): RunRecord {
    const startedAt = this.toDate(r.started_at)!;
    const finishedAt = this.toDate(r.finished_at);
    const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
    let tv = r.tool_versions as unknown;
    if (typeof tv === 'string') {
      try {
        tv = JSON.parse(tv);
      } catch {
        tv = null;
      }
    }
    return {
      id: Number(r.id),
      job: String(r.job),
      source: String(r.source),
      kind: r.kind as RunKind,
      repository: (r.repository as string | null) ?? null,
      status: r.status as RunStatus,
      startedAt,
      finishedAt,
      durationMs: finishedAt ? finishedAt.getTime() - startedAt.getTime() : null,
      attempt: Number(r.attempt),
      willRetry: Boolean(r.will_retry),
      bytesRead: num(r.bytes_read),
      bytesAdded: num(r.bytes_added),
      totalSize: num(r.total_size),
      files: num(r.files),
      errors: num(r.errors),
      snapshotId: (r.snapshot_id as string | null) ?? null,
      toolVersions: (tv as Record<string, string> | null) ?? null,
      error: (r.error as string | null) ?? null,
      logTail: (r.log_tail as string | null) ?? null,
      host: (r.host as string | null) ?? null,
      pid: num(r.pid),
    };
  }

  protected alertFromRow(r: Row): AlertRecord {
    return {
      key: String(r.key),
      job: String(r.job),
      check: String(r.check_name),
      state: r.state as AlertStateName,
      severity: r.severity as Severity,
      firstAt: this.toDate(r.first_at)!,
      lastChangeAt: this.toDate(r.last_change_at)!,
      lastSentAt: this.toDate(r.last_sent_at),
      count: Number(r.count),
      notified: (r.notified as AlertStateName | null) ?? null,
      notifiedSeverity: (r.notified_severity as Severity | null) ?? null,
      resolvedAt: this.toDate(r.resolved_at),
      message: String(r.message ?? ''),
    };
  }

  async startRun(run: RunStart): Promise<number> {
    if (!run.job) throw new LifeboatError('catalog: startRun needs a job name');
    const kind = run.kind ?? 'backup';
    if (!(RUN_KINDS as readonly string[]).includes(kind)) throw new LifeboatError(`catalog: unknown run kind "${kind}" (expected one of: ${RUN_KINDS.join(', ')})`);
    const attempt = run.attempt ?? 1;
    if (!Number.isSafeInteger(attempt) || attempt < 1) throw new LifeboatError(`catalog: attempt must be a positive integer, got ${attempt}`);
    return this.insertId(
      `INSERT INTO ${this.t('runs')} (job, source, kind, repository, status, started_at, attempt, tool_versions, host, pid, instance)
       VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?)`,
      [
        run.job,
        run.source ?? run.job,
        kind,
        run.repository ?? null,
        run.startedAt ?? new Date(),
        attempt,
        run.toolVersions ? JSON.stringify(run.toolVersions) : null,
        hostname(),
        process.pid,
        PROCESS_INSTANCE,
      ],
    );
  }

  async finishRun(id: number, f: RunFinish): Promise<void> {
    if (!(['success', 'failed', 'partial'] as string[]).includes(f.status)) {
      throw new LifeboatError(`catalog: finishRun status must be success, failed or partial, got "${f.status}"`);
    }
    const error = f.error === undefined ? null : truncateHead(redactText(f.error), MAX_ERROR_CHARS);
    const logTail = f.logTail === undefined ? null : truncateTail(redactText(f.logTail), MAX_LOG_TAIL_CHARS);
    const n = await this.exec(
      `UPDATE ${this.t('runs')} SET status = ?, finished_at = ?, bytes_read = ?, bytes_added = ?, total_size = ?, files = ?, errors = ?,
         snapshot_id = ?, repository = COALESCE(?, repository), tool_versions = COALESCE(?, tool_versions), error = ?, log_tail = ?, will_retry = ?
       WHERE id = ?`,
      [
        f.status,
        f.finishedAt ?? new Date(),
        checkNonNegative(f.bytesRead, 'bytesRead'),
        checkNonNegative(f.bytesAdded, 'bytesAdded'),
        checkNonNegative(f.totalSize, 'totalSize'),
        checkNonNegative(f.files, 'files'),
        checkNonNegative(f.errors, 'errors'),
        f.snapshotId ?? null,
        f.repository ?? null,
        f.toolVersions ? JSON.stringify(f.toolVersions) : null,
        error,
        logTail,
        f.willRetry === true && f.status === 'failed',
        id,
      ],
    );
    if (n === 0) throw new LifeboatError(`catalog: no run with id ${id}`);
  }

  async getRun(id: number): Promise<RunRecord | undefined> {
    const r = await this.one(`SELECT * FROM ${this.t('runs')} WHERE id = ?`, [id]);
    return r ? this.runFromRow(r) : undefined;
  }

  async lastSuccess(job: string, opts: { kind?: RunKind; includePartial?: boolean } = {}): Promise<RunRecord | undefined> {
    const statuses = opts.includePartial ? ['success', 'partial'] : ['success'];
    const r = await this.one(
      `SELECT * FROM ${this.t('runs')} WHERE job = ? AND kind = ? AND status IN (${statuses.map(() => '?').join(', ')})
       ORDER BY started_at DESC, id DESC LIMIT 1`,
      [job, opts.kind ?? 'backup', ...statuses],
    );
    return r ? this.runFromRow(r) : undefined;
  }

  async recentRuns(job: string, n: number): Promise<RunRecord[]> {
    return this.runs({ job, limit: n });
  }

  async runs(filter: RunFilter = {}): Promise<RunRecord[]> {
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.job !== undefined) {
      where.push('job = ?');
      params.push(filter.job);
    }
    for (const [col, list] of [
      ['kind', asList(filter.kind)],
      ['status', asList(filter.status)],
    ] as const) {
      if (!list) continue;
      if (list.length === 0) return [];
      where.push(`${col} IN (${list.map(() => '?').join(', ')})`);
      params.push(...list);
    }
    if (filter.since) {
      where.push('started_at >= ?');
      params.push(filter.since);
    }
    if (filter.until) {
      where.push('started_at < ?');
      params.push(filter.until);
    }
    const order = filter.order === 'asc' ? 'ASC' : 'DESC';
    let sql = `SELECT * FROM ${this.t('runs')}${where.length ? ' WHERE ' + where.join(' AND ') : ''} ORDER BY started_at ${order}, id ${order}`;
    if (filter.limit !== undefined) {
      if (!Number.isSafeInteger(filter.limit) || filter.limit < 0) throw new LifeboatError(`catalog: limit must be a non-negative integer, got ${filter.limit}`);
      sql += ' LIMIT ?';
      params.push(filter.limit);
    }
    return (await this.all(sql, params)).map((r) => this.runFromRow(r));
  }

  async failureStreak(job: string, opts: { kind?: RunKind } = {}): Promise<number> {
    const kind = opts.kind ?? 'backup';
    const runs = this.t('runs');
    const r = await this.one(
      `SELECT count(*) AS n FROM ${runs} r
       WHERE r.job = ? AND r.kind = ? AND r.status = 'failed' AND r.will_retry = ?
         AND NOT EXISTS (SELECT 1 FROM ${runs} s WHERE s.job = r.job AND s.kind = r.kind
                         AND s.status IN ('success', 'partial') AND s.started_at >= r.started_at)`,
      [job, kind, false],
    );
    return Number(r?.n ?? 0);
  }

  async sizeHistory(job: string, n: number): Promise<SizePoint[]> {
    const rows = await this.all(
      `SELECT id, started_at, total_size, bytes_added, snapshot_id FROM ${this.t('runs')}
       WHERE job = ? AND kind = 'backup' AND status = 'success' AND total_size IS NOT NULL
       ORDER BY started_at DESC, id DESC LIMIT ?`,
      [job, n],
    );
    return rows.map((r) => ({
      runId: Number(r.id),
      startedAt: this.toDate(r.started_at)!,
      totalSize: Number(r.total_size),
      bytesAdded: r.bytes_added === null ? null : Number(r.bytes_added),
      snapshotId: (r.snapshot_id as string | null) ?? null,
    }));
  }

  async markInterruptedRuns(opts: MarkInterruptedOptions = {}): Promise<number> {
    const rows = await this.all(`SELECT id, host, pid, instance FROM ${this.t('runs')} WHERE status = 'running'`);
    const me = hostname();
    const dead = rows.filter((r) => {
      if (r.instance === PROCESS_INSTANCE) return false;
      if (opts.allHosts) return true;
      if (r.host !== me) return false;
      const pid = r.pid === null ? NaN : Number(r.pid);
      return !(Number.isSafeInteger(pid) && pid !== process.pid && pidAlive(pid));
    });
    const message = opts.message ?? 'interrupted: the process running it stopped before it finished (crash, kill or power loss)';
    let n = 0;
    for (const r of dead) {
      n += await this.exec(`UPDATE ${this.t('runs')} SET status = 'failed', finished_at = ?, error = ? WHERE id = ? AND status = 'running'`, [
        opts.now ?? new Date(),
        message,
        Number(r.id),
      ]);
    }
    return n;
  }

  async jobs(): Promise<string[]> {
    return (await this.all(`SELECT DISTINCT job FROM ${this.t('runs')} ORDER BY job`)).map((r) => String(r.job));
  }

  async runCounts(): Promise<RunCount[]> {
    const rows = await this.all(`SELECT job, kind, status, count(*) AS n FROM ${this.t('runs')} GROUP BY job, kind, status ORDER BY job, kind, status`);
    return rows.map((r) => ({ job: String(r.job), kind: r.kind as RunKind, status: r.status as RunStatus, count: Number(r.n) }));
  }

  async deleteRunsBefore(before: Date): Promise<number> {
    return this.exec(`DELETE FROM ${this.t('runs')} WHERE started_at < ? AND status <> 'running'`, [before]);
  }

  async getAlert(key: string): Promise<AlertRecord | undefined> {
    const r = await this.one(`SELECT * FROM ${this.t('alerts')} WHERE key = ?`, [key]);
    return r ? this.alertFromRow(r) : undefined;
  }

  async listAlerts(filter: { state?: AlertStateName } = {}): Promise<AlertRecord[]> {
    const rows = filter.state
      ? await this.all(`SELECT * FROM ${this.t('alerts')} WHERE state = ? ORDER BY key`, [filter.state])
      : await this.all(`SELECT * FROM ${this.t('alerts')} ORDER BY key`);
    return rows.map((r) => this.alertFromRow(r));
  }

  async saveAlert(a: AlertRecord): Promise<void> {
    await this.exec(
      `INSERT INTO ${this.t('alerts')} (key, job, check_name, state, severity, first_at, last_change_at, last_sent_at, count, notified, notified_severity, resolved_at, message)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (key) DO UPDATE SET job = excluded.job, check_name = excluded.check_name, state = excluded.state, severity = excluded.severity,
         first_at = excluded.first_at, last_change_at = excluded.last_change_at, last_sent_at = excluded.last_sent_at, count = excluded.count,
         notified = excluded.notified, notified_severity = excluded.notified_severity, resolved_at = excluded.resolved_at, message = excluded.message`,
      [
        a.key,
        a.job,
        a.check,
        a.state,
        a.severity,
        a.firstAt,
        a.lastChangeAt,
        a.lastSentAt,
        a.count,
        a.notified,
        a.notifiedSeverity,
        a.resolvedAt,
        truncateHead(redactText(a.message), MAX_ERROR_CHARS),
      ],
    );
  }

  async recordDelivery(d: DeliveryRecord): Promise<void> {
    await this.exec(`INSERT INTO ${this.t('alert_deliveries')} (alert_key, kind, channel, at, ok, attempts, error) VALUES (?, ?, ?, ?, ?, ?, ?)`, [
      d.alertKey,
      d.kind,
      d.channel,
      d.at,
      d.ok,
      d.attempts,
      d.error === null ? null : truncateHead(redactText(d.error), MAX_ERROR_CHARS),
    ]);
  }

  async deliveries(filter: { alertKey?: string; limit?: number } = {}): Promise<DeliveryRecord[]> {
    const params: Param[] = [];
    let sql = `SELECT * FROM ${this.t('alert_deliveries')}`;
    if (filter.alertKey !== undefined) {
      sql += ' WHERE alert_key = ?';
      params.push(filter.alertKey);
    }
    sql += ' ORDER BY at DESC, id DESC';
    if (filter.limit !== undefined) {
      sql += ' LIMIT ?';
      params.push(filter.limit);
    }
    return (await this.all(sql, params)).map((r) => ({
      id: Number(r.id),
      alertKey: String(r.alert_key),
      kind: r.kind as DeliveryRecord['kind'],
      channel: String(r.channel),
      at: this.toDate(r.at)!,
      ok: Boolean(r.ok),
      attempts: Number(r.attempts),
      error: (r.error as string | null) ?? null,
    }));
  }
}

// ---------------------------------------------------------------------------
// SQLite

export interface SqliteCatalogOptions {
  /** busy_timeout in ms when another process holds the write lock (default 10s). */
  busyTimeoutMs?: number;
}

export class SqliteCatalog extends SqlCatalog {
  readonly backend = 'sqlite' as const;
  readonly location: string;
  private readonly db: Database.Database;

  private constructor(file: string, db: Database.Database) {
    super();
    this.location = file;
    this.db = db;
  }

  /** Open (creating the file and its directory if needed) and migrate. */
  static async open(file: string, opts: SqliteCatalogOptions = {}): Promise<SqliteCatalog> {
    const abs = file === ':memory:' ? file : path.resolve(file);
    let db: Database.Database;
    try {
      if (abs !== ':memory:') mkdirSync(path.dirname(abs), { recursive: true });
      db = new Database(abs);
    } catch (err) {
      throw new LifeboatError(`cannot open catalog ${abs}: ${errorMessage(err)}`, undefined, { cause: err });
    }
    try {
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 10_000))}`);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      const c = new SqliteCatalog(abs, db);
      c.migrate(MIGRATIONS);
      return c;
    } catch (err) {
      db.close();
      if (err instanceof LifeboatError) throw err;
      throw new LifeboatError(`cannot open catalog ${abs}: ${errorMessage(err)}`, undefined, { cause: err });
    }
  }

  async ensureMigrations(list: readonly Migration[]): Promise<void> {
    this.migrate(list);
  }

  private migrate(list: readonly Migration[]): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of list) {
      // IMMEDIATE: take the write lock first, then re-check, so two processes
      // opening a fresh catalog at once apply each migration exactly once.
      this.db
        .transaction(() => {
          const done = this.db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version);
          if (done) return;
          for (const sql of m.sqlite) this.db.exec(sql);
          this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
        })
        .immediate();
    }
  }

  /** The underlying handle (read-only use: reports, tests). */
  get database(): Database.Database {
    return this.db;
  }

  protected t(table: string): string {
    return table;
  }

  private conv(params: Param[]): Array<string | number | null> {
    return params.map((p) => (p instanceof Date ? p.getTime() : typeof p === 'boolean' ? (p ? 1 : 0) : p));
  }

  protected async all(sql: string, params: Param[] = []): Promise<Row[]> {
    return this.db.prepare(sql).all(...this.conv(params)) as Row[];
  }

  protected async exec(sql: string, params: Param[] = []): Promise<number> {
    return this.db.prepare(sql).run(...this.conv(params)).changes;
  }

  protected async insertId(sql: string, params: Param[]): Promise<number> {
    return Number(this.db.prepare(sql).run(...this.conv(params)).lastInsertRowid);
  }

  protected toDate(v: unknown): Date | null {
    return v === null || v === undefined ? null : new Date(Number(v));
  }

  async migrations(): Promise<number[]> {
    return (this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Array<{ version: number }>).map((r) => r.version);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}

// ---------------------------------------------------------------------------
// PostgreSQL

export interface PostgresCatalogOptions {
  /** Schema holding the tables (created if missing). Default: `schema` URL parameter, else "lifeboat". */
  schema?: string;
  /** Connection pool size (default 4). */
  maxConnections?: number;
  /** Connection timeout in ms (default 10s). */
  connectTimeoutMs?: number;
}

type PgPool = import('pg').Pool;

function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}

export class PostgresCatalog extends SqlCatalog {
  readonly backend = 'postgres' as const;
  readonly location: string;
  readonly schema: string;
  private readonly pool: PgPool;
  private readonly qs: string;

  private constructor(pool: PgPool, location: string, schema: string) {
    super();
    this.pool = pool;
    this.location = location;
    this.schema = schema;
    this.qs = quoteIdent(schema);
  }

  /**
   * Connect (postgres://user@host:port/db[?schema=NAME]) and migrate. The
   * password may be in the URL or come from PGPASSWORD; it never appears in
   * `location` or in errors.
   */
  static async open(url: string, opts: PostgresCatalogOptions = {}): Promise<PostgresCatalog> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError('catalog: invalid PostgreSQL URL (expected postgres://user@host:port/database)');
    }
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ConfigError(`catalog: expected a postgres:// URL, got ${u.protocol}//`);
    const schema = opts.schema ?? u.searchParams.get('schema') ?? 'lifeboat';
    u.searchParams.delete('schema');
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new ConfigError(`catalog: invalid schema name "${schema}" (letters, digits, _; not starting with a digit)`);
    const location = `${u.protocol}//${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname} (schema ${schema})`;
    const secrets = [u.password, decodeURIComponent(u.password)].filter(Boolean);
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({
      connectionString: u.toString(),
      max: opts.maxConnections ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    });
    pool.on('error', () => {}); // idle-client errors surface on the next query
    const c = new PostgresCatalog(pool, location, schema);
    try {
      await c.migrate(MIGRATIONS);
    } catch (err) {
      await pool.end().catch(() => {});
      throw new LifeboatError(`cannot open catalog ${location}: ${redactText(errorMessage(err), secrets)}`);
    }
    return c;
  }

  async ensureMigrations(list: readonly Migration[]): Promise<void> {
    await this.migrate(list);
  }

  private async migrate(list: readonly Migration[]): Promise<void> {
    const client = await this.pool.connect();
    try {
      for (const m of list) {
        await client.query('BEGIN');
        try {
          // serialise concurrent openers (several daemons, parallel tests) on this schema
          await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`lifeboat-catalog:${this.schema}`]);
          await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.qs}`);
          await client.query(`CREATE TABLE IF NOT EXISTS ${this.qs}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`);
          const done = await client.query(`SELECT 1 FROM ${this.qs}.schema_migrations WHERE version = $1`, [m.version]);
          if (done.rowCount === 0) {
            for (const sql of m.postgres(this.qs)) await client.query(sql);
            await client.query(`INSERT INTO ${this.qs}.schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`, [m.version, m.name]);
          }
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      }
    } finally {
      client.release();
    }
  }

  protected t(table: string): string {
    return `${this.qs}.${table}`;
  }

  private placeholders(sql: string): string {
    let i = 0;
    return sql.replace(/\?/g, () => `$${++i}`);
  }

  protected async all(sql: string, params: Param[] = []): Promise<Row[]> {
    return (await this.pool.query(this.placeholders(sql), params)).rows as Row[];
  }

  protected async exec(sql: string, params: Param[] = []): Promise<number> {
    return (await this.pool.query(this.placeholders(sql), params)).rowCount ?? 0;
  }

  protected async insertId(sql: string, params: Param[]): Promise<number> {
    const r = await this.pool.query(this.placeholders(sql) + ' RETURNING id', params);
    return Number(r.rows[0].id);
  }

  protected toDate(v: unknown): Date | null {
    if (v === null || v === undefined) return null;
    return v instanceof Date ? v : new Date(v as string);
  }

  async migrations(): Promise<number[]> {
    return (await this.all(`SELECT version FROM ${this.qs}.schema_migrations ORDER BY version`)).map((r) => Number(r.version));
  }

  /** Drop the whole schema (tests, `lifeboat catalog reset`). */
  async dropSchema(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS ${this.qs} CASCADE`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

// ---------------------------------------------------------------------------

/**
 * Open the catalog named by daemon.catalog: a postgres:// URL, or a SQLite
 * file path (relative paths resolve against `baseDir`, normally the config
 * file's directory).
 */
export async function openCatalog(location: string, opts: { baseDir?: string } & SqliteCatalogOptions & PostgresCatalogOptions = {}): Promise<Catalog> {
  if (/^postgres(ql)?:\/\//i.test(location)) return PostgresCatalog.open(location, opts);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) throw new ConfigError(`catalog: unsupported location ${location.split('://')[0]}:// (use a file path or postgres://)`);
  const file = location === ':memory:' || path.isAbsolute(location) ? location : path.resolve(opts.baseDir ?? process.cwd(), location);
  return SqliteCatalog.open(file, opts);
}

/** The catalog fields of a finished job run (src/ops/jobs.ts). */
export function runFinishFromJobResult(r: JobResult, extra: { logTail?: string; willRetry?: boolean } = {}): RunFinish {
  const s = r.summary;
  const f: RunFinish = { status: r.status, finishedAt: r.finishedAt, repository: r.repository };
  if (s) {
    f.bytesRead = s.bytesRead;
    f.bytesAdded = s.dataAdded;
    f.totalSize = s.totalBytes;
    f.files = s.filesNew + s.filesChanged + s.filesUnmodified;
    f.errors = s.errors;
  }
  if (r.snapshotId) f.snapshotId = r.snapshotId;
  const problems = [r.error, ...r.copies.filter((c) => c.error).map((c) => `copy to ${c.repository} failed: ${c.error}`)].filter(Boolean);
  if (problems.length) f.error = problems.join('; ');
  if (extra.logTail !== undefined) f.logTail = extra.logTail;
  else if (r.warnings.length) f.logTail = r.warnings.slice(-50).join('\n');
  if (extra.willRetry !== undefined) f.willRetry = extra.willRetry;
  return f;
}

/** Keeps the last `maxLines` log lines of a run, for RunFinish.logTail. */
export class LogTail {
  private readonly lines: string[] = [];
  constructor(private readonly maxLines = 100) {}
  push(line: string): void {
    for (const l of line.split('\n')) {
      this.lines.push(l);
      if (this.lines.length > this.maxLines) this.lines.shift();
    }
  }
  toString(): string {
    return this.lines.join('\n');
  }
}
