import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { runCli, makeTree, type Snaked } from './helpers/tmp.js';
import { DRILL_ENV, drillSetup, lastJson } from './helpers/drill.js';
import { pgCreateDb, pgDropDb, pgExec, pgPopulate, myPopulate, myDropDb, withMy, uniqueName, startRedis, redisPopulate } from './helpers/db.js';
import { startWebhookReceiver } from './helpers/receivers.js';
import { createCluster } from './helpers/pgcluster.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { listDrills, lastDrill } from '../src/verify/drill-store.js';
import { runDrill } from '../src/verify/drill.js';
import type { DrillResult } from '../src/verify/drill-types.js';
import { runMaintenance } from '../src/ops/jobs.js';
import { resolvePlan } from '../src/config/resolve.js';
import { nextRotation, rotationParts } from '../src/verify/drill-rotation.js';
import { selectSubset } from '../src/verify/check.js';
import { openConfiguredRepo } from '../src/config/repos.js';
import { ConfigError } from '../src/errors.js';

const env = DRILL_ENV;

async function scratchPgDbs(job: string): Promise<string[]> {
  const r = await pgExec('postgres', `SELECT datname FROM pg_database WHERE datname LIKE $1`, [`lifeboat_drill_${job}_%`]);
  return r.rows.map((x: { datname: string }) => x.datname);
}

test('drill config: strict schema with precise errors', () => {
  const base = `repositories:\n  main: { location: ./repo }\nsources:\n  s: { kind: files, paths: [./x] }\njobs:\n  j:\n    source: s\n    drill:\n`;
  assert.throws(() => parseConfig(base + '      bogus: 1\n', '/tmp/l.yaml'), (e: Error) => e instanceof ConfigError && /jobs\.j\.drill: unknown key "bogus"/.test(e.message));
  assert.throws(() => parseConfig(base + '      queries: [{ min: 1 }]\n', '/tmp/l.yaml'), /jobs\.j\.drill\.queries\.0\.sql: give exactly one of sql or command/);
  assert.throws(() => parseConfig(base + '      schedule: "not a cron"\n', '/tmp/l.yaml'), /jobs\.j\.drill\.schedule: invalid cron expression/);
  assert.throws(() => parseConfig(base + '      timeout: soon\n', '/tmp/l.yaml'), /jobs\.j\.drill\.timeout: expected a duration/);
  assert.throws(() => parseConfig(base + '      server: { host: h, password: { env: A, file: b } }\n', '/tmp/l.yaml'), /drill\.server\.password: give exactly one of env or file/);
  assert.throws(() => parseConfig(base + '      queries: [{ sql: "select 1", min: 5, max: 1 }]\n', '/tmp/l.yaml'), /min \(5\) is greater than max \(1\)/);
  const cfg = parseConfig(base + '      queries: [{ sql: "select 1", equals: 1 }]\n      schedule: "0 0 4 * * 0"\n', '/tmp/l.yaml');
  assert.equal(cfg.jobs.j!.drill!.timeout, '1h');
  assert.equal(cfg.jobs.j!.drill!.keepTarget, false);
});

test('PostgreSQL drill: passing and failing verification queries, scratch database dropped, catalog rows, RTO, webhook alerts', async () => {
  const d = drillSetup();
  const db = uniqueName('lb_drill_pg_');
  const hook = await startWebhookReceiver();
  try {
    await pgCreateDb(db);
    await pgPopulate(db, { people: 2000, events: 3000 });
    await d.writeConfig(`sources:
  pg: { kind: postgres, database: ${db} }
jobs:
  pgok:
    source: pg
    tier: important
    drill:
      queries:
        - { name: people, sql: "SELECT count(*) FROM people", min: 2000 }
        - { sql: "SELECT name FROM people WHERE id = 1", matches: "^Person 1 " }
        - { command: "psql -X -A -t -c 'SELECT count(*) FROM audit.log'", equals: 3000 }
  pgbad:
    source: pg
    drill:
      queries:
        - { name: "enough people", sql: "SELECT count(*) FROM people", min: 2500 }
  pgslow:
    source: pg
    rto: 1ms
notifiers:
  channels:
    hook: { type: webhook, url: "${hook.url}/drill", retries: 0 }
  routes:
    normal: [hook]
    important: [hook]
`);
    let r = await d.cli('run', 'pgok');
    assert.equal(r.code, 0, r.stderr);

    // passing drill
    r = await d.drill('pgok');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const ok = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.equal(ok.status, 'success');
    assert.equal(ok.kind, 'postgres');
    assert.deepEqual(ok.phases.map((p) => p.name), ['locate', 'restore', 'integrity', 'queries', 'cleanup']);
    assert.ok(ok.phases.every((p) => p.ok));
    assert.ok(ok.restore_ms > 0);
    assert.equal(ok.restore_ms, ok.phases[1]!.ms + ok.phases[2]!.ms);
    assert.equal(ok.rto_ms, 4 * 3600_000); // tier important
    assert.equal(ok.rto_met, true);
    assert.equal(ok.rpo_met, true);
    assert.match(ok.target, /^postgres database lifeboat_drill_pgok_[0-9a-f]{10} on 127\.0\.0\.1:5432$/);
    const byName = Object.fromEntries(ok.checks.map((c) => [c.name, c]));
    assert.equal(byName['people']!.ok, true);
    assert.match(byName['people']!.detail, /2000/);
    assert.equal(byName['row estimates']!.ok, true, byName['row estimates']!.detail);
    assert.ok(ok.checks.every((c) => c.ok), JSON.stringify(ok.checks));
    assert.deepEqual(await scratchPgDbs('pgok'), [], 'scratch database dropped after a passing drill');
    process.stdout.write(`# PostgreSQL drill (2000 people, 3000 events, 3000 audit rows): restore+integrity ${ok.restore_ms} ms, total ${ok.total_ms} ms\n`);

    // failing query: exit 1, scratch db dropped, webhook fired
    r = await d.drill('pgbad');
    assert.equal(r.code, 1, r.stderr);
    const bad = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.equal(bad.status, 'failed');
    assert.equal(bad.rto_met, true, 'the restore itself was fine');
    assert.match(bad.error!, /enough people: got 2000, expected at least 2500/);
    assert.match(r.stderr, /drill of job pgbad failed/);
    assert.deepEqual(await scratchPgDbs('pgbad'), [], 'scratch database dropped after a failing drill');
    const fired = hook.on('/drill').map((q) => q.json as { job: string; check: string; status: string; severity: string; message: string });
    assert.equal(fired.length, 1);
    assert.equal(fired[0]!.job, 'pgbad');
    assert.equal(fired[0]!.check, 'drill');
    assert.equal(fired[0]!.status, 'firing');
    assert.equal(fired[0]!.severity, 'critical');
    assert.match(fired[0]!.message, /restore drill FAILED/);

    // RTO of 1ms cannot be met: rtoMet false, drill fails, a warning alert
    r = await d.cli('run', 'pgslow');
    assert.equal(r.code, 0, r.stderr);
    r = await d.drill('pgslow');
    assert.equal(r.code, 1);
    const slow = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.equal(slow.rto_ms, 1);
    assert.equal(slow.rto_met, false);
    assert.match(slow.error!, /longer than the RTO of 1ms/);
    assert.ok(slow.checks.every((c) => c.ok));
    const slowAlert = hook.on('/drill').map((q) => q.json as { job: string; severity: string }).find((x) => x.job === 'pgslow');
    assert.equal(slowAlert?.severity, 'warning');

    // data grows, new backup: pgbad passes and the alert is resolved
    await pgExec(db, `INSERT INTO people (id, name) SELECT i, 'Person ' || i FROM generate_series(2001, 2600) i`);
    r = await d.cli('run', 'pgbad');
    assert.equal(r.code, 0, r.stderr);
    r = await d.cli('drill', 'pgbad');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /PASSED/);
    assert.match(r.stdout, /restore time: .* \(RTO 1d: met\)/);
    const resolved = hook.on('/drill').map((q) => q.json as { job: string; status: string }).filter((x) => x.job === 'pgbad');
    assert.deepEqual(resolved.map((x) => x.status), ['firing', 'resolved']);
    assert.deepEqual(await scratchPgDbs('pgbad'), []);

    // catalog: drills table and runs of kind 'drill'
    const cat = await openCatalog(path.join(d.dir, 'catalog.db'));
    try {
      const drills = await listDrills(cat);
      assert.equal(drills.length, 4);
      assert.deepEqual(drills.map((d) => `${d.job}:${d.status}`), ['pgbad:success', 'pgslow:failed', 'pgbad:failed', 'pgok:success']);
      const runs = await cat.runs({ kind: 'drill', order: 'asc' });
      assert.deepEqual(runs.map((x) => `${x.job}:${x.status}`), ['pgok:success', 'pgbad:failed', 'pgslow:failed', 'pgbad:success']);
      assert.equal(runs[0]!.snapshotId, ok.snapshot_id);
      const last = await lastDrill(cat, 'pgok');
      assert.equal(last!.restoreMs, ok.restore_ms);
      assert.deepEqual(last!.checks, ok.checks);
      assert.equal(last!.phases.length, 5);
      assert.ok(last!.phases[0]!.startedAt instanceof Date);
      // the monitor's backup checks do not count drills as backups
      assert.equal((await cat.lastSuccess('pgok'))!.kind, 'backup');
    } finally {
      await cat.close();
    }
    r = await d.cli('drills', '--job', 'pgbad');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pgbad.*success/);
    assert.match(r.stdout, /pgbad.*failed.*enough people/);
  } finally {
    await hook.close();
    await pgDropDb(db);
    d.cleanup();
  }
});

/**
 * Back up `source` as job `job`, then drill it with a 6 s timeout and one verification query `hangingSql` that
 * runs for minutes: the drill must fail at its timeout (not when the query ends), its check failed, the cleanup
 * done. Returns the drill's result for the kind's own checks.
 */
async function drillTimesOut(d: ReturnType<typeof drillSetup>, job: string, source: string, hangingSql: string): Promise<Snaked<DrillResult>> {
  await d.writeConfig(`sources:
  ${source}
jobs:
  ${job}:
    source: ${source.split(':')[0]}
    drill:
      timeout: 6s
      queries:
        - { name: hangs, sql: ${JSON.stringify(hangingSql)}, equals: "x" }
`);
  let r = await d.cli('run', job);
  assert.equal(r.code, 0, r.stderr);
  const t0 = Date.now();
  r = await d.drill(job);
  const took = Date.now() - t0;
  assert.equal(r.code, 1, r.stderr);
  assert.ok(took < 40_000, `the drill took ${took} ms`);
  const res = lastJson<Snaked<DrillResult>>(r.stdout);
  assert.equal(res.status, 'failed');
  assert.match(res.error!, /drill timeout after 6s/);
  assert.equal(res.checks.find((c) => c.name === 'hangs')?.ok, false);
  assert.deepEqual([res.phases.at(-1)!.name, res.phases.at(-1)!.ok], ['cleanup', true]);
  return res;
}

test('PostgreSQL drill: the drill timeout ends a verification query that never returns; the scratch database is still dropped', async () => {
  const d = drillSetup();
  const db = uniqueName('lb_drill_pghang_');
  try {
    await pgCreateDb(db);
    await pgPopulate(db, { people: 50, events: 50 });
    await drillTimesOut(d, 'pghang', `pg: { kind: postgres, database: ${db} }`, "SELECT pg_sleep(120)::text || 'lifeboat-drill-hang-' || 'test'");
    assert.deepEqual(await scratchPgDbs('pghang'), [], 'scratch database dropped after the timeout');
    const left = await pgExec('postgres', "SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%lifeboat-drill-hang-' || 'test%'");
    assert.equal(left.rows[0].n, 0, 'no session left sleeping');
  } finally {
    await pgDropDb(db);
    d.cleanup();
  }
});

test('SQLite, files and Redis drills restore into scratch targets and compare with the snapshot', async () => {
  const d = drillSetup();
  const redis = await startRedis();
  try {
    await redisPopulate(redis.port, undefined, 2000);
    const lite = path.join(d.dir, 'app.sqlite');
    const db = new Database(lite);
    db.exec('CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    const ins = db.prepare('INSERT INTO notes (body) VALUES (?)');
    for (let i = 0; i < 1500; i++) ins.run(`note ${i}`);
    db.close();
    await makeTree(path.join(d.dir, 'tree'), { files: 60, seed: 7 });
    const { cfgFile } = d;
    await d.writeConfig(`sources:
  lite: { kind: sqlite, path: ./app.sqlite }
  tree: { kind: files, paths: [./tree] }
  cache: { kind: redis, port: ${redis.port} }
jobs:
  lite:
    source: lite
    drill:
      scratchDir: ./scratch
      queries:
        - { sql: "SELECT count(*) FROM notes", equals: 1500 }
        - { sql: "SELECT body FROM notes WHERE id = 3", expect: "note 2" }
  tree:
    source: tree
    drill:
      scratchDir: ./scratch
      queries:
        - { name: "files present", command: "find \\"$LIFEBOAT_DRILL_TARGET\\" -type f | wc -l", min: 1 }
  cache:
    source: cache
    drill:
      scratchDir: ./scratch
      queries:
        - { name: "dbsize", command: "redis-cli -s \\"$LIFEBOAT_DRILL_REDIS_SOCKET\\" DBSIZE", min: 2000 }
`);
    const cfg = loadConfig(cfgFile);
    for (const job of ['lite', 'tree', 'cache']) {
      const r = await d.cli('run', job);
      assert.equal(r.code, 0, r.stderr);
    }
    process.env.LIFEBOAT_PASSWORD = env.LIFEBOAT_PASSWORD;
    const cat = await openCatalog(path.join(d.dir, 'catalog.db'));
    try {
      const results: Record<string, DrillResult> = {};
      for (const job of ['lite', 'tree', 'cache']) {
        const r = await runDrill(resolvePlan(cfg), job, { catalog: cat });
        results[job] = r;
        assert.equal(r.status, 'success', `${job}: ${r.error} ${JSON.stringify(r.checks)}`);
        process.stdout.write(`# ${job} drill: restore+integrity ${r.restoreMs} ms\n`);
      }
      const names = (r: DrillResult) => Object.fromEntries(r.checks.map((c) => [c.name, c]));
      assert.equal(names(results.lite!)['integrity_check']!.ok, true);
      assert.match(names(results.lite!)['row counts']!.detail, /1500 row\(s\) restored/);
      assert.match(names(results.tree!)['file count']!.detail, /^(\d+) file\(s\) restored, \1 in the snapshot$/);
      assert.match(names(results.tree!)['content verified']!.detail, /^(\d+) of \1 file/);
      assert.match(names(results.cache!)['key count']!.detail, /restored, \d+ recorded at backup/);
      assert.match(names(results.cache!)['dbsize']!.detail, /value "\d+"/);
      // scratch targets are gone
      assert.deepEqual(await fsp.readdir(path.join(d.dir, 'scratch')), []);
      assert.equal((await listDrills(cat)).length, 3);

      // damage: the expected row count no longer matches -> failed, target still removed
      const bad = parseConfig((await fsp.readFile(cfgFile, 'utf8')).replace('equals: 1500', 'equals: 1501'), cfgFile);
      const f = await runDrill(resolvePlan(bad), 'lite', { catalog: cat });
      assert.equal(f.status, 'failed');
      assert.match(f.error!, /got "?1500"?, expected 1501/);
      assert.deepEqual(await fsp.readdir(path.join(d.dir, 'scratch')), []);
      // keepTarget leaves the scratch file for inspection
      const kept = await runDrill(resolvePlan(cfg), 'lite', { keepTarget: true });
      const file = /^scratch file (.*)$/.exec(kept.target)![1]!;
      assert.ok(existsSync(file));
      await fsp.rm(path.dirname(file), { recursive: true });
      // SQL against a files source is a configuration error (exit 2)
      const sqlOnFiles = parseConfig((await fsp.readFile(cfgFile, 'utf8')).replace('{ name: "files present", command: "find \\"$LIFEBOAT_DRILL_TARGET\\" -type f | wc -l", min: 1 }', '{ sql: "select 1" }'), cfgFile);
      await assert.rejects(runDrill(resolvePlan(sqlOnFiles), 'tree'), /jobs\.tree\.drill\.queries\.0\.sql: files sources have no SQL/);
    } finally {
      await cat.close();
    }
  } finally {
    await redis.stop();
    d.cleanup();
  }
});

test('MariaDB drill: scratch database created and dropped', async () => {
  const d = drillSetup();
  const db = uniqueName('lb_drill_my_');
  try {
    await myPopulate(db, { rows: 1000 });
    await d.writeConfig(`sources:
  my: { kind: mysql, database: ${db} }
jobs:
  my:
    source: my
    drill:
      queries:
        - { sql: "SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()", min: 1 }
`);
    let r = await d.cli('run', 'my');
    assert.equal(r.code, 0, r.stderr);
    r = await d.drill('my');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const res = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.equal(res.status, 'success');
    assert.match(res.target, /^mysql database lifeboat_drill_my_[0-9a-f]{10} on 127\.0\.0\.1:3306$/);
    const scratch = /database (lifeboat_drill_my_[0-9a-f]{10}) /.exec(res.target)![1]!;
    const left = await withMy(undefined, async (c) => (await c.query(`SHOW DATABASES LIKE '${scratch}'`))[0] as unknown[]);
    assert.deepEqual(left, []);
  } finally {
    await myDropDb(db);
    d.cleanup();
  }
});

test('MariaDB drill: the drill timeout ends a verification query that never returns; the scratch database is still dropped', async () => {
  const d = drillSetup();
  const db = uniqueName('lb_drill_myhang_');
  try {
    await myPopulate(db, { rows: 50 });
    const res = await drillTimesOut(d, 'myhang', `my: { kind: mysql, database: ${db} }`, "SELECT CONCAT(SLEEP(120), 'lifeboat-drill-hang-', 'mytest')");
    const scratch = /database (lifeboat_drill_myhang_[0-9a-f]{10}) /.exec(res.target)![1]!;
    const left = await withMy(undefined, async (c) => (await c.query(`SHOW DATABASES LIKE '${scratch}'`))[0] as unknown[]);
    assert.deepEqual(left, []);
    const sleeping = await withMy(undefined, async (c) => (await c.query(`SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%lifeboat-drill-hang-%' AND ID <> CONNECTION_ID()`))[0] as unknown[]);
    assert.deepEqual(sleeping, [], 'the abandoned query was ended');
  } finally {
    await myDropDb(db);
    d.cleanup();
  }
});

test('rotating read-data checks cover every pack over N runs (library, CLI --rotate and daemon maintenance)', async () => {
  const d = drillSetup();
  try {
    assert.equal(rotationParts('10%'), 10);
    assert.equal(rotationParts('30%'), 4);
    assert.equal(rotationParts('1/7'), 7);
    await makeTree(path.join(d.dir, 'data'), { files: 60, seed: 3, maxSize: 512 * 1024 });
    const { cfgFile } = d;
    await d.writeConfig(`sources:
  data: { kind: files, paths: [./data] }
jobs:
  data: { source: data }
daemon:
  catalog: ./catalog.db
  maintenance: { prune: false, checkReadDataSubset: "34%" }
`,
      { catalog: false },
    );
    let r = await runCli(['init', '--repo', path.join(d.dir, 'repo'), '--pack-size', '1MiB'], { env });
    assert.equal(r.code, 0, r.stderr);
    r = await d.cli('run', 'data');
    assert.equal(r.code, 0, r.stderr);
    const cfg = loadConfig(cfgFile);
    process.env.LIFEBOAT_PASSWORD = env.LIFEBOAT_PASSWORD;
    const repo = await openConfiguredRepo(cfg, 'main');
    const packs = (await repo.storage.list('data')).map((o) => o.name).sort();
    const repoId = repo.config.id;
    await repo.close();
    assert.ok(packs.length >= 6, `enough packs to split (${packs.length})`);

    // CLI: 3 rotating runs of 34% read parts 1/3, 2/3, 3/3: together every pack exactly once
    let read = 0;
    const seen: string[] = [];
    for (let k = 0; k < 3; k++) {
      r = await d.cli('check', '--read-data-subset', '34%', '--rotate', '--json');
      assert.equal(r.code, 0, r.stderr);
      const out = lastJson<{ packs_read: number; rotation: { subset: string } }>(r.stdout);
      seen.push(out.rotation.subset);
      read += out.packs_read;
    }
    assert.deepEqual(seen, ['1/3', '2/3', '3/3']);
    assert.equal(read, packs.length);

    // daemon maintenance continues the same counter (wraps around to part 1)
    const cat = await openCatalog(path.join(d.dir, 'catalog.db'));
    try {
      const res = await runMaintenance(resolvePlan(cfg), { subsetFor: (id, name, subset) => nextRotation(cat, id, name, subset).then((s) => s.subset) });
      assert.equal(res[0]!.check!.ok, true);
      assert.equal(res[0]!.check!.subset, '1/3');
      assert.equal(res[0]!.check!.packsRead, selectSubset(packs, '1/3').length);
      // library: the union over N steps is the whole repository
      const union = new Set<string>();
      for (let k = 0; k < 3; k++) for (const p of selectSubset(packs, (await nextRotation(cat, repoId, 'main', '34%')).subset)) union.add(p);
      assert.deepEqual([...union].sort(), packs);
    } finally {
      await cat.close();
    }
  } finally {
    d.cleanup();
  }
});

test('daemon: jobs with drill.schedule are drilled on schedule and recorded', async () => {
  const d = drillSetup();
  try {
    const db = new Database(path.join(d.dir, 'app.sqlite'));
    db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3);');
    db.close();
    const { cfgFile } = d;
    await d.writeConfig(`sources:
  lite: { kind: sqlite, path: ./app.sqlite }
jobs:
  lite:
    source: lite
    catchUp: false
    drill:
      schedule: "* * * * * *"
      queries: [{ sql: "SELECT count(*) FROM t", equals: 3 }]
`);
    const r = await d.cli('run', 'lite');
    assert.equal(r.code, 0, r.stderr);
    process.env.LIFEBOAT_PASSWORD = env.LIFEBOAT_PASSWORD;
    const { startService } = await import('../src/ops/service.js');
    const service = await startService(loadConfig(cfgFile), { listen: false });
    let drills: DrillResult[] = [];
    try {
      // two scheduled drills, each a restore and a query: up to 2 min (30 s is too short on a loaded machine)
      for (const end = Date.now() + 120_000; Date.now() < end && drills.length < 2; ) {
        await new Promise((res) => setTimeout(res, 100));
        drills = await listDrills(service.catalog, { job: 'lite' });
      }
    } finally {
      await service.stop();
    }
    assert.ok(drills.length >= 2, `scheduled drills ran (${drills.length})`);
    assert.ok(drills.every((d) => d.status === 'success'), JSON.stringify(drills.map((d) => d.error)));
    assert.ok(drills.every((d) => d.checks.some((c) => c.detail === 'value "3"')));
  } finally {
    d.cleanup();
  }
});

test('drill timeout aborts the restore, fails the drill and still removes the scratch target', async () => {
  const d = drillSetup();
  try {
    await d.writeConfig(`sources:
  cmd: { kind: command, command: "printf 'some data'" }
jobs:
  cmd:
    source: cmd
    drill:
      scratchDir: ./scratch
      timeout: 1s
      restoreCommand: 'cat > "$LIFEBOAT_DRILL_DIR/in"; sleep 60'
  plain:
    source: cmd
`);
    let r = await d.cli('run', 'cmd');
    assert.equal(r.code, 0, r.stderr);
    r = await d.drill('cmd');
    assert.equal(r.code, 1, r.stderr);
    const res = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.equal(res.status, 'failed');
    assert.match(res.error!, /drill timeout after 1s/);
    assert.deepEqual(res.phases.map((p) => [p.name, p.ok]), [['locate', true], ['restore', false], ['cleanup', true]]);
    assert.equal(res.rto_met, false);
    assert.deepEqual(await fsp.readdir(path.join(d.dir, 'scratch')), []);
    // without a restore command the dump goes to a scratch file and its size is compared
    r = await d.drill('plain');
    assert.equal(r.code, 0, r.stderr);
    const plain = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.deepEqual(plain.checks, [{ name: 'bytes', ok: true, detail: '9 byte(s) restored, 9 in the snapshot' }]);
  } finally {
    d.cleanup();
  }
});

/**
 * equalsBackup: the query runs at backup time inside the snapshot pg_dump
 * dumps (exported snapshot), so the drill can demand the restored value equal
 * it exactly — even while the database is being written during the backup.
 */
test('equalsBackup: values recorded in the dump\'s own snapshot (writes during the backup), compared by the drill', async () => {
  const d = drillSetup();
  const db = uniqueName('lb_drill_eq_');
  try {
    await pgCreateDb(db);
    await pgPopulate(db, { people: 3000, events: 20000 });
    const { cfgFile } = d;
    const write = (extra = '') =>
      fsp.writeFile(
        cfgFile,
        `repositories:
  main: { location: ./repo, autoInit: true }
sources:
  pg: { kind: postgres, database: ${db} }
jobs:
  eq:
    source: pg
    drill:
      queries:
        - { name: people-at-backup, sql: "SELECT count(*) FROM people", equalsBackup: true }
        - { name: max-id-at-backup, sql: "SELECT max(id) FROM people", equalsBackup: true }
${extra}  eqbroken:
    source: pg
    drill:
      queries:
        - { name: broken, sql: "SELECT count(*) FROM no_such_table", equalsBackup: true }
daemon:
  catalog: ./catalog.db
`,
      );
    await write();
    // a writer inserting people while the backup runs
    let stop = false;
    let inserted = 0;
    const writer = (async () => {
      let id = 1_000_000;
      while (!stop) {
        await pgExec(db, 'INSERT INTO people (id, name) VALUES ($1, $2)', [id++, `Writer ${id}`]);
        inserted++;
      }
    })();
    let r;
    try {
      r = await d.cli('run', 'eq');
    } finally {
      stop = true;
      await writer;
    }
    assert.equal(r.code, 0, r.stderr);
    assert.ok(inserted > 0, 'rows were written during the backup');
    const snaps = JSON.parse((await d.cli('snapshots', '--json')).stdout) as Array<{ source: { verification: Record<string, string>; verification_errors: Record<string, string> } }>;
    const src = snaps[0]!.source;
    const recorded = Number(src.verification['SELECT count(*) FROM people']);
    assert.ok(recorded >= 3000 && recorded <= 3000 + inserted, `recorded ${recorded}`);
    assert.match(src.verification_errors['SELECT count(*) FROM no_such_table']!, /no_such_table/);

    // more rows after the backup: the drill compares with the backup, not with the live database
    await pgExec(db, `INSERT INTO people (id, name) SELECT i, 'Later ' || i FROM generate_series(2000001, 2000100) i`);
    r = await d.drill('eq');
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const ok = lastJson<Snaked<DrillResult>>(r.stdout);
    const people = ok.checks.find((c) => c.name === 'people-at-backup')!;
    assert.equal(people.ok, true, people.detail);
    assert.match(people.detail, new RegExp(`"${recorded}", as at backup time`));
    assert.equal(ok.checks.find((c) => c.name === 'max-id-at-backup')!.ok, true);

    r = await d.drill('eqbroken');
    assert.equal(r.code, 1);
    assert.match(lastJson<Snaked<DrillResult>>(r.stdout).error!, /broken: query failed: .*no_such_table.*failed at backup time too: .*no_such_table/);

    // a query added after the last backup has no recorded value: the drill says so
    await write(`        - { name: events-at-backup, sql: "SELECT count(*) FROM events", equalsBackup: true }\n`);
    r = await d.drill('eq');
    assert.equal(r.code, 1);
    assert.match(lastJson<Snaked<DrillResult>>(r.stdout).error!, /events-at-backup: no value recorded at backup time/);
    // ... and the next backup records it
    assert.equal((await d.cli('run', 'eq')).code, 0);
    r = await d.cli('drill', 'eq');
    assert.equal(r.code, 0, r.stderr + r.stdout);

    // config: equalsBackup needs a source whose dump can share its snapshot
    assert.throws(
      () => parseConfig(`repositories:\n  main: { location: ./repo }\nsources:\n  r: { kind: redis }\njobs:\n  j:\n    source: r\n    drill:\n      queries: [{ sql: "x", equalsBackup: true }]\n`, '/tmp/l.yaml'),
      (e: Error) => e instanceof ConfigError && /jobs\.j\.drill\.queries\.0\.equalsBackup: equalsBackup needs a postgres or sqlite source/.test(e.message),
    );
  } finally {
    await pgDropDb(db).catch(() => {});
    d.cleanup();
  }
});

/**
 * drill.server: the scratch database lives on a separate drill server (here a
 * private cluster on its own port), not on production. The production server
 * never sees a scratch database; the drill server's is dropped afterwards.
 */
test('PostgreSQL drill on a designated drill server', { timeout: 180_000 }, async () => {
  const d = drillSetup();
  const db = uniqueName('lb_drill_srv_');
  const drillServer = await createCluster();
  try {
    await pgCreateDb(db);
    await pgPopulate(db, { people: 1500, events: 1000 });
    await d.writeConfig(`sources:
  pg: { kind: postgres, database: ${db} }
jobs:
  remote:
    source: pg
    drill:
      server: { host: 127.0.0.1, port: ${drillServer.port}, user: postgres }
      queries:
        - { name: people, sql: "SELECT count(*) FROM people", equals: 1500 }
        - { name: people-at-backup, sql: "SELECT count(*) FROM people", equalsBackup: true }
`);
    assert.equal((await d.cli('run', 'remote')).code, 0);
    // watch the drill server while the drill runs: the scratch database appears there
    let seenOnDrillServer = false;
    const poll = setInterval(() => {
      drillServer
        .query<{ n: string }>("SELECT count(*)::text AS n FROM pg_database WHERE datname LIKE 'lifeboat_drill_remote_%'")
        .then((r) => {
          if (Number(r.rows[0]!.n) > 0) seenOnDrillServer = true;
        })
        .catch(() => {});
    }, 50);
    let r;
    try {
      r = await d.drill('remote');
    } finally {
      clearInterval(poll);
    }
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const res = lastJson<Snaked<DrillResult>>(r.stdout);
    assert.match(res.target, new RegExp(`on 127\\.0\\.0\\.1:${drillServer.port}$`));
    assert.ok(res.checks.every((c) => c.ok), JSON.stringify(res.checks));
    assert.ok(seenOnDrillServer, 'the scratch database was created on the drill server');
    assert.deepEqual(await scratchPgDbs('remote'), [], 'never on the production server');
    const left = await drillServer.query<{ n: string }>("SELECT count(*)::text AS n FROM pg_database WHERE datname LIKE 'lifeboat_drill_%'");
    assert.equal(Number(left.rows[0]!.n), 0, 'dropped on the drill server');
  } finally {
    await drillServer.stop();
    await pgDropDb(db).catch(() => {});
    d.cleanup();
  }
});
