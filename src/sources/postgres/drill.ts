import type pg from 'pg';
import { ConfigError, LifeboatError, errorMessage } from '../../errors.js';
import type { PostgresSourceOptions } from './dump.js';
import { resolveSourcePaths } from '../../config/resolve.js';
import { CLEANUP_QUERY_TIMEOUT_MS, scratchDbName, snapshotStream, meta, rowCountCheck, dbServer, type DrillCheck, type QueryValue, type DrillTargetContext, type ScratchTarget } from '../scratch.js';
import { restorePostgres } from './dump.js';
import { connectPg, pgSsl } from '../../util/pg-client.js';

/** Restore drill target of a postgres source (see ../scratch.ts and src/verify/drill.ts). */
export function postgresTarget(ctx: DrillTargetContext, src: PostgresSourceOptions): ScratchTarget {
  if (src.globals) throw new ConfigError(`job ${ctx.job}: source ${ctx.sourceName} dumps globals (roles); a drill would create roles on the server, which is not supported`);
  const server = dbServer(ctx, src, `postgres source ${ctx.sourceName}`);
  const db = scratchDbName(ctx.job);
  const client = (database: string, opts: { queryTimeoutMs?: number; signal?: AbortSignal }): Promise<pg.Client> =>
    connectPg(
      {
        ...(opts.queryTimeoutMs ? { query_timeout: opts.queryTimeoutMs } : {}),
        host: server.host,
        port: server.port,
        user: server.user,
        database,
        ...(server.password !== undefined ? { password: server.password } : {}),
        ssl: pgSsl(src.sslmode),
        connectionTimeoutMillis: src.connectTimeout * 1000,
        application_name: 'lifeboat-drill',
      },
      { signal: opts.signal },
    );
  /**
   * A session for `fn`. The drill's timeout (or a shutdown) ends it at once, also while a query waits
   * (a slow count, a verification query that never returns): the phase fails then, not when the query
   * ends. `cleanup` runs after an abort, so its session is not tied to the signal but has a deadline.
   */
  const withClient = async <T>(database: string, fn: (c: pg.Client) => Promise<T>, opts: { cleanup?: boolean } = {}): Promise<T> => {
    if (!opts.cleanup && ctx.signal.aborted) throw new LifeboatError(`drill aborted (${errorMessage(ctx.signal.reason)})`);
    const c = await client(database, opts.cleanup ? { queryTimeoutMs: CLEANUP_QUERY_TIMEOUT_MS } : { signal: ctx.signal });
    try {
      return await fn(c);
    } catch (err) {
      if (!opts.cleanup && ctx.signal.aborted) throw new LifeboatError(`drill aborted (${errorMessage(ctx.signal.reason)}) while a query ran on ${database}`);
      throw err;
    } finally {
      await c.end().catch(() => {});
    }
  };
  let restoredTables: number | undefined;
  return {
    description: `postgres database ${db} on ${server.host}:${server.port}`,
    async restore() {
      const r = await restorePostgres(resolveSourcePaths(ctx.src, ctx.cfg) as Parameters<typeof restorePostgres>[0], await snapshotStream(ctx), {
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
      await withClient(
        'postgres',
        async (c) => {
          await c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [db]);
          await c.query(`DROP DATABASE IF EXISTS ${c.escapeIdentifier(db)}`);
        },
        { cleanup: true },
      );
    },
  };
}
