import { hostname } from 'node:os';
import { LifeboatError } from '../../errors.js';
import { pidAlive } from '../../util/proc.js';
import { redactText } from '../templates.js';
import { PROCESS_INSTANCE } from './instance.js';
import {
  MAX_ERROR_CHARS,
  MAX_LOG_TAIL_CHARS,
  RUN_KINDS,
  type AlertRecord,
  type AlertStateName,
  type Catalog,
  type DeliveryRecord,
  type MarkInterruptedOptions,
  type Migration,
  type RunCount,
  type RunFilter,
  type RunFinish,
  type RunKind,
  type RunRecord,
  type RunStart,
  type RunStatus,
  type Severity,
  type SizePoint,
  type SqlAccess,
  type SqlParam,
  type SqlRow,
} from './types.js';

/**
 * The queries both backends share (runs, failure streaks, size history,
 * alerts and deliveries); a backend supplies t(), all(), exec(), insertId(),
 * toDate() and its migration runner.
 */

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
export abstract class SqlCatalog implements Catalog {
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
      bytesUploaded: num(r.bytes_uploaded),
      bytesDownloaded: num(r.bytes_downloaded),
      totalSize: num(r.total_size),
      files: num(r.files),
      errors: num(r.errors),
      snapshotId: (r.snapshot_id as string | null) ?? null,
      toolVersions: (tv as Record<string, string> | null) ?? null,
      error: (r.error as string | null) ?? null,
      logTail: (r.log_tail as string | null) ?? null,
      host: (r.host as string | null) ?? null,
      pid: num(r.pid),
      agentId: (r.agent_id as string | null | undefined) ?? null,
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
      `INSERT INTO ${this.t('runs')} (job, source, kind, repository, status, started_at, attempt, tool_versions, host, pid, instance, agent_id)
       VALUES (?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)`,
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
        run.agentId ?? null,
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
      `UPDATE ${this.t('runs')} SET status = ?, finished_at = ?, bytes_read = ?, bytes_added = ?, bytes_uploaded = ?, bytes_downloaded = ?, total_size = ?, files = ?, errors = ?,
         snapshot_id = ?, repository = COALESCE(?, repository), tool_versions = COALESCE(?, tool_versions), error = ?, log_tail = ?, will_retry = ?
       WHERE id = ?`,
      [
        f.status,
        f.finishedAt ?? new Date(),
        checkNonNegative(f.bytesRead, 'bytesRead'),
        checkNonNegative(f.bytesAdded, 'bytesAdded'),
        checkNonNegative(f.bytesUploaded, 'bytesUploaded'),
        checkNonNegative(f.bytesDownloaded, 'bytesDownloaded'),
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
    if (filter.agentId !== undefined) {
      where.push('agent_id = ?');
      params.push(filter.agentId);
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
