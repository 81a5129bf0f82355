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
  /** The fleet agent running it (daemon.agentId, default the host name). */
  agentId?: string;
}

export interface RunFinish {
  status: FinalRunStatus;
  finishedAt?: Date; // default now
  /** Bytes read from the source. */
  bytesRead?: number;
  /** Bytes added to the repository (compressed, encrypted). */
  bytesAdded?: number;
  /** Bytes sent to / read from the repository storage by the run (copies included). */
  bytesUploaded?: number;
  bytesDownloaded?: number;
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
  bytesUploaded: number | null;
  bytesDownloaded: number | null;
  totalSize: number | null;
  files: number | null;
  errors: number | null;
  snapshotId: string | null;
  toolVersions: Record<string, string> | null;
  error: string | null;
  logTail: string | null;
  host: string | null;
  pid: number | null;
  /** The fleet agent that ran it (null: recorded before the fleet existed). */
  agentId: string | null;
}

export interface RunFilter {
  job?: string;
  /** Runs of this fleet agent only. */
  agentId?: string;
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


/**
 * What the catalog reads from a finished job run (see runFinishFromJobResult).
 * Declared here by shape so the catalog does not depend on the job runner;
 * src/ops/jobs.ts's JobResult is assignable to it.
 */
export interface JobRunOutcome {
  repository: string;
  status: FinalRunStatus;
  snapshotId?: string;
  summary?: {
    bytesRead: number;
    dataAdded: number;
    totalBytes: number;
    filesNew: number;
    filesChanged: number;
    filesUnmodified: number;
    errors: number;
  };
  copies: Array<{ repository: string; error?: string }>;
  /** Bytes moved to/from repository storage (all repositories of the run). */
  transferred?: { bytesUploaded: number; bytesDownloaded: number };
  warnings: string[];
  error?: string;
  finishedAt: Date;
}
