import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import {
  findExecutable,
  parseOptions,
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
import { mongodbSourceSchema, mongodbUserInfo as userInfo, uriHasPassword } from '../../config/sources.js';

/**
 * MongoDB source.
 *
 * Backup: `mongodump --archive` (the archive on stdout, uncompressed so the
 * repository deduplicates it). Restore: `mongorestore --archive` reading stdin.
 *
 * Secrets: the connection string must not contain a password. The password
 * (passwordEnv / passwordFile) and the URI are written to a YAML file that
 * mongodump/mongorestore read with `--config` (documented keys: uri,
 * password); the file is created 0600 in a private 0700 directory and removed
 * as soon as the tool exits. Nothing secret is on the command line.
 *
 * Restore safety: mongorestore inserts into existing collections, so before
 * restoring into a database we check it is empty with mongosh (connection
 * string in a private 0600 script file); without mongosh, restoring without
 * `clean` (mongorestore --drop) or `force` is refused because emptiness
 * cannot be verified.
 */

export type MongodbSourceOptions = z.output<typeof mongodbSourceSchema>;
export type MongodbSourceInput = z.input<typeof mongodbSourceSchema>;

const TOOLS_HINT = 'install MongoDB Database Tools (https://www.mongodb.com/try/download/database-tools) or set binDir';

/** A form of the URI that is safe to record (user name and query removed). */
export function redactUri(uri: string): string {
  return uri.replace(/^(mongodb(?:\+srv)?:\/\/)[^/?#]*@/, '$1').replace(/\?.*$/, '');
}

/** The database name in the URI path, if any. */
export function uriDatabase(uri: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]+)/.exec(uri);
  return m ? decodeURIComponent(m[1]!) : undefined;
}

/** YAML for mongodump/mongorestore --config (JSON strings are valid YAML double-quoted scalars). */
export function mongoConfigYaml(uri: string, password?: string): string {
  return `uri: ${JSON.stringify(uri)}\n${password !== undefined ? `password: ${JSON.stringify(password)}\n` : ''}`;
}

/** Write the --config file 0600 inside a fresh 0700 directory; `remove` deletes both. */
export async function writeMongoConfig(uri: string, password?: string, dir = tmpdir()): Promise<{ path: string; remove: () => Promise<void> }> {
  const work = await fsp.mkdtemp(path.join(dir, 'lifeboat-mongo-'));
  await fsp.chmod(work, 0o700);
  const file = path.join(work, 'config.yaml');
  await fsp.writeFile(file, mongoConfigYaml(uri, password), { mode: 0o600, flag: 'wx' });
  return { path: file, remove: () => fsp.rm(work, { recursive: true, force: true }) };
}

/** mongodump arguments; the URI and password are in the --config file. */
export function mongodumpArgs(o: MongodbSourceOptions, configPath: string): string[] {
  const args = [`--config=${configPath}`, '--archive'];
  if (o.database) args.push(`--db=${o.database}`);
  if (o.collection) args.push(`--collection=${o.collection}`);
  for (const c of o.excludeCollections) args.push(`--excludeCollection=${c}`);
  if (o.oplog) args.push('--oplog');
  if (o.readPreference) args.push(`--readPreference=${o.readPreference}`);
  args.push(...o.extraArgs);
  return args;
}

export interface MongodbRestoreTarget {
  /** Restore a single-database dump under this database name (mongorestore --nsFrom/--nsTo). */
  database?: string;
  /** Connection string of the target (default: the source's), without a password. */
  uri?: string;
  passwordEnv?: string;
  passwordFile?: string;
  /** Drop each collection before restoring it (mongorestore --drop). */
  clean?: boolean;
  /** Restore into a non-empty database (or without mongosh to check it). */
  force?: boolean;
  /** Restore the oplog captured with `oplog: true` (mongorestore --oplogReplay). */
  oplogReplay?: boolean;
  signal?: AbortSignal;
}

/** mongorestore arguments; the URI and password are in the --config file. */
export function mongorestoreArgs(o: MongodbSourceOptions, target: MongodbRestoreTarget, configPath: string): string[] {
  const args = [`--config=${configPath}`, '--archive', '--stopOnError'];
  if (target.clean) args.push('--drop');
  if (target.oplogReplay) args.push('--oplogReplay');
  if (o.database) {
    const to = target.database ?? o.database;
    args.push(`--nsInclude=${o.database}.*`);
    if (to !== o.database) args.push(`--nsFrom=${o.database}.*`, `--nsTo=${to}.*`);
  } else if (target.database) {
    throw new ConfigError('this source dumps all databases, which restore under their own names: a target database name cannot be given');
  }
  return args;
}

/** Insert a password into a connection string (only ever written to a 0600 file). */
function uriWithPassword(uri: string, password: string): string {
  const m = /^(mongodb(?:\+srv)?:\/\/)([^/?#@]*)@(.*)$/.exec(uri);
  if (!m) throw new ConfigError('the connection string names no user (mongodb://USER@host/...), so the password cannot be used');
  return `${m[1]}${m[2]}:${encodeURIComponent(password)}@${m[3]}`;
}

/** Start mongodump with the archive on stdout. */
export async function dumpMongodb(input: MongodbSourceInput | MongodbSourceOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const what = `mongodb source${ctx.name ? ` ${ctx.name}` : ''}`;
  const o = parseOptions(mongodbSourceSchema, input, what);
  const password = resolvePassword(o, what);
  if (password !== undefined && !userInfo(o.uri)) throw new ConfigError(`${what}: a password is configured but the connection string names no user (mongodb://USER@host/...)`);
  const tool = requireTool('mongodump', TOOLS_HINT, o.binDir);
  const tv = await toolVersion(tool);
  const cfg = await writeMongoConfig(o.uri, password);
  let run;
  try {
    run = spawnTool(tool, mongodumpArgs(o, cfg.path), { tool: 'mongodump', signal: ctx.signal, onExit: cfg.remove });
  } catch (err) {
    await cfg.remove();
    throw err;
  }
  return {
    stream: run.stream,
    done: run.done,
    meta: {
      kind: 'mongodb',
      ...(ctx.name ? { name: ctx.name } : {}),
      ...(o.database ? { database: o.database } : {}),
      uri: redactUri(o.uri),
      tool: 'mongodump',
      toolVersion: tv,
      format: 'archive',
      ...(o.oplog ? { oplog: true } : {}),
    },
    filename: o.filename ?? `${o.database ? safeFilename(o.database) : 'all-databases'}.archive`,
    abort: run.abort,
  };
}

/** Collections in `database`, via mongosh (the connection string with password goes in a 0600 script file). */
async function listCollections(mongosh: string, uri: string, password: string | undefined, database: string): Promise<string[]> {
  const full = password !== undefined ? uriWithPassword(uri, password) : uri;
  const work = await fsp.mkdtemp(path.join(tmpdir(), 'lifeboat-mongosh-'));
  try {
    await fsp.chmod(work, 0o700);
    const script = path.join(work, 'check.js');
    await fsp.writeFile(
      script,
      `const c = connect(${JSON.stringify(full)});\nprint(JSON.stringify(c.getSiblingDB(${JSON.stringify(database)}).getCollectionNames()));\n`,
      { mode: 0o600, flag: 'wx' },
    );
    const r = await runCapture(mongosh, ['--nodb', '--quiet', script], { tool: 'mongosh', timeoutMs: 60_000, context: 'checking the target database' });
    const line = r.stdout.trim().split('\n').pop() ?? '[]';
    return JSON.parse(line) as string[];
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
  }
}

/** Stream an archive into mongorestore. */
export async function restoreMongodb(input: MongodbSourceInput | MongodbSourceOptions, stream: Readable, target: MongodbRestoreTarget = {}): Promise<RestoreResult> {
  const started = Date.now();
  const o = parseOptions(mongodbSourceSchema, input, 'mongodb source');
  const uri = target.uri ?? o.uri;
  if (uriHasPassword(uri)) throw new ConfigError('the target connection string must not contain a password: use passwordEnv or passwordFile');
  const password =
    target.passwordEnv !== undefined || target.passwordFile !== undefined
      ? resolvePassword({ ...(target.passwordEnv ? { passwordEnv: target.passwordEnv } : {}), ...(target.passwordFile ? { passwordFile: target.passwordFile } : {}) }, 'mongodb restore target')
      : resolvePassword(o, 'mongodb source');
  const tool = requireTool('mongorestore', TOOLS_HINT, o.binDir);
  const dbName = target.database ?? o.database;
  const args = (cfgPath: string): string[] => mongorestoreArgs(o, target, cfgPath);
  args('x'); // validate the combination before touching anything
  if (!target.clean && !target.force) {
    const mongosh = o.binDir ? findExecutable(path.join(o.binDir, 'mongosh')) : findExecutable('mongosh');
    if (!mongosh) {
      throw new LifeboatError('cannot check that the target is empty: mongosh not found in PATH; install mongosh, or restore with clean (drop the restored collections first) or force', ExitCode.USAGE);
    }
    if (!dbName) throw new LifeboatError('restoring a dump of all databases needs clean or force', ExitCode.USAGE);
    const existing = await listCollections(mongosh, uri, password, dbName);
    if (existing.length) {
      throw new LifeboatError(`refusing to restore into database "${dbName}": it is not empty (${existing.length} collections); restore into a new database name, or use clean or force`, ExitCode.USAGE);
    }
  }
  const cfg = await writeMongoConfig(uri, password);
  try {
    await runWithInput(tool, args(cfg.path), stream, { tool: 'mongorestore', ...(target.signal ? { signal: target.signal } : {}) });
  } finally {
    await cfg.remove();
  }
  return { durationMs: Date.now() - started, checks: { ...(dbName ? { database: dbName } : {}) } };
}
