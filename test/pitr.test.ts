import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, type RunResult, runCli, tmpDir } from './helpers/tmp.js';
import { chownToPostgres, createCluster, PG_BIN, type PgCluster } from './helpers/pgcluster.js';
import { freePort } from './helpers/db.js';

/**
 * PostgreSQL point-in-time recovery against real clusters: the server archives
 * WAL with `lifeboat wal-push`, a base backup streams into the repository,
 * and a restore to a time between two batches of rows brings back exactly the
 * rows committed before that time.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Run the CLI as the postgres OS user (the repository is shared with the server's archive_command). */
function runAsPostgres(args: string[], cwd: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('runuser', ['-u', 'postgres', '--', process.execPath, CLI, ...args], {
      cwd,
      env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }));
  });
}

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.code, 0, `${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r;
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

interface ArchiverState {
  archived: string;
  failed: string;
  last: string | null;
  lastAt: Date | null;
  lastFailed: string | null;
  lastFailedAt: Date | null;
}

async function archiverState(c: PgCluster): Promise<ArchiverState> {
  return (
    await c.query<ArchiverState>(
      'SELECT archived_count::text AS archived, failed_count::text AS failed, last_archived_wal AS last, last_archived_time AS "lastAt", ' +
        'last_failed_wal AS "lastFailed", last_failed_time AS "lastFailedAt" FROM pg_stat_archiver',
    )
  ).rows[0]!;
}

/** wal-push runs as reported in the server log (archive_command output): whole-process durations in ms. */
async function walPushTimes(c: PgCluster): Promise<number[]> {
  const log = await fsp.readFile(c.log, 'utf8').catch(() => '');
  const ms = (d: string): number => {
    const m = /^(\d+) ms$|^([\d.]+) s$|^(\d+)m(\d+)s$/.exec(d);
    return !m ? NaN : m[1] ? Number(m[1]) : m[2] ? Number(m[2]) * 1000 : (Number(m[3]) * 60 + Number(m[4])) * 1000;
  };
  return [...log.matchAll(/^archived \S+ \(.*\) in .* \(process ([^)]+)\)$/gm)].map((m) => ms(m[1]!));
}

async function archiverDiagnostics(c: PgCluster): Promise<string> {
  const st = await archiverState(c).catch((e: Error) => `pg_stat_archiver unavailable: ${e.message}`);
  const ready = await fsp.readdir(path.join(c.data, 'pg_wal', 'archive_status')).then(
    (f) => f.filter((x) => x.endsWith('.ready')).map((x) => x.slice(0, -6)).sort(),
    () => [] as string[],
  );
  const log = await fsp.readFile(c.log, 'utf8').catch(() => '');
  const times = await walPushTimes(c);
  return (
    `pg_stat_archiver: ${JSON.stringify(st)}\n` +
    `waiting to be archived (.ready): ${ready.length} ${ready.slice(0, 10).join(' ')}\n` +
    `wal-push durations so far (ms): ${times.join(', ')}\n` +
    `server log (tail):\n${log.trim().split('\n').slice(-40).join('\n')}`
  );
}

/**
 * Whether PostgreSQL has archived WAL segment `seg`: its archive status is
 * `.done` (or, recycled after a checkpoint, the segment is gone without a
 * `.ready`). pg_stat_archiver.last_archived_wal is only the most recent file
 * and not monotonic in name order: a base backup's `…C.00000028.backup` can
 * be archived after segment `…D`, and comparing names then waits forever on
 * an idle server (the cause of this test's old flakiness).
 */
function segmentArchived(c: PgCluster, seg: string): boolean {
  const status = path.join(c.data, 'pg_wal', 'archive_status');
  if (existsSync(path.join(status, `${seg}.done`))) return true;
  return !existsSync(path.join(status, `${seg}.ready`)) && !existsSync(path.join(c.data, 'pg_wal', seg)) && existsSync(status);
}

/**
 * Wait until `seg` is archived. On a loaded machine one wal-push can take
 * many seconds, so there is no fixed deadline as long as the archiver makes
 * progress (a file archived or an attempt failed); it fails when nothing
 * happened for STALL_MS (longer than PostgreSQL's 60 s pause after three
 * failed attempts) or after the overall hang guard, with the archiver's state
 * and the server log. Returns when it was archived (pg_stat_archiver's time
 * when it names this segment, else when it was seen).
 */
const STALL_MS = 240_000;
const ARCHIVE_GUARD_MS = 20 * 60_000;
async function waitSegmentArchived(c: PgCluster, seg: string): Promise<Date> {
  const started = Date.now();
  let lastChange = Date.now();
  let prev = '';
  for (;;) {
    const st = await archiverState(c);
    if (st.last === seg && st.lastAt) return st.lastAt;
    if (segmentArchived(c, seg)) return new Date();
    const key = `${st.archived}/${st.failed}`;
    if (key !== prev) {
      prev = key;
      lastChange = Date.now();
    }
    const now = Date.now();
    if (now - lastChange > STALL_MS || now - started > ARCHIVE_GUARD_MS) {
      const why = now - lastChange > STALL_MS ? `the archiver made no progress for ${Math.round((now - lastChange) / 1000)} s` : `still not archived after ${Math.round((now - started) / 1000)} s`;
      throw new Error(`timed out waiting for archiving of ${seg}: ${why}\n${await archiverDiagnostics(c)}`);
    }
    await sleep(500);
  }
}

/** Wait until the archiver has archived the segment holding everything up to now. */
async function waitArchived(c: PgCluster): Promise<string> {
  const seg = (await c.query<{ w: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS w')).rows[0]!.w;
  await waitSegmentArchived(c, seg);
  return seg;
}

/** Wait until a restored server has finished recovery and promoted. */
async function waitPromoted(c: PgCluster, what: string): Promise<void> {
  await waitFor(what, async () => {
    try {
      return !(await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec')).rows[0]!.rec;
    } catch {
      return false;
    }
  }, 600_000);
}

async function batchCounts(c: PgCluster): Promise<Array<{ batch: number; n: string }>> {
  return (await c.query<{ batch: number; n: string }>('SELECT batch, count(*)::text AS n FROM rows GROUP BY batch ORDER BY batch')).rows;
}

interface WalRow {
  archive: string;
  name: string;
  size: number;
}

test('PostgreSQL PITR: archive WAL, base backup, restore to a time between two batches', { timeout: 1_800_000 }, async () => {
  const t = tmpDir('lb-pitr-');
  const repo = path.join(t.dir, 'repo');
  const pw = path.join(t.dir, 'password');
  let primary: PgCluster | undefined;
  let restored: PgCluster | undefined;
  try {
    await fsp.writeFile(pw, 'pitr-secret\n', { mode: 0o600 });
    ok(await runCli(['init', '--repo', repo, '--password-file', pw]), 'init');
    await chownToPostgres(t.dir);
    await fsp.chmod(t.dir, 0o755);
    const common = ['--repo', repo, '--password-file', pw];
    primary = await createCluster({
      settings: {
        archive_mode: 'on',
        archive_command: `${process.execPath} ${CLI} wal-push %p --repo ${repo} --password-file ${pw}`,
        archive_timeout: '2s',
      },
    });
    const p = primary;
    // PostgreSQL 15 applies archive_timeout only after the checkpointer's first
    // checkpoint since start (observed: up to checkpoint_timeout later).
    await p.query('CHECKPOINT');
    await p.query('CREATE TABLE rows (batch int NOT NULL, i int NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())');
    const batchTimes: Array<{ start: Date; committed: Date }> = [];
    const rpo: number[] = [];
    const insertBatch = async (k: number) => {
      const start = (await p.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]!.t;
      await p.query('INSERT INTO rows (batch, i) SELECT $1, g FROM generate_series(1, 100) g', [k]);
      const r = (await p.query<{ t: Date; w: string }>('SELECT clock_timestamp() AS t, pg_walfile_name(pg_current_wal_insert_lsn()) AS w')).rows[0]!;
      batchTimes[k] = { start, committed: r.t };
      // RPO: how long this commit existed only on the primary (until its segment was archived).
      const archivedAt = await waitSegmentArchived(p, r.w);
      rpo.push(archivedAt.getTime() - r.t.getTime());
    };

    await insertBatch(1);
    await sleep(3000);
    await insertBatch(2);
    await sleep(1000);

    // Base backup (as postgres: the repository is shared with the archiver).
    const bb = ok(await runAsPostgres(['pg', 'base-backup', '--port', String(p.port), '--json', ...common], t.dir), 'pg base-backup');
    const bbInfo = JSON.parse(bb.stdout.trim().split('\n').pop()!) as { snapshot: string; total_bytes: number; duration_ms: number; throughput_bytes_per_sec: number };
    console.log(`base backup: ${bbInfo.total_bytes} bytes in ${bbInfo.duration_ms} ms (${(bbInfo.throughput_bytes_per_sec / 1048576).toFixed(1)} MiB/s)`);
    const snaps = JSON.parse(ok(await runCli(['snapshots', '--json', ...common]), 'snapshots').stdout) as Array<{ id: string; source?: Record<string, unknown> }>;
    const base1 = snaps.find((s) => s.id === bbInfo.snapshot)!;
    assert.ok(base1, 'the base backup snapshot is listed');
    assert.equal(base1.source?.kind, 'pg-basebackup');
    assert.match(String(base1.source?.start_lsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.match(String(base1.source?.end_lsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.match(String(base1.source?.start_segment), /^[0-9A-F]{24}$/);
    assert.equal(base1.source?.timeline, 1);
    const sysid = (await p.query<{ s: string }>('SELECT system_identifier::text AS s FROM pg_control_system()')).rows[0]!.s;
    assert.equal(base1.source?.system_identifier, sysid);
    assert.match(String(base1.source?.backup_label), /START WAL LOCATION/);
    assert.match(String(base1.source?.server_version), /^15/);

    for (const k of [3, 4, 5, 6]) {
      await sleep(3000);
      await insertBatch(k);
    }
    await waitArchived(p);
    console.log(`RPO (commit -> its WAL segment archived) with archive_timeout=2s, ms: ${rpo.join(', ')}; max ${Math.max(...rpo)}`);
    const pushes = await walPushTimes(p);
    const arch = await archiverState(p);
    console.log(
      `wal-push: ${pushes.length} runs, median ${[...pushes].sort((a, b) => a - b)[Math.floor(pushes.length / 2)]} ms, max ${Math.max(...pushes)} ms; ` +
        `pg_stat_archiver archived ${arch.archived}, failed ${arch.failed}${arch.lastFailed ? ` (last failed ${arch.lastFailed})` : ''}`,
    );
    // Nothing conflicts with wal-push so far (only shared locks): a failed attempt would be a bug, and costs PostgreSQL's 60 s pause.
    assert.equal(arch.failed, '0', `archive_command failed:\n${await archiverDiagnostics(p)}`);

    const wal = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', ...common]), 'wal-list').stdout) as WalRow[];
    assert.ok(wal.some((w) => w.name === base1.source?.start_segment), 'the base backup start segment is archived');
    assert.ok(wal.some((w) => w.name.endsWith('.backup')), 'the .backup file is archived');
    assert.equal(new Set(wal.map((w) => w.name)).size, wal.length, 'one entry per WAL file');

    // Restore to a time strictly between batch 4's commit and batch 5's start.
    const t4 = batchTimes[4]!.committed.getTime();
    const t5 = batchTimes[5]!.start.getTime();
    assert.ok(t5 > t4);
    const target = new Date(Math.floor((t4 + t5) / 2)).toISOString().replace('T', ' ').replace('Z', '+00');
    const newDir = path.join(t.dir, 'restored');
    await fsp.mkdir(path.join(t.dir, 'notempty'));
    await fsp.writeFile(path.join(t.dir, 'notempty', 'x'), 'x');
    const refused = await runAsPostgres(['pg', 'restore', '--to', path.join(t.dir, 'notempty'), '--target-time', target, '--archive-mode', 'off', ...common], t.dir);
    assert.equal(refused.code, 2, refused.stderr);
    assert.match(refused.stderr, /not empty/);
    // the archiving choice is explicit: without --archive-mode (and no terminal to ask on) nothing is restored
    const unchosen = await runAsPostgres(['pg', 'restore', '--to', newDir, '--target-time', target, ...common], t.dir);
    assert.equal(unchosen.code, 2, unchosen.stderr);
    assert.match(unchosen.stderr, /needs --archive-mode off\|preserve/);
    assert.ok(!existsSync(newDir), 'nothing restored without an archiving choice');
    const bogus = await runAsPostgres(['pg', 'restore', '--to', newDir, '--target-time', target, '--archive-mode', 'on', ...common], t.dir);
    assert.equal(bogus.code, 2, bogus.stderr);
    // --disable-archiving is --archive-mode off
    const rs = ok(await runAsPostgres(['pg', 'restore', '--to', newDir, '--target-time', target, '--disable-archiving', ...common], t.dir), 'pg restore');
    assert.match(rs.stdout, /pg_ctl -D/);
    assert.match(rs.stdout, /WAL archiving: off/);
    assert.ok(existsSync(path.join(newDir, 'recovery.signal')));
    assert.equal((await fsp.stat(newDir)).mode & 0o777, 0o700);
    const auto = await fsp.readFile(path.join(newDir, 'postgresql.auto.conf'), 'utf8');
    assert.match(auto, /restore_command = '.*wal-fetch %f %p .*--password-file/);
    assert.match(auto, /recovery_target_action = 'promote'/);
    assert.ok(!auto.includes('pitr-secret'), 'the password itself is never written into the configuration');
    assert.match(auto, /^archive_mode = 'off'$/m, 'the restored copy does not archive into the production archive');
    // preserve (a promotion into the new primary) keeps the original archive_command and says so
    const promoDir = path.join(t.dir, 'promotion');
    const pr0 = ok(await runAsPostgres(['pg', 'restore', '--to', promoDir, '--target-time', target, '--archive-mode', 'preserve', '--json', ...common], t.dir), 'pg restore preserve');
    assert.equal((JSON.parse(pr0.stdout.trim().split('\n').pop()!) as { archive_mode: string }).archive_mode, 'preserve');
    const promoAuto = await fsp.readFile(path.join(promoDir, 'postgresql.auto.conf'), 'utf8');
    assert.doesNotMatch(promoAuto, /^archive_mode = 'off'$/m);
    assert.match(promoAuto, /^archive_command = '.*wal-push %p/m, 'the backed-up archive_command is kept');
    await fsp.rm(promoDir, { recursive: true, force: true });

    restored = await createCluster({ existingData: newDir });
    const r = restored;
    await waitPromoted(r, 'recovery to finish (promotion)');
    const counts = await batchCounts(r);
    assert.deepEqual(
      counts.map((c) => [c.batch, Number(c.n)]),
      [
        [1, 100],
        [2, 100],
        [3, 100],
        [4, 100],
      ],
      'exactly the rows of batches 1-4 are restored',
    );
    await r.stop();
    restored = undefined;

    // Retention: a second base backup, forget the first, prune: WAL before the
    // second backup's start goes, everything from it on stays, check passes.
    // A data directory that is not this server's is refused before any backup starts (exit 2).
    const other = path.join(t.dir, 'other-cluster');
    await fsp.mkdir(path.join(other, 'global'), { recursive: true });
    await fsp.writeFile(path.join(other, 'global', 'pg_control'), Buffer.alloc(8192, 7));
    await chownToPostgres(other);
    const wrongDir = await runAsPostgres(['pg', 'base-backup', '--port', String(p.port), '--data-dir', other, ...common], t.dir);
    assert.equal(wrongDir.code, 2, wrongDir.stderr);
    assert.match(wrongDir.stderr, /belongs to another cluster/);
    assert.doesNotMatch(wrongDir.stderr, /\n\s+at /, 'no stack trace');
    const noDir = await runAsPostgres(['pg', 'base-backup', '--port', String(p.port), '--data-dir', path.join(t.dir, 'nowhere'), ...common], t.dir);
    assert.equal(noDir.code, 2, noDir.stderr);
    assert.match(noDir.stderr, /cannot read global\/pg_control/);

    // The second base backup reads the data directory directly (pg_backup_start/stop, docs/pitr.md "Direct base backups").
    const bb2 = JSON.parse(ok(await runAsPostgres(['pg', 'base-backup', '--port', String(p.port), '--data-dir', p.data, '--json', ...common], t.dir), 'second base backup (direct)').stdout.trim().split('\n').pop()!) as { snapshot: string };
    await insertBatch(7);
    await waitArchived(p);
    // the primary's archiver must not add segments while the archive is counted below (wal-list vs check)
    await p.stop();
    primary = undefined;
    const snaps2 = JSON.parse(ok(await runCli(['snapshots', '--json', ...common]), 'snapshots').stdout) as Array<{ id: string; source?: Record<string, unknown> }>;
    const src2 = snaps2.find((s) => s.id === bb2.snapshot)!.source!;
    assert.equal(src2.method, 'direct');
    assert.equal(src2.system_identifier, sysid);
    assert.match(String(src2.backup_label), /START WAL LOCATION/);
    assert.ok(Number(src2.files) > 100, `files read: ${String(src2.files)}`);
    const start2 = String(src2.start_segment);
    const before = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', ...common]), 'wal-list').stdout) as WalRow[];
    const older = before.filter((w) => !w.name.endsWith('.history') && w.name.slice(8, 24) < start2.slice(8, 24));
    assert.ok(older.length > 0, 'there is WAL older than the second base backup');
    // While the first base backup is kept, only WAL from before ITS start may go.
    const start1 = String(base1.source!.start_segment);
    const beforeFirst = before.filter((w) => !w.name.endsWith('.history') && w.name.slice(8, 24) < start1.slice(8, 24));
    const dry = JSON.parse(ok(await runAsPostgres(['pg', 'wal-prune', '--dry-run', '--json', ...common], t.dir), 'wal-prune dry run').stdout) as { removed: string[] };
    assert.deepEqual(dry.removed.sort(), beforeFirst.map((w) => `default/${w.name}`).sort());
    assert.ok(!dry.removed.includes(`default/${start1}`));
    ok(await runAsPostgres(['forget', base1.id, ...common], t.dir), 'forget');
    const pr = JSON.parse(ok(await runAsPostgres(['prune', '--json', ...common], t.dir), 'prune').stdout.trim().split('\n').pop()!) as { wal_removed: number; packs_deleted: number };
    assert.equal(pr.wal_removed, older.length);
    assert.ok(pr.packs_deleted > 0, 'the removed WAL freed packs');
    const after = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', ...common]), 'wal-list').stdout) as WalRow[];
    const afterNames = new Set(after.map((w) => w.name));
    for (const w of older) assert.ok(!afterNames.has(w.name), `${w.name} was removed`);
    for (const w of before) if (!older.includes(w)) assert.ok(afterNames.has(w.name), `${w.name} is kept`);
    assert.ok(afterNames.has(start2), 'the kept base backup start segment is kept');
    const chk = ok(await runAsPostgres(['check', '--read-data', '--json', ...common], t.dir), 'check --read-data');
    const chkRes = JSON.parse(chk.stdout.trim().split('\n').pop()!) as { ok?: boolean; wal_files?: number; problems?: unknown[] };
    assert.equal(chkRes.wal_files, after.length);
    // A kept segment is still fetchable after prune (its blobs may have been repacked).
    const dest = path.join(t.dir, 'fetched');
    ok(await runCli(['wal-fetch', start2, dest, ...common]), 'wal-fetch after prune');
    assert.equal((await fsp.stat(dest)).size, after.find((w) => w.name === start2)!.size);

    // The direct base backup restores and recovers to the end of the archive: every batch, 7 included.
    const directDir = path.join(t.dir, 'restored-direct');
    ok(await runAsPostgres(['pg', 'restore', bb2.snapshot, '--to', directDir, '--archive-mode', 'off', ...common], t.dir), 'pg restore (direct base backup)');
    assert.ok(existsSync(path.join(directDir, 'backup_label')), 'backup_label from pg_backup_stop is in the restored directory');
    assert.ok(!existsSync(path.join(directDir, 'postmaster.pid')));
    assert.deepEqual(await fsp.readdir(path.join(directDir, 'pg_wal')), ['archive_status']);
    restored = await createCluster({ existingData: directDir });
    const r2 = restored;
    await waitPromoted(r2, 'recovery of the direct base backup (promotion)');
    const counts2 = await batchCounts(r2);
    assert.deepEqual(
      counts2.map((c) => [c.batch, Number(c.n)]),
      [1, 2, 3, 4, 5, 6, 7].map((b) => [b, 100]),
      'the direct base backup with the archive brings back every batch',
    );
    await r2.stop();
    restored = undefined;
  } finally {
    await restored?.stop().catch(() => {});
    await primary?.stop().catch(() => {});
    t.cleanup();
  }
});

test('wal-push is idempotent, refuses different content; wal-fetch verifies and never writes wrong bytes', { timeout: 120_000 }, async () => {
  const t = tmpDir('lb-wal-');
  try {
    const repo = path.join(t.dir, 'repo');
    const pw = path.join(t.dir, 'pw');
    await fsp.writeFile(pw, 'secret');
    const common = ['--repo', repo, '--password-file', pw];
    ok(await runCli(['init', ...common]), 'init');
    const seg = '000000010000000000000007';
    const wal = path.join(t.dir, 'pg_wal');
    await fsp.mkdir(wal);
    const content = Buffer.alloc(16 * 1024 * 1024);
    for (let i = 0; i < content.length; i += 4096) content.write(`record ${i} ${Math.sin(i)}`, i);
    await fsp.writeFile(path.join(wal, seg), content);
    ok(await runCli(['wal-push', path.join(wal, seg), ...common]), 'first push');
    const again = ok(await runCli(['wal-push', path.join(wal, seg), ...common]), 'second push of the same file');
    assert.match(again.stdout, /already archived/);
    const other = path.join(t.dir, 'other');
    await fsp.mkdir(other);
    const changed = Buffer.from(content);
    changed[1000] = changed[1000]! ^ 0xff;
    await fsp.writeFile(path.join(other, seg), changed);
    const conflict = await runCli(['wal-push', path.join(other, seg), ...common]);
    assert.notEqual(conflict.code, 0);
    assert.match(conflict.stderr, /DIFFERENT content/);
    const bad = await runCli(['wal-push', path.join(wal, 'not-a-wal-file'), ...common]);
    assert.equal(bad.code, 2);

    // History files are archived too.
    await fsp.writeFile(path.join(wal, '00000002.history'), '1\t0/7000000\tno recovery target specified\n');
    ok(await runCli(['wal-push', path.join(wal, '00000002.history'), ...common]), 'push history');

    // Fetch: exact bytes; a missing segment exits non-zero and writes nothing.
    const dest = path.join(t.dir, 'RECOVERYXLOG');
    ok(await runCli(['wal-fetch', seg, dest, ...common]), 'fetch');
    assert.ok((await fsp.readFile(dest)).equals(content));
    await fsp.rm(dest);
    const missing = await runCli(['wal-fetch', '000000010000000000000008', dest, ...common]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not in the archive/);
    assert.ok(!existsSync(dest));

    // Damage the segment's data: wal-fetch fails loudly (integrity) and leaves no file at %p.
    const packs: string[] = [];
    for (const d of await fsp.readdir(path.join(repo, 'data'))) for (const f of await fsp.readdir(path.join(repo, 'data', d))) packs.push(path.join(repo, 'data', d, f));
    assert.ok(packs.length > 0);
    const saved = new Map<string, Buffer>();
    for (const f of packs) {
      const b = await fsp.readFile(f);
      saved.set(f, Buffer.from(b));
      // one byte in every 512: every blob of the segment is hit wherever the packs put it (the
      // segment compresses to small blobs; one byte at a fixed place could fall into another file's blob)
      for (let i = 100; i < b.length - 4; i += 512) b[i] = b[i]! ^ 0x55;
      await fsp.writeFile(f, b);
    }
    const corrupt = await runCli(['wal-fetch', seg, dest, ...common]);
    assert.equal(corrupt.code, 5, corrupt.stderr);
    assert.ok(!existsSync(dest), 'no file at %p');
    assert.ok(!existsSync(`${dest}.tmp`), 'no temporary file left');
    const chk = await runCli(['check', '--read-data', ...common]);
    assert.equal(chk.code, 5, 'check --read-data reports the damaged WAL data');
    for (const [f, b] of saved) await fsp.writeFile(f, b);

    // Damage the WAL entry itself.
    const entries = await fsp.readdir(path.join(repo, 'wal'));
    assert.equal(entries.length, 2);
    for (const e of entries) {
      const f = path.join(repo, 'wal', e);
      const b = await fsp.readFile(f);
      b[b.length - 5] = b[b.length - 5]! ^ 1;
      await fsp.writeFile(f, b);
    }
    const corrupt2 = await runCli(['wal-fetch', seg, dest, ...common]);
    assert.equal(corrupt2.code, 5, corrupt2.stderr);
    assert.ok(!existsSync(dest));
    const chk2 = await runCli(['check', ...common]);
    assert.equal(chk2.code, 5, 'check reports the damaged WAL entries');
    const prune = await runCli(['prune', ...common]);
    assert.equal(prune.code, 5, 'prune refuses to run while WAL entries are unreadable');
  } finally {
    t.cleanup();
  }
});

/**
 * The config-driven path: a `postgres-physical` source and a job with a 3-2-1
 * copy. `lifeboat run` takes the base backup, copies it AND the WAL archive to
 * the second repository; the primary repository is then deleted and the
 * cluster is restored (to the end of the archive) from the copy alone.
 */
test('postgres-physical job: lifeboat run backs up, copies base backup and WAL; restore from the copy alone', { timeout: 1_200_000 }, async () => {
  const t = tmpDir('lb-pitr-job-');
  let primary: PgCluster | undefined;
  let restored: PgCluster | undefined;
  try {
    const pw = path.join(t.dir, 'password');
    await fsp.writeFile(pw, 'job-secret\n', { mode: 0o600 });
    const repoA = path.join(t.dir, 'a');
    const repoB = path.join(t.dir, 'b');
    for (const r of [repoA, repoB]) ok(await runCli(['init', '--repo', r, '--password-file', pw]), 'init');
    await chownToPostgres(t.dir);
    await fsp.chmod(t.dir, 0o755);
    primary = await createCluster({
      settings: {
        archive_mode: 'on',
        archive_command: `${process.execPath} ${CLI} wal-push %p --repo ${repoA} --password-file ${pw}`,
        archive_timeout: '2s',
      },
    });
    const p = primary;
    await p.query('CHECKPOINT');
    await p.query('CREATE TABLE items (id int PRIMARY KEY, note text)');
    await p.query(`INSERT INTO items SELECT g, 'before base backup ' || g FROM generate_series(1, 500) g`);
    const rbPort = await freePort();
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    await fsp.writeFile(
      cfg,
      `repositories:
  a: { location: ${repoA}, password: { file: ${pw} } }
  b: { location: ${repoB}, password: { file: ${pw} } }
sources:
  cluster: { kind: postgres-physical, host: 127.0.0.1, port: ${p.port}, user: postgres }
jobs:
  cluster-base:
    source: cluster
    repository: a
    copyTo: [b]
    tier: critical
    drill:
      database: postgres
      queries:
        - { name: items, sql: "SELECT count(*) FROM items", equals: 900 }
services:
  app: { jobs: [cluster-base] }
runbooks:
  pitr-undo:
    title: Undo a bad deployment by point-in-time recovery
    scenario: database-corruption
    severity: high
    services: [app]
    incident: false
    steps:
      - { type: restore, name: pitr, source: cluster, to: ./rb-restored, targetTime: "2000-01-01T00:00:00Z" }
      - type: exec
        name: start
        command: "runuser -u postgres -- ${PG_BIN}/pg_ctl -D ./rb-restored -l ./rb.log -o '-p ${rbPort}' -w start"
        timeout: 2m
        rollback: { type: exec, command: "runuser -u postgres -- ${PG_BIN}/pg_ctl -D ./rb-restored -m immediate stop" }
      - type: wait
        name: promoted
        until: { type: sql, url: "postgres://postgres@127.0.0.1:${rbPort}/postgres", query: "SELECT pg_is_in_recovery()", expect: false }
        timeout: 2m
      - { type: sql, name: rows, url: "postgres://postgres@127.0.0.1:${rbPort}/postgres", query: "SELECT count(*) FROM items", expect: 800 }
daemon:
  catalog: ${path.join(t.dir, 'catalog.db')}
`,
    );
    await fsp.chown(cfg, (await fsp.stat(t.dir)).uid, (await fsp.stat(t.dir)).gid);
    await p.query(`INSERT INTO items SELECT g, 'after base backup ' || g FROM generate_series(501, 800) g`);
    // the job copies the WAL archived so far; archive everything first
    await waitArchived(p);
    const run = ok(await runAsPostgres(['run', 'cluster-base', '--config', cfg], t.dir), 'run cluster-base');
    assert.doesNotMatch(run.stderr, /copy to b failed/);
    // the moment the runbook will go back to: after rows 1-800, before 801-900
    await sleep(1000);
    const tMid = (await p.query<{ t: Date }>('SELECT clock_timestamp() AS t')).rows[0]!.t;
    await sleep(1000);
    await fsp.writeFile(cfg, (await fsp.readFile(cfg, 'utf8')).replace('2000-01-01T00:00:00Z', tMid.toISOString()));
    await p.query(`INSERT INTO items SELECT g, 'after the job ' || g FROM generate_series(801, 900) g`);
    await waitArchived(p);
    // the primary keeps archiving (a checkpoint, archive_timeout): compare with what A held when the copy ran
    const walAtCopy = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', '--repo', repoA, '--password-file', pw]), 'wal-list a').stdout) as WalRow[];
    // the daemon's next run (or an explicit copy) brings the newest WAL over
    ok(await runAsPostgres(['copy', '--from-repo', 'a', '--repo', 'b', '--config', cfg], t.dir), 'copy a -> b');

    // restore drill of the PITR path: base backup + WAL replayed by a private server, timed
    const drill = await runCli(['drill', 'cluster-base', '--config', cfg, '--json'], {});
    assert.equal(drill.code, 0, drill.stderr + drill.stdout);
    const dr = JSON.parse(drill.stdout.trim().split('\n').pop()!) as { status: string; restore_ms: number; rto_ms: number; rto_met: boolean; backup_age_ms: number; snapshot_time: string; started_at: string; checks: Array<{ name: string; ok: boolean; detail: string }>; phases: Array<{ name: string; ms: number }> };
    // the newest restorable point is the newest archived WAL (archived after the base backup), not the base backup
    assert.ok(dr.backup_age_ms < Date.parse(dr.started_at) - Date.parse(dr.snapshot_time), `backup_age_ms ${dr.backup_age_ms} counts from the newest archived WAL`);
    assert.equal(dr.status, 'success');
    assert.deepEqual(dr.checks.map((c) => [c.name, c.ok]), [['recovery', true], ['databases', true], ['writable', true], ['items', true]]);
    assert.equal(dr.rto_ms, 3600_000, 'tier critical: RTO 1h');
    assert.equal(dr.rto_met, true);
    console.log(`PITR drill: restore (extract + WAL replay until promoted) ${dr.restore_ms} ms; phases ${dr.phases.map((p) => `${p.name} ${p.ms} ms`).join(', ')}`);
    const leftovers = (await fsp.readdir(os.tmpdir())).filter((f) => f.startsWith('lifeboat-drill-cluster-base-'));
    assert.deepEqual(leftovers, [], 'the scratch data directory is removed');

    // the drill's timeout holds while a verification query never returns: the query is ended, the drill fails
    // at the timeout (not when the query would end), and the scratch server is stopped and removed
    const cfgHang = path.join(t.dir, 'lifeboat-hang.yaml');
    const hangText = (await fsp.readFile(cfg, 'utf8'))
      .replace('        - { name: items, sql: "SELECT count(*) FROM items", equals: 900 }', '        - { name: hangs, sql: "SELECT pg_sleep(600)::text", equals: "x" }')
      .replace('    drill:\n      database: postgres\n', '    drill:\n      database: postgres\n      timeout: 45s\n')
      .replace('catalog.db', 'catalog-hang.db');
    assert.match(hangText, /pg_sleep\(600\)[\s\S]*timeout: 45s|timeout: 45s[\s\S]*pg_sleep\(600\)/);
    await fsp.writeFile(cfgHang, hangText);
    const tHang = Date.now();
    const hang = await runCli(['drill', 'cluster-base', '--config', cfgHang, '--json'], {});
    const hangMs = Date.now() - tHang;
    assert.equal(hang.code, 1, hang.stderr + hang.stdout);
    const hr = JSON.parse(hang.stdout.trim().split('\n').pop()!) as { status: string; error: string; checks: Array<{ name: string; ok: boolean; detail: string }>; phases: Array<{ name: string; ok: boolean }> };
    assert.equal(hr.status, 'failed');
    assert.match(hr.error, /drill timeout after 45s/);
    assert.deepEqual(hr.checks.find((c) => c.name === 'hangs')?.ok, false, JSON.stringify(hr));
    assert.ok(hangMs < 100_000, `the drill took ${hangMs} ms`);
    assert.deepEqual(hr.phases.at(-1), { ...hr.phases.at(-1)!, name: 'cleanup', ok: true });
    assert.deepEqual((await fsp.readdir(os.tmpdir())).filter((f) => f.startsWith('lifeboat-drill-cluster-base-')), [], 'the scratch data directory is removed after the timeout');

    // monitoring: the job's recovery point is the newest archived WAL, later than the base backup run
    const st = await runCli(['status', '--json', '--config', cfg], {});
    const rpoFinding = (JSON.parse(st.stdout.trim().split('\n').pop()!) as { findings: Array<{ job: string; check: string; severity: string; details: Record<string, unknown> }> }).findings.find(
      (f) => f.job === 'cluster-base' && f.check === 'rpo',
    )!;
    assert.equal(rpoFinding.severity, 'ok');
    assert.ok(typeof rpoFinding.details.wal_archived_at === 'string', JSON.stringify(rpoFinding));
    assert.equal(rpoFinding.details.last_success_at, rpoFinding.details.wal_archived_at);

    const snapsB = JSON.parse(ok(await runCli(['snapshots', '--json', '--repo', repoB, '--password-file', pw]), 'snapshots b').stdout) as Array<{ source?: Record<string, unknown> }>;
    assert.equal(snapsB.filter((s) => s.source?.kind === 'pg-basebackup').length, 1, 'the base backup was copied once');
    const walA = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', '--repo', repoA, '--password-file', pw]), 'wal-list a').stdout) as WalRow[];
    const walB = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', '--repo', repoB, '--password-file', pw]), 'wal-list b').stdout) as WalRow[];
    const namesB = new Set(walB.map((w) => w.name));
    const namesA = new Set(walA.map((w) => w.name));
    assert.deepEqual(walAtCopy.map((w) => w.name).filter((n) => !namesB.has(n)), [], 'the copy holds the whole WAL archive as of the copy');
    assert.deepEqual([...namesB].filter((n) => !namesA.has(n)), [], 'and nothing that is not in the primary archive');

    // a runbook: point-in-time restore to the moment before rows 801-900, start the server, check
    const rb = await runCli(['runbook', 'run', 'pitr-undo', '--config', cfg, '--json'], {});
    try {
      assert.equal(rb.code, 0, rb.stderr + rb.stdout);
    } finally {
      spawnSync('runuser', ['-u', 'postgres', '--', `${PG_BIN}/pg_ctl`, '-D', path.join(t.dir, 'rb-restored'), '-m', 'immediate', 'stop']);
    }
    // the runbook's restore (not a promotion: archiveMode defaults to off) never archives its new timeline into the production archive
    assert.match(await fsp.readFile(path.join(t.dir, 'rb-restored', 'postgresql.auto.conf'), 'utf8'), /^archive_mode = 'off'$/m);
    const walAfterRunbook = JSON.parse(ok(await runCli(['pg', 'wal-list', '--json', '--repo', repoA, '--password-file', pw]), 'wal-list a').stdout) as WalRow[];
    assert.deepEqual(walAfterRunbook.filter((w) => !w.name.startsWith('00000001')).map((w) => w.name), [], 'no WAL of the restored copy\'s new timeline in the archive');

    // lose the primary repository and the cluster; recover from the copy alone
    p.stopServer('immediate');
    await fsp.rm(repoA, { recursive: true, force: true });
    const newDir = path.join(t.dir, 'restored');
    ok(await runAsPostgres(['pg', 'restore', 'latest', '--to', newDir, '--archive-mode', 'off', '--repo', repoB, '--password-file', pw], t.dir), 'pg restore from the copy');
    restored = await createCluster({ existingData: newDir });
    const r = restored;
    await waitPromoted(r, 'recovery to finish');
    const n = (await r.query<{ n: string; max: number }>('SELECT count(*)::text AS n, max(id) AS max FROM items')).rows[0]!;
    assert.equal(Number(n.n), 900, 'every committed row, including those after the base backup, replayed from the copy\'s WAL');
    assert.equal(n.max, 900);
  } finally {
    await restored?.stop().catch(() => {});
    await primary?.stop().catch(() => {});
    t.cleanup();
  }
});
