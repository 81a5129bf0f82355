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
 */
export async function connectPg(config: pg.ClientConfig): Promise<pg.Client> {
  const { default: pgm } = await import('pg');
  const client = new pgm.Client(config);
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  return client;
}
