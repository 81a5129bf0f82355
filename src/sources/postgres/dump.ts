import { Readable } from 'node:stream';
import type pg from 'pg';
import { z } from 'zod';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import {
  formatHostPort,
  parseOptions,
  probeTcp,
  requireTool,
  resolvePassword,
  runCapture,
  runWithInput,
  safeFilename,
  spawnTool,
  toolVersion,
  type SourceContext,
} from '../proc.js';
import type { DumpHandle, RestoreResult } from '../types.js';
import { connectPg, pgSsl } from '../../util/pg-client.js';
import { postgresSourceSchema, sslModes } from '../../config/sources.js';

/**
 * PostgreSQL source.
 *
 * Backup: `pg_dump --format=custom --compress=0` streams to stdout. The dump is
 * uncompressed on purpose: the repository compresses and deduplicates, and an
 * uncompressed custom archive changes only where the data changed, so a daily
 * dump of a mostly unchanged database adds little. `globals: true` instead dumps
 * roles and tablespaces with `pg_dumpall --globals-only` (plain SQL).
 *
 * Before spawning, the server is probed (TCP with a short timeout, then a
 * query through psql), and the client tool's major version is compared with
 * the server's: pg_dump refuses to dump a newer server, and we say so up front.
 *
 * Row counts: the snapshot records `rowEstimates` from pg_stat_user_tables
 * (n_live_tup) — free to read, but estimates maintained by the statistics
 * system, not exact counts (exact counts would scan every table, outside the
 * dump's own snapshot). At most 1000 tables (largest first) are listed;
 * `tableCount` gives the total.
 *
 * Connection parameters go to the tools as PG* environment variables
 * (PGPASSWORD for the password), never on the command line.
 */

export type PostgresSourceOptions = z.output<typeof postgresSourceSchema>;
export type PostgresSourceInput = z.input<typeof postgresSourceSchema>;

const INSTALL_HINT = 'install the PostgreSQL client tools (e.g. "apt install postgresql-client") or set binDir';

interface PgConn {
  host: string;
  port: number;
  user: string;
  database: string;
  password?: string;
  sslmode?: string;
  connectTimeout: number;
}

/** Environment for libpq tools: all connection parameters, the password only here. */
export function pgEnv(c: PgConn): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PGHOST: c.host,
    PGPORT: String(c.port),
    PGUSER: c.user,
    PGDATABASE: c.database,
    PGCONNECT_TIMEOUT: String(c.connectTimeout),
    PGAPPNAME: 'lifeboat',
  };
  // Variables that would silently redirect the connection elsewhere.
  delete env.PGSERVICE;
  delete env.PGHOSTADDR;
  if (c.password !== undefined) env.PGPASSWORD = c.password;
  if (c.sslmode) env.PGSSLMODE = c.sslmode;
  return env;
}

/** libpq connection string naming only the database (safe for any name; other parameters come from the environment). */
export function pgConninfoDbname(db: string): string {
  return `dbname='${db.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** pg_dump / pg_dumpall arguments (connection parameters are passed in the environment). */
export function pgDumpArgs(o: PostgresSourceOptions): string[] {
  if (o.globals) return ['--globals-only', '--no-password', ...o.extraArgs];
  const args = ['--format=custom', '--compress=0', '--no-password'];
  for (const x of o.schemas) args.push(`--schema=${x}`);
  for (const x of o.excludeSchemas) args.push(`--exclude-schema=${x}`);
  for (const x of o.tables) args.push(`--table=${x}`);
  for (const x of o.excludeTables) args.push(`--exclude-table=${x}`);
  for (const x of o.excludeTableData) args.push(`--exclude-table-data=${x}`);
  if (o.largeObjects) args.push('--blobs');
  args.push(...o.extraArgs);
  return args;
}

/** PostgreSQL "major" as a version number: 15.20 -> 150000, 9.6.24 -> 90600. */
export function pgMajorNum(version: string): number {
  const m = /^(\d+)(?:\.(\d+))?/.exec(version.trim());
  if (!m) return NaN;
  const a = Number(m[1]);
  return a >= 10 ? a * 10000 : a * 10000 + Number(m[2] ?? 0) * 100;
}

function majorLabel(num: number): string {
  return num >= 100000 ? String(Math.floor(num / 10000)) : `${Math.floor(num / 10000)}.${Math.floor((num % 10000) / 100)}`;
}

/**
 * Throw when the client tool is older than the server (pg_dump cannot dump a
 * newer server; pg_restore may not read its archives). `serverVersionNum` is
 * server_version_num, e.g. 150020.
 */
export function checkPgClientVersion(tool: string, clientVersion: string, serverVersionNum: number): void {
  const client = pgMajorNum(clientVersion);
  const server = serverVersionNum >= 100000 ? Math.floor(serverVersionNum / 10000) * 10000 : Math.floor(serverVersionNum / 100) * 100;
  if (!Number.isFinite(client)) throw new LifeboatError(`cannot tell the version of ${tool} (it printed "${clientVersion}")`);
  if (client < server) {
    throw new LifeboatError(
      `${tool} is version ${majorLabel(client)} but the PostgreSQL server is version ${majorLabel(server)}: ` +
        `the client tools must be at least as new as the server; install postgresql-client-${majorLabel(server)} (or newer) and/or point binDir at its bin directory`,
    );
  }
}

interface Tools {
  psql: string;
  dump?: string;
  restore?: string;
}

async function psqlJson<T>(psql: string, c: PgConn, sql: string, vars: Record<string, string>, context: string): Promise<T> {
  const args = ['-X', '-A', '-t', '-q', '--no-password', '-v', 'ON_ERROR_STOP=1'];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  args.push('-f', '-');
  let r;
  try {
    // Variables are interpolated only in scripts, not in -c: feed the SQL on stdin.
    r = await runCapture(psql, args, { env: pgEnv(c), input: sql, timeoutMs: (c.connectTimeout + 60) * 1000, tool: 'psql', context });
  } catch (err) {
    throw connError(c, err);
  }
  const line = r.stdout.trim().split('\n').filter(Boolean).pop();
  if (!line) throw new LifeboatError(`psql (${context}) returned nothing`);
  return JSON.parse(line) as T;
}

function connError(c: PgConn, err: unknown): LifeboatError {
  const msg = (err as Error).message;
  if (/connection to server|could not connect|password authentication failed|no password supplied|does not exist|no pg_hba\.conf entry|timeout expired/i.test(msg)) {
    const detail = msg.replace(/^psql \([^)]*\) failed with exit code \d+:\n\s*/, '').replace(/^psql: error: /, '');
    return new LifeboatError(`cannot connect to PostgreSQL database "${c.database}" at ${formatHostPort(c.host, c.port)} as ${c.user}: ${detail.trim()}`);
  }
  return err instanceof LifeboatError ? err : new LifeboatError(msg);
}

interface ServerInfo {
  version: string;
  num: number;
}

async function serverInfo(psql: string, c: PgConn): Promise<ServerInfo> {
  return psqlJson<ServerInfo>(
    psql,
    c,
    `SELECT json_build_object('version', current_setting('server_version'), 'num', current_setting('server_version_num')::int);`,
    {},
    'checking the server version',
  );
}

function connFrom(o: { host: string; port: number; user: string; sslmode?: string; connectTimeout: number }, database: string, password: string | undefined): PgConn {
  return {
    host: o.host,
    port: o.port,
    user: o.user,
    database,
    ...(password !== undefined ? { password } : {}),
    ...(o.sslmode ? { sslmode: o.sslmode } : {}),
    connectTimeout: o.connectTimeout,
  };
}

/**
 * Open a REPEATABLE READ transaction, export its snapshot for `pg_dump
 * --snapshot`, and run the verification queries in it: the values describe
 * exactly the data in the dump. The transaction stays open until release().
 */
async function exportSnapshotWithValues(
  conn: PgConn,
  queries: string[],
  signal?: AbortSignal,
): Promise<{ snapshot: string; values: Record<string, string | null>; errors: Record<string, string>; release: () => Promise<void> }> {
  // no sslmode: node-postgres reads PGSSLMODE, as pg_dump does
  const config: pg.ClientConfig = {
    host: conn.host,
    port: conn.port,
    user: conn.user,
    database: conn.database,
    ...(conn.password !== undefined ? { password: conn.password } : {}),
    ...(conn.sslmode ? { ssl: pgSsl(conn.sslmode) } : {}),
    connectionTimeoutMillis: conn.connectTimeout * 1000,
    application_name: 'lifeboat verification',
  };
  const aborted = () => new LifeboatError('backup aborted while the verification queries ran; no backup was taken', ExitCode.INTERRUPTED);
  if (signal?.aborted) throw aborted();
  let client: pg.Client;
  try {
    // a job's timeout or shutdown ends the session at once, also while a query waits (a lock, a slow count)
    client = await connectPg(config, { signal });
  } catch (err) {
    throw new LifeboatError(`PostgreSQL ${conn.host}:${conn.port}: cannot export a snapshot for the verification queries: ${(err as Error).message}`);
  }
  let released = false;
  const release = async (): Promise<void> => {
    if (released) return;
    released = true;
    await client.query('COMMIT').catch(() => {});
    await client.end().catch(() => {});
  };
  try {
    if (signal?.aborted) throw aborted();
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const snapshot = String((await client.query('SELECT pg_export_snapshot() AS s')).rows[0].s);
    const values: Record<string, string | null> = {};
    const errors: Record<string, string> = {};
    for (const q of queries) {
      // a failing query must not fail the backup (nor abort the exporting transaction):
      // its error is recorded and the drill reports it
      await client.query('SAVEPOINT lifeboat_verify');
      try {
        const r = await client.query({ text: q, rowMode: 'array' });
        const v = (r.rows[0] as unknown[] | undefined)?.[0];
        values[q] = v === null || v === undefined ? null : v instanceof Date ? v.toISOString() : String(v);
        await client.query('RELEASE SAVEPOINT lifeboat_verify');
      } catch (err) {
        errors[q] = (err as Error).message.slice(0, 300);
        await client.query('ROLLBACK TO SAVEPOINT lifeboat_verify');
      }
    }
    return { snapshot, values, errors, release };
  } catch (err) {
    await release();
    if (err instanceof LifeboatError) throw err;
    if (signal?.aborted) throw aborted();
    throw new LifeboatError(`PostgreSQL ${conn.host}:${conn.port}: cannot export a snapshot for the verification queries: ${(err as Error).message}`);
  }
}

/** Start `pg_dump` (or `pg_dumpall --globals-only`) with its stdout as the dump stream. */
export async function dumpPostgres(input: PostgresSourceInput | PostgresSourceOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const o = parseOptions(postgresSourceSchema, input, `postgres source${ctx.name ? ` ${ctx.name}` : ''}`);
  const password = resolvePassword(o, `postgres source${ctx.name ? ` ${ctx.name}` : ''}`);
  const database = o.database ?? 'postgres';
  const conn = connFrom(o, database, password);
  const toolName = o.globals ? 'pg_dumpall' : 'pg_dump';
  const tools: Tools = { psql: requireTool('psql', INSTALL_HINT, o.binDir), dump: requireTool(toolName, INSTALL_HINT, o.binDir) };
  await probeTcp(o.host, o.port, 'PostgreSQL', o.connectTimeout * 1000);
  const info = await serverInfo(tools.psql, conn);
  const tv = await toolVersion(tools.dump!);
  checkPgClientVersion(toolName, tv, info.num);

  // Cheap facts for the snapshot (estimates, see the header comment).
  let facts: Record<string, unknown> = {};
  if (!o.globals) {
    facts = await psqlJson<Record<string, unknown>>(
      tools.psql,
      conn,
      `SELECT json_build_object(
         'databaseSize', pg_database_size(current_database()),
         'tableCount', (SELECT count(*) FROM pg_stat_user_tables),
         'largeObjects', (SELECT count(*) FROM pg_largeobject_metadata),
         'rowEstimates', (SELECT coalesce(json_object_agg(name, n), '{}'::json) FROM (
            SELECT schemaname || '.' || relname AS name, n_live_tup AS n FROM pg_stat_user_tables
            ORDER BY n_live_tup DESC, 1 LIMIT 1000) s));`,
      {},
      'reading table statistics',
    );
  }

  // Verification values for restore drills, read in the very snapshot pg_dump dumps.
  const verify = !o.globals && ctx.verifyQueries?.length ? await exportSnapshotWithValues(conn, ctx.verifyQueries, ctx.signal) : undefined;
  const args = pgDumpArgs(o);
  if (verify) args.unshift(`--snapshot=${verify.snapshot}`);
  let run;
  try {
    run = spawnTool(tools.dump!, args, {
      tool: toolName,
      env: pgEnv(conn),
      signal: ctx.signal,
      onSuccess: () => (verify ? { ...facts, verification: verify.values, ...(Object.keys(verify.errors).length ? { verificationErrors: verify.errors } : {}) } : facts),
    });
  } catch (err) {
    await verify?.release();
    throw err;
  }
  // the exporting transaction must stay open until pg_dump has its snapshot (we keep it until the end)
  if (verify) run.done.then(verify.release, verify.release);
  return {
    stream: run.stream,
    done: run.done,
    meta: {
      kind: 'postgres',
      ...(ctx.name ? { name: ctx.name } : {}),
      database: o.globals ? undefined : database,
      host: o.host,
      port: o.port,
      serverVersion: info.version,
      tool: toolName,
      toolVersion: tv,
      format: o.globals ? 'sql' : 'custom',
      ...(o.globals ? { globals: true } : {}),
    },
    filename: o.filename ?? (o.globals ? 'globals.sql' : `${safeFilename(database)}.pgdump`),
    abort: run.abort,
  };
}

export interface PostgresRestoreTarget {
  /** Database to restore into (default: the source's database). Created if missing. */
  database?: string;
  host?: string;
  port?: number;
  user?: string;
  passwordEnv?: string;
  passwordFile?: string;
  /** Drop the objects of the dump before recreating them (pg_restore --clean --if-exists). */
  clean?: boolean;
  /** Restore into a non-empty database without cleaning first. */
  force?: boolean;
  /** Do not restore ownership (objects belong to the restoring user). */
  noOwner?: boolean;
  /** Do not restore privileges (GRANT/REVOKE). */
  noPrivileges?: boolean;
  /** Restore as one transaction: all or nothing. */
  singleTransaction?: boolean;
  /** Create the target database when it does not exist (default true). */
  createDatabase?: boolean;
  /** Database used to check for / create the target (default "postgres"). */
  maintenanceDatabase?: string;
  /** Parallel restore jobs (pg_restore --jobs); only when the archive is given as a file, see restorePostgres. */
  jobs?: number;
  signal?: AbortSignal;
}

const countObjectsSql = `SELECT json_build_object('n',
  (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%')
  + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema'))
  + (SELECT count(*) FROM pg_largeobject_metadata),
  'tables', (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'),
  'largeObjects', (SELECT count(*) FROM pg_largeobject_metadata));`;

/**
 * Restore a pg_dump custom archive (or, for `globals: true`, pg_dumpall SQL)
 * streamed from `archive` (or read from `{ file }`, which allows `jobs`). The target database is created when missing; an
 * existing database that holds any user objects is refused unless `clean` or
 * `force` is set.
 */
export async function restorePostgres(
  input: PostgresSourceInput | PostgresSourceOptions,
  archive: Readable | { file: string },
  target: PostgresRestoreTarget = {},
): Promise<RestoreResult> {
  const started = Date.now();
  const o = parseOptions(postgresSourceSchema, input, 'postgres source');
  const fromFile = 'file' in archive && typeof archive.file === 'string' ? archive.file : undefined;
  const stream: Readable = fromFile !== undefined ? Readable.from([]) : (archive as Readable);
  if (target.jobs !== undefined) {
    if (!Number.isInteger(target.jobs) || target.jobs < 1) throw new ConfigError('jobs must be a positive integer');
    // A streamed archive cannot be read out of order, which parallel restore needs.
    if (fromFile === undefined && target.jobs > 1) throw new ConfigError('parallel restore (jobs > 1) needs the archive as a file: restore the snapshot to a file first');
    if (target.singleTransaction && target.jobs > 1) throw new ConfigError('jobs > 1 cannot be combined with singleTransaction');
  }
  if (fromFile !== undefined && o.globals) throw new ConfigError('a globals dump is plain SQL: restore it from a stream');
  const password =
    target.passwordEnv !== undefined || target.passwordFile !== undefined
      ? resolvePassword({ ...(target.passwordEnv ? { passwordEnv: target.passwordEnv } : {}), ...(target.passwordFile ? { passwordFile: target.passwordFile } : {}) }, 'postgres restore target')
      : resolvePassword(o, 'postgres source');
  const base = { ...o, host: target.host ?? o.host, port: target.port ?? o.port, user: target.user ?? o.user };
  const psql = requireTool('psql', INSTALL_HINT, o.binDir);
  const maint = connFrom(base, target.maintenanceDatabase ?? 'postgres', password);
  await probeTcp(base.host, base.port, 'PostgreSQL', base.connectTimeout * 1000);

  if (o.globals) return restoreGlobals(psql, connFrom(base, target.database ?? maint.database, password), stream, started, target.signal);

  const database = target.database ?? o.database!;
  const conn = connFrom(base, database, password);
  const pgRestore = requireTool('pg_restore', INSTALL_HINT, o.binDir);
  const info = await serverInfo(psql, maint);
  checkPgClientVersion('pg_restore', await toolVersion(pgRestore), info.num);

  const { exists } = await psqlJson<{ exists: boolean }>(
    psql,
    maint,
    `SELECT json_build_object('exists', EXISTS (SELECT 1 FROM pg_database WHERE datname = :'db'));`,
    { db: database },
    'checking the target database',
  );
  let created = false;
  if (exists) {
    const { n } = await psqlJson<{ n: number }>(psql, conn, countObjectsSql, {}, 'checking that the target database is empty');
    if (n > 0 && !target.clean && !target.force) {
      throw new LifeboatError(
        `refusing to restore into database "${database}" at ${formatHostPort(base.host, base.port)}: it is not empty (${n} objects); ` +
          'restore into a new database name, or use clean (drop and recreate the dumped objects) or force (restore on top)',
        ExitCode.USAGE,
      );
    }
  } else {
    if (target.createDatabase === false) throw new LifeboatError(`target database "${database}" does not exist`);
    // template0: an empty database, so the archive's objects do not collide with additions to template1.
    await psqlJson(psql, maint, `CREATE DATABASE :"db" TEMPLATE template0;\nSELECT json_build_object('ok', true);`, { db: database }, 'creating the target database');
    created = true;
  }

  const args = ['--no-password', '--exit-on-error', `--dbname=${pgConninfoDbname(database)}`];
  if (target.clean) args.push('--clean', '--if-exists');
  if (target.noOwner) args.push('--no-owner');
  if (target.noPrivileges) args.push('--no-privileges');
  if (target.singleTransaction) args.push('--single-transaction');
  // Parallel restore needs random access to the archive, so it is only
  // possible from a file (pg_restore copes with the missing data offsets of an
  // archive that pg_dump wrote to a pipe by scanning the file). A streamed
  // archive arrives on stdin and is always restored by a single job.
  if (fromFile !== undefined) {
    if (target.jobs && target.jobs > 1) args.push(`--jobs=${target.jobs}`);
    args.push('--', fromFile);
  }
  try {
    await runWithInput(pgRestore, args, stream, {
      tool: 'pg_restore',
      env: pgEnv(conn),
      context: `into database "${database}"`,
      signal: target.signal,
      hint: (tail) =>
        /role "[^"]+" does not exist/.test(tail)
          ? 'hint: the dump references roles missing on this server; restore the globals (globals: true) snapshot first, or restore with noOwner/noPrivileges'
          : undefined,
    });
  } catch (err) {
    if (created) {
      // Leave no half-restored database behind that a retry would then refuse as "not empty".
      await psqlJson(psql, maint, `DROP DATABASE IF EXISTS :"db";\nSELECT json_build_object('ok', true);`, { db: database }, 'dropping the incomplete database').catch(() => {});
      if (err instanceof Error) err.message += `\n(the database "${database}" created for this restore was dropped again)`;
    }
    throw err;
  }
  const after = await psqlJson<{ tables: number; largeObjects: number }>(psql, conn, countObjectsSql, {}, 'counting restored objects');
  const jobs = fromFile !== undefined ? (target.jobs ?? 1) : 1;
  return { durationMs: Date.now() - started, checks: { database, created, tables: after.tables, largeObjects: after.largeObjects, jobs } };
}

/**
 * Replay pg_dumpall --globals-only SQL with psql. Such a dump always contains
 * CREATE ROLE for roles that usually exist already (at least the superuser),
 * so "already exists" errors are expected and ignored; any other error fails
 * the restore after the script ran.
 */
async function restoreGlobals(psql: string, c: PgConn, stream: Readable, started: number, signal?: AbortSignal): Promise<RestoreResult> {
  let ignored = 0;
  const errors: string[] = [];
  await runWithInput(psql, ['-X', '-q', '--no-password', '-v', 'ON_ERROR_STOP=0', '-f', '-'], stream, {
    tool: 'psql',
    env: pgEnv(c),
    context: 'restoring globals',
    signal,
    onStderrLine: (line) => {
      if (!/\bERROR:/.test(line)) return;
      if (/already exists/.test(line)) ignored++;
      else if (errors.length < 20) errors.push(line.trim());
      else errors.length === 20 && errors.push('...');
    },
  });
  if (errors.length) throw new LifeboatError(`restoring PostgreSQL globals reported errors:\n  ${errors.join('\n  ')}`);
  return { durationMs: Date.now() - started, checks: { globals: true, alreadyExisting: ignored } };
}
