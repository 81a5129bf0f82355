import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type mysql from 'mysql2/promise';
import { configPath } from '../../config/paths.js';
import { ConfigError, LifeboatError } from '../../errors.js';
import { myIdent, type MysqlSourceOptions } from './dump.js';
import { mysqlPitrRestore, type MysqlPitrResult, type MysqlPitrTarget } from './binlog.js';
import { startScratchMysql, type ScratchMysql } from './scratch.js';
import { withMysqlSession } from './session.js';
import { resolveSourcePaths } from '../../config/resolve.js';
import type { StreamSourceConfig } from '../../config/sources.js';
import type { DrillCheck, DrillTargetContext, QueryValue, ScratchTarget } from '../scratch.js';

/**
 * The `mysql-pitr` drill target (a mysql source with `binlog:` and a job with
 * `drill.mysqlPitr`): the real point-in-time recovery path, timed end to end.
 * A private mariadbd is initialised on a scratch data directory (Unix socket
 * in that directory only, no TCP, binary logging off), the newest dump before
 * the target is restored into it and the archived binary logs are replayed up
 * to `drill.mysqlPitr.targetTime` (default "latest": the end of the archive).
 * The restore phase therefore measures dump restore + binlog replay: the RTO
 * of a point-in-time restore. Queries run in the source's database on that
 * server. Cleanup stops the server and removes the directory.
 */

export function mysqlPitrTarget(ctx: DrillTargetContext, srcIn: MysqlSourceOptions): ScratchTarget {
  const src = resolveSourcePaths(srcIn as StreamSourceConfig, ctx.cfg) as MysqlSourceOptions;
  if (!src.binlog) throw new ConfigError(`job ${ctx.job}: drill.mysqlPitr needs the mysql source ${ctx.sourceName} to have a binlog: section`);
  if (!src.database) throw new ConfigError(`job ${ctx.job}: drill.mysqlPitr needs a single "database" in source ${ctx.sourceName}`);
  const database = src.database;
  const spec = ctx.drill.mysqlPitr?.targetTime ?? 'latest';
  let target: MysqlPitrTarget = {};
  if (spec !== 'latest') {
    const t = Date.parse(spec);
    if (Number.isNaN(t) || !/(Z|[+-]\d\d:?\d\d)$/i.test(spec.trim())) throw new ConfigError(`job ${ctx.job}: drill.mysqlPitr.targetTime "${spec}": "latest" or a time with a zone, e.g. 2026-11-22T14:30:00Z`);
    target = { time: new Date(t) };
  }
  let dir: string | undefined;
  let server: ScratchMysql | undefined;
  let result: MysqlPitrResult | undefined;

  // the drill's timeout ends a session at once, also while its query runs (session.ts)
  const withConn = <T>(fn: (c: mysql.Connection) => Promise<T>): Promise<T> =>
    withMysqlSession(
      async () =>
        (await import('mysql2/promise')).default.createConnection({
          socketPath: server!.socket,
          user: 'root',
          database,
          connectTimeout: src.connectTimeout * 1000,
          supportBigNumbers: true,
          bigNumberStrings: true,
        }),
      fn,
      ctx.signal,
    );

  return {
    get description() {
      return `private mariadbd in ${dir ?? 'a scratch directory'}, database ${database}, binlogs replayed to ${spec}`;
    },
    async restore() {
      const base = ctx.drill.scratchDir ? configPath(ctx.cfg, ctx.drill.scratchDir) : tmpdir();
      await fsp.mkdir(base, { recursive: true });
      dir = await fsp.mkdtemp(path.join(base, `lifeboat-drill-${ctx.job.replace(/[^A-Za-z0-9_.-]/g, '_')}-`));
      await fsp.chmod(dir, 0o700);
      server = await startScratchMysql({ dir: path.join(dir, 'server'), networking: false, ...(src.binDir ? { binDir: src.binDir } : {}) });
      ctx.log(`drill ${ctx.job}: scratch mariadbd on ${server.socket}`);
      // the scratch server's root has no password: the source's password is not sent there
      const { passwordEnv: _e, passwordFile: _f, ...noPassword } = src;
      result = await mysqlPitrRestore(ctx.repo, ctx.sourceName, noPassword, {
        target,
        // "latest": the drilled (newest) dump; a time: the newest dump before it
        ...(target.time ? {} : { snapshot: ctx.snapshot.id }),
        to: { socket: server.socket, user: 'root', database, createDatabase: true, signal: ctx.signal },
        workDir: dir,
        log: (m) => ctx.log(`drill ${ctx.job}: ${m}`),
      });
    },
    async integrity() {
      if (!result) throw new LifeboatError('nothing was restored');
      const checks: DrillCheck[] = [
        {
          name: 'binlog replay',
          ok: true,
          detail: `dump ${result.snapshot.id.slice(0, 8)} at ${result.coords.file}:${result.coords.pos}, ${result.files.length} binary log(s) (${result.bytes} bytes) replayed without errors to ${spec} in ${result.replayMs} ms`,
        },
      ];
      const tables = await withConn(async (c) => {
        const [rows] = await c.query(`SELECT COUNT(*) AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'`, [database]);
        return Number((rows as Array<{ n: string }>)[0]!.n);
      });
      checks.push({ name: 'tables', ok: tables > 0, detail: `${tables} table(s) in ${myIdent(database)}` });
      return checks;
    },
    async sql(text) {
      return withConn(async (c) => {
        const [rows] = await c.query({ sql: text, rowsAsArray: true });
        const row = Array.isArray(rows) ? (rows[0] as unknown[] | undefined) : undefined;
        const v = row?.[0] ?? null;
        return (Buffer.isBuffer(v) ? v.toString('utf8') : v instanceof Date ? v.toISOString() : v) as QueryValue;
      });
    },
    env: () => ({
      LIFEBOAT_DRILL_KIND: 'mysql-pitr',
      LIFEBOAT_DRILL_TARGET: database,
      MYSQL_UNIX_PORT: server?.socket ?? '',
      MYSQL_DATABASE: database,
    }),
    async cleanup() {
      try {
        await server?.stop();
      } finally {
        if (dir) await fsp.rm(dir, { recursive: true, force: true });
      }
    },
  };
}
