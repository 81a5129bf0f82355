import type { Readable } from 'node:stream';
import { z } from 'zod';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import {
  formatHostPort,
  parseOptions,
  probeTcp,
  requireOneOf,
  resolvePassword,
  runCapture,
  runWithInput,
  safeFilename,
  spawnTool,
  toolVersion,
  type SourceContext,
} from '../proc.js';
import type { DumpHandle, RestoreResult } from '../types.js';
import { mysqlSourceSchema } from '../../config/sources.js';
import { BinlogCoordinateTap, binlogArchiveName } from './binlog-coords.js';

/**
 * MySQL / MariaDB source.
 *
 * Backup: `mariadb-dump` (or `mysqldump`) with --single-transaction (a
 * consistent snapshot of InnoDB tables without locking), routines, triggers,
 * events and --hex-blob (binary columns as hex literals, so the SQL text is
 * byte-safe), streamed from stdout. A single `database` is dumped WITHOUT
 * `CREATE DATABASE`/`USE`, so it can be restored under another name; a list of
 * `databases`, or all databases (neither given), restores into the same names.
 *
 * Restore: the SQL is streamed into the `mariadb` (or `mysql`) client. The
 * target database is created when missing; a non-empty one is refused unless
 * `clean` (drop and recreate it first) or `force` (restore on top).
 *
 * Row counts: `rowEstimates` from information_schema.TABLES.TABLE_ROWS — exact
 * for MyISAM/Aria, an estimate for InnoDB; free to read (at most 1000 tables).
 *
 * The password goes to the tools in MYSQL_PWD, never on the command line.
 */

export type MysqlSourceOptions = z.output<typeof mysqlSourceSchema>;
export type MysqlSourceInput = z.input<typeof mysqlSourceSchema>;

const INSTALL_HINT = 'install the MariaDB or MySQL client (e.g. "apt install mariadb-client") or set binDir';
const SYSTEM_DBS = ['mysql', 'information_schema', 'performance_schema', 'sys'];

export interface MyConn {
  host: string;
  port: number;
  socket?: string;
  user: string;
  password?: string;
  connectTimeout: number;
}

export function connArgs(c: MyConn): string[] {
  const a = c.socket ? [`--socket=${c.socket}`] : [`--host=${c.host}`, `--port=${c.port}`, '--protocol=TCP'];
  a.push(`--user=${c.user}`);
  return a;
}

export function myEnv(c: MyConn): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.MYSQL_HOST;
  delete env.MYSQL_TCP_PORT;
  delete env.MYSQL_UNIX_PORT;
  if (c.password !== undefined) env.MYSQL_PWD = c.password;
  else delete env.MYSQL_PWD;
  return env;
}

function where(c: MyConn): string {
  return c.socket ? c.socket : formatHostPort(c.host, c.port);
}

/** Quote an identifier with backticks. */
export function myIdent(name: string): string {
  return '`' + name.replace(/`/g, '``') + '`';
}

/** A string literal that is safe whatever the SQL mode (hex with a charset introducer). */
export function myString(s: string): string {
  return `_utf8mb4 X'${Buffer.from(s, 'utf8').toString('hex')}' COLLATE utf8mb4_bin`;
}

/** The dump tool's arguments (connection arguments excluded). */
export function mysqlDumpArgs(o: MysqlSourceOptions): string[] {
  const args = [
    '--single-transaction',
    '--routines',
    '--triggers',
    '--events',
    '--hex-blob',
    '--default-character-set=utf8mb4',
    '--quick',
    // No timestamp trailer: identical data gives an identical dump.
    '--skip-dump-date',
  ];
  for (const t of o.excludeTables) args.push(`--ignore-table=${t.includes('.') || !o.database ? t : `${o.database}.${t}`}`);
  // point-in-time recovery: the binary log coordinates of the dump's snapshot, as a comment (parsed by BinlogCoordinateTap)
  if (o.binlog) args.push('--master-data=2');
  args.push(...o.extraArgs);
  if (o.database) args.push('--', o.database, ...o.tables);
  else if (o.databases) args.push('--databases', '--', ...o.databases);
  else args.push('--all-databases');
  return args;
}

function unescapeBatch(s: string): string | null {
  if (s === 'NULL') return null;
  return s.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c === 't' ? '\t' : c === '0' ? '\0' : c));
}

/** Run SQL with the client in batch mode; rows as arrays of strings (null for NULL). */
export async function query(client: string, c: MyConn, sql: string, context: string): Promise<Array<Array<string | null>>> {
  let r;
  try {
    r = await runCapture(client, [...connArgs(c), `--connect-timeout=${c.connectTimeout}`, '--batch', '--skip-column-names', '--default-character-set=utf8mb4'], {
      env: myEnv(c),
      input: sql,
      timeoutMs: (c.connectTimeout + 120) * 1000,
      context,
    });
  } catch (err) {
    const msg = (err as Error).message;
    if (/ERROR (1045|2002|2003|2005|2013|1044|1698)|Access denied|Can't connect|Lost connection|Unknown (MySQL|MariaDB) server host/i.test(msg)) {
      const detail = msg.replace(/^[^\n]*\n\s*/, '');
      throw new LifeboatError(`cannot connect to MySQL/MariaDB at ${where(c)} as ${c.user}: ${detail.trim()}`);
    }
    throw err;
  }
  return r.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split('\t').map(unescapeBatch));
}

interface Clients {
  dump: string;
  client: string;
}

export function findClients(binDir: string | undefined, needDump: boolean): Clients {
  const client = requireOneOf(['mariadb', 'mysql'], INSTALL_HINT, binDir);
  const dump = needDump ? requireOneOf(['mariadb-dump', 'mysqldump'], INSTALL_HINT, binDir) : '';
  return { dump, client };
}

export function connFrom(o: { host: string; port: number; socket?: string; user: string; connectTimeout: number }, password: string | undefined): MyConn {
  return { host: o.host, port: o.port, ...(o.socket ? { socket: o.socket } : {}), user: o.user, connectTimeout: o.connectTimeout, ...(password !== undefined ? { password } : {}) };
}

/** Start the dump tool with its stdout as the dump stream. */
export async function dumpMysql(input: MysqlSourceInput | MysqlSourceOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const what = `mysql source${ctx.name ? ` ${ctx.name}` : ''}`;
  const o = parseOptions(mysqlSourceSchema, input, what);
  const conn = connFrom(o, resolvePassword(o, what));
  const tools = findClients(o.binDir, true);
  if (!o.socket) await probeTcp(o.host, o.port, 'MySQL/MariaDB', o.connectTimeout * 1000);
  const scope = o.database ? [o.database] : (o.databases ?? null);
  const scopeSql = scope ? `IN (${scope.map(myString).join(', ')})` : `NOT IN (${SYSTEM_DBS.map(myString).join(', ')})`;
  const rows = await query(
    tools.client,
    conn,
    `SELECT 'version', VERSION(), NULL;
     SELECT 'rows', CONCAT(TABLE_SCHEMA, '.', TABLE_NAME), TABLE_ROWS FROM information_schema.TABLES
       WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA ${scopeSql} ORDER BY TABLE_ROWS DESC, 2 LIMIT 1000;
     SELECT 'count', COUNT(*), NULL FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA ${scopeSql};`,
    'checking the server',
  );
  const serverVersion = rows.find((r) => r[0] === 'version')?.[1] ?? 'unknown';
  const rowEstimates: Record<string, number> = {};
  for (const r of rows) if (r[0] === 'rows' && r[1]) rowEstimates[r[1]] = Number(r[2] ?? 0);
  const tableCount = Number(rows.find((r) => r[0] === 'count')?.[1] ?? 0);
  const toolName = tools.dump.split('/').pop()!;
  const tv = await toolVersion(tools.dump);

  // (the dump tools have no connect timeout option; the probe and query above already reached the server)
  const tap = o.binlog ? new BinlogCoordinateTap(binlogArchiveName(o, ctx.name)) : undefined;
  const run = spawnTool(tools.dump, [...connArgs(conn), ...mysqlDumpArgs(o)], {
    tool: toolName,
    env: myEnv(conn),
    signal: ctx.signal,
    ...(tap ? { transform: tap } : {}),
    onSuccess: () => ({ rowEstimates, tableCount, ...(tap ? { binlog: tap.result() } : {}) }),
  });
  return {
    stream: run.stream,
    done: run.done,
    meta: {
      kind: 'mysql',
      ...(ctx.name ? { name: ctx.name } : {}),
      ...(o.database ? { database: o.database } : {}),
      databases: scope ?? 'all',
      host: o.socket ?? o.host,
      ...(o.socket ? {} : { port: o.port }),
      serverVersion,
      tool: toolName,
      toolVersion: tv,
      format: 'sql',
    },
    filename: o.filename ?? `${o.database ? safeFilename(o.database) : o.databases ? 'databases' : 'all-databases'}.sql`,
    abort: run.abort,
  };
}

export interface MysqlRestoreTarget {
  /** Database to restore a single-database dump into (default: the source's database). Created if missing. */
  database?: string;
  host?: string;
  port?: number;
  socket?: string;
  user?: string;
  passwordEnv?: string;
  passwordFile?: string;
  /** Drop and recreate the target database(s) first. */
  clean?: boolean;
  /** Restore into non-empty database(s) as they are (a dump of all databases always needs this). */
  force?: boolean;
  /** Create the target database when missing (default true). */
  createDatabase?: boolean;
  /** Character set of a database created for the restore (default utf8mb4). */
  charset?: string;
  signal?: AbortSignal;
}

async function dbState(client: string, c: MyConn, dbs: string[]): Promise<Map<string, number>> {
  // database -> number of objects (tables, views, routines, events); absent = does not exist
  const list = dbs.map(myString).join(', ');
  const rows = await query(
    client,
    c,
    `SELECT s.SCHEMA_NAME,
       (SELECT COUNT(*) FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = s.SCHEMA_NAME)
       + (SELECT COUNT(*) FROM information_schema.ROUTINES r WHERE r.ROUTINE_SCHEMA = s.SCHEMA_NAME)
       + (SELECT COUNT(*) FROM information_schema.EVENTS e WHERE e.EVENT_SCHEMA = s.SCHEMA_NAME)
     FROM information_schema.SCHEMATA s WHERE s.SCHEMA_NAME IN (${list});`,
    'checking the target database',
  );
  return new Map(rows.map((r) => [r[0]!, Number(r[1])]));
}

/**
 * Restore a dump made by dumpMysql by streaming it into the `mariadb`/`mysql`
 * client. See MysqlRestoreTarget for the safety rules.
 */
export async function restoreMysql(input: MysqlSourceInput | MysqlSourceOptions, stream: Readable, target: MysqlRestoreTarget = {}): Promise<RestoreResult> {
  const started = Date.now();
  const o = parseOptions(mysqlSourceSchema, input, 'mysql source');
  const password =
    target.passwordEnv !== undefined || target.passwordFile !== undefined
      ? resolvePassword({ ...(target.passwordEnv ? { passwordEnv: target.passwordEnv } : {}), ...(target.passwordFile ? { passwordFile: target.passwordFile } : {}) }, 'mysql restore target')
      : resolvePassword(o, 'mysql source');
  const conn = connFrom(
    { host: target.host ?? o.host, port: target.port ?? o.port, user: target.user ?? o.user, connectTimeout: o.connectTimeout, ...((target.socket ?? o.socket) ? { socket: target.socket ?? o.socket } : {}) },
    password,
  );
  const charset = target.charset ?? 'utf8mb4';
  if (!/^\w+$/.test(charset)) throw new ConfigError(`invalid character set name "${charset}"`);
  const { client } = findClients(o.binDir, false);
  const clientName = client.split('/').pop()!;
  if (!conn.socket) await probeTcp(conn.host, conn.port, 'MySQL/MariaDB', conn.connectTimeout * 1000);

  const clientArgs = [...connArgs(conn), `--connect-timeout=${conn.connectTimeout}`, '--default-character-set=utf8mb4', '--binary-mode', '--max-allowed-packet=1073741824'];
  if (o.database) {
    const database = target.database ?? o.database;
    const state = await dbState(client, conn, [database]);
    const objects = state.get(database);
    let created = false;
    if (objects === undefined) {
      if (target.createDatabase === false) throw new LifeboatError(`target database "${database}" does not exist`);
      await query(client, conn, `CREATE DATABASE ${myIdent(database)} CHARACTER SET ${charset};`, 'creating the target database');
      created = true;
    } else if (objects > 0) {
      if (target.clean) {
        await query(client, conn, `DROP DATABASE ${myIdent(database)}; CREATE DATABASE ${myIdent(database)} CHARACTER SET ${charset};`, 'recreating the target database');
      } else if (!target.force) {
        throw new LifeboatError(
          `refusing to restore into database "${database}" at ${where(conn)}: it is not empty (${objects} tables/views/routines/events); ` +
            'restore into a new database name, or use clean (drop and recreate it) or force (restore on top)',
          ExitCode.USAGE,
        );
      }
    }
    try {
      await runWithInput(client, [...clientArgs, `--database=${database}`], stream, { tool: clientName, env: myEnv(conn), context: `restoring into database "${database}"`, signal: target.signal });
    } catch (err) {
      if (created) {
        await query(client, conn, `DROP DATABASE IF EXISTS ${myIdent(database)};`, 'dropping the incomplete database').catch(() => {});
        if (err instanceof Error) err.message += `\n(the database "${database}" created for this restore was dropped again)`;
      }
      throw err;
    }
    const after = await query(client, conn, `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ${myString(database)} AND TABLE_TYPE = 'BASE TABLE';`, 'counting restored tables');
    return { durationMs: Date.now() - started, checks: { database, created, tables: Number(after[0]?.[0] ?? 0) } };
  }

  // A dump of several/all databases names its databases itself (CREATE DATABASE / USE).
  if (target.database) {
    throw new ConfigError('this source dumps several databases, which restore under their own names: a target database name cannot be given (dump a single database to restore under another name)');
  }
  if (!o.databases) {
    if (!target.force) {
      throw new LifeboatError(
        `refusing to restore a dump of all databases into ${where(conn)} without force: it recreates every database it contains (including the mysql system database with users and grants)`,
        ExitCode.USAGE,
      );
    }
    if (target.clean) throw new ConfigError('clean cannot be used with a dump of all databases (it would drop the system databases)');
  } else {
    const state = await dbState(client, conn, o.databases);
    const busy = o.databases.filter((d) => (state.get(d) ?? 0) > 0);
    if (busy.length && target.clean) {
      await query(client, conn, busy.map((d) => `DROP DATABASE ${myIdent(d)};`).join('\n'), 'dropping the target databases');
    } else if (busy.length && !target.force) {
      throw new LifeboatError(
        `refusing to restore: database(s) ${busy.map((d) => `"${d}"`).join(', ')} at ${where(conn)} are not empty; use clean (drop them first) or force (restore on top)`,
        ExitCode.USAGE,
      );
    }
  }
  await runWithInput(client, clientArgs, stream, { tool: clientName, env: myEnv(conn), context: 'restoring databases', signal: target.signal });
  const dbs = o.databases ?? null;
  const after = await query(
    client,
    conn,
    `SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND TABLE_SCHEMA ${dbs ? `IN (${dbs.map(myString).join(', ')})` : `NOT IN (${SYSTEM_DBS.map(myString).join(', ')})`};`,
    'counting restored tables',
  );
  return { durationMs: Date.now() - started, checks: { databases: dbs ?? 'all', tables: Number(after[0]?.[0] ?? 0) } };
}
