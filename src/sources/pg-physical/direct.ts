import { promises as fsp, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import type pg from 'pg';
import { LifeboatError } from '../../errors.js';
import { probeTcp, type SourceContext } from '../proc.js';
import type { DumpHandle, ToolResult } from '../types.js';
import type { z } from 'zod';
import type { pgPhysicalSourceSchema } from '../../config/sources.js';
import { baseBackupFacts, baseBackupMeta, TarPeek } from './backup-facts.js';
import { pgDataTar, type PgDataTarStats } from './pgdata-tar.js';
import { connectPg, pgSsl } from '../../util/pg-client.js';

/**
 * The direct base backup (source option `dataDir`): Lifeboat runs on the
 * database host, as pgBackRest does, and reads the data directory itself
 * between pg_backup_start and pg_backup_stop, on one session it holds open
 * (PostgreSQL's non-exclusive low-level API). The files stream into the
 * repository as the same tar pg_basebackup -Ft -X none would send
 * (pgdata-tar.ts), ending with the backup_label (and tablespace_map)
 * pg_backup_stop returns; so the snapshot, its restore (`pg restore`, drills)
 * and WAL retention are the same as for pg_basebackup's.
 *
 * Measured on a 494 MB pgbench cluster (docs/benchmarks.md): no walsender, no
 * pg_basebackup process and no copies through a socket and a pipe.
 *
 * Every call has a deadline: connecting (connectTimeout), pg_backup_start
 * (its checkpoint) and pg_backup_stop (startTimeout / stopTimeout). Ending the
 * session (abort, an error, the process dying) ends the backup on the server.
 */

type PgClient = pg.Client;
type PgPhysicalOptions = z.output<typeof pgPhysicalSourceSchema>;

export interface DirectFacts {
  serverVersion: string;
  serverVersionNum: number;
  walSegmentSize: number;
  /** from pg_control_system() when the role may read it, else from dataDir's global/pg_control */
  systemIdentifier: string;
}

async function connect(o: PgPhysicalOptions, password: string | undefined, queryTimeoutMs: number): Promise<PgClient> {
  try {
    return await connectPg({
      host: o.host,
      port: o.port,
      user: o.user,
      database: 'postgres',
      ...(password !== undefined ? { password } : {}),
      ssl: pgSsl(o.sslmode),
      connectionTimeoutMillis: o.connectTimeout * 1000,
      query_timeout: queryTimeoutMs,
      application_name: 'lifeboat base backup',
    });
  } catch (err) {
    throw new LifeboatError(`cannot connect to PostgreSQL at ${o.host}:${o.port} as ${o.user}: ${(err as Error).message}`);
  }
}

/** The data directory's system identifier: the first 8 bytes of global/pg_control. */
async function controlSystemId(dataDir: string): Promise<string> {
  const fh = await fsp.open(path.join(dataDir, 'global', 'pg_control'), 'r').catch((err: NodeJS.ErrnoException) => {
    throw new LifeboatError(`dataDir ${dataDir}: cannot read global/pg_control (${err.code ?? err.message}); is it the cluster's data directory, readable by this user?`, 2);
  });
  try {
    const b = Buffer.alloc(8);
    const { bytesRead } = await fh.read(b, 0, 8, 0);
    if (bytesRead !== 8) throw new LifeboatError(`dataDir ${dataDir}: global/pg_control is too short`, 2);
    return b.readBigUInt64LE(0).toString();
  } finally {
    await fh.close();
  }
}

/** Checks before the backup starts: the server archives, has no tablespaces, and dataDir is its data directory. */
export async function checkDirectTarget(client: PgClient, dataDir: string): Promise<DirectFacts> {
  const q = async <T extends Record<string, unknown>>(sql: string) => (await client.query<T>(sql)).rows[0]!;
  const basic = await q<{ v: string; n: string; seg: string; am: string }>(
    "SELECT current_setting('server_version') AS v, current_setting('server_version_num') AS n, " +
      "(SELECT setting FROM pg_settings WHERE name = 'wal_segment_size') AS seg, current_setting('archive_mode') AS am",
  );
  if (basic.am === 'off') {
    throw new LifeboatError("archive_mode is off: a base backup without archived WAL cannot be restored. Set archive_mode = on and archive_command = 'lifeboat wal-push %p …' first (docs/pitr.md)");
  }
  const n = Number(basic.n);
  if (!(n >= 100000)) throw new LifeboatError(`PostgreSQL ${basic.v}: the direct base backup needs PostgreSQL 10 or later`);
  const inRecovery = (await q<{ r: boolean }>('SELECT pg_is_in_recovery() AS r')).r;
  if (inRecovery) throw new LifeboatError('the server is a standby: take the direct base backup on the primary (or leave dataDir unset to use pg_basebackup)');
  const spc = Number((await q<{ c: string }>("SELECT count(*)::text AS c FROM pg_tablespace WHERE spcname NOT IN ('pg_default', 'pg_global')")).c);
  if (spc > 0) throw new LifeboatError(`the cluster has ${spc} tablespace(s): the direct base backup copies one data directory; leave dataDir unset to use pg_basebackup`);
  let sysid: string | undefined;
  try {
    sysid = (await q<{ s: string }>('SELECT system_identifier::text AS s FROM pg_control_system()')).s;
  } catch {
    /* not allowed for this role */
  }
  let serverDir: string | undefined;
  try {
    serverDir = (await q<{ d: string }>("SELECT current_setting('data_directory') AS d")).d;
  } catch {
    /* superuser or pg_read_all_settings only */
  }
  const fileId = await controlSystemId(dataDir);
  const real = (p: string) => {
    try {
      return realpathSync(p);
    } catch {
      return path.resolve(p);
    }
  };
  if (sysid !== undefined && fileId !== sysid) {
    throw new LifeboatError(`dataDir ${dataDir} belongs to another cluster (system identifier ${fileId}; the server at this address has ${sysid})`, 2);
  }
  if (serverDir !== undefined && real(serverDir) !== real(dataDir)) {
    throw new LifeboatError(`dataDir ${dataDir} is not the server's data directory (${serverDir})`, 2);
  }
  if (sysid === undefined && serverDir === undefined) {
    throw new LifeboatError(`cannot tell whether dataDir ${dataDir} is this server's data directory: user ${String(client.user)} may read neither pg_control_system() nor data_directory (grant pg_read_all_settings)`, 2);
  }
  return { serverVersion: basic.v, serverVersionNum: n, walSegmentSize: Number(basic.seg) || 16 * 1024 * 1024, systemIdentifier: sysid ?? fileId };
}

export async function directBaseBackup(o: PgPhysicalOptions, password: string | undefined, ctx: SourceContext = {}): Promise<DumpHandle> {
  const dataDir = path.resolve(o.dataDir!);
  if (!o.host.startsWith('/')) await probeTcp(o.host, o.port, 'PostgreSQL', o.connectTimeout * 1000);
  const client = await connect(o, password, o.startTimeout * 1000);
  // An abort (a job's timeout, shutdown) ends the session at once, even while
  // pg_backup_start waits for its checkpoint or pg_backup_stop for the server:
  // their queries fail, and the server ends the backup with the session.
  const ac = new AbortController();
  const onAbort = () => {
    ac.abort(ctx.signal?.reason);
    void client.end().catch(() => {});
  };
  ctx.signal?.addEventListener('abort', onAbort, { once: true });
  if (ctx.signal?.aborted) onAbort();
  const fail = async (what: string, err: unknown): Promise<never> => {
    ctx.signal?.removeEventListener('abort', onAbort);
    await client.end().catch(() => {});
    if (ac.signal.aborted) throw new LifeboatError(`base backup aborted (${what}); no backup was taken`, 130);
    throw err instanceof LifeboatError ? err : new LifeboatError(`${what} failed: ${(err as Error).message}`);
  };
  let facts!: DirectFacts;
  try {
    facts = await checkDirectTarget(client, dataDir);
  } catch (err) {
    await fail('checking the server', err);
  }
  const label = `lifeboat ${new Date().toISOString()}`;
  const started = Date.now();
  const v15 = facts.serverVersionNum >= 150000;
  try {
    await client.query(v15 ? 'SELECT pg_backup_start($1, true)' : 'SELECT pg_start_backup($1, true, false)', [label]);
  } catch (err) {
    await fail(v15 ? 'pg_backup_start' : 'pg_start_backup', err);
  }
  const peek = new TarPeek();
  const stats: PgDataTarStats = { files: 0, vanished: 0 };
  let stop: { lsn: string; labelfile: string; spcmapfile: string | null } | undefined;
  let streamBytes = 0;
  const tar = pgDataTar(
    dataDir,
    {
      signal: ac.signal,
      finish: async () => {
        try {
          const r = await client.query<{ lsn: string; labelfile: string; spcmapfile: string | null }>({
            text: v15 ? 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_backup_stop(false)' : 'SELECT lsn::text AS lsn, labelfile, spcmapfile FROM pg_stop_backup(false, false)',
            query_timeout: o.stopTimeout * 1000,
          } as pg.QueryConfig);
          stop = r.rows[0];
        } catch (err) {
          if (ac.signal.aborted) throw new LifeboatError('base backup aborted (pg_backup_stop); no backup was taken', 130);
          throw new LifeboatError(`${v15 ? 'pg_backup_stop' : 'pg_stop_backup'} failed: ${(err as Error).message}`);
        }
        if (!stop?.labelfile) throw new LifeboatError('pg_backup_stop returned no backup_label');
        const out = [{ name: 'backup_label', body: Buffer.from(stop.labelfile) }];
        if (stop.spcmapfile) out.push({ name: 'tablespace_map', body: Buffer.from(stop.spcmapfile) });
        return out;
      },
    },
    stats,
  );
  let settle!: { resolve: (r: ToolResult) => void; reject: (e: unknown) => void };
  const done = new Promise<ToolResult>((resolve, reject) => (settle = { resolve, reject }));
  done.catch(() => {});
  let settled = false;
  async function* run(): AsyncGenerator<Buffer> {
    try {
      for await (const b of tar) {
        peek.observe(b);
        streamBytes += b.length;
        yield b;
      }
      settle.resolve({
        exitCode: 0,
        durationMs: Date.now() - started,
        streamBytes,
        extra: {
          ...baseBackupFacts({
            archive: o.archive,
            systemIdentifier: peek.facts.systemIdentifier ?? facts.systemIdentifier,
            backupLabel: stop!.labelfile,
            endLsn: stop!.lsn,
            walSegmentSize: facts.walSegmentSize,
            started,
            pgVersion: peek.facts.pgVersion,
            tablespaceMap: !!stop!.spcmapfile,
          }),
          files: stats.files,
          ...(stats.vanished ? { filesVanished: stats.vanished } : {}),
        },
      });
      settled = true;
    } catch (err) {
      settled = true;
      // the reader went away (the stream was destroyed): say so, not "The operation was aborted"
      settle.reject((err as Error)?.name === 'AbortError' ? new LifeboatError('the base backup stream was closed before its end; no backup was taken') : err);
      throw err;
    } finally {
      // the reader stopped early (destroyed): no backup was taken
      if (!settled) {
        settled = true;
        settle.reject(new LifeboatError('the base backup stream was closed before its end; no backup was taken'));
      }
      ctx.signal?.removeEventListener('abort', onAbort);
      // ends the backup on the server if pg_backup_stop did not run
      await client.end().catch(() => {});
    }
  }
  const stream = Readable.from(run(), { objectMode: false, highWaterMark: 1 });
  // destroyed before the first read: the generator never ran, so its finally did not either
  stream.once('close', () => {
    if (settled) return;
    settled = true;
    settle.reject(new LifeboatError('the base backup stream was closed before its end; no backup was taken'));
    ctx.signal?.removeEventListener('abort', onAbort);
    void client.end().catch(() => {});
  });
  return {
    stream,
    done,
    meta: {
      ...baseBackupMeta(o, ctx.name),
      serverVersion: facts.serverVersion,
      tool: 'lifeboat (direct: pg_backup_start/pg_backup_stop)',
      method: 'direct',
      dataDir,
      format: 'tar',
    },
    filename: o.filename ?? 'base.tar',
    abort: () => {
      ac.abort(new Error('aborted'));
      stream.destroy();
      void client.end().catch(() => {});
    },
  };
}
