import type mysql from 'mysql2/promise';
import { LifeboatError, errorMessage } from '../../errors.js';
import { CLEANUP_QUERY_TIMEOUT_MS } from '../scratch.js';

/**
 * Run `fn` on a fresh connection that `signal` (a drill's timeout, a shutdown)
 * ends at once, also while a query runs: `fn` is abandoned and the connection
 * destroyed (mysql2's end() would wait for that query first, so a query that
 * never returns held the drill's phase past its timeout). Without a signal (a
 * cleanup, which runs after an abort) each query should carry its own
 * `timeout`.
 */
export async function withMysqlSession<T>(connect: () => Promise<mysql.Connection>, fn: (c: mysql.Connection) => Promise<T>, signal?: AbortSignal): Promise<T> {
  const aborted = (while_: string) => new LifeboatError(`drill aborted (${errorMessage(signal!.reason)})${while_}`);
  if (signal?.aborted) throw aborted('');
  const c = await connect();
  if (signal?.aborted) {
    c.destroy();
    throw aborted('');
  }
  // destroy() alone does not fail the query in flight (mysql2 still delivered its result later): the
  // abort rejects at once, and the query's own outcome is dropped
  let onAbort = () => {};
  const abortedP = new Promise<never>((_, reject) => {
    onAbort = () => {
      c.destroy();
      reject(aborted(' while a query ran'));
    };
  });
  abortedP.catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const work = fn(c);
    if (!signal) return await work;
    work.catch(() => {});
    return await Promise.race([work, abortedP]);
  } catch (err) {
    if (signal?.aborted) throw aborted(' while a query ran');
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    if (signal?.aborted) c.destroy();
    else await c.end().catch(() => c.destroy());
  }
}

/**
 * End the other sessions on `database` (a drill's abandoned query, say a slow
 * COUNT(*) holding a metadata lock that DROP DATABASE would wait for, up to
 * lock_wait_timeout). Sessions the user may not end are left: not an error.
 */
export async function killSessionsOn(c: mysql.Connection, database: string): Promise<void> {
  const [rows] = await c.query({ sql: 'SELECT ID AS id FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> CONNECTION_ID()', values: [database], timeout: CLEANUP_QUERY_TIMEOUT_MS });
  for (const r of rows as Array<{ id: number | string }>) {
    const id = Number(r.id);
    if (Number.isSafeInteger(id) && id > 0) await c.query({ sql: `KILL ${id}`, timeout: CLEANUP_QUERY_TIMEOUT_MS }).catch(() => {});
  }
}
