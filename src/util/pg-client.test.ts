import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { connectPg, pgSsl } from './pg-client.js';
import { PG } from '../../test/helpers/db.js';

test('pgSsl maps libpq sslmodes to node-postgres options', () => {
  for (const m of [undefined, '', 'disable', 'allow', 'prefer']) assert.equal(pgSsl(m), false, String(m));
  assert.deepEqual(pgSsl('require'), { rejectUnauthorized: false });
  assert.deepEqual(pgSsl('verify-ca'), { rejectUnauthorized: true });
  assert.deepEqual(pgSsl('verify-full'), { rejectUnauthorized: true });
});

test('connectPg: a connected client; a server-side termination afterwards fails the next query, not the process', async () => {
  const c = await connectPg({ ...PG, database: 'postgres', connectionTimeoutMillis: 5000, query_timeout: 5000, application_name: 'lifeboat pg-client test' });
  const other = await connectPg({ ...PG, database: 'postgres', connectionTimeoutMillis: 5000, query_timeout: 5000 });
  try {
    const pid = Number((await c.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]!.p);
    await other.query('SELECT pg_terminate_backend($1)', [pid]);
    // the socket's error event arrives with no query running: without a listener it would crash the process
    await new Promise((r) => setTimeout(r, 300));
    await assert.rejects(c.query('SELECT 1'));
  } finally {
    await c.end().catch(() => {});
    await other.end();
  }
});

test('connectPg: a server that never answers fails within connectionTimeoutMillis and leaves no socket open', async () => {
  const sockets = new Set<import('node:net').Socket>();
  const silent = createServer((s) => {
    sockets.add(s);
    s.resume(); // read (and drop) the startup message, so the client's close is seen
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const port = (silent.address() as import('node:net').AddressInfo).port;
  try {
    const t0 = Date.now();
    await assert.rejects(connectPg({ host: '127.0.0.1', port, user: 'x', database: 'x', connectionTimeoutMillis: 500 }), /timeout/i);
    assert.ok(Date.now() - t0 < 5000);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sockets.size, 0, 'the failed connect closed its socket');
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise((r) => silent.close(r));
  }
});

test('connectPg: its signal ends the session, also while a query waits; an aborted signal ends it as soon as it connects', async () => {
  const c = await connectPg({ ...PG, database: 'postgres', connectionTimeoutMillis: 5000 }, { signal: AbortSignal.timeout(300) });
  const t0 = Date.now();
  await assert.rejects(c.query('SELECT pg_sleep(30)'));
  assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  const d = await connectPg({ ...PG, database: 'postgres', connectionTimeoutMillis: 5000 }, { signal: AbortSignal.abort() });
  await assert.rejects(d.query('SELECT 1'));
});
