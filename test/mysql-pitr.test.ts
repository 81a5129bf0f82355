import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CLI, type RunResult, runCli, tmpDir } from './helpers/tmp.js';
import { runCapture } from '../src/sources/proc.js';
import { startScratchMysql, type ScratchMysql } from '../src/sources/mysql/scratch.js';
import { parseBinlogCoordinates } from '../src/sources/mysql/binlog-coords.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { binlogObjectId, compareBinlogNames, findBinlog, listBinlogs, pushBinlog } from '../src/repo/binlog.js';
import { scanBinlog } from '../src/sources/mysql/binlog.js';

/**
 * MySQL/MariaDB point-in-time recovery against a private mariadbd with binary
 * logging on (started by the test on a free port): a dump records its binlog
 * coordinates, binary logs are archived into the repository (--once and the
 * streaming archiver), and a restore to a time / a position between two
 * writes brings back exactly the rows written before it. A binary log missing
 * in the middle of the archive is refused with exit code 6.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t = tmpDir('lb-mypitr-');
let server: ScratchMysql;
let cfg: string;
const env = { LIFEBOAT_PASSWORD: 'pitr-pw' };

async function sql(q: string, db?: string): Promise<string[][]> {
  const r = await runCapture('mariadb', ['--protocol=TCP', '--host=127.0.0.1', `--port=${server.port}`, '--user=root', '--batch', '--skip-column-names', ...(db ? [`--database=${db}`] : []), '-e', q], {
    timeoutMs: 60_000,
  });
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split('\t'));
}

async function ids(db: string): Promise<number[]> {
  return (await sql('SELECT id FROM items ORDER BY id', db)).map((r) => Number(r[0]));
}

async function insert(from: number, to: number): Promise<void> {
  // one transaction per row: each is its own binlog event group
  const stmts: string[] = [];
  for (let i = from; i <= to; i++) stmts.push(`INSERT INTO items VALUES (${i}, 'row ${i}', NOW(6));`);
  await sql(stmts.join(' '), 'shop');
}

async function masterPos(): Promise<string> {
  const r = await sql('SHOW MASTER STATUS');
  return `${r[0]![0]}:${r[0]![1]}`;
}

function ok(r: RunResult, what: string): RunResult {
  assert.equal(r.code, 0, `${what} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r;
}

const cli = (args: string[]) => runCli([...args, '--config', cfg], { env });
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

/** Wait until the wall clock is at least 1.2 s into a new second, so writes before/after a target fall in different binlog seconds. */
async function nextSecond(): Promise<void> {
  await sleep(1000 - (Date.now() % 1000) + 200);
}

before(async () => {
  server = await startScratchMysql({ dir: path.join(t.dir, 'mysqld'), logBin: true });
  cfg = path.join(t.dir, 'lifeboat.yaml');
  await fsp.writeFile(
    cfg,
    `repositories:
  main: { location: ./repo, autoInit: true }
sources:
  shop:
    kind: mysql
    host: 127.0.0.1
    port: ${server.port}
    user: root
    database: shop
    binlog: { spoolDir: ./spool }
jobs:
  shop-pitr:
    source: shop
    drill:
      mysqlPitr: { targetTime: latest }
      queries:
        - { name: items, sql: "SELECT COUNT(*) FROM items", equals: 23 }
        - { name: newest, sql: "SELECT MAX(id) FROM items", equals: 105 }
`,
  );
  await sql('CREATE DATABASE shop; CREATE TABLE shop.items (id INT PRIMARY KEY, label VARCHAR(40), at DATETIME(6))');
});

after(async () => {
  await server?.stop();
  t.cleanup();
});

test('parses the dump\'s coordinates comment (MariaDB and MySQL 8 spellings)', () => {
  assert.deepEqual(parseBinlogCoordinates("--\n-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=843;\n"), { file: 'binlog.000007', pos: 843 });
  assert.deepEqual(parseBinlogCoordinates("-- CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE='mysql-bin.000002', SOURCE_LOG_POS=157;"), { file: 'mysql-bin.000002', pos: 157 });
  assert.equal(parseBinlogCoordinates("CHANGE MASTER TO MASTER_LOG_FILE='binlog.000007', MASTER_LOG_POS=843;"), undefined, 'only the comment form (--master-data=2)');
});

test('dump + archived binlogs: restore to a time and to a position gives exactly the rows before it; a gap is refused (exit 6)', async () => {
  await insert(1, 5);
  ok(await cli(['backup', '--source', 'shop']), 'backup');
  const snaps = JSON.parse(ok(await cli(['snapshots', '--json', '--source', 'shop']), 'snapshots').stdout);
  const coords = snaps[0].source.binlog;
  assert.match(coords.file, /^binlog\.\d{6}$/);
  assert.ok(coords.pos >= 4);
  assert.equal(coords.archive, 'shop');

  await insert(6, 7);
  const afterSeven = await masterPos();
  await insert(8, 10);
  await nextSecond();
  const t1 = new Date();
  await nextSecond();
  await insert(11, 15);
  let r = ok(await cli(['mysql', 'binlog-archive', 'shop', '--once', '--json']), 'binlog-archive --once');
  const once = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(once.archived.length >= 1, r.stdout);

  // a second flush: more files in the chain (for the gap test below)
  await insert(16, 16);
  ok(await cli(['mysql', 'binlog-archive', 'shop', '--once']), 'binlog-archive --once (2)');
  await insert(17, 17);
  ok(await cli(['mysql', 'binlog-archive', 'shop', '--once']), 'binlog-archive --once (3)');
  const list = JSON.parse(ok(await cli(['mysql', 'binlog-list', '--json']), 'binlog-list').stdout);
  assert.ok(list.length >= 3, JSON.stringify(list));

  // to a time: rows 1..10 exactly (11.. were written after t1)
  r = ok(await cli(['mysql', 'restore', 'shop', '--target-time', t1.toISOString(), '--to-database', 'shop_t1']), 'restore --target-time');
  assert.deepEqual(await ids('shop_t1'), range(1, 10));
  // the source database itself is untouched
  assert.deepEqual(await ids('shop'), range(1, 17));

  // to a position: rows 1..7 exactly
  ok(await cli(['mysql', 'restore', 'shop', '--target-position', afterSeven, '--to-database', 'shop_p7']), 'restore --target-position');
  assert.deepEqual(await ids('shop_p7'), range(1, 7));

  // a time after the end of the archive: refused (exit 6), nothing created
  r = await cli(['mysql', 'restore', 'shop', '--target-time', new Date(Date.now() + 3600_000).toISOString(), '--to-database', 'shop_future']);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, /archive "shop" ends at .*before the target/);
  assert.deepEqual(await sql("SHOW DATABASES LIKE 'shop_future'"), []);

  // a binary log missing in the middle of the sequence: refused with exit 6, before the target is touched
  const names: string[] = list.map((e: { name: string }) => e.name);
  const middle = names[names.indexOf(coords.file) + 1]!;
  assert.ok(middle && names.indexOf(middle) < names.length - 1, `need a file after ${middle}: ${names.join(' ')}`);
  const repoDir = path.join(t.dir, 'repo');
  const repo = await Repository.open(new LocalStorage(repoDir), env.LIFEBOAT_PASSWORD);
  const obj = (name: string) => path.join(repoDir, 'binlog', binlogObjectId(repo, 'shop', name));
  const moved = path.join(t.dir, 'moved-binlog');
  await fsp.rename(obj(middle), moved);
  r = await cli(['mysql', 'restore', 'shop', '--target-time', new Date().toISOString(), '--to-database', 'shop_gap']);
  assert.equal(r.code, 6, r.stderr);
  assert.match(r.stderr, new RegExp(`binary log ${middle.replace('.', '\\.')} is missing from the archive.*gap`));
  assert.match(r.stderr, /POINT-IN-TIME RESTORE FAILED/);
  assert.deepEqual(await sql("SHOW DATABASES LIKE 'shop_gap'"), [], 'nothing was restored');
  r = await cli(['mysql', 'restore', 'shop', '--target-position', `${names.at(-1)}:4`, '--to-database', 'shop_gap']);
  assert.equal(r.code, 6, r.stderr);
  await fsp.rename(moved, obj(middle));

  // damaged binlog data (every blob of the dump's first binlog): the restore fails as an integrity error (exit 5) before touching the target
  const entry = (await listBinlogs(repo)).find((e) => e.name === coords.file)!;
  const saved: Array<[string, Buffer]> = [];
  for (const b of entry.blobs) {
    const loc = repo.index.get(b)!;
    const file = path.join(repoDir, 'data', loc.pack.slice(0, 2), loc.pack);
    const bytes = await fsp.readFile(file);
    saved.push([file, Buffer.from(bytes)]);
    bytes[loc.offset + Math.floor(loc.length / 2)]! ^= 0xff;
    await fsp.chmod(file, 0o600);
    await fsp.writeFile(file, bytes);
  }
  r = await cli(['mysql', 'restore', 'shop', '--target-time', t1.toISOString(), '--to-database', 'shop_bad']);
  assert.equal(r.code, 5, r.stderr);
  assert.match(r.stderr, /authentication failed/);
  assert.deepEqual(await sql("SHOW DATABASES LIKE 'shop_bad'"), [], 'nothing was restored');
  for (const [file, bytes] of saved) await fsp.writeFile(file, bytes);
  await repo.close();

  const chk = JSON.parse(ok(await cli(['check', '--read-data', '--json']), 'check --read-data').stdout.trim().split('\n').pop()!);
  assert.equal(chk.binlog_files, names.length);
});

test('streaming archiver: rows written while it runs become restorable; SIGTERM stops it cleanly', async () => {
  const child = spawn(process.execPath, [CLI, 'mysql', 'binlog-archive', 'shop', '--flush-interval', '1s', '--config', cfg], {
    env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => out.push(b));
  const exited = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  try {
    await insert(100, 104);
    await nextSecond();
    const t2 = new Date();
    await nextSecond();
    await insert(105, 105);
    // wait until the archive covers t2 (the restore refuses with exit 6 until then)
    const deadline = Date.now() + 60_000;
    let r: RunResult;
    let n = 0;
    for (;;) {
      r = await cli(['mysql', 'restore', 'shop', '--target-time', t2.toISOString(), '--to-database', `shop_s${n}`]);
      if (r.code === 0) break;
      assert.equal(r.code, 6, `${r.stderr}\n${Buffer.concat(out).toString()}`);
      assert.ok(Date.now() < deadline, `the streaming archiver did not archive in time:\n${Buffer.concat(out).toString()}`);
      n++;
      await sleep(500);
    }
    assert.deepEqual(await ids(`shop_s${n}`), [...range(1, 17), ...range(100, 104)]);
    assert.match(Buffer.concat(out).toString(), /archived binlog\.\d{6}/);
  } finally {
    child.kill('SIGTERM');
  }
  assert.equal(await exited, 0, Buffer.concat(out).toString());
});

test('position check: a truncated or still-growing binary log copy is not archived', async () => {
  await sql('FLUSH BINARY LOGS');
  const whole = path.join(server.dir, 'data', 'binlog.000001'); // closed by a FLUSH BINARY LOGS
  const s = await scanBinlog(whole);
  assert.equal(s.whole, true);
  assert.equal(s.rotated, true, 'a closed binary log ends with the ROTATE event');
  const bytes = await fsp.readFile(whole);
  const cut = path.join(t.dir, 'binlog.000001');
  for (const n of [bytes.length - 1, bytes.length - 44, 200]) {
    await fsp.writeFile(cut, bytes.subarray(0, n));
    const c = await scanBinlog(cut);
    assert.equal(c.rotated, false, `cut at ${n}`);
  }
  await cli(['init']); // (already there when the tests above ran)
  const repo = await Repository.open(new LocalStorage(path.join(t.dir, 'repo')), env.LIFEBOAT_PASSWORD);
  try {
    await assert.rejects(pushBinlog(repo, cut, { archive: 'other', expectedSize: bytes.length }), /the copy has 200 bytes but the server reports \d+; not archiving an incomplete file/);
    assert.equal(await findBinlog(repo, 'other', 'binlog.000001'), undefined);
    // the same name with different bytes in an archive that has it: refused, not overwritten
    assert.equal((await pushBinlog(repo, whole, { archive: 'other', expectedSize: bytes.length })).status, 'stored');
    await assert.rejects(pushBinlog(repo, cut, { archive: 'other' }), /already archived .* with DIFFERENT content/);
    assert.equal((await pushBinlog(repo, whole, { archive: 'other' })).status, 'already-archived');
  } finally {
    await repo.close();
  }
});

test('mysql-pitr drill: dump + binlogs replayed into a private scratch mariadbd, verification queries, scratch removed', async () => {
  // the drill replays what is archived: make sure the rows the queries expect are (the streaming archiver of the test before may have stopped first)
  ok(await cli(['mysql', 'binlog-archive', 'shop', '--once']), 'binlog-archive --once');
  const r = await cli(['drill', 'shop-pitr', '--json']);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const d = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.equal(d.status, 'success');
  assert.equal(d.kind, 'mysql');
  assert.match(d.target, /private mariadbd .*database shop, binlogs replayed to latest/);
  const byName = Object.fromEntries(d.checks.map((c: { name: string }) => [c.name, c]));
  assert.equal(byName.items.ok, true);
  assert.equal(byName.newest.ok, true, byName.newest.detail);
  assert.match(byName['binlog replay'].detail, /binary log\(s\) .* replayed without errors/);
  const left = (await fsp.readdir(os.tmpdir())).filter((f) => f.startsWith('lifeboat-drill-shop-pitr-'));
  assert.deepEqual(left, [], 'scratch directory removed');
  process.stdout.write(`# mysql-pitr drill: restore+integrity ${d.restore_ms} ms, total ${d.total_ms} ms\n`);
});

test('the daemon archives binary logs of a source with binlog: { archive: true }', async () => {
  const cfg2 = path.join(t.dir, 'daemon.yaml');
  const base = await fsp.readFile(cfg, 'utf8');
  await fsp.writeFile(cfg2, base.replace('binlog: { spoolDir: ./spool }', 'binlog: { archive: true, spoolDir: ./spool-daemon, flushInterval: 1s }').replace(/jobs:[\s\S]*$/, ''));
  const before = JSON.parse(ok(await cli(['mysql', 'binlog-list', '--json']), 'binlog-list').stdout) as Array<{ name: string }>;
  const child = spawn(process.execPath, [CLI, 'daemon', '--config', cfg2, '--listen', '127.0.0.1:0'], {
    env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => out.push(b));
  const exited = new Promise<number | null>((res) => child.on('close', (c) => res(c)));
  try {
    await insert(200, 201);
    const deadline = Date.now() + 60_000;
    for (;;) {
      const now = JSON.parse(ok(await cli(['mysql', 'binlog-list', '--json']), 'binlog-list').stdout) as Array<{ name: string }>;
      if (now.length > before.length) break;
      assert.ok(Date.now() < deadline, `the daemon archived nothing:\n${Buffer.concat(out).toString()}`);
      await sleep(500);
    }
    assert.match(Buffer.concat(out).toString(), /archiving binary logs of shop/);
  } finally {
    child.kill('SIGTERM');
  }
  await exited;
});

test('copy carries the binlog archive: the second repository restores to a point in time on its own', async () => {
  await nextSecond();
  const t3 = new Date();
  const want = await ids('shop');
  await nextSecond();
  await insert(300, 300);
  ok(await cli(['mysql', 'binlog-archive', 'shop', '--once']), 'binlog-archive --once');
  const repo2 = path.join(t.dir, 'repo2');
  ok(await runCli(['init', '--repo', repo2], { env }), 'init repo2');
  const r = ok(await runCli(['copy', '--repo', repo2, '--from-repo', path.join(t.dir, 'repo'), '--json'], { env: { ...env, LIFEBOAT_FROM_PASSWORD: env.LIFEBOAT_PASSWORD } }), 'copy');
  const copied = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(copied.binlogs.copied >= 5, r.stdout);
  // the original archive is gone for this restore: only the copy is used
  ok(await runCli(['mysql', 'restore', 'shop', '--config', cfg, '--repo', repo2, '--target-time', t3.toISOString(), '--to-database', 'shop_copy'], { env }), 'restore from the copy');
  assert.deepEqual(await ids('shop_copy'), want);
  assert.ok(!want.includes(300));
});

test('retention: after the old dump is forgotten, prune drops the binary logs only it needed and keeps the rest restorable', async () => {
  const old = JSON.parse(ok(await cli(['snapshots', '--json', '--source', 'shop']), 'snapshots').stdout) as Array<{ id: string; source: { binlog: { file: string } } }>;
  ok(await cli(['backup', '--source', 'shop']), 'backup');
  const all = JSON.parse(ok(await cli(['snapshots', '--json', '--source', 'shop']), 'snapshots').stdout) as Array<{ id: string; source: { binlog: { file: string } } }>;
  const fresh = all.find((s) => !old.some((o) => o.id === s.id))!;
  await insert(400, 401);
  await nextSecond();
  const t4 = new Date();
  const want = await ids('shop');
  await nextSecond();
  ok(await cli(['mysql', 'binlog-archive', 'shop', '--once']), 'binlog-archive --once');
  const before = JSON.parse(ok(await cli(['mysql', 'binlog-list', '--json']), 'binlog-list').stdout) as Array<{ archive: string; name: string }>;
  const older = before.filter((e) => e.archive === 'shop' && compareBinlogNames(e.name, fresh.source.binlog.file) < 0).map((e) => e.name);
  assert.ok(older.length >= 3, `${fresh.source.binlog.file}: ${before.map((e) => e.name).join(' ')}`);

  // while the old dump is kept, nothing is removed
  let r = ok(await cli(['mysql', 'binlog-prune', '--dry-run', '--json']), 'binlog-prune --dry-run');
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').pop()!).removed, []);
  ok(await cli(['forget', ...old.map((s) => s.id)]), 'forget');
  r = ok(await cli(['prune', '--json']), 'prune');
  const after = JSON.parse(ok(await cli(['mysql', 'binlog-list', '--json']), 'binlog-list').stdout) as Array<{ archive: string; name: string }>;
  assert.deepEqual(
    after.filter((e) => e.archive === 'shop').map((e) => e.name),
    before.filter((e) => e.archive === 'shop' && !older.includes(e.name)).map((e) => e.name),
  );
  ok(await cli(['check', '--read-data']), 'check --read-data after prune');
  ok(await cli(['mysql', 'restore', 'shop', '--target-time', t4.toISOString(), '--to-database', 'shop_t4']), 'restore after prune');
  assert.deepEqual(await ids('shop_t4'), want);
});
