import type { Catalog, Migration, SqlRow } from '../ops/catalog/types.js';
import { errorMessage } from '../errors.js';
import { redactText } from '../ops/templates.js';
import { hostname } from 'node:os';
import { pidAlive } from '../util/proc.js';

/**
 * Long operations started through the API (job run, restore, drill, runbook)
 * run in the background of the server process. Each is a Task: in memory
 * while it runs (with a live log tail), and recorded in the catalog
 * (migration 304) when it starts and ends, so the history survives a
 * restart. Tasks still `running` in the catalog at start-up whose server
 * process (same host, pid no longer alive) died are marked `interrupted`.
 */

export const TASK_MIGRATIONS: readonly Migration[] = [
  {
    version: 304,
    name: 'server tasks',
    sqlite: [
      `CREATE TABLE server_tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        actor TEXT NOT NULL,
        params TEXT NOT NULL,
        result TEXT,
        error TEXT,
        log TEXT,
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        host TEXT,
        pid INTEGER
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.server_tasks (
        id BIGSERIAL PRIMARY KEY,
        kind TEXT NOT NULL,
        title TEXT NOT NULL,
        status TEXT NOT NULL,
        actor TEXT NOT NULL,
        params TEXT NOT NULL,
        result TEXT,
        error TEXT,
        log TEXT,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        host TEXT,
        pid INTEGER
      )`,
    ],
  },
];

export type TaskKind = 'job-run' | 'restore' | 'drill' | 'runbook';
export type TaskStatus = 'running' | 'success' | 'failed' | 'interrupted';

export interface Task {
  id: number;
  kind: TaskKind;
  title: string;
  status: TaskStatus;
  actor: string;
  params: Record<string, unknown>;
  result: unknown;
  error: string | null;
  log: string[];
  startedAt: Date;
  finishedAt: Date | null;
}

const MAX_LOG_LINES = 200;

export class TaskRegistry {
  private readonly live = new Map<number, Task>();
  private readonly running = new Set<Promise<unknown>>();
  private ready: Promise<void> | undefined;
  private readonly aborter = new AbortController();
  private closing = false;

  /**
   * `idle`: called each time the last running task has ended (its outcome recorded), not while the
   * registry closes: `lifeboat serve` gives back what a job, restore or drill left (util/malloc.ts
   * releaseIdleMemory), as the daemon does between its jobs.
   */
  constructor(
    private readonly catalog: Catalog,
    private readonly opts: { idle?: () => void; log?: (m: string) => void } = {},
  ) {}

  async init(): Promise<void> {
    this.ready ??= (async () => {
      await this.catalog.ensureMigrations(TASK_MIGRATIONS);
      const s = this.catalog.sql;
      // tasks of dead server processes on this host (other hosts' servers are left alone)
      for (const r of await s.all(`SELECT id, pid FROM ${s.t('server_tasks')} WHERE status = 'running' AND host = ?`, [hostname()])) {
        if (r.pid !== null && pidAlive(Number(r.pid))) continue;
        await s.exec(`UPDATE ${s.t('server_tasks')} SET status = 'interrupted', finished_at = ?, error = ? WHERE id = ? AND status = 'running'`, [
          new Date(),
          'the server stopped while this task was running',
          Number(r.id),
        ]);
      }
    })();
    await this.ready;
  }

  /** Is a task of this kind with this key (e.g. the job name) running? */
  busy(kind: TaskKind, key: string, value: unknown): Task | undefined {
    for (const t of this.live.values()) if (t.kind === kind && t.status === 'running' && t.params[key] === value) return t;
    return undefined;
  }

  /**
   * Start fn in the background. Resolves with the task as soon as it is
   * recorded (fn keeps running). fn's return value becomes task.result; a
   * throw marks the task failed with the (redacted) message; fn may also
   * return `{ failed: message, result }` via TaskOutcome to fail with a result.
   */
  async start(kind: TaskKind, title: string, actor: string, params: Record<string, unknown>, fn: (ctx: { log: (m: string) => void; signal: AbortSignal; task: Task }) => Promise<unknown>): Promise<Task> {
    await this.init();
    const s = this.catalog.sql;
    const startedAt = new Date();
    const id = await s.insertId(`INSERT INTO ${s.t('server_tasks')} (kind, title, status, actor, params, started_at, host, pid) VALUES (?, ?, 'running', ?, ?, ?, ?, ?)`, [
      kind,
      title,
      actor,
      JSON.stringify(params),
      startedAt,
      hostname(),
      process.pid,
    ]);
    const task: Task = { id, kind, title, status: 'running', actor, params, result: null, error: null, log: [], startedAt, finishedAt: null };
    this.live.set(id, task);
    const log = (m: string) => {
      for (const line of redactText(m).split('\n')) {
        task.log.push(`${new Date().toISOString()} ${line}`);
        if (task.log.length > MAX_LOG_LINES) task.log.shift();
      }
    };
    const p = (async () => {
      try {
        const r = await fn({ log, signal: this.aborter.signal, task });
        if (r instanceof TaskFailure) {
          task.result = r.result ?? null;
          task.error = redactText(r.message);
          task.status = 'failed';
        } else {
          task.result = r ?? null;
          task.status = 'success';
        }
      } catch (err) {
        task.error = redactText(errorMessage(err));
        task.status = this.aborter.signal.aborted ? 'interrupted' : 'failed';
        log(`failed: ${task.error}`);
      }
      task.finishedAt = new Date();
      await s
        .exec(`UPDATE ${s.t('server_tasks')} SET status = ?, result = ?, error = ?, log = ?, finished_at = ? WHERE id = ?`, [
          task.status,
          JSON.stringify(task.result ?? null),
          task.error,
          task.log.join('\n'),
          task.finishedAt,
          id,
        ])
        .catch(() => {});
      // keep finished tasks in memory for a while for polling; the catalog has them anyway
      setTimeout(() => this.live.delete(id), 10 * 60_000).unref();
    })();
    this.running.add(p);
    void p.finally(() => {
      this.running.delete(p);
      if (this.running.size || this.closing || !this.opts.idle) return;
      try {
        this.opts.idle();
      } catch (err) {
        this.opts.log?.(`tasks: idle hook: ${errorMessage(err)}`);
      }
    });
    return task;
  }

  private fromRow(r: SqlRow): Task {
    const s = this.catalog.sql;
    return {
      id: Number(r.id),
      kind: r.kind as TaskKind,
      title: String(r.title),
      status: r.status as TaskStatus,
      actor: String(r.actor),
      params: JSON.parse(String(r.params)) as Record<string, unknown>,
      result: r.result ? (JSON.parse(String(r.result)) as unknown) : null,
      error: (r.error as string | null) ?? null,
      log: r.log ? String(r.log).split('\n') : [],
      startedAt: s.toDate(r.started_at)!,
      finishedAt: s.toDate(r.finished_at),
    };
  }

  async get(id: number): Promise<Task | undefined> {
    await this.init();
    const t = this.live.get(id);
    if (t) return t;
    const s = this.catalog.sql;
    const [r] = await s.all(`SELECT * FROM ${s.t('server_tasks')} WHERE id = ?`, [id]);
    return r ? this.fromRow(r) : undefined;
  }

  async list(limit = 50): Promise<Task[]> {
    await this.init();
    const s = this.catalog.sql;
    const rows = (await s.all(`SELECT * FROM ${s.t('server_tasks')} ORDER BY id DESC LIMIT ?`, [limit])).map((r) => this.fromRow(r));
    return rows.map((t) => this.live.get(t.id) ?? t);
  }

  /** Abort running tasks and wait (up to graceMs) for them to end. */
  async close(graceMs = 10_000): Promise<void> {
    this.closing = true;
    if (!this.running.size) return;
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, graceMs).unref())]);
    this.aborter.abort(new Error('server stopping'));
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, 2000).unref())]);
  }
}

/** Return this from a task function to mark the task failed while keeping a result. */
export class TaskFailure {
  constructor(
    readonly message: string,
    readonly result?: unknown,
  ) {}
}
