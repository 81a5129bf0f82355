import { hostname } from 'node:os';
import { ConfigError, LifeboatError } from '../../errors.js';
import { pidAlive } from '../../util/proc.js';
import { redactText } from '../templates.js';
import type { Catalog, SqlParam, SqlRow } from '../catalog/types.js';

/**
 * The fleet's tables in the catalog (migration 5): `agents` (one row per
 * daemon that ever registered: id, host, version, heartbeat, its jobs'
 * definitions) and `run_requests` (a job or drill an operator asked one agent
 * to run; the agent polls for them: agents have no inbound port).
 *
 * Times come from the catalog's clock (PostgreSQL now(); SQLite is one host),
 * so hosts with skewed clocks still agree on who is late. Every call has a
 * deadline (`timeoutMs`): a catalog that never answers fails the call, it
 * does not hang the agent.
 */

/** A job as an agent reports it: names, kinds and schedules only, never a secret. */
export interface AgentJob {
  name: string;
  source: string;
  sourceKind: string;
  schedule: string | null;
  repository: string;
  drillSchedule: string | null;
  /** Services of the agent's config that list this job. */
  services: string[];
}

export interface AgentRecord {
  id: string;
  hostname: string;
  version: string;
  pid: number | null;
  startedAt: Date;
  lastSeen: Date;
  heartbeatMs: number;
  stoppedAt: Date | null;
  jobs: AgentJob[];
}

export type AgentState = 'live' | 'missed' | 'stopped';

export const REQUEST_KINDS = ['job', 'drill'] as const;
export type RequestKind = (typeof REQUEST_KINDS)[number];
export type RequestStatus = 'pending' | 'running' | 'success' | 'partial' | 'failed';

export interface RunRequest {
  id: number;
  agentId: string;
  kind: RequestKind;
  name: string;
  requestedBy: string;
  requestedAt: Date;
  claimedAt: Date | null;
  finishedAt: Date | null;
  status: RequestStatus;
  /** What the agent reported: run id, snapshot, error (no secrets: redacted). */
  result: Record<string, unknown> | null;
}

export interface AgentRegistration {
  id: string;
  hostname: string;
  version: string;
  /** This process (PROCESS_INSTANCE): tells our own row from another live agent's. */
  instance: string;
  pid: number;
  heartbeatMs: number;
  jobs: AgentJob[];
}

/** live: heard from within missedAfter heartbeats; missed: not; stopped: it said goodbye. */
export function agentState(a: Pick<AgentRecord, 'lastSeen' | 'heartbeatMs' | 'stoppedAt'>, now: Date, missedAfter: number): AgentState {
  if (a.stoppedAt) return 'stopped';
  return now.getTime() - a.lastSeen.getTime() > missedAfter * a.heartbeatMs ? 'missed' : 'live';
}

export class FleetStore {
  constructor(
    private readonly catalog: Catalog,
    private readonly opts: { timeoutMs: number; missedAfter: number },
  ) {}

  private async deadline<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new LifeboatError(`catalog: ${what} did not answer within ${this.opts.timeoutMs} ms`)), this.opts.timeoutMs);
    });
    try {
      return await Promise.race([fn(), late]);
    } finally {
      clearTimeout(timer);
    }
  }

  private get sql() {
    return this.catalog.sql;
  }
  private t(name: string): string {
    return this.sql.t(name);
  }

  /** The catalog's clock. */
  async now(): Promise<Date> {
    if (this.sql.backend !== 'postgres') return new Date();
    const [r] = await this.deadline('clock', () => this.sql.all('SELECT now() AS n'));
    return this.sql.toDate(r!.n)!;
  }

  /**
   * Register (or re-register after a restart). Atomic: the row is taken over
   * only when it is ours, stopped, or its heartbeat is older than missedAfter
   * intervals; otherwise another live agent has this id and we are refused.
   */
  async register(a: AgentRegistration): Promise<void> {
    await this.deadline('agent registration', async () => {
      const now = await this.now();
      const staleBefore = new Date(now.getTime() - this.opts.missedAfter * a.heartbeatMs);
      const n = await this.sql.exec(
        `INSERT INTO ${this.t('agents')} AS a (id, hostname, version, instance, pid, started_at, last_seen, heartbeat_ms, stopped_at, jobs_json)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
         ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, version = excluded.version, instance = excluded.instance, pid = excluded.pid,
           started_at = excluded.started_at, last_seen = excluded.last_seen, heartbeat_ms = excluded.heartbeat_ms, stopped_at = NULL, jobs_json = excluded.jobs_json
         WHERE a.instance = excluded.instance OR a.stopped_at IS NOT NULL OR a.last_seen < ?`,
        [a.id, a.hostname, a.version, a.instance, a.pid, now, now, a.heartbeatMs, JSON.stringify(a.jobs), staleBefore],
      );
      if (n === 0 && (await this.takeOverDeadLocal(a, now))) return;
      if (n === 0) {
        const other = await this.agent(a.id);
        throw new ConfigError(
          `agent id "${a.id}" is already in use by a live agent${other ? ` on host ${other.hostname} (pid ${other.pid ?? '?'}, last heartbeat ${other.lastSeen.toISOString()})` : ''}; ` +
            'give each daemon sharing this catalog its own daemon.agentId',
        );
      }
    });
  }

  /**
   * The row's process ran on this host and is gone (crash, kill -9; a
   * restart by systemd): no need to wait until its heartbeat is stale. Only
   * the row of that exact process instance is replaced.
   */
  private async takeOverDeadLocal(a: AgentRegistration, now: Date): Promise<boolean> {
    const [r] = await this.sql.all(`SELECT hostname, pid, instance, stopped_at FROM ${this.t('agents')} WHERE id = ?`, [a.id]);
    if (!r || String(r.hostname) !== hostname() || a.hostname !== hostname()) return false;
    const pid = r.pid === null || r.pid === undefined ? NaN : Number(r.pid);
    if (!Number.isSafeInteger(pid) || pid === process.pid || pidAlive(pid)) return false;
    const n = await this.sql.exec(
      `UPDATE ${this.t('agents')} SET hostname = ?, version = ?, instance = ?, pid = ?, started_at = ?, last_seen = ?, heartbeat_ms = ?, stopped_at = NULL, jobs_json = ?
       WHERE id = ? AND instance = ?`,
      [a.hostname, a.version, a.instance, a.pid, now, now, a.heartbeatMs, JSON.stringify(a.jobs), a.id, String(r.instance)],
    );
    return n === 1;
  }

  /** Returns false when the row is no longer ours (another agent took the id over after we were silent too long). */
  async heartbeat(id: string, instance: string): Promise<boolean> {
    return this.deadline('heartbeat', async () => {
      const now = await this.now();
      return (await this.sql.exec(`UPDATE ${this.t('agents')} SET last_seen = ?, stopped_at = NULL WHERE id = ? AND instance = ?`, [now, id, instance])) > 0;
    });
  }

  /** A clean stop: the agent is "stopped", not "missed heartbeat". */
  async stopped(id: string, instance: string): Promise<void> {
    await this.deadline('agent stop', async () => {
      const now = await this.now();
      await this.sql.exec(`UPDATE ${this.t('agents')} SET stopped_at = ? WHERE id = ? AND instance = ?`, [now, id, instance]);
    });
  }

  private agentFromRow(r: SqlRow): AgentRecord {
    let jobs: AgentJob[] = [];
    try {
      const v = JSON.parse(String(r.jobs_json ?? '[]')) as unknown;
      if (Array.isArray(v)) jobs = v as AgentJob[];
    } catch {
      jobs = [];
    }
    return {
      id: String(r.id),
      hostname: String(r.hostname),
      version: String(r.version),
      pid: r.pid === null || r.pid === undefined ? null : Number(r.pid),
      startedAt: this.sql.toDate(r.started_at)!,
      lastSeen: this.sql.toDate(r.last_seen)!,
      heartbeatMs: Number(r.heartbeat_ms),
      stoppedAt: this.sql.toDate(r.stopped_at),
      jobs,
    };
  }

  async agent(id: string): Promise<AgentRecord | undefined> {
    const [r] = await this.deadline('agent lookup', () => this.sql.all(`SELECT * FROM ${this.t('agents')} WHERE id = ?`, [id]));
    return r ? this.agentFromRow(r) : undefined;
  }

  /** Every agent that ever registered, by id, with its state at the catalog's clock. */
  async agents(): Promise<{ now: Date; agents: Array<AgentRecord & { state: AgentState }> }> {
    return this.deadline('agent list', async () => {
      const now = await this.now();
      const rows = await this.sql.all(`SELECT * FROM ${this.t('agents')} ORDER BY id`);
      return { now, agents: rows.map((r) => this.agentFromRow(r)).map((a) => ({ ...a, state: agentState(a, now, this.opts.missedAfter) })) };
    });
  }

  /**
   * Ask an agent to run one of its jobs (or a drill of it). Refused (ConfigError)
   * when the agent is unknown or does not report that job.
   */
  async request(agentId: string, kind: RequestKind, name: string, requestedBy: string): Promise<RunRequest> {
    if (!(REQUEST_KINDS as readonly string[]).includes(kind)) throw new ConfigError(`unknown request kind "${kind}" (expected job or drill)`);
    const agent = await this.agent(agentId);
    if (!agent) throw new ConfigError(`no agent "${agentId}" in the catalog (lifeboat fleet ls lists them)`);
    if (!agent.jobs.some((j) => j.name === name)) {
      throw new ConfigError(`agent "${agentId}" has no job "${name}" (its jobs: ${agent.jobs.map((j) => j.name).join(', ') || 'none'})`);
    }
    return this.deadline('run request', async () => {
      const now = await this.now();
      const id = await this.sql.insertId(
        `INSERT INTO ${this.t('run_requests')} (agent_id, kind, name, requested_by, requested_at, status) VALUES (?, ?, ?, ?, ?, 'pending')`,
        [agentId, kind, name, requestedBy, now],
      );
      return (await this.getRequest(id))!;
    });
  }

  private requestFromRow(r: SqlRow): RunRequest {
    let result: Record<string, unknown> | null = null;
    if (r.result !== null && r.result !== undefined) {
      try {
        result = JSON.parse(String(r.result)) as Record<string, unknown>;
      } catch {
        result = null;
      }
    }
    return {
      id: Number(r.id),
      agentId: String(r.agent_id),
      kind: r.kind as RequestKind,
      name: String(r.name),
      requestedBy: String(r.requested_by),
      requestedAt: this.sql.toDate(r.requested_at)!,
      claimedAt: this.sql.toDate(r.claimed_at),
      finishedAt: this.sql.toDate(r.finished_at),
      status: r.status as RequestStatus,
      result,
    };
  }

  async getRequest(id: number): Promise<RunRequest | undefined> {
    const [r] = await this.deadline('run request lookup', () => this.sql.all(`SELECT * FROM ${this.t('run_requests')} WHERE id = ?`, [id]));
    return r ? this.requestFromRow(r) : undefined;
  }

  /** Newest first. */
  async requests(filter: { agentId?: string; limit?: number } = {}): Promise<RunRequest[]> {
    const params: SqlParam[] = [];
    let sql = `SELECT * FROM ${this.t('run_requests')}`;
    if (filter.agentId !== undefined) {
      sql += ' WHERE agent_id = ?';
      params.push(filter.agentId);
    }
    sql += ' ORDER BY id DESC LIMIT ?';
    params.push(filter.limit ?? 50);
    return (await this.deadline('run request list', () => this.sql.all(sql, params))).map((r) => this.requestFromRow(r));
  }

  /** Unclaimed requests addressed to this agent, oldest first. */
  async pending(agentId: string): Promise<RunRequest[]> {
    const rows = await this.deadline('run request poll', () =>
      this.sql.all(`SELECT * FROM ${this.t('run_requests')} WHERE agent_id = ? AND claimed_at IS NULL ORDER BY id`, [agentId]),
    );
    return rows.map((r) => this.requestFromRow(r));
  }

  /** Take a request: true for exactly one caller (the UPDATE only matches while it is unclaimed). */
  async claim(id: number, instance: string): Promise<boolean> {
    return this.deadline('run request claim', async () => {
      const now = await this.now();
      return (
        (await this.sql.exec(`UPDATE ${this.t('run_requests')} SET claimed_at = ?, claimed_by = ?, status = 'running' WHERE id = ? AND claimed_at IS NULL`, [
          now,
          instance,
          id,
        ])) === 1
      );
    });
  }

  async finish(id: number, status: Exclude<RequestStatus, 'pending' | 'running'>, result: Record<string, unknown>): Promise<void> {
    const clean = Object.fromEntries(Object.entries(result).map(([k, v]) => [k, typeof v === 'string' ? redactText(v).slice(0, 4096) : v]));
    await this.deadline('run request result', async () => {
      const now = await this.now();
      await this.sql.exec(`UPDATE ${this.t('run_requests')} SET finished_at = ?, status = ?, result = ? WHERE id = ?`, [now, status, JSON.stringify(clean), id]);
    });
  }

  /**
   * The watch lease (one row per watch `name`): true when `holder` holds it
   * until now + leaseMs: it was free, expired, or already ours. Exactly one
   * process holds a lease at a time, so one process at a time reports
   * missed heartbeats (the alerts' dedup state is read and written by one
   * process only); when the holder dies, another takes over once it expired.
   */
  async holdWatch(name: string, holder: string, leaseMs: number): Promise<boolean> {
    return this.deadline('watch lease', async () => {
      const now = await this.now();
      const n = await this.sql.exec(
        `INSERT INTO ${this.t('fleet_watch')} AS w (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE w.holder = excluded.holder OR w.expires_at < ?`,
        [name, holder, new Date(now.getTime() + leaseMs), now],
      );
      return n === 1;
    });
  }

  /** Give the lease up (a clean stop), so another process takes over at once. */
  async releaseWatch(name: string, holder: string): Promise<void> {
    await this.deadline('watch lease release', () => this.sql.exec(`DELETE FROM ${this.t('fleet_watch')} WHERE name = ? AND holder = ?`, [name, holder]));
  }

  /**
   * Requests a previous process of this agent claimed and never finished
   * (it crashed) become failed. Called at registration, when no other live
   * agent can hold this id.
   */
  async failInterrupted(agentId: string, instance: string): Promise<number> {
    return this.deadline('interrupted run requests', async () => {
      const now = await this.now();
      return this.sql.exec(
        `UPDATE ${this.t('run_requests')} SET finished_at = ?, status = 'failed', result = ? WHERE agent_id = ? AND claimed_at IS NOT NULL AND finished_at IS NULL AND claimed_by <> ?`,
        [now, JSON.stringify({ error: 'interrupted: the agent stopped before it finished (crash, kill or power loss)' }), agentId, instance],
      );
    });
  }
}
