import { z } from 'zod';
import { ARCHIVE_RE, DEFAULT_ARCHIVE } from '../repo/wal-names.js';
import { filesSourceSchema } from './schema.js';

/**
 * The `sources:` entries of lifeboat.yaml: one schema per source kind and their
 * union (discriminated by `kind`). The dump and restore code of each kind lives
 * in src/sources/ (registered in src/sources/registry.ts); the files
 * source's schema is in ./schema.ts.
 */

// --- fields shared by the kinds ------------------------------------------------

/** Fields every source kind accepts, as in the files source. */
export const commonSourceFields = {
  tags: z.array(z.string()).default([]).describe('tags added to every snapshot of this source'),
  repository: z.string().optional().describe('name of the repository (in lifeboat.yaml) this source backs up to; default: defaults.repository'),
  filename: z
    .string()
    .regex(/^[^/\0]+$/, 'a plain file name without "/"')
    .optional()
    .describe('name of the dump file inside the snapshot (default depends on the kind, e.g. "<database>.pgdump")'),
};

/** Password fields for database sources: the secret itself is never in the config. */
export const passwordFields = {
  passwordEnv: z.string().min(1).optional().describe('name of an environment variable holding the password'),
  passwordFile: z.string().min(1).optional().describe('path of a file holding the password (a trailing newline is ignored)'),
};

export function refinePassword(o: { passwordEnv?: string; passwordFile?: string }, ctx: z.RefinementCtx): void {
  if (o.passwordEnv !== undefined && o.passwordFile !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['passwordFile'], message: 'give either passwordEnv or passwordFile, not both' });
  }
}

// --- postgres (logical dumps) and postgres-physical -----------------------------

/** libpq sslmode values (PGSSLMODE), shared with the physical source. */
export const sslModes = ['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full'] as const;

export const postgresSourceSchema = z
  .object({
    kind: z.literal('postgres'),
    host: z.string().min(1).default('127.0.0.1').describe('server host name or IP address, or a Unix socket directory (starting with "/")'),
    port: z.number().int().min(1).max(65535).default(5432).describe('server port'),
    user: z.string().min(1).default('postgres').describe('database user'),
    database: z
      .string()
      .min(1)
      .optional()
      .describe('database to dump (required unless globals: true; with globals it is the database pg_dumpall connects to, default "postgres")'),
    ...passwordFields,
    sslmode: z.enum(sslModes).optional().describe('libpq sslmode (PGSSLMODE)'),
    schemas: z.array(z.string().min(1)).default([]).describe('dump only these schemas (pg_dump --schema, patterns allowed)'),
    excludeSchemas: z.array(z.string().min(1)).default([]).describe('skip these schemas (pg_dump --exclude-schema)'),
    tables: z.array(z.string().min(1)).default([]).describe('dump only these tables (pg_dump --table, patterns allowed)'),
    excludeTables: z.array(z.string().min(1)).default([]).describe('skip these tables (pg_dump --exclude-table)'),
    excludeTableData: z.array(z.string().min(1)).default([]).describe('dump the definition but not the rows of these tables (pg_dump --exclude-table-data)'),
    largeObjects: z
      .boolean()
      .optional()
      .describe('include large objects even when schemas/tables are selected (pg_dump --blobs); they are always included in a whole-database dump'),
    globals: z.boolean().default(false).describe('dump roles and tablespaces (pg_dumpall --globals-only, plain SQL) instead of a database'),
    binDir: z.string().min(1).optional().describe('directory holding pg_dump/pg_restore/psql (e.g. /usr/lib/postgresql/16/bin); default: PATH'),
    connectTimeout: z.number().int().min(1).max(600).default(10).describe('seconds to wait for the server when connecting'),
    extraArgs: z.array(z.string()).default([]).describe('extra arguments appended to the pg_dump / pg_dumpall command line'),
    ...commonSourceFields,
  })
  .strict()
  .superRefine((o, ctx) => {
    refinePassword(o, ctx);
    if (!o.globals && !o.database) ctx.addIssue({ code: 'custom', path: ['database'], message: 'database is required (unless globals: true)' });
    if (o.globals && (o.schemas.length || o.excludeSchemas.length || o.tables.length || o.excludeTables.length || o.excludeTableData.length)) {
      ctx.addIssue({ code: 'custom', path: ['globals'], message: 'schema/table selection does not apply to globals: true' });
    }
  });

export const pgPhysicalSourceSchema = z
  .object({
    kind: z.literal('postgres-physical'),
    host: z.string().min(1).default('127.0.0.1').describe('server host name or IP address, or a Unix socket directory'),
    port: z.number().int().min(1).max(65535).default(5432).describe('server port'),
    user: z.string().min(1).default('postgres').describe('user with the REPLICATION attribute (pg_basebackup), or one allowed to run pg_backup_start and pg_backup_stop (dataDir)'),
    ...passwordFields,
    sslmode: z.enum(sslModes).optional().describe('libpq sslmode (PGSSLMODE)'),
    archive: z
      .string()
      .regex(ARCHIVE_RE)
      .default(DEFAULT_ARCHIVE)
      .describe('WAL archive name this cluster pushes to (wal-push --archive); one per cluster sharing a repository'),
    binDir: z.string().min(1).optional().describe('directory holding pg_basebackup/psql; default: PATH'),
    connectTimeout: z.number().int().min(1).max(600).default(10).describe('seconds to wait for the server when connecting'),
    maxRate: z.string().regex(/^\d+[kM]?$/).optional().describe('pg_basebackup --max-rate (e.g. "50M")'),
    dataDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "the cluster's data directory, when Lifeboat runs on the database host: base backups read it directly between pg_backup_start and pg_backup_stop " +
          '(needs read access to it: run as the postgres user or root; no tablespaces) instead of streaming it through pg_basebackup',
      ),
    startTimeout: z.number().int().min(1).max(86_400).default(3600).describe('direct base backup: seconds pg_backup_start (its checkpoint) may take'),
    stopTimeout: z.number().int().min(1).max(86_400).default(600).describe('direct base backup: seconds pg_backup_stop may take'),
    ...commonSourceFields,
  })
  .strict()
  .superRefine((o, ctx) => {
    refinePassword(o, ctx);
    if (o.dataDir && o.maxRate) ctx.addIssue({ code: 'custom', path: ['maxRate'], message: 'maxRate limits pg_basebackup; it does not apply with dataDir (the direct base backup)' });
  });

// --- mysql / mariadb -------------------------------------------------------------

/** The `binlog` section of a mysql source (point-in-time recovery; src/sources/mysql/binlog.ts). */
export const mysqlBinlogSchema = z
  .object({
    archive: z.boolean().default(false).describe('the daemon streams this server\'s binary logs into the repository (mariadb-binlog --read-from-remote-server --raw --stop-never)'),
    name: z.string().regex(ARCHIVE_RE, 'letters, digits, . _ -; at most 64').optional().describe('binlog archive name, one per server (default: the source name)'),
    spoolDir: z.string().min(1).optional().describe('directory for binary logs being streamed (default: a directory under the system temp dir)'),
    flushInterval: z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/, 'expected a duration like 30s, 5m, 1h').optional().describe('streaming: FLUSH BINARY LOGS this often (e.g. "5m") so the current binary log is closed and archived; bounds the archive\'s RPO'),
  })
  .strict();

export const mysqlSourceSchema = z
  .object({
    kind: z.literal('mysql'),
    host: z.string().min(1).default('127.0.0.1').describe('server host name or IP address (ignored when socket is given)'),
    port: z.number().int().min(1).max(65535).default(3306).describe('server port'),
    socket: z.string().min(1).optional().describe('Unix socket path, instead of host/port'),
    user: z.string().min(1).default('root').describe('database user'),
    ...passwordFields,
    database: z.string().min(1).optional().describe('dump this one database (restorable under another name)'),
    databases: z.array(z.string().min(1)).min(1).optional().describe('dump these databases (restored under the same names); default: all databases'),
    tables: z.array(z.string().min(1)).default([]).describe('dump only these tables of `database`'),
    excludeTables: z.array(z.string().min(1)).default([]).describe('skip these tables ("table" with `database`, else "database.table")'),
    binDir: z.string().min(1).optional().describe('directory holding mariadb-dump/mariadb (or mysqldump/mysql); default: PATH'),
    connectTimeout: z.number().int().min(1).max(600).default(10).describe('seconds to wait for the server when connecting'),
    extraArgs: z.array(z.string()).default([]).describe('extra arguments appended to the dump command line'),
    binlog: mysqlBinlogSchema.optional().describe('point-in-time recovery (docs/pitr.md): dumps record their binary log coordinates; binary logs are archived into the repository'),
    ...commonSourceFields,
  })
  .strict()
  .superRefine((o, ctx) => {
    refinePassword(o, ctx);
    if (o.database && o.databases) ctx.addIssue({ code: 'custom', path: ['databases'], message: 'give either database or databases, not both' });
    if (o.tables.length && !o.database) ctx.addIssue({ code: 'custom', path: ['tables'], message: 'tables requires database (a single database)' });
    if (!o.database) {
      for (const [i, t] of o.excludeTables.entries()) {
        if (!t.includes('.')) ctx.addIssue({ code: 'custom', path: ['excludeTables', i], message: `"${t}": name the database as "database.table" when dumping several databases` });
      }
    }
  });

// --- redis -------------------------------------------------------------------------

export const redisSourceSchema = z
  .object({
    kind: z.literal('redis'),
    host: z.string().min(1).default('127.0.0.1').describe('server host name or IP address'),
    port: z.number().int().min(1).max(65535).default(6379).describe('server port'),
    user: z.string().min(1).optional().describe('ACL user name (Redis 6+); default: the default user'),
    ...passwordFields,
    binDir: z.string().min(1).optional().describe('directory holding redis-cli / redis-server; default: PATH'),
    connectTimeout: z.number().int().min(1).max(600).default(10).describe('seconds to wait for the server when connecting'),
    ...commonSourceFields,
  })
  .strict()
  .superRefine(refinePassword);

// --- sqlite ------------------------------------------------------------------------

export const sqliteSourceSchema = z
  .object({
    kind: z.literal('sqlite'),
    path: z.string().min(1).describe('path of the SQLite database file'),
    method: z
      .enum(['backup', 'vacuum'])
      .default('backup')
      .describe('"backup": online backup API (page copy, best deduplication); "vacuum": VACUUM INTO (single read transaction, compact copy)'),
    tmpDir: z.string().min(1).optional().describe('directory for the temporary consistent copy (needs room for one copy); default: the system temp directory'),
    integrityCheck: z.boolean().default(true).describe('run PRAGMA integrity_check on the copy before streaming it'),
    rowCounts: z.boolean().default(true).describe('record exact row counts per table (counted on the copy)'),
    busyTimeout: z.number().int().min(0).max(3_600_000).default(30_000).describe('milliseconds to wait for a locked database'),
    ...commonSourceFields,
  })
  .strict();

// --- mongodb -----------------------------------------------------------------------

/** The user-info part of a MongoDB connection string, if any. */
export function mongodbUserInfo(uri: string): string | undefined {
  const m = /^mongodb(?:\+srv)?:\/\/([^/?#]*)@/.exec(uri);
  return m ? m[1] : undefined;
}

export function uriHasPassword(uri: string): boolean {
  return mongodbUserInfo(uri)?.includes(':') ?? false;
}

export const mongodbSourceSchema = z
  .object({
    kind: z.literal('mongodb'),
    uri: z
      .string()
      .regex(/^mongodb(\+srv)?:\/\//, 'expected a mongodb:// or mongodb+srv:// connection string')
      .describe('connection string without a password, e.g. mongodb://backup@db1:27017,db2:27017/?replicaSet=rs0&authSource=admin'),
    ...passwordFields,
    database: z.string().min(1).optional().describe('dump only this database (mongodump --db); default: all databases'),
    collection: z.string().min(1).optional().describe('dump only this collection of `database`'),
    excludeCollections: z.array(z.string().min(1)).default([]).describe('skip these collections of `database`'),
    oplog: z.boolean().default(false).describe('include the oplog for a point-in-time consistent dump of a replica set (whole instance only)'),
    readPreference: z.string().min(1).optional().describe('read preference, e.g. secondaryPreferred'),
    binDir: z.string().min(1).optional().describe('directory holding mongodump/mongorestore/mongosh; default: PATH'),
    extraArgs: z.array(z.string()).default([]).describe('extra arguments for mongodump'),
    ...commonSourceFields,
  })
  .strict()
  .superRefine((o, ctx) => {
    refinePassword(o, ctx);
    if (uriHasPassword(o.uri)) {
      ctx.addIssue({ code: 'custom', path: ['uri'], message: 'the connection string must not contain a password: use passwordEnv or passwordFile' });
    }
    if ((o.collection || o.excludeCollections.length) && !o.database) ctx.addIssue({ code: 'custom', path: ['database'], message: 'collection/excludeCollections require database' });
    if (o.collection && o.excludeCollections.length) ctx.addIssue({ code: 'custom', path: ['excludeCollections'], message: 'give either collection or excludeCollections' });
    if (o.oplog && o.database) ctx.addIssue({ code: 'custom', path: ['oplog'], message: 'oplog requires a dump of the whole instance (no database)' });
  });

// --- command -----------------------------------------------------------------------

const commandLine = z.union([
  z.string().min(1).describe('shell command line, run with /bin/sh -c'),
  z.array(z.string()).min(1, 'the command needs at least the program name').describe('program and arguments, run without a shell'),
]);

export const commandSourceSchema = z
  .object({
    kind: z.literal('command'),
    command: commandLine.describe('command whose stdout is the backup: a string (run with /bin/sh -c) or a list [program, args...]'),
    restoreCommand: commandLine.optional().describe('command that reads the backup from stdin to restore it'),
    cwd: z.string().min(1).optional().describe('working directory of the commands'),
    env: z.record(z.string(), z.string()).default({}).describe('extra environment variables for the commands'),
    ...commonSourceFields,
  })
  .strict();

// --- all kinds -----------------------------------------------------------------------

/** Every source kind's config schema (the dump/restore functions are in src/sources/registry.ts). */
export const sourceSchema = z.discriminatedUnion('kind', [
  filesSourceSchema,
  postgresSourceSchema,
  pgPhysicalSourceSchema,
  mysqlSourceSchema,
  redisSourceSchema,
  sqliteSourceSchema,
  mongodbSourceSchema,
  commandSourceSchema,
]);
export type SourceConfig = z.infer<typeof sourceSchema>;
export type StreamSourceConfig = Exclude<SourceConfig, { kind: 'files' }>;

// --- what each kind restores to ------------------------------------------------------

/**
 * How a kind's snapshots are laid out and where its restore puts them. Callers
 * (CLI, server, runbooks, config checks) decide by these, never by the kind's name:
 *   layout     'tree': a snapshot of directories (restored by the engine's restorer);
 *              'stream': one dump stream (restored by the kind's restore tool, or to stdout).
 *   restoresTo 'directory': a target directory; 'database': a database (name, URL or file);
 *              'stream': the kind's own restore command reads the stream.
 * The backup/restore code of each kind is registered in src/sources/registry.ts.
 */
export interface SourceCapabilities {
  layout: 'tree' | 'stream';
  restoresTo: 'directory' | 'database' | 'stream';
  /** Restores to a point in time (base backup + archived WAL): runbook steps' targetTime; the newest recovery point is the newest archived WAL (drill, monitor). */
  pointInTime?: boolean;
  /** The SQL dialect of the kind's server: runbook `sql` steps and checks against the source run in it; absent: none. */
  sqlDialect?: 'postgres' | 'mysql';
}

export const SOURCE_CAPABILITIES: Record<SourceConfig['kind'], SourceCapabilities> = {
  files: { layout: 'tree', restoresTo: 'directory' },
  postgres: { layout: 'stream', restoresTo: 'database', sqlDialect: 'postgres' },
  'postgres-physical': { layout: 'stream', restoresTo: 'directory', pointInTime: true },
  mysql: { layout: 'stream', restoresTo: 'database', sqlDialect: 'mysql' },
  redis: { layout: 'stream', restoresTo: 'database' },
  sqlite: { layout: 'stream', restoresTo: 'database' },
  mongodb: { layout: 'stream', restoresTo: 'database' },
  command: { layout: 'stream', restoresTo: 'stream' },
};
