import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { type Readable } from 'node:stream';
import { configPath } from '../config/paths.js';
import { resolveSecret } from '../config/password.js';
import { LifeboatError } from '../errors.js';
import { resolvePassword } from './proc.js';
import { restoreStream } from './stream.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import type { SourceConfig } from '../config/sources.js';
import type { DrillConfig } from '../config/drill.js';

/**
 * Scratch targets of restore drills: what every kind's drill target (sources/<kind>/drill.ts)
 * shares. A target restores a snapshot somewhere that is not the live data,
 * checks what arrived (integrity), answers verification queries, and removes
 * itself. The drill itself (phases, queries, objectives, the report) is run by
 * src/verify/drill.ts. The targets, registered per kind in registry.ts:
 *
 *   postgres  a new database lifeboat_drill_<job>_<random> on the source's
 *             server or on drill.server; dropped afterwards (after ending
 *             sessions still connected to it)
 *   mysql     likewise (single-database dumps only)
 *   redis     the RDB restored to a scratch file (redis-check-rdb when
 *             installed), loaded into a private redis-server on a Unix socket;
 *             key counts compared with those recorded at backup time
 *   sqlite    a scratch file; PRAGMA integrity_check, row counts compared
 *   files     a scratch directory; every restored file is re-read and checked
 *             against the snapshot; file count and bytes compared
 *   command   drill.restoreCommand fed the dump, or the dump written to a
 *             scratch file; byte count compared
 *   postgres-physical  base backup + archived WAL replayed by a private
 *             server on a scratch data directory (pg-physical/drill.ts)
 */

/** Integrity checks and verification queries. */
export interface DrillCheck { name: string; ok: boolean; detail: string }

/** Value of a verification query. */
export type QueryValue = string | number | bigint | boolean | null;

export interface DrillTargetContext {
  /** Where the config file is: relative paths of drill settings, `--config` of child processes. */
  cfg: { dir: string; file: string };
  job: string;
  /** The job's repository (the one the snapshot is in). */
  repository: string;
  /** Its password, for a child process's environment (never argv). */
  repositoryPassword(): string;
  drill: DrillConfig;
  sourceName: string;
  src: SourceConfig;
  repo: Repository;
  snapshot: SnapshotWithId;
  signal: AbortSignal;
  log: (m: string) => void;
}

export interface ScratchTarget {
  /** Where the data goes (no secrets). */
  readonly description: string;
  /** Restore the snapshot into the target (throws on failure). */
  restore(): Promise<void>;
  /** Integrity checks of what was restored. */
  integrity(): Promise<DrillCheck[]>;
  /** Run SQL in the restored database: first column of the first row (kinds with SQL only). */
  sql?(text: string): Promise<QueryValue>;
  /** Environment for verification commands. */
  env(): Record<string, string>;
  /** Remove the target (idempotent; also after a failed restore). */
  cleanup(): Promise<void>;
}

/** Name of a scratch database: lifeboat_drill_<job>_<random>, at most 63 characters, [a-z0-9_] only. */
export function scratchDbName(job: string): string {
  const j = job.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 30) || 'job';
  return `lifeboat_drill_${j}_${randomBytes(5).toString('hex')}`;
}

export function abortable(stream: Readable, signal: AbortSignal): Readable {
  const onAbort = () => stream.destroy(new LifeboatError(`drill aborted: ${String(signal.reason instanceof Error ? signal.reason.message : (signal.reason ?? 'aborted'))}`));
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  stream.once('close', () => signal.removeEventListener('abort', onAbort));
  return stream;
}

export async function snapshotStream(ctx: DrillTargetContext): Promise<Readable> {
  return abortable(await restoreStream(ctx.repo, ctx.snapshot.id), ctx.signal);
}

export async function scratchDir(ctx: DrillTargetContext): Promise<string> {
  const base = ctx.drill.scratchDir ? configPath(ctx.cfg, ctx.drill.scratchDir) : tmpdir();
  await fsp.mkdir(base, { recursive: true });
  const dir = await fsp.mkdtemp(path.join(base, `lifeboat-drill-${ctx.job.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  await fsp.chmod(dir, 0o700);
  return dir;
}

export function meta(ctx: DrillTargetContext): Record<string, unknown> {
  return (ctx.snapshot.source ?? {}) as Record<string, unknown>;
}

/** Compare restored row counts with the estimates recorded at backup time. */
export function rowCountCheck(estimates: Record<string, number>, counts: Map<string, number>, exact: boolean): DrillCheck {
  const missing: string[] = [];
  const empty: string[] = [];
  const differ: string[] = [];
  let est = 0;
  let got = 0;
  for (const [t, n] of Object.entries(estimates)) {
    const c = counts.get(t);
    est += Number(n);
    if (c === undefined) {
      missing.push(t);
      continue;
    }
    got += c;
    if (Number(n) > 0 && c === 0) empty.push(`${t} (0 rows, ${n} at backup)`);
    else if (exact && c !== Number(n)) differ.push(`${t} (${c} rows, ${n} at backup)`);
  }
  const tables = Object.keys(estimates).length;
  const problems = [...missing.map((t) => `missing table ${t}`), ...empty, ...differ];
  return {
    name: exact ? 'row counts' : 'row estimates',
    ok: problems.length === 0,
    detail:
      problems.length === 0
        ? `${tables} table(s), ${got} row(s) restored (${exact ? 'recorded' : 'estimated'} at backup: ${est})`
        : `${problems.slice(0, 10).join('; ')}${problems.length > 10 ? `; ... (${problems.length} problems)` : ''}`,
  };
}

/** Deadline of each statement of a drill's cleanup (it runs after the drill's own timeout, so not under it). */
export const CLEANUP_QUERY_TIMEOUT_MS = 120_000;

export interface DbServer {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  /** For the restore functions. */
  passwordTarget: { passwordEnv?: string; passwordFile?: string };
  designated: boolean;
}

export function dbServer(ctx: DrillTargetContext, o: { host: string; port: number; user: string; passwordEnv?: string; passwordFile?: string }, what: string): DbServer {
  const s = ctx.drill.server;
  if (!s) {
    return { host: o.host, port: o.port, user: o.user, password: resolvePassword(o, what), passwordTarget: {}, designated: false };
  }
  const pw = s.password;
  const passwordTarget = pw?.env ? { passwordEnv: pw.env } : pw?.file ? { passwordFile: configPath(ctx.cfg, pw.file) } : {};
  const password = pw?.env ? resolveSecret({ env: pw.env }, `jobs.${ctx.job}.drill.server.password`) : pw?.file ? resolveSecret({ file: configPath(ctx.cfg, pw.file) }, `jobs.${ctx.job}.drill.server.password`) : resolvePassword(o, what);
  return { host: s.host, port: s.port ?? o.port, user: s.user ?? o.user, password, passwordTarget, designated: true };
}


/** Source kinds whose targets answer `sql` queries. */
export const SQL_KINDS: ReadonlySet<string> = new Set(['postgres', 'mysql', 'sqlite', 'postgres-physical']);
