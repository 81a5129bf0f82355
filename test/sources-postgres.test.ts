import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createWriteStream, promises as fsp } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { LifeboatError } from '../src/errors.js';
import { checkPgClientVersion, dumpPostgres, pgDumpArgs, restorePostgres } from '../src/sources/postgres/dump.js';
import { postgresSourceSchema } from '../src/config/sources.js';
import { collect, startPrivatePg, type PrivatePg, pgChecksums, pgCreateDb, pgDbExists, pgDropDb, pgExec, pgPopulate, tmpdir, uniqueName } from './helpers/db.js';

describe('PostgreSQL source', () => {
  const src = uniqueName();
  const dbs: string[] = [src];
  const roles: string[] = [];
  let t: ReturnType<typeof tmpdir>;
  const base = { kind: 'postgres' as const, host: '127.0.0.1', port: 5432, user: 'postgres' };

  before(async () => {
    t = tmpdir();
    await pgCreateDb(src);
    await pgPopulate(src);
  });
  after(async () => {
    for (const d of dbs) await pgDropDb(d);
    for (const r of roles) await pgExec('postgres', `DROP ROLE IF EXISTS "${r}"`);
    t.cleanup();
  });

  test('dump, change the original, restore into a new database: identical contents', async () => {
    const before = await pgChecksums(src);
    assert.equal(before['public.people']!.split(':')[0], '5000');
    assert.equal(before['public.events']!.split(':')[0], '20000');
    assert.equal(before['<large objects>']!.split(':')[0], '3');

    const h = await dumpPostgres({ ...base, database: src }, { name: 'appdb' });
    assert.equal(h.filename, `${src}.pgdump`);
    assert.equal(h.meta.kind, 'postgres');
    assert.equal(h.meta.name, 'appdb');
    assert.equal(h.meta.database, src);
    assert.equal(h.meta.tool, 'pg_dump');
    assert.match(String(h.meta.serverVersion), /^\d+\.\d+/);
    assert.match(String(h.meta.toolVersion), /^\d+\.\d+/);
    assert.ok(!JSON.stringify(h.meta).match(/password/i));
    const [dump, result] = await Promise.all([collect(h.stream), h.done]);
    assert.equal(result.exitCode, 0);
    // custom format header, uncompressed (the repository compresses and dedups)
    assert.equal(Buffer.concat(dump.chunks).subarray(0, 5).toString(), 'PGDMP');
    const extra = result.extra as { rowEstimates: Record<string, number>; tableCount: number; largeObjects: number };
    assert.equal(extra.tableCount, 4);
    assert.equal(extra.largeObjects, 3);
    assert.deepEqual(Object.keys(extra.rowEstimates).sort(), ['audit.log', 'public.docs', 'public.events', 'public.people']);
    // uncompressed: the unique bio text appears verbatim in the archive
    assert.ok(Buffer.concat(dump.chunks).includes(Buffer.from('Person 4999 Zürich ☃ 日本語 🚀')));

    // change and drop data in the original
    await pgExec(src, `UPDATE people SET name = name || ' changed' WHERE id % 10 = 0; DELETE FROM events WHERE id > 15000; DROP TABLE audit.log; SELECT lo_unlink(body) FROM docs WHERE id = 1`);
    assert.notDeepEqual(await pgChecksums(src), before);

    const target = uniqueName();
    dbs.push(target);
    const r = await restorePostgres({ ...base, database: src }, Readable.from(dump.chunks), { database: target });
    assert.equal(r.checks?.created, true);
    assert.equal(r.checks?.tables, 4);
    assert.equal(r.checks?.largeObjects, 3);
    assert.deepEqual(await pgChecksums(target), before);
    const seq = await pgExec(target, `SELECT last_value FROM ticket_seq`);
    assert.equal(String(seq.rows[0].last_value), '4242');

    // the target is now non-empty: refused without clean/force, and left untouched
    await pgExec(target, `INSERT INTO audit.log VALUES (999999, 'local change', NULL)`);
    await assert.rejects(
      restorePostgres({ ...base, database: src }, Readable.from(dump.chunks), { database: target }),
      (e: Error) => e instanceof LifeboatError && /refusing to restore into database "lb_test_\w+".*not empty/.test(e.message),
    );
    assert.equal((await pgExec(target, 'SELECT count(*) AS n FROM audit.log WHERE id = 999999')).rows[0].n, '1');
    // clean: objects dropped and recreated from the dump
    const r2 = await restorePostgres({ ...base, database: src }, Readable.from(dump.chunks), { database: target, clean: true });
    assert.equal(r2.checks?.created, false);
    assert.deepEqual(await pgChecksums(target), before);
  });

  test('dump piped straight into restore (no buffering), with schema/table selection', async () => {
    const target = uniqueName();
    dbs.push(target);
    const h = await dumpPostgres({ ...base, database: src, excludeSchemas: ['audit'], excludeTableData: ['events'] });
    const [r] = await Promise.all([restorePostgres({ ...base, database: src }, h.stream, { database: target }), h.done]);
    assert.equal(r.checks?.tables, 2 + 1 /* docs */);
    const sums = await pgChecksums(target);
    assert.equal(sums['public.events']!.split(':')[0], '0');
    assert.equal(sums['audit.log'], undefined);
    assert.deepEqual(sums['public.people'], (await pgChecksums(src))['public.people']);
  });

  test('parallel restore from a file (jobs), refused for a stream', async () => {
    const h = await dumpPostgres({ ...base, database: src });
    const file = path.join(t.dir, 'app.pgdump');
    // pg_dump wrote to a pipe: the archive has no data offsets, pg_restore must scan it
    await Promise.all([pipeline(h.stream, createWriteStream(file)), h.done]);
    const target = uniqueName();
    dbs.push(target);
    const r = await restorePostgres({ ...base, database: src }, { file }, { database: target, jobs: 2 });
    assert.equal(r.checks?.jobs, 2);
    assert.deepEqual(await pgChecksums(target), await pgChecksums(src));
    await assert.rejects(restorePostgres({ ...base, database: src }, Readable.from([]), { database: uniqueName(), jobs: 2 }), /parallel restore \(jobs > 1\) needs the archive as a file/);
  });

  test('failing dump rejects done with the tool name, exit code and stderr tail; the stream errors too', async () => {
    const h = await dumpPostgres({ ...base, database: src, tables: ['no_such_table_xyz'] });
    const streamErr = collect(h.stream).then(
      () => undefined,
      (e: Error) => e,
    );
    await assert.rejects(h.done, (e: Error) => e instanceof LifeboatError && /pg_dump failed with exit code 1/.test(e.message) && /no matching tables were found/.test(e.message));
    assert.match(String((await streamErr)?.message), /pg_dump failed/);
  });

  test('a failed restore into a database it created drops that database again', async () => {
    const target = uniqueName();
    dbs.push(target);
    const garbage = Readable.from([Buffer.from('PGDMP this is not a real archive')]);
    await assert.rejects(restorePostgres({ ...base, database: src }, garbage, { database: target }), (e: Error) => /pg_restore .*failed/.test(e.message) && /was dropped again/.test(e.message));
    assert.equal(await pgDbExists(target), false);
  });

  test('abort kills pg_dump and rejects done', async () => {
    const h = await dumpPostgres({ ...base, database: src });
    h.stream.once('data', () => h.abort());
    h.stream.resume();
    h.stream.on('error', () => {});
    await assert.rejects(h.done, /pg_dump was aborted/);
  });

  test('a job abort while a verification query waits ends the session within a second and takes no backup', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(), 500);
    const q = "SELECT pg_sleep(60), 'lifeboat-verify-abort-test'";
    await assert.rejects(dumpPostgres({ ...base, database: src }, { verifyQueries: [q], signal: ac.signal }), (e: Error) => e instanceof LifeboatError && e.exitCode === 130 && /aborted while the verification queries ran/.test(e.message));
    assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
    // the server's session is gone too (not left sleeping with its transaction open)
    let left = 1;
    for (let i = 0; i < 50 && left > 0; i++) {
      left = Number((await pgExec('postgres', "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%lifeboat-verify-abort-' || 'test%'")).rows[0].n);
      if (left > 0) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(left, 0);
    // aborted before it starts: no connection at all
    await assert.rejects(dumpPostgres({ ...base, database: src }, { verifyQueries: ['SELECT 1'], signal: AbortSignal.abort() }), /aborted/);
  });

  test('unreachable server, unknown database and unknown role give clear errors before spawning', async () => {
    await assert.rejects(dumpPostgres({ ...base, port: 1, database: src }), /cannot connect to PostgreSQL at 127\.0\.0\.1:1: connection refused/);
    await assert.rejects(dumpPostgres({ ...base, database: 'lb_no_such_db_x' }), /cannot connect to PostgreSQL database "lb_no_such_db_x" at 127\.0\.0\.1:5432 as postgres: .*does not exist/);
    await assert.rejects(dumpPostgres({ ...base, user: 'lb_no_such_role', database: src }), /cannot connect to PostgreSQL .* as lb_no_such_role: .*role "lb_no_such_role" does not exist/);
    delete process.env.LB_TEST_UNSET_PW;
    await assert.rejects(dumpPostgres({ ...base, database: src, passwordEnv: 'LB_TEST_UNSET_PW' }), /\(passwordEnv\): environment variable LB_TEST_UNSET_PW is not set/);
  });

  test('missing tools and too old client tools are reported clearly', async () => {
    const empty = path.join(t.dir, 'empty-bin');
    await fsp.mkdir(empty);
    await assert.rejects(dumpPostgres({ ...base, database: src, binDir: empty }), /psql not found in .*empty-bin; install the PostgreSQL client tools/);
    // a bin dir whose pg_dump claims to be 9.6 (psql is the real one)
    const old = path.join(t.dir, 'old-bin');
    await fsp.mkdir(old);
    await fsp.symlink('/usr/bin/psql', path.join(old, 'psql'));
    await fsp.writeFile(path.join(old, 'pg_dump'), '#!/bin/sh\necho "pg_dump (PostgreSQL) 9.6.24"\n', { mode: 0o755 });
    await assert.rejects(dumpPostgres({ ...base, database: src, binDir: old }), /pg_dump is version 9\.6 but the PostgreSQL server is version \d+: the client tools must be at least as new/);
    assert.throws(() => checkPgClientVersion('pg_dump', '14.1', 150020), /pg_dump is version 14 but the PostgreSQL server is version 15/);
    checkPgClientVersion('pg_dump', '16.0', 150020);
    checkPgClientVersion('pg_dump', '15.2', 150020);
    checkPgClientVersion('pg_dump', '9.6.1', 90624);
    assert.throws(() => checkPgClientVersion('pg_dump', '9.5.1', 90624), /9\.5 but .* 9\.6/);
  });

  test('globals: roles dumped with pg_dumpall and restored with psql', async () => {
    const role = uniqueName('lb_test_role_');
    roles.push(role);
    await pgExec('postgres', `CREATE ROLE "${role}" LOGIN CONNECTION LIMIT 7`);
    const h = await dumpPostgres({ ...base, globals: true }, { name: 'roles' });
    assert.equal(h.filename, 'globals.sql');
    assert.equal(h.meta.tool, 'pg_dumpall');
    const [dump] = await Promise.all([collect(h.stream), h.done]);
    const sql = Buffer.concat(dump.chunks).toString();
    assert.match(sql, new RegExp(`CREATE ROLE ${role};`));
    await pgExec('postgres', `DROP ROLE "${role}"`);
    const r = await restorePostgres({ ...base, globals: true }, Readable.from(dump.chunks));
    assert.ok((r.checks?.alreadyExisting as number) >= 1, 'at least the postgres role already existed');
    const back = await pgExec('postgres', 'SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = $1', [role]);
    assert.deepEqual(back.rows, [{ rolcanlogin: true, rolconnlimit: 7 }]);
  });

  test('options schema: strict, clear messages, argument building', () => {
    const bad = postgresSourceSchema.safeParse({ kind: 'postgres', databse: 'x' });
    assert.equal(bad.success, false);
    assert.match(JSON.stringify(bad.error!.issues), /databse/);
    const both = postgresSourceSchema.safeParse({ kind: 'postgres', database: 'x', passwordEnv: 'A', passwordFile: '/f' });
    assert.match(JSON.stringify(both.error!.issues), /either passwordEnv or passwordFile/);
    const noDb = postgresSourceSchema.safeParse({ kind: 'postgres' });
    assert.match(JSON.stringify(noDb.error!.issues), /database is required/);
    const o = postgresSourceSchema.parse({ kind: 'postgres', database: 'app', schemas: ['s1'], excludeTables: ['big_*'], largeObjects: true });
    assert.deepEqual(pgDumpArgs(o), ['--format=custom', '--compress=0', '--no-password', '--schema=s1', '--exclude-table=big_*', '--blobs']);
    assert.deepEqual(pgDumpArgs(postgresSourceSchema.parse({ kind: 'postgres', globals: true })), ['--globals-only', '--no-password']);
  });
});

describe('PostgreSQL source with password authentication (private cluster)', () => {
  let server: PrivatePg;
  let t: ReturnType<typeof tmpdir>;
  const pw = "s3cret 'pw' ü";
  before(async () => {
    t = tmpdir();
    server = await startPrivatePg(pw);
  });
  after(async () => {
    await server.stop();
    t.cleanup();
    delete process.env.LB_TEST_PG_PW;
  });

  test('password from a file or the environment works; a wrong one is a clear error without the secret', async () => {
    const pwFile = path.join(t.dir, 'pgpw');
    await fsp.writeFile(pwFile, pw + '\n', { mode: 0o600 });
    const base = { kind: 'postgres' as const, host: '127.0.0.1', port: server.port, user: 'postgres', database: 'postgres' };
    const h = await dumpPostgres({ ...base, passwordFile: pwFile });
    const [dump] = await Promise.all([collect(h.stream), h.done]);
    assert.ok(dump.size > 0);
    process.env.LB_TEST_PG_PW = pw;
    const r = await restorePostgres({ ...base, passwordEnv: 'LB_TEST_PG_PW' }, Readable.from(dump.chunks), { database: 'restored_here' });
    assert.equal(r.checks?.created, true);

    process.env.LB_TEST_PG_PW = 'not-the-password';
    await assert.rejects(dumpPostgres({ ...base, passwordEnv: 'LB_TEST_PG_PW' }), (e: Error) => {
      assert.match(e.message, /cannot connect to PostgreSQL database "postgres" at 127\.0\.0\.1:\d+ as postgres: .*password authentication failed for user "postgres"/);
      assert.doesNotMatch(e.message, /not-the-password/);
      return true;
    });
    await assert.rejects(dumpPostgres(base), /no password supplied|password authentication failed/);
  });
});
