import type mysql from 'mysql2/promise';

/**
 * A query under mysql2's `timeout`. Past it mysql2 stops waiting for the reply,
 * but the server keeps running the query (measured: a `SELECT SLEEP(20)` was
 * still in PROCESSLIST after a 1 s timeout) — an UPDATE would keep its locks.
 * So on that timeout the query is ended on the server too: `KILL QUERY` of the
 * connection's thread, from a second connection opened with `connect` (10 s
 * deadline; a failure there is not reported over the timeout itself). The
 * timed-out connection is unusable afterwards: destroy it.
 */
export async function queryOrKill(c: mysql.Connection, opts: mysql.QueryOptions & { timeout: number }, connect: () => Promise<mysql.Connection>): Promise<unknown> {
  try {
    const [rows] = await c.query(opts);
    return rows;
  } catch (err) {
    if ((err as { code?: string }).code === 'PROTOCOL_SEQUENCE_TIMEOUT') await killQuery(c.threadId, connect);
    throw err;
  }
}

async function killQuery(threadId: number | null | undefined, connect: () => Promise<mysql.Connection>): Promise<void> {
  const id = Number(threadId);
  if (!Number.isSafeInteger(id) || id <= 0) return;
  let k: mysql.Connection | undefined;
  try {
    k = await connect();
    await k.query({ sql: `KILL QUERY ${id}`, timeout: 10_000 });
  } catch {
    /* best effort: the caller reports the timeout */
  } finally {
    k?.destroy();
  }
}
