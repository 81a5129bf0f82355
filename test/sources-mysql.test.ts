import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { LifeboatError } from '../src/errors.js';
import { dumpMysql, mysqlDumpArgs, restoreMysql } from '../src/sources/mysql/dump.js';
import { mysqlSourceSchema } from '../src/config/sources.js';
import { collect, myChecksums, myDbExists, myDropDb, myPopulate, myServerChecksums, uniqueName, withMy } from './helpers/db.js';

describe('MySQL/MariaDB source', () => {
  const src = uniqueName();
  const dbs: string[] = [src];
  const user = uniqueName('lb_u_');
  const base = { kind: 'mysql' as const, host: '127.0.0.1', port: 3306, user: 'root' };

  before(async () => {
    await myPopulate(src);
    await withMy(undefined, async (c) => {
      for (const host of ['127.0.0.1', 'localhost']) {
        await c.query(`CREATE USER '${user}'@'${host}' IDENTIFIED BY 'right-pw-ü'`);
        await c.query(`GRANT ALL ON \`${src}\`.* TO '${user}'@'${host}'`);
      }
    });
  });
  after(async () => {
    for (const d of dbs) await myDropDb(d);
    await withMy(undefined, async (c) => {
      for (const host of ['127.0.0.1', 'localhost']) await c.query(`DROP USER IF EXISTS '${user}'@'${host}'`);
    });
    delete process.env.LB_TEST_MY_PW;
  });

  test('dump, change the original, restore into a new database: identical contents', async () => {
    const before = await myChecksums(src);
    const beforeServer = await myServerChecksums(src);
    assert.equal(before.people!.split(':')[0], '5000');
    assert.equal(before.events!.split(':')[0], '15000');
    assert.equal(before.blobs!.split(':')[0], '3');
    assert.equal(before['<routines>']!.split('=')[0], 'label');
    assert.equal(before['<triggers>'], 'people_note');
    assert.equal(before['<views>'], 'adults');

    const h = await dumpMysql({ ...base, database: src }, { name: 'shop' });
    assert.equal(h.filename, `${src}.sql`);
    assert.equal(h.meta.kind, 'mysql');
    assert.equal(h.meta.database, src);
    assert.match(String(h.meta.tool), /^(mariadb-dump|mysqldump)$/);
    assert.match(String(h.meta.serverVersion), /^\d+\.\d+/);
    assert.match(String(h.meta.toolVersion), /^\d+\.\d+/);
    const [dump, result] = await Promise.all([collect(h.stream), h.done]);
    const sql = Buffer.concat(dump.chunks).toString();
    assert.doesNotMatch(sql, /CREATE DATABASE/, 'a single-database dump restores under any name');
    assert.doesNotMatch(sql, /Dump completed on/, 'no timestamp trailer');
    assert.match(sql, /0x[0-9A-F]{32}/, 'binary columns as hex');
    const extra = result.extra as { rowEstimates: Record<string, number>; tableCount: number };
    assert.equal(extra.tableCount, 3);
    assert.deepEqual(Object.keys(extra.rowEstimates).sort(), [`${src}.blobs`, `${src}.events`, `${src}.people`]);

    await withMy(src, (c) => c.query(`UPDATE people SET name = CONCAT(name, ' changed') WHERE id % 10 = 0; DELETE FROM events WHERE id > 10000; DROP TABLE blobs; DROP FUNCTION label`));
    assert.notDeepEqual(await myChecksums(src), before);

    const target = uniqueName();
    dbs.push(target);
    const r = await restoreMysql({ ...base, database: src }, Readable.from(dump.chunks), { database: target });
    assert.equal(r.checks?.created, true);
    assert.equal(r.checks?.tables, 3);
    assert.deepEqual(await myChecksums(target), before);
    assert.deepEqual(await myServerChecksums(target), beforeServer);

    // non-empty target: refused and untouched; clean replaces it
    await withMy(target, (c) => c.query(`INSERT INTO blobs VALUES (99, 'local', NULL)`));
    await assert.rejects(
      restoreMysql({ ...base, database: src }, Readable.from(dump.chunks), { database: target }),
      (e: Error) => e instanceof LifeboatError && /refusing to restore into database "lb_test_\w+".*not empty/.test(e.message),
    );
    assert.equal((await myChecksums(target)).blobs!.split(':')[0], '4');
    const r2 = await restoreMysql({ ...base, database: src }, Readable.from(dump.chunks), { database: target, clean: true });
    assert.equal(r2.checks?.created, false);
    assert.deepEqual(await myChecksums(target), before);
  });

  test('dump piped straight into restore, with a password from the environment', async () => {
    process.env.LB_TEST_MY_PW = 'right-pw-ü';
    const target = uniqueName();
    dbs.push(target);
    const h = await dumpMysql({ ...base, user, passwordEnv: 'LB_TEST_MY_PW', database: src, excludeTables: ['events'] });
    // the restoring user (root) may create databases; the password user may only read src
    const [r] = await Promise.all([restoreMysql({ ...base, database: src }, h.stream, { database: target }), h.done]);
    assert.equal(r.checks?.tables, 1, 'people only (blobs was dropped by the previous test, events excluded)');
    const got = await myChecksums(target);
    const want = await myChecksums(src);
    assert.equal(got.events, undefined);
    assert.equal(got.people, want.people);
  });

  test('several databases restore under their own names; refused while they are not empty', async () => {
    const a = uniqueName();
    dbs.push(a);
    await withMy(undefined, (c) => c.query(`CREATE DATABASE \`${a}\`; CREATE TABLE \`${a}\`.t (id INT PRIMARY KEY, v VARBINARY(10)); INSERT INTO \`${a}\`.t VALUES (1, 0x00FF), (2, NULL)`));
    const opts = { ...base, databases: [a] };
    const h = await dumpMysql(opts);
    assert.equal(h.filename, 'databases.sql');
    const [dump] = await Promise.all([collect(h.stream), h.done]);
    await assert.rejects(restoreMysql(opts, Readable.from(dump.chunks), { database: 'other' }), /cannot be given/);
    await assert.rejects(restoreMysql(opts, Readable.from(dump.chunks)), /refusing to restore: database\(s\) "lb_test_\w+" .* not empty/);
    await withMy(undefined, (c) => c.query(`DROP DATABASE \`${a}\``));
    const r = await restoreMysql(opts, Readable.from(dump.chunks));
    assert.equal(r.checks?.tables, 1);
    assert.equal((await myChecksums(a)).t!.split(':')[0], '2');
  });

  test('failing dump (nonexistent database) rejects done with the stderr tail', async () => {
    const h = await dumpMysql({ ...base, database: 'lb_no_such_db_x' });
    h.stream.resume();
    h.stream.on('error', () => {});
    await assert.rejects(h.done, (e: Error) => e instanceof LifeboatError && /(mariadb-dump|mysqldump) failed with exit code \d+/.test(e.message) && /Unknown database/.test(e.message));
  });

  test('a failed restore into a database it created drops it again', async () => {
    const target = uniqueName();
    dbs.push(target);
    await assert.rejects(
      restoreMysql({ ...base, database: src }, Readable.from(['CREATE TABLE x (id INT);\nTHIS IS NOT SQL;\n']), { database: target }),
      (e: Error) => /(mariadb|mysql) \(restoring into database "lb_test_\w+"\) failed with exit code 1/.test(e.message) && /ERROR 1064/.test(e.message) && /dropped again/.test(e.message),
    );
    assert.equal(await myDbExists(target), false);
  });

  test('wrong password and unreachable port give clear errors', async () => {
    process.env.LB_TEST_MY_PW = 'wrong-pw';
    await assert.rejects(
      dumpMysql({ ...base, user, passwordEnv: 'LB_TEST_MY_PW', database: src }),
      (e: Error) => /cannot connect to MySQL\/MariaDB at 127\.0\.0\.1:3306 as lb_u_\w+: .*Access denied/.test(e.message) && !e.message.includes('wrong-pw'),
    );
    await assert.rejects(dumpMysql({ ...base, port: 1, database: src }), /cannot connect to MySQL\/MariaDB at 127\.0\.0\.1:1: connection refused/);
    await assert.rejects(dumpMysql({ ...base, binDir: '/nonexistent-dir', database: src }), /none of mariadb, mysql found in \/nonexistent-dir; install the MariaDB or MySQL client/);
  });

  test('options schema and argument building', () => {
    assert.match(JSON.stringify(mysqlSourceSchema.safeParse({ kind: 'mysql', database: 'a', databases: ['b'] }).error!.issues), /either database or databases/);
    assert.match(JSON.stringify(mysqlSourceSchema.safeParse({ kind: 'mysql', tables: ['t'] }).error!.issues), /tables requires database/);
    assert.match(JSON.stringify(mysqlSourceSchema.safeParse({ kind: 'mysql', password: 'x' }).error!.issues), /password/);
    const o = mysqlSourceSchema.parse({ kind: 'mysql', database: 'shop', tables: ['a', 'b'], excludeTables: ['c'] });
    assert.deepEqual(mysqlDumpArgs(o).slice(-5), ['--ignore-table=shop.c', '--', 'shop', 'a', 'b']);
    assert.ok(mysqlDumpArgs(o).includes('--single-transaction'));
    assert.equal(mysqlDumpArgs(mysqlSourceSchema.parse({ kind: 'mysql' })).pop(), '--all-databases');
  });
});
