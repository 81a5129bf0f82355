import type { Catalog, Migration, SqlRow } from '../ops/catalog/types.js';
import { redactText } from '../ops/templates.js';
import type { DrillCheck } from '../sources/scratch.js';
import type { DrillPhase, DrillResult } from './drill-types.js';

/**
 * Catalog tables of drills and scheduled checks (migration versions 100-199):
 *
 *   drills          one row per restore drill: outcome, measured times, the
 *                   objectives they were compared with, phases and checks (JSON)
 *   check_rotation  per repository: how many rotating read-data checks ran, so
 *                   run k reads part (k mod N)+1 of N and N runs read everything
 *
 * Error texts and check details are redacted (redactText) before they are stored.
 */

export const DRILL_MIGRATIONS: readonly Migration[] = [
  {
    version: 100,
    name: 'drills',
    sqlite: [
      `CREATE TABLE drills (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id INTEGER,
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        snapshot_id TEXT,
        snapshot_time INTEGER,
        started_at INTEGER NOT NULL,
        finished_at INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('success','failed')),
        restore_ms INTEGER NOT NULL,
        total_ms INTEGER NOT NULL,
        rto_ms INTEGER NOT NULL,
        rto_met INTEGER NOT NULL,
        rpo_ms INTEGER NOT NULL,
        backup_age_ms INTEGER,
        rpo_met INTEGER NOT NULL,
        target TEXT NOT NULL,
        error TEXT,
        phases TEXT NOT NULL,
        checks TEXT NOT NULL
      )`,
      'CREATE INDEX drills_job_started_idx ON drills (job, started_at)',
      `CREATE TABLE check_rotation (
        repository_id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        runs INTEGER NOT NULL,
        parts INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.drills (
        id BIGSERIAL PRIMARY KEY,
        run_id BIGINT,
        job TEXT NOT NULL,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        snapshot_id TEXT,
        snapshot_time TIMESTAMPTZ,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('success','failed')),
        restore_ms BIGINT NOT NULL,
        total_ms BIGINT NOT NULL,
        rto_ms BIGINT NOT NULL,
        rto_met BOOLEAN NOT NULL,
        rpo_ms BIGINT NOT NULL,
        backup_age_ms BIGINT,
        rpo_met BOOLEAN NOT NULL,
        target TEXT NOT NULL,
        error TEXT,
        phases TEXT NOT NULL,
        checks TEXT NOT NULL
      )`,
      `CREATE INDEX drills_job_started_idx ON ${s}.drills (job, started_at)`,
      `CREATE TABLE ${s}.check_rotation (
        repository_id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        runs BIGINT NOT NULL,
        parts INTEGER NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL
      )`,
    ],
  },
];

const MAX_TEXT = 4096;

export async function ensureDrillTables(catalog: Catalog): Promise<void> {
  await catalog.ensureMigrations(DRILL_MIGRATIONS);
}

function clip(s: string, n = MAX_TEXT): string {
  return s.length > n ? s.slice(0, n - 3) + '...' : s;
}

/** Store a drill result; returns its id (also set on r.id). */
export async function recordDrill(catalog: Catalog, r: DrillResult, opts: { runId?: number } = {}): Promise<number> {
  await ensureDrillTables(catalog);
  const sql = catalog.sql;
  const phases = r.phases.map((p) => ({ ...p, startedAt: p.startedAt.toISOString(), ...(p.detail !== undefined ? { detail: clip(redactText(p.detail), 1024) } : {}) }));
  const checks = r.checks.map((c) => ({ ...c, detail: clip(redactText(c.detail), 1024) }));
  const id = await sql.insertId(
    `INSERT INTO ${sql.t('drills')} (run_id, job, source, kind, snapshot_id, snapshot_time, started_at, finished_at, status, restore_ms, total_ms,
       rto_ms, rto_met, rpo_ms, backup_age_ms, rpo_met, target, error, phases, checks)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      opts.runId ?? null,
      r.job,
      r.source,
      r.kind,
      r.snapshotId,
      r.snapshotTime,
      r.startedAt,
      r.finishedAt,
      r.status,
      Math.round(r.restoreMs),
      Math.round(r.totalMs),
      Math.round(r.rtoMs),
      r.rtoMet,
      Math.round(r.rpoMs),
      r.backupAgeMs === null ? null : Math.round(r.backupAgeMs),
      r.rpoMet,
      clip(redactText(r.target), 1024),
      r.error !== undefined ? clip(redactText(r.error)) : null,
      JSON.stringify(phases),
      JSON.stringify(checks),
    ],
  );
  r.id = id;
  return id;
}

function num(v: unknown): number {
  return typeof v === 'number' ? v : Number(v);
}

function bool(v: unknown): boolean {
  return v === true || v === 1 || v === '1' || v === 't';
}

function fromRow(catalog: Catalog, row: SqlRow): DrillResult {
  const d = (v: unknown) => catalog.sql.toDate(v);
  const phases = (JSON.parse(String(row.phases)) as Array<Omit<DrillPhase, 'startedAt'> & { startedAt: string }>).map((p) => ({ ...p, startedAt: new Date(p.startedAt) }));
  const checks = JSON.parse(String(row.checks)) as DrillCheck[];
  return {
    id: num(row.id),
    job: String(row.job),
    source: String(row.source),
    kind: String(row.kind),
    snapshotId: row.snapshot_id === null || row.snapshot_id === undefined ? null : String(row.snapshot_id),
    snapshotTime: d(row.snapshot_time),
    startedAt: d(row.started_at)!,
    finishedAt: d(row.finished_at)!,
    status: row.status === 'success' ? 'success' : 'failed',
    restoreMs: num(row.restore_ms),
    totalMs: num(row.total_ms),
    rtoMs: num(row.rto_ms),
    rtoMet: bool(row.rto_met),
    rpoMs: num(row.rpo_ms),
    backupAgeMs: row.backup_age_ms === null || row.backup_age_ms === undefined ? null : num(row.backup_age_ms),
    rpoMet: bool(row.rpo_met),
    phases,
    checks,
    target: String(row.target),
    ...(row.error !== null && row.error !== undefined ? { error: String(row.error) } : {}),
  };
}

/** Drills, newest first. `since`: started at or after. */
export async function listDrills(catalog: Catalog, filter: { job?: string; limit?: number; since?: Date; status?: 'success' | 'failed' } = {}): Promise<DrillResult[]> {
  await ensureDrillTables(catalog);
  const sql = catalog.sql;
  const where: string[] = [];
  const params: Array<string | number | Date> = [];
  if (filter.job !== undefined) {
    where.push('job = ?');
    params.push(filter.job);
  }
  if (filter.since) {
    where.push('started_at >= ?');
    params.push(filter.since);
  }
  if (filter.status) {
    where.push('status = ?');
    params.push(filter.status);
  }
  const limit = Math.max(1, Math.min(100_000, Math.floor(filter.limit ?? 1000)));
  const rows = await sql.all(
    `SELECT * FROM ${sql.t('drills')}${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, id DESC LIMIT ${limit}`,
    params,
  );
  return rows.map((r) => fromRow(catalog, r));
}

export async function lastDrill(catalog: Catalog, job: string, opts: { status?: 'success' | 'failed' } = {}): Promise<DrillResult | undefined> {
  return (await listDrills(catalog, { job, limit: 1, ...(opts.status ? { status: opts.status } : {}) }))[0];
}

export async function getDrill(catalog: Catalog, id: number): Promise<DrillResult | undefined> {
  await ensureDrillTables(catalog);
  const rows = await catalog.sql.all(`SELECT * FROM ${catalog.sql.t('drills')} WHERE id = ?`, [id]);
  return rows[0] ? fromRow(catalog, rows[0]) : undefined;
}
