import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { configPath } from '../config/paths.js';
import type { LifeboatConfig } from '../config/config.js';
import { secretFromConfig } from '../config/repos.js';
import { ConfigError, LifeboatError, errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { SOURCE_KINDS, sourceKind } from '../sources/registry.js';
import { restoreTarget } from '../sources/restore-target.js';
import { resolvePassword } from '../sources/proc.js';
import { findSourceSnapshot, restoreSource } from '../sources/pipeline.js';
import type { ResolvedPlan, ResolvedSource } from '../config/resolve.js';
import { configNotifiers, formatElapsed, incidentsConfig, type IncidentStore } from '../ops/incidents.js';
import { renderIncidentTemplate } from '../config/incidents.js';
import { deliver } from '../ops/notify/deliver.js';
import type { AlertMessage } from '../ops/notify/notifier.js';
import { redactText } from '../ops/templates.js';
import { formatBytesOneDecimal as formatBytes } from '../util/format.js';
import { connectPg } from '../util/pg-client.js';
import { queryOrKill } from '../util/mysql-query.js';
import type { RollbackStep, RunbookDef } from '../config/runbook.js';
import type { RunStore } from './store.js';

/**
 * The step executors. Each returns the step's output (a short report: what
 * was done, the tail of a command's output) or throws StepFailure with the
 * reason and whatever output there was.
 */

export class StepFailure extends Error {
  constructor(
    message: string,
    readonly output = '',
  ) {
    super(message);
    this.name = 'StepFailure';
  }
}

export class StepAborted extends Error {
  constructor() {
    super('interrupted');
    this.name = 'StepAborted';
  }
}

/** Answer to an interactive confirmation (CLI prompt on a TTY); undefined = no answer (aborted). */
export type ManualPrompt = (p: { runId: number; index: number; name: string; instructions: string; signal: AbortSignal }) => Promise<{ ok: boolean; note?: string } | undefined>;

export interface StepContext {
  cfg: LifeboatConfig;
  /** The resolved plan (config/resolve.ts): restore steps take their source, repository and the config's location from it. */
  plan: ResolvedPlan;
  runs: RunStore;
  runId: number;
  runbook: string;
  def: RunbookDef;
  /** 1-based step index. */
  index: number;
  stepName: string;
  /** 'step' or 'rollback'. */
  phase: 'step' | 'rollback';
  incidents: IncidentStore;
  incidentId: number | null;
  actor: string;
  signal?: AbortSignal | undefined;
  log: (m: string) => void;
  prompt?: ManualPrompt | undefined;
  /** How often a waiting manual step polls the catalog (default 500 ms). */
  pollMs: number;
  /** Called when a manual step starts waiting / stops waiting. */
  onWaiting: (waiting: boolean) => Promise<void>;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new StepAborted());
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(new StepAborted());
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const fmtMs = (ms: number) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);


// ------------------------------------------------------------------ restore

/** The step's source, resolved: its repository is the step's `repository`, else the source's (src/config/repos.ts). */
function stepSource(plan: ResolvedPlan, step: { source: string; repository?: string | undefined }): ResolvedSource | undefined {
  const source = plan.sources[step.source];
  return source && step.repository ? { ...source, repository: step.repository } : source;
}

/** What a restore step would use now: the snapshot "latest"/id resolves to. */
export async function describeRestoreSnapshot(plan: ResolvedPlan, step: Extract<RollbackStep, { type: 'restore' }>): Promise<string> {
  let repo: Repository | undefined;
  try {
    const source = stepSource(plan, step);
    if (!source) throw new LifeboatError(`unknown source "${step.source}"`, 2);
    repo = await plan.openRepository(source.repository, { allowInit: false });
    const s = await findSourceSnapshot(repo, source, step.snapshot);
    const size = s.summary?.totalBytes;
    return `snapshot ${s.id.slice(0, 8)} of source ${step.source} taken ${new Date(s.time).toISOString().replace('T', ' ').slice(0, 16)} UTC${size !== undefined ? `, ${formatBytes(size)}` : ''}`;
  } catch (err) {
    return `${step.snapshot} snapshot of source ${step.source} (cannot resolve it now: ${redactText(errorMessage(err))})`;
  } finally {
    await repo?.close().catch(() => {});
  }
}

async function runRestore(step: Extract<RollbackStep, { type: 'restore' }>, ctx: StepContext): Promise<string> {
  const { plan } = ctx;
  const source = stepSource(plan, step);
  if (!source) throw new StepFailure(`unknown source "${step.source}"`);
  const src = source.config;
  const kind = sourceKind(src.kind);
  if (step.targetTime && !kind.pointInTime) {
    const pitrKinds = Object.entries(SOURCE_KINDS).filter(([, k]) => k.pointInTime).map(([n]) => n).join(' or ');
    throw new StepFailure(
      `point-in-time recovery to ${step.targetTime} needs a ${pitrKinds} source (base backups + WAL archive); ${step.source} is a ${src.kind} source. ` +
        `Restore its latest snapshot (remove targetTime), or do the PITR by hand ("lifeboat pg restore") and confirm it in a manual step`,
    );
  }
  const repoName = source.repository;
  const repo = await plan.openRepository(repoName, { allowInit: false });
  try {
    if (kind.pointInTime && kind.restoreToPoint) {
      // base backup + recovery settings whose restore_command reads the WAL archive (sources/<kind>/point-in-time.ts)
      if (!plan.repository(repoName).config.password) {
        throw new StepFailure(`repository ${repoName} needs a configured "password" (env/file/command) so the restored server's restore_command can read the WAL archive`);
      }
      const r = await kind.restoreToPoint(repo, source, {
        snapshot: step.snapshot,
        to: configPath(plan, step.to!),
        targetTime: step.targetTime ? new Date(step.targetTime) : undefined,
        // Off unless the step says this restore is the promotion of a new primary.
        archiveMode: step.archiveMode ?? 'off',
        configFile: plan.file,
        repository: repoName,
        log: ctx.log,
      });
      const archiving =
        (step.archiveMode ?? 'off') === 'off'
          ? 'WAL archiving off (archive_mode = off)'
          : 'WAL archiving preserved (the restored server archives into the same archive once promoted)';
      return `restored base backup ${r.snapshot.id.slice(0, 8)} (${r.snapshot.time}) of source ${step.source} into ${r.to}: ${formatBytes(r.bytes)} in ${fmtMs(r.durationMs)}; recovery settings: ${r.settings.join(', ')}${step.targetTime ? ` (target ${step.targetTime})` : ''}; ${archiving}. Start PostgreSQL on it to replay the WAL.`;
    }
    if (kind.restoresTo === 'directory') {
      const snap = await findSourceSnapshot(repo, source, step.snapshot);
      const target = configPath(plan, step.to!);
      ctx.log(`restoring snapshot ${snap.id.slice(0, 8)} (${snap.time}) of source ${step.source} into ${target}`);
      const { result } = await restoreSource(repo, source, snap, { dir: target, overwrite: step.overwrite });
      const sum = result.files!;
      const report = `restored snapshot ${snap.id.slice(0, 8)} (${snap.time}) of source ${step.source} from repository ${repoName} into ${target}: ${sum.files} files, ${formatBytes(sum.bytes)}, ${sum.verified} verified, in ${fmtMs(sum.durationMs)}`;
      if (sum.errors.length) throw new StepFailure(`${sum.errors.length} file(s) could not be restored: ${sum.errors.slice(0, 3).map((e) => `${e.path}: ${e.message}`).join('; ')}`, report);
      return report;
    }
    // a password in the step's URL goes to the restore tool's environment, never its argv (sources/restore-target.ts)
    const target = { ...restoreTarget(src.kind, step.to), ...(step.clean ? { clean: true } : {}), ...(step.force ? { force: true } : {}) };
    const { snapshot, result } = await restoreSource(repo, source, step.snapshot, target);
    const where = step.to ? ` into ${redactText(step.to)}` : '';
    return `restored snapshot ${snapshot.id.slice(0, 8)} (${snapshot.time}) of ${src.kind} source ${step.source} from repository ${repoName}${where} in ${fmtMs(result.durationMs)}`;
  } finally {
    await repo.close();
  }
}

// ------------------------------------------------------------------ exec

async function runExec(step: Extract<RollbackStep, { type: 'exec' }>, ctx: StepContext): Promise<string> {
  const argv = Array.isArray(step.command) ? step.command : ['/bin/sh', '-c', step.command];
  const timeoutMs = parseDuration(step.timeout);
  const cwd = step.cwd ? configPath(ctx.cfg, step.cwd) : ctx.cfg.dir;
  const env = {
    ...process.env,
    ...step.env,
    LIFEBOAT_RUNBOOK: ctx.runbook,
    LIFEBOAT_RUN_ID: String(ctx.runId),
    LIFEBOAT_STEP: ctx.stepName,
    LIFEBOAT_STEP_INDEX: String(ctx.index),
    LIFEBOAT_STEP_PHASE: ctx.phase,
    LIFEBOAT_INCIDENT_ID: ctx.incidentId === null ? '' : String(ctx.incidentId),
  };
  let out = '';
  const keep = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > 32768) out = out.slice(out.length - 16384);
  };
  const started = Date.now();
  const { code, signal, why } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; why?: string }>((resolve) => {
    let why: string | undefined;
    let child: ReturnType<typeof spawn>;
    try {
      child = spawn(argv[0]!, argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      resolve({ code: null, signal: null, why: errorMessage(err) });
      return;
    }
    const killGroup = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        /* gone */
      }
    };
    const stop = (reason: string) => {
      why ??= reason;
      killGroup('SIGTERM');
      setTimeout(() => killGroup('SIGKILL'), 5000).unref();
    };
    const timer = setTimeout(() => stop(`timed out after ${step.timeout}`), timeoutMs);
    const onAbort = () => stop('interrupted');
    ctx.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    child.on('error', (err) => {
      why ??= errorMessage(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      ctx.signal?.removeEventListener('abort', onAbort);
      resolve({ code, signal, ...(why ? { why } : {}) });
    });
  });
  if (ctx.signal?.aborted) throw new StepAborted();
  const body = out.trimEnd();
  const summary = `${argv.length > 2 && argv[0] === '/bin/sh' ? argv[2] : argv.join(' ')}`;
  const report = `${body ? body + '\n' : ''}[exit ${code ?? signal ?? '?'} after ${fmtMs(Date.now() - started)}]`;
  if (why) throw new StepFailure(`command ${why}: ${summary.slice(0, 200)}`, report);
  if (code !== step.expectExitCode) throw new StepFailure(`command exited with ${code ?? `signal ${signal}`} (expected ${step.expectExitCode}): ${summary.slice(0, 200)}`, report);
  return report;
}

// ------------------------------------------------------------------ sql

interface SqlConn {
  url?: string | undefined;
  source?: string | undefined;
  database?: string | undefined;
  password?: { env?: string | undefined; file?: string | undefined; command?: string | undefined } | undefined;
}

/** A URL for display: scheme://host/path, without user info or query (where tokens live). */
export function displayUrl(u: string): string {
  try {
    const x = new URL(u);
    return `${x.protocol}//${x.host}${x.pathname === '/' ? '' : x.pathname}`;
  } catch {
    return '<invalid url>';
  }
}

function connTarget(c: SqlConn): string {
  return c.url ? displayUrl(c.url) : `source ${c.source}${c.database ? ` (database ${c.database})` : ''}`;
}

export async function sqlQuery(cfg: LifeboatConfig, c: SqlConn, query: string, timeoutMs: number): Promise<{ rows: unknown[][]; rowCount: number }> {
  let dialect: 'postgres' | 'mysql';
  let conn: { host?: string; port?: number; user?: string; database?: string; password?: string; connectionString?: string };
  const password = c.password ? secretFromConfig(cfg, c.password as never, `password of ${connTarget(c)}`) : undefined;
  if (c.url) {
    dialect = /^mysql:/i.test(c.url) ? 'mysql' : 'postgres';
    const u = new URL(c.url);
    conn = {
      host: u.hostname,
      ...(u.port ? { port: Number(u.port) } : {}),
      ...(u.username ? { user: decodeURIComponent(u.username) } : {}),
      ...(u.pathname.length > 1 ? { database: decodeURIComponent(u.pathname.slice(1)) } : {}),
    };
    if (c.database) conn.database = c.database;
  } else {
    const src = cfg.sources[c.source!];
    const own = src ? sourceKind(src.kind).sqlDialect : undefined;
    if (!src || !own) throw new StepFailure(`source ${c.source} is not a postgres/mysql source`);
    dialect = own;
    const s = src as { host: string; port: number; user: string; database?: string; passwordEnv?: string; passwordFile?: string };
    const pw = resolvePassword({ ...(s.passwordEnv ? { passwordEnv: s.passwordEnv } : {}), ...(s.passwordFile ? { passwordFile: configPath(cfg, s.passwordFile) } : {}) }, `source ${c.source}`);
    conn = { host: s.host, port: s.port, user: s.user, ...(c.database ?? s.database ? { database: (c.database ?? s.database)! } : {}), ...(pw ? { password: pw } : {}) };
  }
  if (password !== undefined) conn.password = password;
  const secrets = conn.password ? [conn.password] : [];
  try {
    if (dialect === 'postgres') {
      const client = await connectPg({
        ...(conn.host ? { host: conn.host } : {}),
        ...(conn.port ? { port: conn.port } : {}),
        ...(conn.user ? { user: conn.user } : {}),
        ...(conn.database ? { database: conn.database } : {}),
        ...(conn.password ? { password: conn.password } : {}),
        connectionTimeoutMillis: Math.min(timeoutMs, 10_000),
        query_timeout: timeoutMs,
        statement_timeout: timeoutMs,
      });
      try {
        const res = await client.query({ text: query, rowMode: 'array' });
        const last = Array.isArray(res) ? (res[res.length - 1] as typeof res) : res;
        return { rows: (last.rows ?? []) as unknown[][], rowCount: last.rowCount ?? last.rows?.length ?? 0 };
      } finally {
        await client.end().catch(() => {});
      }
    }
    const mysql = await import('mysql2/promise');
    const connect = () =>
      mysql.createConnection({
        host: conn.host ?? '127.0.0.1',
        port: conn.port ?? 3306,
        user: conn.user ?? 'root',
        ...(conn.database ? { database: conn.database } : {}),
        ...(conn.password ? { password: conn.password } : {}),
        connectTimeout: Math.min(timeoutMs, 10_000),
      });
    const client = await connect();
    try {
      // past the step's timeout the query is ended on the server too (an UPDATE would keep its locks)
      const rows = await queryOrKill(client, { sql: query, timeout: timeoutMs, rowsAsArray: true }, connect);
      if (Array.isArray(rows)) return { rows: rows as unknown[][], rowCount: rows.length };
      return { rows: [], rowCount: (rows as { affectedRows?: number }).affectedRows ?? 0 };
    } finally {
      client.destroy();
    }
  } catch (err) {
    if (err instanceof StepFailure) throw err;
    throw new StepFailure(`${dialect} ${connTarget(c)}: ${redactText(errorMessage(err), secrets)}`);
  }
}

function norm(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (v instanceof Date) return v.toISOString();
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** One sql check: throws StepFailure when the query fails or the result is not the expected one. */
export async function runSqlCheck(
  cfg: LifeboatConfig,
  s: SqlConn & { query: string; expect?: string | number | boolean | null | undefined; expectRows?: number | undefined; timeout: string },
): Promise<string> {
  const started = Date.now();
  const { rows, rowCount } = await sqlQuery(cfg, s, s.query, parseDuration(s.timeout));
  const first = rows[0]?.[0];
  const shown = rows.length ? `first row: ${rows[0]!.map(norm).join(' | ').slice(0, 500)}` : 'no rows';
  const report = `${connTarget(s)}: ${rowCount} row(s) in ${fmtMs(Date.now() - started)}; ${shown}`;
  if (s.expectRows !== undefined && rowCount !== s.expectRows) throw new StepFailure(`expected ${s.expectRows} row(s), got ${rowCount}`, report);
  if (s.expect !== undefined) {
    if (!rows.length) throw new StepFailure(`expected ${norm(s.expect)}, got no rows`, report);
    let actual = norm(first);
    if (typeof s.expect === 'boolean' && typeof first === 'number') actual = String(first !== 0);
    if (actual !== norm(s.expect)) throw new StepFailure(`expected ${norm(s.expect)}, got ${actual}`, report);
  }
  return report;
}

// ------------------------------------------------------------------ http

type HttpCheck = { url: string; method: string; expectStatus: number | number[]; bodyContains?: string | undefined; bodyMatches?: string | undefined; headers: Record<string, string>; timeout: string };

/** One HTTP request; throws StepFailure when it does not pass. */
export async function httpOnce(s: HttpCheck, signal?: AbortSignal): Promise<string> {
  const want = Array.isArray(s.expectStatus) ? s.expectStatus : [s.expectStatus];
  const target = displayUrl(s.url);
  let res: Response;
  const started = Date.now();
  try {
    res = await fetch(s.url, {
      method: s.method,
      headers: { 'user-agent': 'lifeboat-runbook/1', ...s.headers },
      redirect: 'manual',
      signal: signal ? AbortSignal.any([signal, AbortSignal.timeout(parseDuration(s.timeout))]) : AbortSignal.timeout(parseDuration(s.timeout)),
    });
  } catch (err) {
    if (signal?.aborted) throw new StepAborted();
    const e = err as Error & { cause?: { code?: string } };
    throw new StepFailure(`${s.method} ${target}: ${e.name === 'TimeoutError' ? `timed out after ${s.timeout}` : (e.cause?.code ?? (e.cause as { message?: string } | undefined)?.message ?? e.message)}`);
  }
  const body = s.method === 'HEAD' ? '' : await res.text().catch(() => '');
  const report = `${s.method} ${target} -> HTTP ${res.status} in ${fmtMs(Date.now() - started)}`;
  if (!want.includes(res.status)) throw new StepFailure(`${report} (expected ${want.join(' or ')})`, body.slice(0, 300));
  if (s.bodyContains !== undefined && !body.includes(s.bodyContains)) throw new StepFailure(`${report}: body does not contain ${JSON.stringify(s.bodyContains)}`, body.slice(0, 300));
  if (s.bodyMatches !== undefined && !new RegExp(s.bodyMatches).test(body)) throw new StepFailure(`${report}: body does not match /${s.bodyMatches}/`, body.slice(0, 300));
  return report;
}

async function runHttp(step: Extract<RollbackStep, { type: 'http-check' }>, ctx: StepContext): Promise<string> {
  const attempts = step.retries + 1;
  let last: StepFailure | undefined;
  for (let i = 1; i <= attempts; i++) {
    try {
      const r = await httpOnce(step, ctx.signal);
      return `${r} (attempt ${i}/${attempts})`;
    } catch (err) {
      if (!(err instanceof StepFailure)) throw err;
      last = err;
      if (i < attempts) await sleep(parseDuration(step.interval), ctx.signal);
    }
  }
  throw new StepFailure(`${last!.message} after ${attempts} attempt(s)`, last!.output);
}

// ------------------------------------------------------------------ wait

async function runWait(step: Extract<RollbackStep, { type: 'wait' }>, ctx: StepContext): Promise<string> {
  const started = Date.now();
  if (step.duration) {
    await sleep(parseDuration(step.duration), ctx.signal);
    return `waited ${step.duration}`;
  }
  const until = step.until!;
  const timeoutMs = parseDuration(step.timeout);
  const interval = parseDuration(step.interval);
  let checks = 0;
  let last = '';
  for (;;) {
    checks++;
    try {
      const r = until.type === 'sql' ? await runSqlCheck(ctx.cfg, until) : await httpOnce(until, ctx.signal);
      return `condition held after ${fmtMs(Date.now() - started)} (${checks} check(s)): ${r}`;
    } catch (err) {
      if (!(err instanceof StepFailure)) throw err;
      last = err.message;
    }
    if (Date.now() - started + interval > timeoutMs) throw new StepFailure(`condition did not hold within ${step.timeout} (${checks} check(s)); last: ${last}`);
    await sleep(interval, ctx.signal);
  }
}

// ------------------------------------------------------------------ notify

async function runNotify(step: Extract<RollbackStep, { type: 'notify' }>, ctx: StepContext): Promise<string> {
  const { cfg } = ctx;
  const channels = step.channels ?? incidentsConfig(cfg)?.channels ?? [];
  if (!channels.length) throw new StepFailure('no channels: give channels or configure incidents.channels');
  const inc = ctx.incidentId !== null ? await ctx.incidents.get(ctx.incidentId) : undefined;
  const now = new Date();
  const vars: Record<string, string> = {
    runbook: ctx.runbook,
    title: ctx.def.title,
    run: String(ctx.runId),
    step: ctx.stepName,
    incident: inc ? String(inc.id) : '',
    status: inc?.status ?? '',
    STATUS: inc?.status.toUpperCase() ?? '',
    impact: inc?.impact ?? '',
    services: ctx.def.services.join(', ') || 'none',
    severity: ctx.def.severity,
    message: inc?.updates[inc.updates.length - 1]?.message ?? '',
    event: 'step',
    startedAt: inc?.startedAt.toISOString() ?? '',
    at: now.toISOString(),
    elapsed: inc ? formatElapsed(now.getTime() - inc.startedAt.getTime()) : '',
    actor: ctx.actor,
    host: hostname(),
  };
  const title = renderIncidentTemplate(step.title, vars).replace(/[\r\n]+/g, ' ').trim();
  const text = renderIncidentTemplate(step.text, vars);
  const msg: AlertMessage = {
    kind: 'firing',
    key: `runbook/${ctx.runId}/${ctx.index}`,
    job: ctx.def.services.join(',') || ctx.runbook,
    check: 'runbook',
    severity: ctx.def.severity === 'critical' || ctx.def.severity === 'high' ? 'critical' : 'warning',
    tier: 'critical',
    title,
    text,
    message: title,
    details: { runbook: ctx.runbook, run: ctx.runId, step: ctx.stepName, incident: inc?.id ?? null },
    firstAt: inc?.startedAt ?? now,
    at: now,
    count: 1,
    host: vars.host!,
  };
  const notifiers = configNotifiers(cfg);
  const lines: string[] = [];
  let ok = 0;
  for (const c of channels) {
    const n = notifiers.get(c);
    const r = n ? await deliver(n, msg) : { channel: c, ok: false, attempts: 0, error: `unknown notifier channel "${c}"` };
    if (r.ok) ok++;
    lines.push(`${c}: ${r.ok ? 'delivered' : `FAILED (${r.error})`}`);
  }
  const report = `"${title}" -> ${lines.join('; ')}`;
  if (ok === 0 && step.required) throw new StepFailure('no channel accepted the message', report);
  if (ok < channels.length) ctx.log(`warning: notify step ${ctx.stepName}: ${report}`);
  return report;
}

// ------------------------------------------------------------------ manual

async function runManual(step: Extract<RollbackStep, { type: 'manual' }>, ctx: StepContext): Promise<string> {
  const started = Date.now();
  const timeoutMs = step.timeout ? parseDuration(step.timeout) : undefined;
  await ctx.onWaiting(true);
  ctx.log(
    `step ${ctx.index} "${ctx.stepName}" waits for a person: ${step.instructions}\n` +
      `  confirm with: lifeboat runbook confirm ${ctx.runId} ${ctx.index}   (or --reject), or in the dashboard`,
  );
  const promptAbort = new AbortController();
  const onOuterAbort = () => promptAbort.abort();
  ctx.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let promptDone = false;
  if (ctx.prompt) {
    void ctx
      .prompt({ runId: ctx.runId, index: ctx.index, name: ctx.stepName, instructions: step.instructions, signal: promptAbort.signal })
      .then(async (answer) => {
        promptDone = true;
        if (answer && !promptAbort.signal.aborted) {
          await ctx.runs.confirm(ctx.runId, ctx.index, ctx.actor, answer.ok, answer.note, new Date()).catch((e: unknown) => ctx.log(`confirmation not recorded: ${errorMessage(e)}`));
        }
      })
      .catch(() => {
        promptDone = true;
      });
  }
  try {
    for (;;) {
      const c = await ctx.runs.confirmation(ctx.runId, ctx.index);
      if (c) {
        const who = `${c.by ?? 'unknown'}${c.note ? `: ${c.note}` : ''}`;
        if (!c.ok) throw new StepFailure(`rejected by ${who}`);
        return `confirmed by ${who} after ${formatElapsed(Date.now() - started)}`;
      }
      if (timeoutMs !== undefined && Date.now() - started > timeoutMs) throw new StepFailure(`nobody confirmed within ${step.timeout}`);
      await sleep(ctx.pollMs, ctx.signal);
    }
  } finally {
    if (!promptDone) promptAbort.abort();
    ctx.signal?.removeEventListener('abort', onOuterAbort);
    await ctx.onWaiting(false);
  }
}

// ------------------------------------------------------------------

export async function executeStep(step: RollbackStep, ctx: StepContext): Promise<string> {
  switch (step.type) {
    case 'restore':
      return runRestore(step, ctx);
    case 'exec':
      return runExec(step, ctx);
    case 'sql':
      return runSqlCheck(ctx.cfg, step);
    case 'http-check':
      return runHttp(step, ctx);
    case 'wait':
      return runWait(step, ctx);
    case 'notify':
      return runNotify(step, ctx);
    case 'manual':
      return runManual(step, ctx);
  }
}

const READ_ONLY_SQL = /^\s*(select|show|with|explain|values|table)\b/i;

/** Re-run automatically by resume when Lifeboat died while it was running? */
export function isIdempotent(step: RollbackStep): boolean {
  if (step.idempotent !== undefined) return step.idempotent;
  switch (step.type) {
    case 'http-check':
    case 'wait':
    case 'manual':
      return true;
    case 'sql':
      return READ_ONLY_SQL.test(step.query);
    default:
      return false;
  }
}

/** One line saying what the step will do (plan). Restore snapshots are resolved by the caller. */
export function describeStep(step: RollbackStep): string {
  switch (step.type) {
    case 'restore':
      return `restore ${step.snapshot} snapshot of source ${step.source}${step.to ? ` into ${redactText(step.to)}` : ' into the source itself'}${step.clean ? ' (clean)' : ''}${step.targetTime ? `, point in time ${step.targetTime}` : ''}`;
    case 'exec':
      return `run ${Array.isArray(step.command) ? JSON.stringify(step.command) : step.command} (timeout ${step.timeout}${step.expectExitCode ? `, expect exit ${step.expectExitCode}` : ''})`;
    case 'sql':
      return `SQL on ${connTarget(step)}: ${step.query.trim().replace(/\s+/g, ' ')}${step.expect !== undefined ? ` (expect ${norm(step.expect)})` : ''}${step.expectRows !== undefined ? ` (expect ${step.expectRows} rows)` : ''}`;
    case 'http-check':
      return `${step.method} ${displayUrl(step.url)} expecting ${Array.isArray(step.expectStatus) ? step.expectStatus.join('/') : step.expectStatus}${step.bodyContains ? ` with body containing ${JSON.stringify(step.bodyContains)}` : ''} (${step.retries + 1} attempt(s), every ${step.interval})`;
    case 'wait':
      if (step.duration) return `wait ${step.duration}`;
      return `wait until ${step.until!.type === 'sql' ? `SQL ${step.until!.query.trim()} on ${connTarget(step.until!)}` : `${displayUrl(step.until!.url)} answers`} (every ${step.interval}, at most ${step.timeout})`;
    case 'notify':
      return `notify ${step.channels?.join(', ') ?? 'incident channels'}: "${step.title}"`;
    case 'manual':
      return `manual confirmation: ${step.instructions}${step.timeout ? ` (within ${step.timeout})` : ''}`;
  }
}
