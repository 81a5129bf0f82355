import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { tmpDir, runCli } from './helpers/tmp.js';
import { pgCreateDb, pgDropDb, pgPopulate, pgChecksums, pgExec, myPopulate, myChecksums, myDropDb, withMy, uniqueName } from './helpers/db.js';

/** lifeboat.yaml database sources driven through the real CLI: backup --source, restore --source --to-database. */
test('CLI: PostgreSQL, MariaDB, SQLite and command sources back up and restore through the config', async () => {
  const t = tmpDir();
  const pgDb = uniqueName('lb_cli_pg_');
  const pgRestore = uniqueName('lb_cli_pgr_');
  const myDb = uniqueName('lb_cli_my_');
  const myRestore = uniqueName('lb_cli_myr_');
  try {
    await pgCreateDb(pgDb);
    await pgPopulate(pgDb, { people: 2000, events: 3000 });
    await myPopulate(myDb, { rows: 2000 });
    const sqlitePath = path.join(t.dir, 'app.sqlite');
    const db = new Database(sqlitePath);
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT, data BLOB)');
    const ins = db.prepare('INSERT INTO notes (body, data) VALUES (?, ?)');
    for (let i = 0; i < 3000; i++) ins.run(`note ${i} ✓ ünïcode`, Buffer.from([i & 255, (i >> 8) & 255, 0, 255]));
    db.close();
    await fsp.mkdir(path.join(t.dir, 'vol'));
    await fsp.writeFile(path.join(t.dir, 'vol/file.txt'), 'volume content\n');
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    await fsp.writeFile(
      cfg,
      `repositories:
  main: { location: ./repo, autoInit: true }
sources:
  pg: { kind: postgres, database: ${pgDb} }
  my: { kind: mysql, database: ${myDb} }
  lite: { kind: sqlite, path: ./app.sqlite }
  vol: { kind: command, command: "tar -C vol -cf - .", restoreCommand: "mkdir -p restored && tar -C restored -xf -" }
  site: { kind: files, paths: [./vol] }
`,
    );
    const env = { LIFEBOAT_PASSWORD: 'db-pw' };
    let r = await runCli(['backup', '--config', cfg, '--source', 'pg,my,lite,vol,site', '--json'], { env, cwd: t.dir });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(summary.sources.length, 5);
    // --source finds a files source's snapshots too (they are tagged source:NAME)
    r = await runCli(['snapshots', '--config', cfg, '--json', '--source', 'site'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).length, 1, 'the files source has one snapshot');
    r = await runCli(['snapshots', '--config', cfg, '--source', 'site'], { env });
    assert.match(r.stdout, /Time \(UTC\)/);
    r = await runCli(['snapshots', '--config', cfg, '--json', '--source', 'pg'], { env });
    const pgSnap = JSON.parse(r.stdout)[0];
    assert.equal(pgSnap.source.kind, 'postgres');
    assert.equal(pgSnap.source.database, pgDb);
    assert.equal(pgSnap.source.tool, 'pg_dump');
    assert.equal(pgSnap.source.exit_code, 0);
    assert.match(pgSnap.source.server_version, /^\d+/);
    assert.ok(!JSON.stringify(pgSnap).includes('db-pw'));

    const pgBefore = await pgChecksums(pgDb);
    const myBefore = await myChecksums(myDb);
    // damage the originals
    await pgExec(pgDb, 'DROP TABLE events');
    await withMy(myDb, (c) => c.query('DROP TABLE IF EXISTS items'));
    await fsp.rm(sqlitePath);

    r = await runCli(['restore', 'latest', '--config', cfg, '--source', 'pg', '--to-database', pgRestore], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await pgChecksums(pgRestore), pgBefore);
    // a non-empty target is refused (exit 2) unless --clean
    r = await runCli(['restore', 'latest', '--config', cfg, '--source', 'pg', '--to-database', pgDb], { env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /refus/);
    r = await runCli(['restore', 'latest', '--config', cfg, '--source', 'pg', '--to-database', pgDb, '--clean'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await pgChecksums(pgDb), pgBefore);

    r = await runCli(['restore', 'latest', '--config', cfg, '--source', 'my', '--to-database', myRestore], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await myChecksums(myRestore), myBefore);

    r = await runCli(['restore', 'latest', '--config', cfg, '--source', 'lite', '--to-database', sqlitePath], { env });
    assert.equal(r.code, 0, r.stderr);
    const back = new Database(sqlitePath, { readonly: true });
    assert.equal((back.prepare('SELECT count(*) AS n FROM notes').get() as { n: number }).n, 3000);
    assert.equal((back.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
    back.close();

    r = await runCli(['restore', 'latest', '--config', cfg, '--source', 'vol'], { env, cwd: t.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await fsp.readFile(path.join(t.dir, 'restored/file.txt'), 'utf8'), 'volume content\n');

    // a dump that fails creates no snapshot and says why
    await fsp.writeFile(cfg, (await fsp.readFile(cfg, 'utf8')) + `  gone: { kind: postgres, database: lb_no_such_db_${Date.now()} }\n`);
    const before = JSON.parse((await runCli(['snapshots', '--config', cfg, '--json'], { env })).stdout).length;
    r = await runCli(['backup', '--config', cfg, '--source', 'gone'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not exist/);
    assert.equal(JSON.parse((await runCli(['snapshots', '--config', cfg, '--json'], { env })).stdout).length, before);
  } finally {
    await pgDropDb(pgDb).catch(() => {});
    await pgDropDb(pgRestore).catch(() => {});
    await myDropDb(myDb).catch(() => {});
    await myDropDb(myRestore).catch(() => {});
    t.cleanup();
  }
});

/**
 * A source whose tool fails at once (before the repository even started
 * reading) and one that fails after writing output: both end with the tool's
 * error and exit 1, no snapshot, the run recorded as failed — not a crash.
 */
test('CLI: a dump tool that fails immediately or midway gives a clear error, no snapshot, a failed run in the catalog', async () => {
  const t = tmpDir();
  try {
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    await fsp.writeFile(
      cfg,
      `repositories:
  main: { location: ./repo, autoInit: true }
sources:
  instant: { kind: command, command: "echo instant-failure >&2; exit 1" }
  midway: { kind: command, command: "head -c 3000000 /dev/urandom; echo midway-failure >&2; exit 3" }
jobs:
  instant-job: { source: instant, retries: 0 }
`,
    );
    const env = { LIFEBOAT_PASSWORD: 'fail-pw' };
    for (const [name, msg] of [['instant', /exit code 1:\s+instant-failure/], ['midway', /exit code 3:\s+midway-failure/]] as const) {
      const r = await runCli(['backup', '--source', name, '--config', cfg], { env });
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.doesNotMatch(r.stderr, /Unhandled|node:events/);
    }
    const run = await runCli(['run', 'instant-job', '--config', cfg], { env });
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, /instant-failure/);
    assert.doesNotMatch(run.stderr, /Unhandled|node:events/);
    const snaps = await runCli(['snapshots', '--json', '--config', cfg], { env });
    assert.deepEqual(JSON.parse(snaps.stdout), []);
    const db = new Database(path.join(t.dir, '.lifeboat', 'catalog.db'), { readonly: true });
    const rows = db.prepare("SELECT status, error FROM runs WHERE job = 'instant-job'").all() as Array<{ status: string; error: string }>;
    db.close();
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.status, 'failed');
    assert.match(rows[0]!.error, /instant-failure/);
  } finally {
    t.cleanup();
  }
});
