import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import Database from 'better-sqlite3';
import type mysql from 'mysql2/promise';
import type pg from 'pg';
import { configPath } from '../config/paths.js';
import { resolveSecret } from '../config/password.js';
import { ConfigError, LifeboatError } from '../errors.js';
import { restoreSnapshot } from '../engine/restorer.js';
import { myIdent } from '../sources/mysql.js';
import type { PostgresSourceOptions } from '../sources/postgres.js';
import type { MysqlSourceOptions } from '../sources/mysql.js';
import { requireTool, resolvePassword } from '../sources/proc.js';
import { parseKeyspace, RespClient } from '../sources/redis.js';
import { STREAM_KINDS, type StreamSourceConfig } from '../sources/registry.js';
import { resolveSourcePaths } from '../sources/run.js';
import { restoreStream } from '../sources/stream.js';
import type { DrillCheck, DrillTargetContext, QueryValue, ScratchTarget } from './drill-types.js';
import { pgPhysicalTarget } from './drill-pitr.js';
import type { PgPhysicalOptions } from '../sources/pg-physical.js';

/**
 * Scratch targets of restore drills, one per source kind. A target restores
 * the snapshot somewhere that is not the live data, checks what arrived
 * (integrity), answers verification queries, and removes itself:
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
 *             server on a scratch data directory (src/verify/drill-pitr.ts)
 */

export type { DrillTargetContext, ScratchTarget } from './drill-types.js';

/** Name of a scratch database: lifeboat_drill_<job>_<random>, at most 63 characters, [a-z0-9_] only. */
export function scratchDbName(job: string): string {
  const j = job.toLowerCase().replace(/[^a-z0-9_]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 30) || 'job';
  return `lifeboat_drill_${j}_${randomBytes(5).toString('hex')}`;
}

function abortable(stream: Readable, signal: AbortSignal): Readable {
  const onAbort = () => stream.destroy(new LifeboatError(`drill aborted: ${String(signal.reason instanceof Error ? signal.reason.message : (signal.reason ?? 'aborted'))}`));
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  stream.once('close', () => signal.removeEventListener('abort', onAbort));
  return stream;
}

async function snapshotStream(ctx: DrillTargetContext): Promise<Readable> {
  return abortable(await restoreStream(ctx.repo, ctx.snapshot.id), ctx.signal);
}

async function scratchDir(ctx: DrillTargetContext): Promise<string> {
  const base = ctx.drill.scratchDir ? configPath(ctx.cfg, ctx.drill.scratchDir) : tmpdir();
  await fsp.mkdir(base, { recursive: true });
  const dir = await fsp.mkdtemp(path.join(base, `lifeboat-drill-${ctx.job.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
  await fsp.chmod(dir, 0o700);
  return dir;
}

function meta(ctx: DrillTargetContext): Record<string, unknown> {
  return (ctx.snapshot.source ?? {}) as Record<string, unknown>;
}

/** Compare restored row counts with the estimates recorded at backup time. */
function rowCountCheck(estimates: Record<string, number>, counts: Map<string, number>, exact: boolean): DrillCheck {
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

// ------------------------------------------------------------------ postgres

function pgSsl(mode: string | undefined): boolean | { rejectUnauthorized: boolean } {
  if (!mode || mode === 'disable' || mode === 'prefer' || mode === 'allow') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  return true;
}

interface DbServer {
  host: string;
  port: number;
  user: string;
  password: string | undefined;
  /** For the restore functions. */
  passwordTarget: { passwordEnv?: string; passwordFile?: string };
  designated: boolean;
}

function dbServer(ctx: DrillTargetContext, o: { host: string; port: number; user: string; passwordEnv?: string; passwordFile?: string }, what: string): DbServer {
  const s = ctx.drill.server;
  if (!s) {
    return { host: o.host, port: o.port, user: o.user, password: resolvePassword(o, what), passwordTarget: {}, designated: false };
  }
  const pw = s.password;
  const passwordTarget = pw?.env ? { passwordEnv: pw.env } : pw?.file ? { passwordFile: configPath(ctx.cfg, pw.file) } : {};
  const password = pw?.env ? resolveSecret({ env: pw.env }, `jobs.${ctx.job}.drill.server.password`) : pw?.file ? resolveSecret({ file: configPath(ctx.cfg, pw.file) }, `jobs.${ctx.job}.drill.server.password`) : resolvePassword(o, what);
  return { host: s.host, port: s.port ?? o.port, user: s.user ?? o.user, password, passwordTarget, designated: true };
}

function postgresTarget(ctx: DrillTargetContext, src: PostgresSourceOptions): ScratchTarget {
  if (src.globals) throw new ConfigError(`job ${ctx.job}: source ${ctx.sourceName} dumps globals (roles); a drill would create roles on the server, which is not supported`);
  const server = dbServer(ctx, src, `postgres source ${ctx.sourceName}`);
  const db = scratchDbName(ctx.job);
  const client = async (database: string): Promise<pg.Client> => {
    const { default: PG } = await import('pg'); // database clients load on first use (CLI start-up time)
    const c = new PG.Client({
      host: server.host,
      port: server.port,
      user: server.user,
      database,
      ...(server.password !== undefined ? { password: server.password } : {}),
      ssl: pgSsl(src.sslmode),
      connectionTimeoutMillis: src.connectTimeout * 1000,
      application_name: 'lifeboat-drill',
    });
    c.on('error', () => {});
    await c.connect();
    return c;
  };
  const withClient = async <T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = await client(database);
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => {});
    }
  };
  let restoredTables: number | undefined;
  return {
    description: `postgres database ${db} on ${server.host}:${server.port}`,
    async restore() {
      const r = await STREAM_KINDS.postgres.restore(resolveSourcePaths(ctx.src as StreamSourceConfig, ctx.cfg), await snapshotStream(ctx), {
        database: db,
        host: server.host,
        port: server.port,
        user: server.user,
        ...server.passwordTarget,
        createDatabase: true,
        // a designated drill server need not have the production roles
        ...(server.designated ? { noOwner: true, noPrivileges: true } : {}),
        signal: ctx.signal,
      });
      restoredTables = Number(r.checks?.tables ?? NaN);
    },
    async integrity() {
      const checks: DrillCheck[] = [{ name: 'pg_restore', ok: true, detail: `exit status 0 (--exit-on-error), ${restoredTables ?? '?'} table(s) restored` }];
      const est = (meta(ctx).rowEstimates ?? {}) as Record<string, number>;
      const counts = new Map<string, number>();
      await withClient(db, async (c) => {
        const tables = await c.query<{ s: string; t: string }>(
          `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`,
        );
        for (const row of tables.rows) {
          const key = `${row.s}.${row.t}`;
          if (!(key in est)) continue;
          if (ctx.signal.aborted) throw new LifeboatError('drill aborted');
          const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${c.escapeIdentifier(row.s)}.${c.escapeIdentifier(row.t)}`);
          counts.set(key, Number(r.rows[0]!.n));
        }
      });
      if (Object.keys(est).length) checks.push(rowCountCheck(est, counts, false));
      return checks;
    },
    async sql(text) {
      return withClient(db, async (c) => {
        const r = await c.query({ text, rowMode: 'array' });
        const row = (r.rows as unknown[][])[0];
        return (row?.[0] ?? null) as QueryValue;
      });
    },
    env: () => ({
      LIFEBOAT_DRILL_KIND: 'postgres',
      LIFEBOAT_DRILL_TARGET: db,
      PGHOST: server.host,
      PGPORT: String(server.port),
      PGUSER: server.user,
      PGDATABASE: db,
      ...(server.password !== undefined ? { PGPASSWORD: server.password } : {}),
    }),
    async cleanup() {
      await withClient('postgres', async (c) => {
        await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db]);
        await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(db)}`);
      });
    },
  };
}

// ------------------------------------------------------------------ mysql

function mysqlTarget(ctx: DrillTargetContext, src: MysqlSourceOptions): ScratchTarget {
  if (!src.database) {
    throw new ConfigError(`job ${ctx.job}: drills of MySQL/MariaDB sources need a single "database" (a dump of several databases restores under their own names)`);
  }
  const server = dbServer(ctx, src, `mysql source ${ctx.sourceName}`);
  const socket = server.designated ? undefined : src.socket;
  const db = scratchDbName(ctx.job);
  const connect = async (database?: string) =>
    (await import('mysql2/promise')).default.createConnection({
      ...(socket ? { socketPath: socket } : { host: server.host, port: server.port }),
      user: server.user,
      ...(server.password !== undefined ? { password: server.password } : {}),
      ...(database ? { database } : {}),
      connectTimeout: src.connectTimeout * 1000,
      supportBigNumbers: true,
      bigNumberStrings: true,
    });
  const withConn = async <T>(database: string | undefined, fn: (c: mysql.Connection) => Promise<T>): Promise<T> => {
    const c = await connect(database);
    try {
      return await fn(c);
    } finally {
      await c.end().catch(() => {});
    }
  };
  return {
    description: `mysql database ${db} on ${socket ?? `${server.host}:${server.port}`}`,
    async restore() {
      await STREAM_KINDS.mysql.restore(resolveSourcePaths(ctx.src as StreamSourceConfig, ctx.cfg), await snapshotStream(ctx), {
        database: db,
        ...(socket ? { socket } : { host: server.host, port: server.port }),
        user: server.user,
        ...server.passwordTarget,
        createDatabase: true,
        signal: ctx.signal,
      });
    },
    async integrity() {
      const checks: DrillCheck[] = [{ name: 'mysql client', ok: true, detail: 'the SQL dump replayed without errors (exit status 0)' }];
      const est = (meta(ctx).rowEstimates ?? {}) as Record<string, number>;
      const prefix = `${src.database}.`;
      const mapped: Record<string, number> = {};
      for (const [k, n] of Object.entries(est)) if (k.startsWith(prefix)) mapped[k.slice(prefix.length)] = n;
      const counts = new Map<string, number>();
      await withConn(db, async (c) => {
        const [rows] = await c.query(`SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'`, [db]);
        for (const r of rows as Array<{ t: string }>) {
          if (!(r.t in mapped)) continue;
          const [cnt] = await c.query(`SELECT COUNT(*) AS n FROM ${myIdent(db)}.${myIdent(r.t)}`);
          counts.set(r.t, Number((cnt as Array<{ n: string | number }>)[0]!.n));
        }
      });
      if (Object.keys(mapped).length) checks.push(rowCountCheck(mapped, counts, false));
      return checks;
    },
    async sql(text) {
      return withConn(db, async (c) => {
        const [rows] = await c.query({ sql: text, rowsAsArray: true });
        const row = Array.isArray(rows) ? (rows[0] as unknown[] | undefined) : undefined;
        const v = row?.[0] ?? null;
        return (Buffer.isBuffer(v) ? v.toString('utf8') : v instanceof Date ? v.toISOString() : v) as QueryValue;
      });
    },
    env: () => ({
      LIFEBOAT_DRILL_KIND: 'mysql',
      LIFEBOAT_DRILL_TARGET: db,
      ...(socket ? { MYSQL_UNIX_PORT: socket } : { MYSQL_HOST: server.host, MYSQL_TCP_PORT: String(server.port) }),
      MYSQL_DATABASE: db,
      ...(server.password !== undefined ? { MYSQL_PWD: server.password } : {}),
    }),
    async cleanup() {
      await withConn(undefined, async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${myIdent(db)}`);
      });
    },
  };
}

// ------------------------------------------------------------------ redis

/** Tolerance for key counts: keys may expire or be written between INFO and the RDB transfer. */
export const REDIS_KEY_TOLERANCE = 0.01;

function redisTarget(ctx: DrillTargetContext): ScratchTarget {
  const o = ctx.src as { binDir?: string };
  let dir: string | undefined;
  let child: ChildProcess | undefined;
  let exited: Promise<void> | undefined;
  let client: RespClient | undefined;
  let rdbCheck: string | undefined;
  const sock = () => path.join(dir!, 'redis.sock');
  return {
    get description() {
      return `private redis-server on ${dir ? sock() : 'a scratch Unix socket'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const r = await STREAM_KINDS.redis.restore(resolveSourcePaths(ctx.src as StreamSourceConfig, ctx.cfg), await snapshotStream(ctx), { file: path.join(dir, 'dump.rdb') });
      rdbCheck = r.checks?.rdbCheck as string | undefined;
      const bin = requireTool('redis-server', 'install redis-server or set binDir', o.binDir);
      const logFile = path.join(dir, 'redis.log');
      child = spawn(
        bin,
        ['--port', '0', '--unixsocket', sock(), '--unixsocketperm', '700', '--dir', dir, '--dbfilename', 'dump.rdb', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--databases', '256', '--logfile', logFile],
        { stdio: 'ignore' },
      );
      let dead = false;
      exited = new Promise<void>((resolve) => {
        child!.once('exit', () => resolve());
        child!.once('error', () => resolve());
      }).then(() => {
        dead = true;
      });
      // Loading a large RDB takes as long as it takes: wait while the server is alive.
      for (;;) {
        if (ctx.signal.aborted) throw new LifeboatError('drill aborted while redis-server was loading the backup');
        if (dead) {
          const log = await fsp.readFile(logFile, 'utf8').catch(() => '');
          throw new LifeboatError(`the scratch redis-server could not load the backup:\n  ${log.trim().split('\n').slice(-8).join('\n  ')}`);
        }
        try {
          const cl = await RespClient.connect({ path: sock() }, 2000, 'scratch redis-server');
          const pong = await cl.send('PING');
          if (pong === 'PONG') {
            client = cl;
            return;
          }
          cl.close();
        } catch {
          /* not up yet */
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async integrity() {
      const checks: DrillCheck[] = [];
      if (rdbCheck) checks.push({ name: 'redis-check-rdb', ok: true, detail: 'the restored RDB passed redis-check-rdb' });
      const info = await client!.call('INFO', 'keyspace');
      const keyspace = parseKeyspace(Buffer.isBuffer(info) ? info.toString('utf8') : String(info));
      const got = [...keyspace.values()].reduce((a, k) => a + k.keys, 0);
      const m = meta(ctx);
      const want = typeof m.totalKeys === 'number' ? m.totalKeys : undefined;
      checks.push({ name: 'loaded', ok: true, detail: `redis-server loaded the RDB: ${got} key(s) in ${keyspace.size} database(s)` });
      if (want !== undefined) {
        const diff = Math.abs(got - want);
        const ok = diff <= Math.max(0, Math.floor(want * REDIS_KEY_TOLERANCE)) && !(want > 0 && got === 0);
        const perDb = (m.keys ?? {}) as Record<string, number>;
        const dbDiffs = Object.entries(perDb)
          .filter(([db, n]) => (keyspace.get(Number(db.replace(/^db/, '')))?.keys ?? 0) !== n)
          .map(([db, n]) => `${db}: ${keyspace.get(Number(db.replace(/^db/, '')))?.keys ?? 0} (recorded ${n})`);
        checks.push({
          name: 'key count',
          ok,
          detail: `${got} key(s) restored, ${want} recorded at backup${dbDiffs.length ? `; ${dbDiffs.slice(0, 8).join(', ')}` : ''}${ok ? '' : ` (more than ${REDIS_KEY_TOLERANCE * 100}% apart)`}`,
        });
      }
      return checks;
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'redis', LIFEBOAT_DRILL_TARGET: dir ? sock() : '', LIFEBOAT_DRILL_REDIS_SOCKET: dir ? sock() : '' }),
    async cleanup() {
      if (client) {
        await client.send('SHUTDOWN', 'NOSAVE').catch(() => undefined);
        client.close();
        client = undefined;
      }
      if (child && exited) {
        child.kill('SIGKILL');
        await exited;
      }
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ sqlite

function sqliteTarget(ctx: DrillTargetContext): ScratchTarget {
  let dir: string | undefined;
  let file: string | undefined;
  let restored: Record<string, unknown> = {};
  return {
    get description() {
      return `scratch file ${file ?? '(not created yet)'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const src = ctx.src as { path: string };
      file = path.join(dir, path.basename(src.path) || 'restored.db');
      const r = await STREAM_KINDS.sqlite.restore(resolveSourcePaths(ctx.src as StreamSourceConfig, ctx.cfg), await snapshotStream(ctx), { path: file, integrityCheck: true });
      restored = r.checks ?? {};
    },
    async integrity() {
      const checks: DrillCheck[] = [
        { name: 'integrity_check', ok: restored.integrityCheck === 'ok', detail: restored.integrityCheck === 'ok' ? 'PRAGMA integrity_check: ok' : 'PRAGMA integrity_check did not run' },
      ];
      const recorded = meta(ctx).rowCounts as Record<string, number> | undefined;
      const now = (restored.rowCounts ?? {}) as Record<string, number>;
      if (recorded) checks.push(rowCountCheck(recorded, new Map(Object.entries(now).map(([k, v]) => [k, Number(v)])), true));
      return checks;
    },
    async sql(text) {
      const db = new Database(file!, { readonly: true, fileMustExist: true });
      try {
        const row = db.prepare(text).raw(true).get() as unknown[] | undefined;
        const v = row?.[0] ?? null;
        return (Buffer.isBuffer(v) ? v.toString('utf8') : v) as QueryValue;
      } finally {
        db.close();
      }
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'sqlite', LIFEBOAT_DRILL_TARGET: file ?? '' }),
    async cleanup() {
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ files

function filesTarget(ctx: DrillTargetContext): ScratchTarget {
  let dir: string | undefined;
  let summary: Awaited<ReturnType<typeof restoreSnapshot>> | undefined;
  return {
    get description() {
      return `scratch directory ${dir ?? '(not created yet)'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const target = path.join(dir, 'restore');
      const work = restoreSnapshot(ctx.repo, ctx.snapshot, { target, verify: true });
      // restoreSnapshot has no abort signal: stop waiting on abort (cleanup removes the directory)
      summary = await new Promise((resolve, reject) => {
        const onAbort = () => reject(new LifeboatError('drill aborted during the restore'));
        if (ctx.signal.aborted) onAbort();
        ctx.signal.addEventListener('abort', onAbort, { once: true });
        work.then(resolve, reject).finally(() => ctx.signal.removeEventListener('abort', onAbort));
      });
      if (summary!.errors.length) {
        throw new LifeboatError(
          `${summary!.errors.length} file(s) could not be restored: ${summary!.errors
            .slice(0, 5)
            .map((e) => `${e.path}: ${e.message}`)
            .join('; ')}`,
        );
      }
    },
    async integrity() {
      const s = summary!;
      const checks: DrillCheck[] = [{ name: 'content verified', ok: s.verified === s.files, detail: `${s.verified} of ${s.files} file(s) re-read and matched the snapshot's chunk hashes` }];
      const sum = ctx.snapshot.summary;
      if (sum) {
        const files = sum.filesNew + sum.filesChanged + sum.filesUnmodified;
        checks.push({ name: 'file count', ok: s.files === files, detail: `${s.files} file(s) restored, ${files} in the snapshot` });
        checks.push({ name: 'bytes', ok: s.bytes === sum.totalBytes, detail: `${s.bytes} byte(s) restored, ${sum.totalBytes} in the snapshot` });
      }
      return checks;
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'files', LIFEBOAT_DRILL_TARGET: dir ? path.join(dir, 'restore') : '' }),
    async cleanup() {
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

// ------------------------------------------------------------------ command

function commandTarget(ctx: DrillTargetContext): ScratchTarget {
  let dir: string | undefined;
  let bytes = 0;
  let output = '';
  const cmd = ctx.drill.restoreCommand;
  return {
    get description() {
      return cmd ? `drill restore command (scratch directory ${dir ?? '-'})` : `scratch file ${dir ? path.join(dir, 'dump') : '(not created yet)'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const counter = new PassThrough();
      counter.on('data', (b: Buffer) => (bytes += b.length));
      const input = await snapshotStream(ctx);
      input.once('error', (e) => counter.destroy(e));
      input.pipe(counter);
      if (cmd) {
        const r = await STREAM_KINDS.command.restore(resolveSourcePaths(ctx.src as StreamSourceConfig, ctx.cfg), counter, {
          command: cmd,
          env: { LIFEBOAT_DRILL_DIR: dir, LIFEBOAT_DRILL_KIND: 'command' },
          signal: ctx.signal,
        });
        output = String(r.checks?.output ?? '');
      } else {
        await pipeline(counter, createWriteStream(path.join(dir, 'dump'), { flags: 'wx', mode: 0o600 }));
      }
    },
    async integrity() {
      const checks: DrillCheck[] = [];
      if (cmd) checks.push({ name: 'restore command', ok: true, detail: `exit status 0${output ? `; output: ${output.slice(-200)}` : ''}` });
      const want = ctx.snapshot.summary?.totalBytes;
      if (want !== undefined) checks.push({ name: 'bytes', ok: bytes === want, detail: `${bytes} byte(s) restored, ${want} in the snapshot` });
      return checks;
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'command', LIFEBOAT_DRILL_TARGET: dir ? (cmd ? dir : path.join(dir, 'dump')) : '', LIFEBOAT_DRILL_DIR: dir ?? '' }),
    async cleanup() {
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}

/** The scratch target for the source's kind. Throws ConfigError for kinds drills do not support. */
export function scratchTarget(ctx: DrillTargetContext): ScratchTarget {
  const src = ctx.src;
  switch (src.kind) {
    case 'postgres':
      return postgresTarget(ctx, resolveSourcePaths(src, ctx.cfg) as PostgresSourceOptions);
    case 'mysql':
      return mysqlTarget(ctx, resolveSourcePaths(src, ctx.cfg) as MysqlSourceOptions);
    case 'redis':
      return redisTarget(ctx);
    case 'sqlite':
      return sqliteTarget(ctx);
    case 'files':
      return filesTarget(ctx);
    case 'command':
      return commandTarget(ctx);
    case 'postgres-physical':
      return pgPhysicalTarget(ctx, src as PgPhysicalOptions);
    default:
      throw new ConfigError(`job ${ctx.job}: drills of ${src.kind} sources are not supported yet`);
  }
}

/** Source kinds whose targets answer `sql` queries. */
export const SQL_KINDS: ReadonlySet<string> = new Set(['postgres', 'mysql', 'sqlite', 'postgres-physical']);
