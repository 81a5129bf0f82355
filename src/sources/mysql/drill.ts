import type mysql from 'mysql2/promise';
import { ConfigError } from '../../errors.js';
import { myIdent } from './dump.js';
import type { MysqlSourceOptions } from './dump.js';
import { resolveSourcePaths } from '../../config/resolve.js';
import { CLEANUP_QUERY_TIMEOUT_MS, scratchDbName, snapshotStream, meta, rowCountCheck, dbServer, type DrillCheck, type QueryValue, type DrillTargetContext, type ScratchTarget } from '../scratch.js';
import { restoreMysql } from './dump.js';
import { killSessionsOn, withMysqlSession } from './session.js';

/** Restore drill target of a mysql source (see ../scratch.ts and src/verify/drill.ts). */
export function mysqlTarget(ctx: DrillTargetContext, src: MysqlSourceOptions): ScratchTarget {
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
  // the drill's timeout ends a session at once, also while its query runs (session.ts)
  const withConn = <T>(database: string | undefined, fn: (c: mysql.Connection) => Promise<T>, opts: { cleanup?: boolean } = {}): Promise<T> =>
    withMysqlSession(() => connect(database), fn, opts.cleanup ? undefined : ctx.signal);
  return {
    description: `mysql database ${db} on ${socket ?? `${server.host}:${server.port}`}`,
    async restore() {
      await restoreMysql(resolveSourcePaths(ctx.src, ctx.cfg) as Parameters<typeof restoreMysql>[0], await snapshotStream(ctx), {
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
      await withConn(
        undefined,
        async (c) => {
          await killSessionsOn(c, db);
          await c.query({ sql: `DROP DATABASE IF EXISTS ${myIdent(db)}`, timeout: CLEANUP_QUERY_TIMEOUT_MS });
        },
        { cleanup: true },
      );
    },
  };
}
