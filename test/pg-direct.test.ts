import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { dumpPgPhysical } from '../src/sources/pg-physical/dump.js';
import { chownToPostgres, createCluster, type PgCluster } from './helpers/pgcluster.js';
import { tmpDir } from './helpers/tmp.js';

/**
 * The direct base backup (source option dataDir, sources/pg-physical/direct.ts)
 * against a real cluster: its tar extracts into a data directory with the
 * backup_label pg_backup_stop returned; an aborted one writes nothing and
 * leaves no backup running on the server; tablespaces and a maxRate that
 * cannot apply are refused before anything starts. The end-to-end restore and
 * recovery of a direct base backup is in pitr.test.ts.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function backupSessions(c: PgCluster): Promise<number> {
  const r = await c.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_stat_activity WHERE application_name = 'lifeboat base backup'");
  return Number(r.rows[0]!.n);
}

async function waitNoSession(c: PgCluster): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await backupSessions(c)) > 0) {
    if (Date.now() > deadline) throw new Error('the base backup session is still open 10 s after the abort');
    await sleep(100);
  }
}

test('direct base backup: a whole run, an abort, and what is refused', { timeout: 300_000 }, async () => {
  const t = tmpDir('lb-pgdirect-');
  let c: PgCluster | undefined;
  try {
    c = await createCluster({ settings: { archive_mode: 'on', archive_command: '/bin/true' } });
    const cl = c;
    await cl.query('CREATE TABLE t AS SELECT g AS i, md5(g::text) AS s FROM generate_series(1, 50000) g');
    await cl.query('CHECKPOINT');
    const src = { kind: 'postgres-physical' as const, host: '127.0.0.1', port: cl.port, user: 'postgres', dataDir: cl.data };

    // A whole run: the tar holds the data directory and the label, nothing of pg_wal.
    const h = await dumpPgPhysical(src, { name: 'main' });
    assert.equal(h.meta.method, 'direct');
    assert.equal(await backupSessions(cl), 1, 'pg_backup_start runs on a session held open');
    const parts: Buffer[] = [];
    for await (const b of h.stream) parts.push(b as Buffer);
    const done = await h.done;
    assert.equal(done.exitCode, 0);
    const tar = Buffer.concat(parts);
    assert.equal(done.streamBytes, tar.length);
    const x = path.join(t.dir, 'x');
    await fsp.mkdir(x);
    const ex = spawnSync('tar', ['-x', '-f', '-', '-C', x], { input: tar });
    assert.equal(ex.status, 0, ex.stderr.toString());
    const label = await fsp.readFile(path.join(x, 'backup_label'), 'utf8');
    assert.match(label, /^START WAL LOCATION: /m);
    assert.match(label, /^BACKUP METHOD: streamed$/m, 'the non-exclusive API');
    assert.equal(done.extra?.backupLabel, label);
    assert.equal(done.extra?.startLsn, /START WAL LOCATION: (\S+)/.exec(label)![1]);
    assert.match(String(done.extra?.endLsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    const sysid = (await cl.query<{ s: string }>('SELECT system_identifier::text AS s FROM pg_control_system()')).rows[0]!.s;
    assert.equal(done.extra?.systemIdentifier, sysid);
    assert.deepEqual(await fsp.readdir(path.join(x, 'pg_wal')), ['archive_status']);
    const relfile = (await cl.query<{ p: string }>("SELECT pg_relation_filepath('t') AS p")).rows[0]!.p;
    assert.equal((await fsp.stat(path.join(x, relfile))).size, (await fsp.stat(path.join(cl.data, relfile))).size, 'the table is in the tar');
    await waitNoSession(cl);

    // An abort part-way: done rejects (no snapshot can be recorded from it) and the server ends the backup.
    const h2 = await dumpPgPhysical(src);
    let read = 0;
    for await (const b of h2.stream) {
      read += (b as Buffer).length;
      if (read > 1_000_000) break; // the reader stops early: the stream is destroyed
    }
    await assert.rejects(h2.done, /closed before its end; no backup was taken/);
    await waitNoSession(cl);
    const h3 = await dumpPgPhysical(src);
    h3.stream.on('error', () => {});
    h3.abort();
    await assert.rejects(h3.done);
    await waitNoSession(cl);
    // A job's abort signal (timeout, shutdown) part-way, and before anything started.
    const ac = new AbortController();
    const h5 = await dumpPgPhysical(src, { signal: ac.signal });
    h5.stream.on('error', () => {});
    let got = 0;
    await assert.rejects(
      (async () => {
        for await (const b of h5.stream) {
          got += (b as Buffer).length;
          if (got > 1_000_000 && !ac.signal.aborted) ac.abort(new Error('job timeout'));
        }
      })(),
      /base backup aborted; no backup was taken/,
    );
    await assert.rejects(h5.done, /base backup aborted; no backup was taken/);
    await waitNoSession(cl);
    const ac2 = new AbortController();
    ac2.abort(new Error('shutdown'));
    await assert.rejects(dumpPgPhysical(src, { signal: ac2.signal }), /base backup aborted \(checking the server\); no backup was taken/);
    await waitNoSession(cl);
    // the next backup starts at once (nothing left running on the server)
    const h4 = await dumpPgPhysical(src);
    for await (const b of h4.stream) void b;
    assert.equal((await h4.done).exitCode, 0);

    // Refused before anything starts.
    await assert.rejects(dumpPgPhysical({ ...src, maxRate: '10M' }), /maxRate limits pg_basebackup; it does not apply with dataDir/);
    const spc = path.join(t.dir, 'spc');
    await fsp.mkdir(spc);
    await chownToPostgres(spc);
    await fsp.chmod(t.dir, 0o755);
    await cl.query(`CREATE TABLESPACE extra LOCATION '${spc}'`);
    await assert.rejects(dumpPgPhysical(src), /has 1 tablespace\(s\).*leave dataDir unset to use pg_basebackup/);
    assert.equal(await backupSessions(cl), 0);
    await cl.query('DROP TABLESPACE extra');
    await cl.query("ALTER SYSTEM SET archive_mode = 'off'");
    cl.stopServer();
    cl.start();
    await assert.rejects(dumpPgPhysical(src), /archive_mode is off/);
  } finally {
    await c?.stop().catch(() => {});
    t.cleanup();
  }
});
