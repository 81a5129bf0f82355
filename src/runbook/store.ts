import { hostname } from 'node:os';
import { LifeboatError } from '../errors.js';
import { PROCESS_INSTANCE } from '../ops/catalog/instance.js';
import type { Catalog, Migration, SqlParam, SqlRow } from '../ops/catalog/types.js';
import { redactText } from '../ops/templates.js';
import type { RunbookDef } from '../config/runbook.js';
import { pidAlive } from '../util/proc.js';

/**
 * Runbook runs in the catalog (migrations 210-219): one row per run (with
 * the runbook definition as it was when the run started, so `resume` does the
 * same steps even if the file changed) and one row per step. Every state
 * change is written before and after the step runs; a manual step's
 * confirmation is a conditional UPDATE another process can make.
 */

export type StepStatus = 'pending' | 'running' | 'waiting' | 'success' | 'failed' | 'skipped' | 'rolled-back' | 'rollback-failed';
export type RunStatus = 'running' | 'waiting' | 'success' | 'failed' | 'rolled-back' | 'interrupted';

export interface RunbookRunStep {
  index: number;
  name: string;
  type: string;
  status: StepStatus;
  startedAt: Date | null;
  finishedAt: Date | null;
  output: string;
  error?: string;
  confirmedBy?: string;
  /** Extra detail (not in the shared contract's minimum). */
  durationMs?: number | null;
  confirmNote?: string;
  attempts?: number;
  rollback?: { status: 'pending' | 'running' | 'success' | 'failed'; startedAt: Date | null; finishedAt: Date | null; output: string; error?: string } | null;
  instructions?: string;
}

export interface RunbookRun {
  id: number;
  runbook: string;
  status: RunStatus;
  startedAt: Date;
  finishedAt: Date | null;
  actor: string;
  incidentId: number | null;
  steps: RunbookRunStep[];
  /** 'forward' while steps run, 'rollback' once a failure started the rollbacks. */
  phase?: 'forward' | 'rollback';
  error?: string;
  host?: string | null;
  pid?: number | null;
  durationMs?: number | null;
}

export const RUNBOOK_MIGRATIONS: readonly Migration[] = [
  {
    version: 210,
    name: 'runbook runs',
    sqlite: [
      `CREATE TABLE runbook_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        runbook TEXT NOT NULL,
        status TEXT NOT NULL,
        phase TEXT NOT NULL DEFAULT 'forward',
        started_at INTEGER NOT NULL,
        finished_at INTEGER,
        actor TEXT NOT NULL,
        incident_id INTEGER,
        definition TEXT NOT NULL,
        host TEXT,
        pid INTEGER,
        instance TEXT,
        error TEXT
      )`,
      'CREATE INDEX runbook_runs_idx ON runbook_runs (runbook, started_at)',
      `CREATE TABLE runbook_steps (
        run_id INTEGER NOT NULL REFERENCES runbook_runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        confirm_ok INTEGER,
        confirmed_by TEXT,
        confirm_note TEXT,
        confirmed_at INTEGER,
        rb_status TEXT,
        rb_started_at INTEGER,
        rb_finished_at INTEGER,
        rb_output TEXT,
        rb_error TEXT,
        PRIMARY KEY (run_id, idx)
      )`,
    ],
    postgres: (s) => [
      `CREATE TABLE ${s}.runbook_runs (
        id BIGSERIAL PRIMARY KEY,
        runbook TEXT NOT NULL,
        status TEXT NOT NULL,
        phase TEXT NOT NULL DEFAULT 'forward',
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        actor TEXT NOT NULL,
        incident_id BIGINT,
        definition TEXT NOT NULL,
        host TEXT,
        pid INTEGER,
        instance TEXT,
        error TEXT
      )`,
      `CREATE INDEX runbook_runs_idx ON ${s}.runbook_runs (runbook, started_at)`,
      `CREATE TABLE ${s}.runbook_steps (
        run_id BIGINT NOT NULL REFERENCES ${s}.runbook_runs(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TIMESTAMPTZ,
        finished_at TIMESTAMPTZ,
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        confirm_ok BOOLEAN,
        confirmed_by TEXT,
        confirm_note TEXT,
        confirmed_at TIMESTAMPTZ,
        rb_status TEXT,
        rb_started_at TIMESTAMPTZ,
        rb_finished_at TIMESTAMPTZ,
        rb_output TEXT,
        rb_error TEXT,
        PRIMARY KEY (run_id, idx)
      )`,
    ],
  },
];

export const MAX_OUTPUT = 4096;
export function tail(s: string, n = MAX_OUTPUT): string {
  return s.length <= n ? s : '…' + s.slice(s.length - n + 1);
}
const clean = (s: string | undefined | null, n = MAX_OUTPUT) => (s === undefined || s === null ? null : tail(redactText(s), n));

const ready = new WeakMap<Catalog, Promise<void>>();
export async function ensureRunbookTables(catalog: Catalog): Promise<void> {
  let p = ready.get(catalog);
  if (!p) {
    p = catalog.ensureMigrations(RUNBOOK_MIGRATIONS);
    ready.set(catalog, p);
  }
  await p;
}

export interface StoredRun extends RunbookRun {
  definition: RunbookDef;
  instance: string | null;
  storedStatus: RunStatus;
  raw: Array<SqlRow>;
}

/** A run left running/waiting by a process on this host that is gone is reported as interrupted. */
export function isOrphaned(r: { storedStatus: RunStatus; host?: string | null; pid?: number | null; instance: string | null }): boolean {
  if (r.storedStatus !== 'running' && r.storedStatus !== 'waiting') return false;
  if (r.instance === PROCESS_INSTANCE) return false;
  if (r.host !== hostname()) return false;
  return r.pid === null || r.pid === undefined || !pidAlive(r.pid);
}

export class RunStore {
  constructor(readonly catalog: Catalog) {}

  private get sql() {
    return this.catalog.sql;
  }

  async create(runbook: string, def: RunbookDef, actor: string, steps: Array<{ name: string; type: string }>, at: Date): Promise<number> {
    await ensureRunbookTables(this.catalog);
    const t = this.sql.t.bind(this.sql);
    const id = await this.sql.insertId(
      `INSERT INTO ${t('runbook_runs')} (runbook, status, phase, started_at, actor, definition, host, pid, instance) VALUES (?, 'running', 'forward', ?, ?, ?, ?, ?, ?)`,
      [runbook, at, actor, JSON.stringify(def), hostname(), process.pid, PROCESS_INSTANCE],
    );
    for (const [i, s] of steps.entries()) {
      await this.sql.exec(`INSERT INTO ${t('runbook_steps')} (run_id, idx, name, type, status) VALUES (?, ?, ?, ?, 'pending')`, [id, i + 1, s.name, s.type]);
    }
    return id;
  }

  async setRun(id: number, f: { status?: RunStatus; phase?: 'forward' | 'rollback'; finishedAt?: Date | null; incidentId?: number; error?: string | null }): Promise<void> {
    const sets: string[] = [];
    const params: SqlParam[] = [];
    if (f.status !== undefined) (sets.push('status = ?'), params.push(f.status));
    if (f.phase !== undefined) (sets.push('phase = ?'), params.push(f.phase));
    if (f.finishedAt !== undefined) (sets.push('finished_at = ?'), params.push(f.finishedAt));
    if (f.incidentId !== undefined) (sets.push('incident_id = ?'), params.push(f.incidentId));
    if (f.error !== undefined) (sets.push('error = ?'), params.push(clean(f.error)));
    if (!sets.length) return;
    await this.sql.exec(`UPDATE ${this.sql.t('runbook_runs')} SET ${sets.join(', ')} WHERE id = ?`, [...params, id]);
  }

  async setStep(
    runId: number,
    idx: number,
    f: {
      status?: StepStatus;
      startedAt?: Date | null;
      finishedAt?: Date | null;
      output?: string;
      error?: string | null;
      attempts?: 'inc';
      rbStatus?: 'pending' | 'running' | 'success' | 'failed';
      rbStartedAt?: Date | null;
      rbFinishedAt?: Date | null;
      rbOutput?: string;
      rbError?: string | null;
    },
  ): Promise<void> {
    const sets: string[] = [];
    const params: SqlParam[] = [];
    const add = (col: string, v: SqlParam) => (sets.push(`${col} = ?`), params.push(v));
    if (f.status !== undefined) add('status', f.status);
    if (f.startedAt !== undefined) add('started_at', f.startedAt);
    if (f.finishedAt !== undefined) add('finished_at', f.finishedAt);
    if (f.output !== undefined) add('output', clean(f.output) ?? '');
    if (f.error !== undefined) add('error', clean(f.error));
    if (f.attempts === 'inc') sets.push('attempts = attempts + 1');
    if (f.rbStatus !== undefined) add('rb_status', f.rbStatus);
    if (f.rbStartedAt !== undefined) add('rb_started_at', f.rbStartedAt);
    if (f.rbFinishedAt !== undefined) add('rb_finished_at', f.rbFinishedAt);
    if (f.rbOutput !== undefined) add('rb_output', clean(f.rbOutput) ?? '');
    if (f.rbError !== undefined) add('rb_error', clean(f.rbError));
    if (!sets.length) return;
    await this.sql.exec(`UPDATE ${this.sql.t('runbook_steps')} SET ${sets.join(', ')} WHERE run_id = ? AND idx = ?`, [...params, runId, idx]);
  }

  /** Take over a run (resume): only if its owner is still the one we saw. */
  async claim(id: number, previousInstance: string | null): Promise<boolean> {
    const t = this.sql.t('runbook_runs');
    const n =
      previousInstance === null
        ? await this.sql.exec(`UPDATE ${t} SET host = ?, pid = ?, instance = ? WHERE id = ? AND instance IS NULL`, [hostname(), process.pid, PROCESS_INSTANCE, id])
        : await this.sql.exec(`UPDATE ${t} SET host = ?, pid = ?, instance = ? WHERE id = ? AND instance = ?`, [hostname(), process.pid, PROCESS_INSTANCE, id, previousInstance]);
    return n === 1;
  }

  async confirmation(runId: number, idx: number): Promise<{ ok: boolean; by: string | null; note: string | null } | undefined> {
    const rows = await this.sql.all(`SELECT confirm_ok, confirmed_by, confirm_note FROM ${this.sql.t('runbook_steps')} WHERE run_id = ? AND idx = ?`, [runId, idx]);
    const r = rows[0];
    if (!r || r.confirm_ok === null || r.confirm_ok === undefined) return undefined;
    return { ok: Boolean(r.confirm_ok), by: (r.confirmed_by as string | null) ?? null, note: (r.confirm_note as string | null) ?? null };
  }

  async confirm(runId: number, idx: number, actor: string, ok: boolean, note: string | undefined, at: Date): Promise<void> {
    await ensureRunbookTables(this.catalog);
    const t = this.sql.t('runbook_steps');
    const n = await this.sql.exec(
      `UPDATE ${t} SET confirm_ok = ?, confirmed_by = ?, confirm_note = ?, confirmed_at = ? WHERE run_id = ? AND idx = ? AND status = 'waiting' AND confirm_ok IS NULL`,
      [ok, actor, note === undefined ? null : tail(note, 2000), at, runId, idx],
    );
    if (n === 1) return;
    const run = await this.get(runId);
    if (!run) throw new LifeboatError(`no runbook run #${runId}`, 2);
    const step = run.steps.find((s) => s.index === idx);
    if (!step) throw new LifeboatError(`run #${runId} has no step ${idx} (steps 1-${run.steps.length})`, 2);
    if (step.confirmedBy) throw new LifeboatError(`step ${idx} "${step.name}" of run #${runId} was already confirmed by ${step.confirmedBy}`, 2);
    throw new LifeboatError(`step ${idx} "${step.name}" of run #${runId} is not waiting for confirmation (it is ${step.type}, status ${step.status})`, 2);
  }

  async get(id: number): Promise<StoredRun | undefined> {
    await ensureRunbookTables(this.catalog);
    const t = this.sql.t.bind(this.sql);
    const rows = await this.sql.all(`SELECT * FROM ${t('runbook_runs')} WHERE id = ?`, [id]);
    if (!rows[0]) return undefined;
    const steps = await this.sql.all(`SELECT * FROM ${t('runbook_steps')} WHERE run_id = ? ORDER BY idx`, [id]);
    return this.fromRows(rows[0], steps);
  }

  async list(filter: { runbook?: string; limit?: number } = {}): Promise<StoredRun[]> {
    await ensureRunbookTables(this.catalog);
    const t = this.sql.t.bind(this.sql);
    const params: SqlParam[] = [];
    let q = `SELECT id FROM ${t('runbook_runs')}`;
    if (filter.runbook) (q += ' WHERE runbook = ?'), params.push(filter.runbook);
    q += ' ORDER BY started_at DESC, id DESC';
    if (filter.limit !== undefined) (q += ' LIMIT ?'), params.push(filter.limit);
    const out: StoredRun[] = [];
    for (const r of await this.sql.all(q, params)) out.push((await this.get(Number(r.id)))!);
    return out;
  }

  private fromRows(r: SqlRow, steps: SqlRow[]): StoredRun {
    const d = (v: unknown) => this.sql.toDate(v);
    const def = JSON.parse(String(r.definition)) as RunbookDef;
    const storedStatus = r.status as RunStatus;
    const base = {
      storedStatus,
      host: (r.host as string | null) ?? null,
      pid: r.pid === null || r.pid === undefined ? null : Number(r.pid),
      instance: (r.instance as string | null) ?? null,
    };
    const startedAt = d(r.started_at)!;
    const finishedAt = d(r.finished_at);
    return {
      id: Number(r.id),
      runbook: String(r.runbook),
      status: isOrphaned(base) ? 'interrupted' : storedStatus,
      startedAt,
      finishedAt,
      actor: String(r.actor),
      incidentId: r.incident_id === null || r.incident_id === undefined ? null : Number(r.incident_id),
      phase: (r.phase as 'forward' | 'rollback') ?? 'forward',
      ...(r.error ? { error: String(r.error) } : {}),
      durationMs: finishedAt ? finishedAt.getTime() - startedAt.getTime() : null,
      ...base,
      definition: def,
      raw: steps,
      steps: steps.map((s) => {
        const st = d(s.started_at);
        const fin = d(s.finished_at);
        const step: RunbookRunStep = {
          index: Number(s.idx),
          name: String(s.name),
          type: String(s.type),
          status: s.status as StepStatus,
          startedAt: st,
          finishedAt: fin,
          output: String(s.output ?? ''),
          durationMs: st && fin ? fin.getTime() - st.getTime() : null,
          attempts: Number(s.attempts ?? 0),
          rollback: s.rb_status
            ? {
                status: s.rb_status as 'pending',
                startedAt: d(s.rb_started_at),
                finishedAt: d(s.rb_finished_at),
                output: String(s.rb_output ?? ''),
                ...(s.rb_error ? { error: String(s.rb_error) } : {}),
              }
            : null,
        };
        if (s.error) step.error = String(s.error);
        if (s.confirmed_by) step.confirmedBy = String(s.confirmed_by);
        if (s.confirm_note) step.confirmNote = String(s.confirm_note);
        const defStep = def.steps[Number(s.idx) - 1];
        if (defStep?.type === 'manual') step.instructions = defStep.instructions;
        return step;
      }),
    };
  }
}

/** The public view of a stored run (without the definition and internals). */
export function publicRun(r: StoredRun): RunbookRun {
  const { definition: _d, instance: _i, storedStatus: _s, raw: _r, ...rest } = r;
  return rest;
}
