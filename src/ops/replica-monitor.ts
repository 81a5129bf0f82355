import type { LifeboatConfig } from '../config/config.js';
import type { ReplicaConfig } from '../config/replicas.js';
import { parseBytes } from '../config/alerts.js';
import { resolveSecret } from '../config/password.js';
import { configPath } from '../config/paths.js';
import type { Tier } from '../config/tiers.js';
import { errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import { formatDuration } from '../util/format.js';
import { connectPg } from '../util/pg-client.js';
import { queryOrKill } from '../util/mysql-query.js';
import type { Severity } from './catalog/types.js';
import { worstSeverity, type Finding, type MonitorReport } from './monitor.js';

/**
 * The `postgres-replica` monitor: one finding (job "replica:NAME", check
 * "replica") per configured replica and pass, routed and deduplicated by the
 * AlertManager like the backup checks.
 *
 *   unreachable replica (connect/query timeout, refused)        critical
 *   not in recovery (promoted, or a misconfigured URL)          warning
 *   WAL receiver not streaming (primary down, slot missing...)  critical
 *   lag over criticalBytes / critical seconds                   critical
 *   lag over warnBytes / warn seconds                           warning
 *
 * Lag in bytes: primary's pg_current_wal_lsn() - replica's replay LSN when
 * the primary is configured and reachable, else receive LSN - replay LSN
 * (what the replica has but not yet applied).
 *
 * Lag in seconds: now() - pg_last_xact_replay_timestamp() grows without bound
 * while the primary is idle (no transaction to replay), so it only counts
 * while there is WAL left to replay (byte lag > 0): a replica that has
 * replayed everything it could get has 0 s lag; an idle primary is not an
 * alert. A receiver that stops streaming is caught by its own state instead.
 */

export interface ReplicaSample {
  reachable: boolean;
  error?: string;
  inRecovery?: boolean;
  /** pg_stat_wal_receiver.status, null when no receiver process runs. */
  receiverStatus?: string | null;
  senderHost?: string | null;
  lagBytes?: number | null;
  /** How lagBytes was measured. */
  lagBasis?: 'primary' | 'receive';
  /** now() - last replayed transaction's commit time (raw, before the idle rule). */
  replayAgeSeconds?: number | null;
  primaryReachable?: boolean;
  primaryError?: string;
}

export interface ReplicaThresholds {
  warnBytes: number;
  criticalBytes: number;
  warnSeconds: number;
  criticalSeconds: number;
}

export interface ReplicaSpec {
  name: string;
  kind: 'postgres' | 'mysql';
  tier: Tier;
  thresholds: ReplicaThresholds;
  connectTimeoutMs: number;
  queryTimeoutMs: number;
  replica: PgConn;
  primary?: PgConn;
  onCritical?: ReplicaConfig['onCritical'];
}

interface PgConn {
  url: string;
  /** Resolved lazily (a missing secret is a finding, not a crash). */
  password?: () => string;
}

export function replicasFromConfig(cfg: LifeboatConfig): ReplicaSpec[] {
  const secret = (ref: { env?: string; file?: string; command?: string } | undefined, what: string) =>
    ref ? () => resolveSecret(ref.file ? { file: configPath(cfg, ref.file) } : ref, what) : undefined;
  return Object.entries(cfg.replicas ?? {}).map(([name, r]) => {
    const pw = secret(r.password, `replicas.${name}.password`);
    const ppw = secret(r.primary?.password, `replicas.${name}.primary.password`);
    return {
      name,
      kind: r.kind,
      tier: r.tier,
      thresholds: {
        warnBytes: parseBytes(r.lag.warnBytes),
        criticalBytes: parseBytes(r.lag.criticalBytes),
        warnSeconds: parseDuration(r.lag.warn) / 1000,
        criticalSeconds: parseDuration(r.lag.critical) / 1000,
      },
      connectTimeoutMs: parseDuration(r.connectTimeout),
      queryTimeoutMs: parseDuration(r.queryTimeout),
      replica: { url: r.url, ...(pw ? { password: pw } : {}) },
      ...(r.primary ? { primary: { url: r.primary.url, ...(ppw ? { password: ppw } : {}) } } : {}),
      ...(r.onCritical ? { onCritical: r.onCritical } : {}),
    };
  });
}

/** Seconds of lag that count: the replay age only while WAL is waiting to be replayed (see above). */
export function effectiveLagSeconds(s: Pick<ReplicaSample, 'lagBytes' | 'replayAgeSeconds'>): number | null {
  if (s.lagBytes === null || s.lagBytes === undefined) return s.replayAgeSeconds ?? null;
  if (s.lagBytes <= 0) return 0;
  return s.replayAgeSeconds ?? null;
}

function fmtBytes(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < u.length - 1) (v /= 1024), i++;
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** Pure: grade one sample. */
export function checkReplica(spec: Pick<ReplicaSpec, 'name' | 'tier' | 'thresholds'>, s: ReplicaSample): Finding {
  const t = spec.thresholds;
  const lagSeconds = effectiveLagSeconds(s);
  const base = { job: `replica:${spec.name}`, check: 'replica' as const, tier: spec.tier };
  const details: Record<string, unknown> = {
    replica: spec.name,
    reachable: s.reachable,
    inRecovery: s.inRecovery ?? null,
    receiverStatus: s.receiverStatus ?? null,
    lagBytes: s.lagBytes ?? null,
    lagBasis: s.lagBasis ?? null,
    lagSeconds,
    replayAgeSeconds: s.replayAgeSeconds ?? null,
    primaryReachable: s.primaryReachable ?? null,
    ...t,
    ...(s.error ? { error: s.error } : {}),
    ...(s.primaryError ? { primaryError: s.primaryError } : {}),
  };
  const f = (severity: Severity, text: string): Finding => ({ ...base, severity, message: `replica ${spec.name}: ${text}`, details });
  if (!s.reachable) return f('critical', `unreachable: ${s.error ?? 'unknown error'}`);
  if (s.inRecovery === false) return f('warning', 'is not in recovery: it was promoted (or the URL points at a primary)');
  const primaryNote = s.primaryReachable === false ? `; primary unreachable: ${s.primaryError ?? 'unknown error'}` : '';
  if (s.receiverStatus !== 'streaming') {
    return f('critical', `WAL receiver ${s.receiverStatus ? `is "${s.receiverStatus}"` : 'is not running'}, not streaming${primaryNote}`);
  }
  const lag = `lag ${s.lagBytes === null || s.lagBytes === undefined ? 'unknown' : fmtBytes(s.lagBytes)}${lagSeconds === null ? '' : ` / ${formatDuration(lagSeconds * 1000)}`}`;
  const over = (bytes: number, secs: number) => (s.lagBytes ?? 0) > bytes || (lagSeconds ?? 0) > secs;
  if (over(t.criticalBytes, t.criticalSeconds)) return f('critical', `${lag}, over the critical limit (${fmtBytes(t.criticalBytes)} / ${formatDuration(t.criticalSeconds * 1000)})${primaryNote}`);
  if (over(t.warnBytes, t.warnSeconds)) return f('warning', `${lag}, over the warning limit (${fmtBytes(t.warnBytes)} / ${formatDuration(t.warnSeconds * 1000)})${primaryNote}`);
  return f(s.primaryReachable === false ? 'warning' : 'ok', `streaming, ${lag}${primaryNote}`);
}

type PgClient = import('pg').Client;

function connect(c: PgConn, connectTimeoutMs: number, queryTimeoutMs: number): Promise<PgClient> {
  return connectPg({
    connectionString: c.url,
    ...(c.password ? { password: c.password() } : {}),
    connectionTimeoutMillis: connectTimeoutMs,
    query_timeout: queryTimeoutMs,
    statement_timeout: queryTimeoutMs,
    application_name: 'lifeboat-replica-monitor',
  });
}

const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

/** Measure one replica (and its primary when configured). Never throws. */
export async function sampleReplica(spec: ReplicaSpec): Promise<ReplicaSample> {
  const sample = { postgres: samplePgReplica, mysql: sampleMysqlReplica }[spec.kind];
  return sample(spec);
}

type MyConn = import('mysql2/promise').Connection;

async function myConnect(c: PgConn, connectTimeoutMs: number): Promise<MyConn> {
  const u = new URL(c.url);
  const mysql = (await import('mysql2/promise')).default;
  const conn = await mysql.createConnection({
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 3306,
    user: u.username ? decodeURIComponent(u.username) : 'root',
    ...(u.pathname.length > 1 ? { database: decodeURIComponent(u.pathname.slice(1)) } : {}),
    ...(c.password ? { password: c.password() } : {}),
    connectTimeout: connectTimeoutMs,
  });
  conn.on('error', () => {});
  return conn;
}

/**
 * MariaDB/MySQL: SHOW REPLICA STATUS (SHOW SLAVE STATUS on older servers).
 * "Streaming" = the I/O and SQL threads both run; byte lag = read minus
 * executed position of the primary's binary log when both are in the same
 * file (else unknown); seconds = Seconds_Behind_Master (the server already
 * reports 0 when the replica has executed everything it received). No row:
 * not a replica (promoted).
 */
async function sampleMysqlReplica(spec: ReplicaSpec): Promise<ReplicaSample> {
  const out: ReplicaSample = { reachable: false };
  // past queryTimeout the query is ended on the server too (util/mysql-query.ts)
  const q = async (c: MyConn, sql: string, conn: PgConn) =>
    (await queryOrKill(c, { sql, timeout: spec.queryTimeoutMs }, () => myConnect(conn, spec.connectTimeoutMs))) as Array<Record<string, unknown>>;
  if (spec.primary) {
    try {
      const p = await myConnect(spec.primary, spec.connectTimeoutMs);
      try {
        await q(p, 'SELECT 1', spec.primary);
        out.primaryReachable = true;
      } finally {
        await p.end().catch(() => {});
      }
    } catch (err) {
      out.primaryReachable = false;
      out.primaryError = errorMessage(err);
    }
  }
  let c: MyConn;
  try {
    c = await myConnect(spec.replica, spec.connectTimeoutMs);
  } catch (err) {
    return { ...out, error: errorMessage(err) };
  }
  try {
    let rows: Array<Record<string, unknown>>;
    try {
      rows = await q(c, 'SHOW REPLICA STATUS', spec.replica);
    } catch {
      rows = await q(c, 'SHOW SLAVE STATUS', spec.replica);
    }
    out.reachable = true;
    const r = rows[0];
    if (!r) return { ...out, inRecovery: false, receiverStatus: null };
    const get = (...names: string[]) => names.map((n) => r[n]).find((v) => v !== undefined);
    const io = String(get('Replica_IO_Running', 'Slave_IO_Running') ?? '');
    const sqlT = String(get('Replica_SQL_Running', 'Slave_SQL_Running') ?? '');
    out.inRecovery = true;
    out.receiverStatus = io === 'Yes' && sqlT === 'Yes' ? 'streaming' : `io ${io || '?'}, sql ${sqlT || '?'}`;
    out.senderHost = (get('Source_Host', 'Master_Host') as string | undefined) ?? null;
    const readFile = get('Source_Log_File', 'Master_Log_File');
    const execFile = get('Relay_Source_Log_File', 'Relay_Master_Log_File');
    const readPos = num(get('Read_Source_Log_Pos', 'Read_Master_Log_Pos'));
    const execPos = num(get('Exec_Source_Log_Pos', 'Exec_Master_Log_Pos'));
    out.lagBytes = readFile !== undefined && readFile === execFile && readPos !== null && execPos !== null ? Math.max(0, readPos - execPos) : null;
    out.lagBasis = 'receive';
    const sbm = num(get('Seconds_Behind_Source', 'Seconds_Behind_Master'));
    out.replayAgeSeconds = sbm;
    const ioErr = get('Last_IO_Error');
    if (out.receiverStatus !== 'streaming' && ioErr) out.error = String(ioErr).slice(0, 300);
    return out;
  } catch (err) {
    return { ...out, reachable: false, error: errorMessage(err) };
  } finally {
    await c.end().catch(() => {});
  }
}

async function samplePgReplica(spec: ReplicaSpec): Promise<ReplicaSample> {
  let primaryLsn: string | null = null;
  const out: ReplicaSample = { reachable: false };
  if (spec.primary) {
    try {
      const p = await connect(spec.primary, spec.connectTimeoutMs, spec.queryTimeoutMs);
      try {
        primaryLsn = (await p.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0]?.lsn ?? null;
        out.primaryReachable = true;
      } finally {
        await p.end().catch(() => {});
      }
    } catch (err) {
      out.primaryReachable = false;
      out.primaryError = errorMessage(err);
    }
  }
  let c: PgClient;
  try {
    c = await connect(spec.replica, spec.connectTimeoutMs, spec.queryTimeoutMs);
  } catch (err) {
    return { ...out, error: errorMessage(err) };
  }
  try {
    const r = (
      await c.query(
        `SELECT pg_is_in_recovery() AS rec,
                (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS status,
                (SELECT sender_host FROM pg_stat_wal_receiver LIMIT 1) AS sender,
                pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::float8 AS recv_lag,
                CASE WHEN $1::text IS NULL THEN NULL ELSE pg_wal_lsn_diff($1::text::pg_lsn, pg_last_wal_replay_lsn())::float8 END AS primary_lag,
                EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8 AS age`,
        [primaryLsn],
      )
    ).rows[0] as { rec: boolean; status: string | null; sender: string | null; recv_lag: unknown; primary_lag: unknown; age: unknown };
    out.reachable = true;
    out.inRecovery = r.rec;
    out.receiverStatus = r.status;
    out.senderHost = r.sender;
    const pl = num(r.primary_lag);
    if (pl !== null) (out.lagBytes = Math.max(0, pl)), (out.lagBasis = 'primary');
    else if (num(r.recv_lag) !== null) (out.lagBytes = Math.max(0, num(r.recv_lag)!)), (out.lagBasis = 'receive');
    else out.lagBytes = null;
    out.replayAgeSeconds = num(r.age);
    return out;
  } catch (err) {
    return { ...out, reachable: false, error: errorMessage(err) };
  } finally {
    await c.end().catch(() => {});
  }
}

/** One pass over every configured replica. */
export async function evaluateReplicas(specs: readonly ReplicaSpec[]): Promise<Finding[]> {
  return Promise.all(specs.map(async (s) => checkReplica(s, await sampleReplica(s))));
}

/** Add replica findings to a monitor report (state and per-"job" severity recomputed). */
export function withFindings(report: MonitorReport, extra: readonly Finding[]): MonitorReport {
  const findings = [...report.findings, ...extra];
  const jobs: Record<string, Severity> = { ...report.jobs };
  for (const f of extra) jobs[f.job] = worstSeverity([jobs[f.job] ?? 'ok', f.severity]);
  return { ...report, findings, jobs, state: worstSeverity(findings.map((f) => f.severity)) };
}

/** The onCritical triggers of the replicas, by alert key. */
export function replicaTriggers(specs: readonly ReplicaSpec[]): Map<string, { runbook: string; requireConfirmation: boolean }> {
  const m = new Map<string, { runbook: string; requireConfirmation: boolean }>();
  for (const s of specs) if (s.onCritical) m.set(`replica:${s.name}/replica`, { runbook: s.onCritical.runbook, requireConfirmation: s.onCritical.requireConfirmation });
  return m;
}
