import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { IntegrityError, LifeboatError } from '../src/errors.js';
import { dumpRedis, parseKeyspace, restoreRedis, RespClient } from '../src/sources/redis/dump.js';
import { redisSourceSchema } from '../src/config/sources.js';
import { collect, redisContents, redisPopulate, startRedis, tmpdir, type PrivateRedis } from './helpers/db.js';

describe('Redis source', () => {
  let source: PrivateRedis;
  let target: PrivateRedis;
  let t: ReturnType<typeof tmpdir>;
  const pw = 'src-pw-ü-secret';
  let dump: Buffer[];
  let want: Record<string, string>;
  const others: PrivateRedis[] = [];

  before(async () => {
    t = tmpdir();
    process.env.LB_TEST_REDIS_PW = pw;
    process.env.LB_TEST_REDIS_BAD = 'nope';
    source = await startRedis({ password: pw });
    target = await startRedis();
    await redisPopulate(source.port, pw);
    const c = source.client({ password: pw });
    await c.call('ACL', 'SETUSER', 'backup', 'on', '>backup-pw', '~*', '&*', '+@all');
    await c.call('ACL', 'SETUSER', 'nosync', 'on', '>nosync-pw', '~*', '&*', '+@all', '-sync', '-psync');
    c.disconnect();
  });
  after(async () => {
    await source.stop();
    await target.stop();
    for (const o of others) await o.stop();
    t.cleanup();
    delete process.env.LB_TEST_REDIS_PW;
    delete process.env.LB_TEST_REDIS_BAD;
  });

  test('dump streams a valid RDB with key counts', async () => {
    want = await redisContents(source.port, pw);
    assert.ok(Object.keys(want).length > 3000);
    assert.ok(Object.values(want).some((v) => v.includes('|ttl|')), 'some keys have a TTL');
    const h = await dumpRedis({ kind: 'redis', port: source.port, passwordEnv: 'LB_TEST_REDIS_PW' }, { name: 'cache' });
    assert.equal(h.filename, 'dump.rdb');
    assert.equal(h.meta.kind, 'redis');
    assert.equal(h.meta.tool, 'redis-cli');
    assert.match(String(h.meta.serverVersion), /^\d+\.\d+/);
    assert.doesNotMatch(JSON.stringify(h.meta), /src-pw/);
    const [d, result] = await Promise.all([collect(h.stream), h.done]);
    dump = d.chunks;
    const whole = Buffer.concat(dump);
    assert.equal(whole.subarray(0, 5).toString(), 'REDIS');
    assert.equal(whole[whole.length - 9], 0xff, 'ends with the RDB EOF opcode + CRC64 (no diskless EOF marker)');
    const extra = result.extra as { keys: Record<string, number>; totalKeys: number; rdbBytes: number };
    assert.equal(extra.rdbBytes, d.size);
    assert.equal(extra.keys.db3, 500);
    assert.equal(extra.totalKeys, Object.keys(want).length);
  });

  test('disk-based replication (no EOF marker) gives the same framing', async () => {
    const c = source.client({ password: pw });
    await c.config('SET', 'repl-diskless-sync', 'no');
    try {
      const h = await dumpRedis({ kind: 'redis', port: source.port, passwordEnv: 'LB_TEST_REDIS_PW' });
      const [d, result] = await Promise.all([collect(h.stream), h.done]);
      const whole = Buffer.concat(d.chunks);
      assert.equal(whole.subarray(0, 5).toString(), 'REDIS');
      assert.equal(whole[whole.length - 9], 0xff);
      assert.equal((result.extra as { rdbBytes: number }).rdbBytes, d.size);
      const r = await restoreRedis({ kind: 'redis' }, Readable.from(d.chunks), { file: path.join(t.dir, 'disk-sync.rdb') });
      assert.equal(r.checks?.rdbCheck, 'ok');
    } finally {
      await c.config('SET', 'repl-diskless-sync', 'yes');
      c.disconnect();
    }
  });

  test('restore into a running server: every key, value and TTL; non-empty refused; clean', async () => {
    // change the original after the backup
    const c = source.client({ password: pw });
    await c.del('str:1', 'big');
    await c.set('str:2', 'changed');
    c.disconnect();

    const r = await restoreRedis({ kind: 'redis', port: source.port, passwordEnv: 'LB_TEST_REDIS_PW' }, Readable.from(dump), { port: target.port, passwordEnv: undefined });
    assert.equal(r.checks?.verified, true);
    assert.equal(r.checks?.totalKeys, Object.keys(want).length);
    assert.deepEqual(await redisContents(target.port), want);

    const tc = target.client();
    await tc.set('local-only', 'x');
    tc.disconnect();
    await assert.rejects(
      restoreRedis({ kind: 'redis', port: target.port }, Readable.from(dump)),
      (e: Error) => e instanceof LifeboatError && /refusing to restore into Redis at 127\.0\.0\.1:\d+: db0 \(\d+ keys\).* not empty/.test(e.message),
    );
    const forced = await restoreRedis({ kind: 'redis', port: target.port }, Readable.from(dump), { force: true });
    assert.equal(forced.checks?.verified, true);
    assert.equal((await redisContents(target.port))['0/' + Buffer.from('local-only').toString('hex')], 'string|-1|78');
    await restoreRedis({ kind: 'redis', port: target.port }, Readable.from(dump), { clean: true });
    assert.deepEqual(await redisContents(target.port), want);
  });

  test('dump piped straight into a restore, as an ACL user', async () => {
    const fresh = await startRedis();
    others.push(fresh);
    process.env.LB_TEST_REDIS_BACKUP_PW = 'backup-pw';
    const h = await dumpRedis({ kind: 'redis', port: source.port, user: 'backup', passwordEnv: 'LB_TEST_REDIS_BACKUP_PW' });
    const [r] = await Promise.all([restoreRedis({ kind: 'redis' }, h.stream, { port: fresh.port }), h.done]);
    assert.equal(r.checks?.verified, true);
    assert.deepEqual(await redisContents(fresh.port), await redisContents(source.port, pw));
  });

  test('restore to an RDB file that a server can start from', async () => {
    const file = path.join(t.dir, 'restore', 'dump.rdb');
    const r = await restoreRedis({ kind: 'redis' }, Readable.from(dump), { file });
    assert.equal(r.checks?.rdbCheck, 'ok');
    await assert.rejects(restoreRedis({ kind: 'redis' }, Readable.from(dump), { file }), /refusing to overwrite existing file/);
    const fromFile = await startRedis({ extraArgs: ['--dir', path.dirname(file), '--dbfilename', 'dump.rdb'] });
    others.push(fromFile);
    assert.deepEqual(await redisContents(fromFile.port), want);
    // damaged RDB: refused for a file, and the temporary server refuses to load it
    const bad = Buffer.from(Buffer.concat(dump));
    bad.fill(0x41, 200, 400);
    await assert.rejects(restoreRedis({ kind: 'redis' }, Readable.from([bad]), { file: path.join(t.dir, 'bad.rdb') }), (e: Error) => e instanceof IntegrityError && /redis-check-rdb/.test(e.message));
    await assert.rejects(restoreRedis({ kind: 'redis' }, Readable.from([bad]), { port: target.port, clean: true }), /temporary redis-server could not load the backup/);
    await assert.rejects(fsp.stat(path.join(t.dir, 'bad.rdb')), { code: 'ENOENT' });
  });

  test('wrong password, missing password, unreachable port: clear errors', async () => {
    await assert.rejects(
      dumpRedis({ kind: 'redis', port: source.port, passwordEnv: 'LB_TEST_REDIS_BAD' }),
      (e: Error) => /cannot connect to Redis at 127\.0\.0\.1:\d+: authentication failed/.test(e.message) && !e.message.includes('nope'),
    );
    await assert.rejects(dumpRedis({ kind: 'redis', port: source.port }), /the server requires a password \(set passwordEnv or passwordFile\)/);
    await assert.rejects(dumpRedis({ kind: 'redis', port: 1 }), /cannot connect to Redis at 127\.0\.0\.1:1: connection refused/);
  });

  test('a server that accepts connections and never replies: a clear error within connectTimeout, and a command deadline', async () => {
    const { createServer } = await import('node:net');
    const conns = new Set<import('node:net').Socket>();
    const silent = createServer((c) => {
      conns.add(c);
      c.resume();
      c.on('close', () => conns.delete(c));
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as import('node:net').AddressInfo).port;
    try {
      const t0 = Date.now();
      await assert.rejects(dumpRedis({ kind: 'redis', port, connectTimeout: 1 }), (e: Error) => e instanceof LifeboatError && /Redis at 127\.0\.0\.1:\d+: no reply to PING within 1s; connection closed/.test(e.message));
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
      // any command: the client's reply deadline, then every waiting command fails
      const cl = await RespClient.connect({ host: '127.0.0.1', port }, 2000, 'Redis');
      cl.replyTimeoutMs = 200;
      const a = cl.send('INFO', 'keyspace');
      const b = cl.send('DBSIZE');
      await assert.rejects(a, /no reply to INFO within 200 ms/);
      await assert.rejects(b, /no reply to INFO within 200 ms/);
      await assert.rejects(cl.send('PING'), /no reply to INFO/);
    } finally {
      for (const c of conns) c.destroy();
      await new Promise((r) => silent.close(r));
    }
  });

  test('a dump the server refuses (no SYNC permission) rejects done with the stderr tail', async () => {
    process.env.LB_TEST_REDIS_NOSYNC_PW = 'nosync-pw';
    const h = await dumpRedis({ kind: 'redis', port: source.port, user: 'nosync', passwordEnv: 'LB_TEST_REDIS_NOSYNC_PW' });
    h.stream.resume();
    h.stream.on('error', () => {});
    await assert.rejects(h.done, (e: Error) => e instanceof LifeboatError && /redis-cli failed with exit code \d+/.test(e.message) && /NOPERM|permission/i.test(e.message));
  });

  test('schema and keyspace parsing', () => {
    assert.equal(redisSourceSchema.safeParse({ kind: 'redis', password: 'x' }).success, false);
    assert.deepEqual([...parseKeyspace('# Keyspace\r\ndb0:keys=10,expires=2,avg_ttl=5\r\ndb12:keys=1,expires=0,avg_ttl=0\r\n')], [
      [0, { keys: 10, expires: 2 }],
      [12, { keys: 1, expires: 0 }],
    ]);
  });
});
