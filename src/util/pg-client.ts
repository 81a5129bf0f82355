import type pg from 'pg';

/**
 * node-postgres's `ssl` option for a libpq sslmode. node-postgres cannot fall
 * back from TLS to plain as libpq's allow/prefer do: those connect without TLS.
 * require encrypts without checking the certificate; verify-ca and verify-full
 * check it (node checks the host name too).
 */
export function pgSsl(mode: string | undefined): false | { rejectUnauthorized: boolean } {
  if (!mode || mode === 'disable' || mode === 'allow' || mode === 'prefer') return false;
  return { rejectUnauthorized: mode !== 'require' };
}

/**
 * A connected node-postgres client. `pg` loads on first use (CLI start-up
 * time). A socket error after connecting does not crash the process (the next
 * query fails instead); a failed connect closes what it opened and rethrows.
 * Callers set `connectionTimeoutMillis` and `query_timeout`: every call has a
 * deadline.
 *
 * The session checks its client every second while a query runs
 * (`client_connection_check_interval`, PostgreSQL 14 and later): when Lifeboat
 * ends a client (an abort, a deadline, a crash), a query it left running (a
 * verification query, a lock wait) stops within a second instead of holding
 * its transaction open until it finishes. Older servers lack the setting; that
 * is not an error.
 *
 * `signal` (a job's timeout, a drill's, a shutdown) ends the session when it
 * aborts, also while a query waits: that query fails at once. Aborted before
 * the connection is made, the session is ended as soon as it is.
 */
export async function connectPg(config: pg.ClientConfig, opts: { signal?: AbortSignal | undefined } = {}): Promise<pg.Client> {
  const { default: pgm } = await import('pg');
  const client = new pgm.Client(config);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  const signal = opts.signal;
  if (signal) {
    const onAbort = () => void client.end().catch(() => {});
    if (signal.aborted) onAbort();
    else {
      signal.addEventListener('abort', onAbort, { once: true });
      client.once('end', () => signal.removeEventListener('abort', onAbort));
    }
  }
  await client.query({ text: 'SET client_connection_check_interval = 1000', query_timeout: 10_000 } as pg.QueryConfig).catch(() => {});
  return client;
}
