import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { CLI, runCli, tmpDir, type Snaked } from './helpers/tmp.js';
import { pgCreateDb, pgDropDb, pgExec, startPrivatePg, uniqueName } from './helpers/db.js';
import { createCluster, PG_BIN, type PgCluster } from './helpers/pgcluster.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { IncidentStore } from '../src/ops/incidents.js';
import { getRunbookRun, planRunbook, runRunbook } from '../src/runbook/engine.js';
import type { RunbookRun } from '../src/runbook/store.js';
import { listRunbooks } from '../src/runbook/load.js';
import { ConfigError } from '../src/errors.js';

const tmp = tmpDir('lb-runbook-');
after(() => tmp.cleanup());
let n = 0;
const PASSWORD = 'runbook-test-password';

/** A config directory with lifeboat.yaml (repository, SQLite catalog) plus `extra` YAML. */
async function makeConfig(extra: string): Promise<{ dir: string; file: string }> {
  const dir = path.join(tmp.dir, `c${n++}`);
  await fsp.mkdir(dir, { recursive: true });
  const file = path.join(dir, 'lifeboat.yaml');
  await fsp.writeFile(file, `repositories:\n  main: { location: ./repo, autoInit: true }\ndaemon:\n  catalog: ./catalog.db\n${extra}`);
  return { dir, file };
}

async function withCatalog<T>(cfgFile: string, fn: (c: Catalog) => Promise<T>): Promise<T> {
  const cfg = loadConfig(cfgFile);
  const c = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const stepMs = (r: RunbookRun, name: string) => {
  const s = r.steps.find((x) => x.name === name)!;
  return s.finishedAt!.getTime() - s.startedAt!.getTime();
};

// ---------------------------------------------------------------------------

test('example runbooks (5 scenarios) validate', () => {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const cfg = loadConfig(path.resolve(here, '../../examples/runbooks/lifeboat.yaml'));
  const all = listRunbooks(cfg);
  assert.deepEqual(new Set(all.map((r) => r.scenario)), new Set(['database-corruption', 'data-center-loss', 'accidental-deletion', 'security-breach', 'application-failure']));
  for (const r of all) assert.ok(r.steps.length >= 3, r.name);
});

test('validation errors name the runbook, the step and the key', async () => {
  const base = `services:\n  web: {}\n`;
  assert.throws(
    () =>
      parseConfig(
        `repositories:\n  main: { location: /tmp/x }\n${base}runbooks:\n  bad:\n    title: t\n    scenario: other\n    severity: low\n    steps:\n      - type: exec\n        command: true\n        tiemout: 5s\n`,
        '/x/lifeboat.yaml',
      ),
    (e: Error) => e instanceof ConfigError && /lifeboat\.yaml:\d+:\d+: runbooks\.bad\.steps\.0: unknown key "tiemout"/.test(e.message),
  );
  // inline runbooks are cross-checked when the config loads, with file:line:col
  const bad = await makeConfig(`${base}runbooks:\n  inline-one:\n    title: t\n    scenario: other\n    severity: low\n    services: [nope]\n    steps:\n      - { type: wait, duration: 1s }\n`);
  assert.throws(
    () => loadConfig(bad.file),
    (e: Error) => e instanceof ConfigError && /lifeboat\.yaml:\d+:\d+: runbooks\.inline-one: services\.0: unknown service "nope" \(defined: web\)/.test(e.message),
  );
  // runbook files are checked when runbooks are loaded
  const { dir, file } = await makeConfig(`${base}runbooks:\n  dir: ./rb\n  inline-one:\n    title: t\n    scenario: other\n    severity: low\n    services: [web]\n    steps:\n      - { type: wait, duration: 1s }\n`);
  await fsp.mkdir(path.join(dir, 'rb'));
  await fsp.writeFile(
    path.join(dir, 'rb', 'file-one.yaml'),
    'title: t\nscenario: other\nseverity: low\nsteps:\n  - type: wait\n    duration: 1s\n  - type: http-check\n    name: web\n    url: ftp://x\n',
  );
  const cfg = loadConfig(file);
  assert.throws(
    () => listRunbooks(cfg),
    (e: Error) => {
      assert.match(e.message, /file-one\.yaml:9:5: runbook file-one: step 2 "web": url: expected an http\(s\) URL/);
      return true;
    },
  );
});

test('failure runs the rollbacks of the completed steps in reverse order; the incident timeline shows it', async () => {
  const { dir, file } = await makeConfig(`services:
  app: {}
runbooks:
  failing:
    title: Failing runbook
    scenario: application-failure
    severity: high
    services: [app]
    steps:
      - { type: exec, name: s1, command: "echo s1 >> trail", rollback: { type: exec, command: "echo undo-s1 >> trail" } }
      - { type: exec, name: s2, command: "echo s2 >> trail" }
      - { type: exec, name: s3, command: "echo s3 >> trail", rollback: { type: exec, command: "echo undo-s3 >> trail" } }
      - { type: exec, name: s4, command: "echo boom >&2; exit 3", rollback: { type: exec, command: "echo undo-s4 >> trail" } }
      - { type: exec, name: s5, command: "echo s5 >> trail" }
  rollback-breaks:
    title: Rollback breaks
    scenario: other
    severity: low
    steps:
      - { type: exec, name: a, command: "echo a >> trail2", rollback: { type: exec, command: "exit 9" } }
      - { type: exec, name: b, command: "echo b >> trail2", rollback: { type: exec, command: "echo undo-b >> trail2" } }
      - { type: sql, name: c, url: "postgres://postgres@127.0.0.1:5432/postgres", query: "SELECT 1", expect: 2 }
`);
  const cfg = loadConfig(file);
  await withCatalog(file, async (catalog) => {
    const r = await runRunbook(cfg, catalog, 'failing', { actor: 'tester' });
    assert.equal(r.status, 'rolled-back');
    assert.deepEqual(readFileSync(path.join(dir, 'trail'), 'utf8').trim().split('\n'), ['s1', 's2', 's3', 'undo-s3', 'undo-s1']);
    assert.deepEqual(
      r.steps.map((s) => s.status),
      ['rolled-back', 'success', 'rolled-back', 'failed', 'pending'],
    );
    assert.match(r.steps[3]!.error!, /exited with 3/);
    assert.match(r.steps[3]!.output, /boom/);
    const inc = (await new IncidentStore(catalog).get(r.incidentId!))!;
    assert.equal(inc.impact, 'major');
    assert.deepEqual(inc.services, ['app']);
    assert.equal(inc.runbookRunId, r.id);
    const kinds = inc.timeline.map((e) => `${e.kind}:${/step (\d)|rollback of step (\d)/.exec(e.text)?.slice(1).find(Boolean) ?? ''}`);
    const failedAt = kinds.indexOf('step-failed:4');
    assert.ok(failedAt > 0);
    assert.deepEqual(
      kinds.slice(failedAt + 1).filter((k) => k.startsWith('rollback')),
      ['rollback:3', 'rollback:3', 'rollback:1', 'rollback:1'],
    );
    assert.ok(inc.timeline.some((e) => /step 4\/5 "s4" \(exec\) FAILED after \d+ ms: command exited with 3/.test(e.text)));
    assert.match(inc.updates.at(-1)!.message, /Rolled back steps 3, 1/);

    const r2 = await runRunbook(cfg, catalog, 'rollback-breaks', { actor: 'tester' });
    assert.equal(r2.status, 'failed');
    assert.deepEqual(r2.steps.map((s) => s.status), ['rollback-failed', 'rolled-back', 'failed']);
    assert.match(r2.steps[2]!.error!, /expected 2, got 1/);
    assert.deepEqual(readFileSync(path.join(dir, 'trail2'), 'utf8').trim().split('\n'), ['a', 'b', 'undo-b']);
    const inc2 = (await new IncidentStore(catalog).get(r2.incidentId!))!;
    assert.match(inc2.updates.at(-1)!.message, /1 rollback\(s\) FAILED/);
  });
});

test('failover runbook: promote a streaming replica after the primary dies', { timeout: 240_000 }, async () => {
  let primary: PgCluster | undefined;
  let replica: PgCluster | undefined;
  try {
    primary = await createCluster();
    await primary.query('CREATE TABLE failover_probe (id int PRIMARY KEY, at timestamptz DEFAULT now())');
    replica = await createCluster({ replicaOf: primary });
    await until('replica catches up', async () => (await replica!.query("SELECT to_regclass('failover_probe') IS NOT NULL AS ok")).rows[0]?.ok === true);
    const pidFile = path.join(primary.data, 'postmaster.pid');
    const { file } = await makeConfig(`services:
  app-db: {}
runbooks:
  failover:
    title: Fail over app-db to the replica
    scenario: data-center-loss
    severity: critical
    services: [app-db]
    steps:
      - type: sql
        name: replica-in-recovery
        url: ${replica.url()}
        query: SELECT pg_is_in_recovery()
        expect: true
      - type: exec
        name: kill-primary
        command: 'P=$(head -1 ${pidFile}); kill -9 $P; while kill -0 $P 2>/dev/null; do sleep 0.05; done'
      - type: exec
        name: primary-down
        command: ['${path.join(PG_BIN, 'pg_isready')}', '-h', '127.0.0.1', '-p', '${primary.port}', '-t', '3']
        expectExitCode: 2
      - type: sql
        name: promote
        url: ${replica.url()}
        query: SELECT pg_promote()
        expect: true
      - type: wait
        name: writable
        until: { type: sql, url: '${replica.url()}', query: SELECT pg_is_in_recovery(), expect: false }
        interval: 100ms
        timeout: 2m
      - type: sql
        name: write-new-primary
        url: ${replica.url()}
        query: INSERT INTO failover_probe (id) VALUES (42) RETURNING id
        expect: 42
`);
    const r = await runCli(['-c', file, '--json', 'runbook', 'run', 'failover', '--actor', 'failover-test']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const run = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Snaked<RunbookRun>;
    assert.equal(run.status, 'success');
    assert.deepEqual(run.steps.map((s) => s.status), Array(6).fill('success'));
    const stored = (await withCatalog(file, (c) => getRunbookRun(c, run.id)))!;
    assert.equal((await replica.query('SELECT count(*)::int AS n FROM failover_probe WHERE id = 42')).rows[0].n, 1);
    assert.equal((await replica.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, false);
    const inc = (await withCatalog(file, (c) => new IncidentStore(c).get(stored.incidentId!)))!;
    assert.equal(inc.impact, 'critical');
    assert.equal(inc.status, 'monitoring');
    for (const s of stored.steps) {
      assert.ok(s.startedAt && s.finishedAt && s.finishedAt >= s.startedAt, s.name);
      assert.ok(inc.timeline.some((e) => e.text.startsWith(`step ${s.index}/6 "${s.name}" (${s.type}) succeeded in `)), s.name);
    }
    const killEnd = stored.steps[1]!.finishedAt!.getTime();
    const writable = stored.steps[5]!.finishedAt!.getTime();
    console.log(
      `# failover: primary killed -> new primary accepted a write in ${writable - killEnd} ms ` +
        `(promote ${stepMs(stored, 'promote')} ms, wait-writable ${stepMs(stored, 'writable')} ms; whole runbook ${stored.finishedAt!.getTime() - stored.startedAt.getTime()} ms)`,
    );
  } finally {
    await replica?.stop();
    await primary?.stop();
  }
});

test('restore runbook: dropped table restored from the latest backup, checked by a real /health endpoint', { timeout: 180_000 }, async () => {
  const db = uniqueName('lb_rb_');
  await pgCreateDb(db);
  let server: Server | undefined;
  try {
    await pgExec(db, 'CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)');
    await pgExec(db, "INSERT INTO orders SELECT g, 'item-' || g FROM generate_series(1, 5000) g");
    // the "application": healthy only when the orders table exists and has rows
    server = createServer((req, res) => {
      if (req.url !== '/health') return void res.writeHead(404).end();
      const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: 'postgres', database: db });
      c.connect()
        .then(() => c.query('SELECT count(*)::int AS n FROM orders'))
        .then((q) => res.writeHead(q.rows[0].n > 0 ? 200 : 503).end(JSON.stringify({ status: 'ok', orders: q.rows[0].n })))
        .catch((e: Error) => res.writeHead(503).end(JSON.stringify({ status: 'down', error: e.message })))
        .finally(() => void c.end().catch(() => {}));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const { file } = await makeConfig(`sources:
  app-db: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: ${db} }
jobs:
  app-db: { source: app-db }
services:
  app: { jobs: [app-db] }
runbooks:
  restore-app-db:
    title: Restore app-db after a dropped table
    scenario: accidental-deletion
    severity: high
    services: [app]
    resolveOnSuccess: true
    steps:
      - type: http-check
        name: app-is-down
        url: http://127.0.0.1:${port}/health
        expectStatus: 503
      - type: restore
        name: restore-latest
        source: app-db
        to: ${db}
        clean: true
      - type: http-check
        name: app-healthy
        url: http://127.0.0.1:${port}/health
        bodyContains: '"orders":5000'
        retries: 5
        interval: 500ms
`);
    const env = { LIFEBOAT_PASSWORD: PASSWORD };
    const b = await runCli(['-c', file, 'backup', '--source', 'app-db'], { env });
    assert.equal(b.code, 0, b.stderr);
    await pgExec(db, 'DROP TABLE orders');
    const plan = await runCli(['-c', file, 'runbook', 'plan', 'restore-app-db'], { env });
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /2\. \[restore\] restore-latest \(not idempotent\): restore snapshot [0-9a-f]{8} of source app-db taken \d{4}-\d\d-\d\d \d\d:\d\d UTC, [\d.]+ (KiB|MiB) into lb_rb_/);
    const t0 = Date.now();
    const r = await runCli(['-c', file, '--json', 'runbook', 'run', 'restore-app-db'], { env });
    const ms = Date.now() - t0;
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const run = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Snaked<RunbookRun>;
    assert.equal(run.status, 'success');
    assert.match(run.steps[1]!.output, /restored snapshot [0-9a-f]{8} .* of postgres source app-db from repository main into lb_rb_/);
    const rows = await pgExec(db, 'SELECT count(*)::int AS n, sum(id)::bigint AS s FROM orders');
    assert.equal(rows.rows[0].n, 5000);
    assert.equal(Number(rows.rows[0].s), (5000 * 5001) / 2);
    const inc = (await withCatalog(file, (c) => new IncidentStore(c).get(run.incident_id!)))!;
    assert.equal(inc.status, 'resolved');
    const restoreStep = new Date(run.steps[1]!.finished_at!).getTime() - new Date(run.steps[1]!.started_at!).getTime();
    console.log(`# restore runbook: ${ms} ms wall (CLI), restore step ${restoreStep} ms, 5000-row table`);
  } finally {
    await new Promise((r) => (server ? server.close(r) : r(undefined)));
    await pgDropDb(db);
  }
});

test('restore step onto a password-protected server: a password in the URL is refused unechoed; the source\'s password is used, in no output or log', { timeout: 180_000 }, async () => {
  const secret = "rb p@ss:/'w ü";
  const server = await startPrivatePg(secret);
  const db = uniqueName('lb_rbpw_');
  await pgCreateDb(db);
  try {
    await pgExec(db, 'CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)');
    await pgExec(db, "INSERT INTO orders SELECT g, 'item-' || g FROM generate_series(1, 1000) g");
    const config = (to: string) => `sources:
  app-db: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: ${db}, passwordEnv: LB_RB_TARGET_PW }
jobs:
  app-db: { source: app-db }
runbooks:
  copy-app-db:
    title: Restore app-db onto the standby server
    scenario: database-corruption
    severity: high
    steps:
      - type: restore
        name: restore-to-standby
        source: app-db
        to: "${to}"
`;
    const env = { LIFEBOAT_PASSWORD: PASSWORD, LB_RB_TARGET_PW: secret };
    const encoded = encodeURIComponent(secret);
    // a password inside the target URL: refused at load (it would sit in the config and the run record), not echoed
    const withPw = await makeConfig(config(`postgres://postgres:${encoded}@127.0.0.1:${server.port}/restored_copy`));
    const bad = await runCli(['-c', withPw.file, 'runbook', 'plan', 'copy-app-db'], { env });
    assert.equal(bad.code, 2, bad.stderr + bad.stdout);
    assert.match(bad.stderr, /runbooks\.copy-app-db\.steps\.0\.to: put no password in the URL/);
    assert.ok(!(bad.stdout + bad.stderr).includes(encoded) && !(bad.stdout + bad.stderr).includes(secret), 'the URL password was echoed');

    const { file } = await makeConfig(config(`postgres://postgres@127.0.0.1:${server.port}/restored_copy`));
    const b = await runCli(['-c', file, 'backup', '--source', 'app-db'], { env });
    assert.equal(b.code, 0, b.stderr);
    const r = await runCli(['-c', file, '--json', 'runbook', 'run', 'copy-app-db'], { env });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const run = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Snaked<RunbookRun>;
    assert.equal(run.status, 'success', JSON.stringify(run.steps));
    assert.match(run.steps[0]!.output, /restored snapshot [0-9a-f]{8} .* of postgres source app-db from repository main into postgres:\/\/[^ ]*127\.0\.0\.1/);
    // the data arrived on the password-protected server
    const c = new pg.Client({ host: '127.0.0.1', port: server.port, user: 'postgres', password: secret, database: 'restored_copy' });
    await c.connect();
    try {
      const q = await c.query('SELECT count(*)::int AS n FROM orders');
      assert.equal(q.rows[0].n, 1000);
    } finally {
      await c.end();
    }
    // the secret is in no output, step report or run log
    for (const text of [r.stdout, r.stderr, JSON.stringify(run)]) {
      assert.ok(!text.includes(secret) && !text.includes(encoded), 'the target password leaked');
    }
  } finally {
    await server.stop();
    await pgDropDb(db);
  }
});

// ---------------------------------------------------------------------------
// crash + resume, manual steps confirmed from another process

function startRun(file: string, name: string): { child: ReturnType<typeof spawn>; done: Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }> } {
  const child = spawn(process.execPath, [CLI, '-c', file, 'runbook', 'run', name, '--no-prompt'], {
    env: { ...process.env, LIFEBOAT_PASSWORD: PASSWORD },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, out })));
  return { child, done };
}

async function waitForStep(file: string, status: string, index: number): Promise<RunbookRun> {
  return until(`step ${index} ${status}`, async () => {
    if (!existsSync(path.join(path.dirname(file), 'catalog.db'))) return undefined;
    return withCatalog(file, async (c) => {
      const { listRunbookRuns } = await import('../src/runbook/engine.js');
      const r = (await listRunbookRuns(c, { limit: 1 }))[0];
      // a step that waits is written before its run is (two writes): wait for both, or a reader in between sees the run still running
      return r && r.steps[index - 1]?.status === status && (status !== 'waiting' || r.status === 'waiting') ? r : undefined;
    });
  });
}

test('crash + resume: completed non-idempotent steps are not re-run; an interrupted one needs a decision', { timeout: 120_000 }, async () => {
  const { dir, file } = await makeConfig(`runbooks:
  crashy:
    title: Crash test
    scenario: other
    severity: medium
    steps:
      - { type: exec, name: a, command: "echo a >> trail" }
      - { type: exec, name: b, command: "echo b >> trail" }
      - { type: manual, name: approve, instructions: "say yes" }
      - { type: exec, name: c, command: "echo c >> trail" }
  crashy-exec:
    title: Crash inside a step
    scenario: other
    severity: medium
    steps:
      - { type: exec, name: a, command: "echo a >> trail3" }
      - { type: exec, name: long, command: "echo $$ > long.pid; echo long-start >> trail3; sleep 600; echo long-end >> trail3" }
      - { type: exec, name: c, command: "echo c >> trail3" }
`);
  const trail = () => readFileSync(path.join(dir, 'trail'), 'utf8').trim().split('\n');

  // 1. killed while a manual step waits
  const { child, done } = startRun(file, 'crashy');
  const waiting = await waitForStep(file, 'waiting', 3);
  assert.equal(waiting.status, 'waiting');
  child.kill('SIGKILL');
  assert.equal((await done).signal, 'SIGKILL');
  const runs = await runCli(['-c', file, '--json', 'runbook', 'runs']);
  const listed = JSON.parse(runs.stdout) as Array<Snaked<RunbookRun>>;
  assert.equal(listed[0]!.status, 'interrupted');
  assert.deepEqual(trail(), ['a', 'b']);
  // confirmed from another process while nobody runs it, then resumed
  const conf = await runCli(['-c', file, 'runbook', 'confirm', String(waiting.id), 'approve', '--actor', 'alice', '--note', 'checked']);
  assert.equal(conf.code, 0, conf.stderr);
  const res = await runCli(['-c', file, '--json', 'runbook', 'resume', String(waiting.id), '--no-prompt']);
  assert.equal(res.code, 0, res.stderr + res.stdout);
  const resumed = JSON.parse(res.stdout.trim().split('\n').at(-1)!) as Snaked<RunbookRun>;
  assert.equal(resumed.status, 'success');
  assert.equal(resumed.steps[2]!.confirmed_by, 'alice');
  assert.deepEqual(trail(), ['a', 'b', 'c']);
  const again = await runCli(['-c', file, 'runbook', 'resume', String(waiting.id)]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already finished \(success/);

  // 2. killed inside a non-idempotent exec step
  const second = startRun(file, 'crashy-exec');
  const running = await waitForStep(file, 'running', 2);
  await until('long step started', async () => existsSync(path.join(dir, 'long.pid')) && readFileSync(path.join(dir, 'trail3'), 'utf8').includes('long-start'));
  second.child.kill('SIGKILL');
  await second.done;
  process.kill(-Number(readFileSync(path.join(dir, 'long.pid'), 'utf8').trim()), 'SIGKILL'); // the orphaned command
  const refused = await runCli(['-c', file, 'runbook', 'resume', String(running.id)]);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /step 2 "long" \(exec\) was running when Lifeboat stopped and is not marked idempotent.*--retry-step.*--skip-step/s);
  const skipped = await runCli(['-c', file, '--json', 'runbook', 'resume', String(running.id), '--skip-step', '--actor', 'bob']);
  assert.equal(skipped.code, 0, skipped.stderr);
  const fin = JSON.parse(skipped.stdout.trim().split('\n').at(-1)!) as Snaked<RunbookRun>;
  assert.deepEqual(fin.steps.map((s) => s.status), ['success', 'skipped', 'success']);
  assert.deepEqual(readFileSync(path.join(dir, 'trail3'), 'utf8').trim().split('\n'), ['a', 'long-start', 'c']);
  const inc = (await withCatalog(file, (c) => new IncidentStore(c).get(fin.incident_id!)))!;
  assert.ok(inc.timeline.some((e) => e.kind === 'resumed' && /resumed by bob \(skip the interrupted step\)/.test(e.text)));
});

test('manual step confirmed (and rejected) from another process while the run waits', { timeout: 60_000 }, async () => {
  const { dir, file } = await makeConfig(`runbooks:
  gated:
    title: Gated
    scenario: other
    severity: low
    steps:
      - { type: exec, name: prep, command: "echo prep >> trail", rollback: { type: exec, command: "echo undo-prep >> trail" } }
      - { type: manual, name: approve, instructions: "Check the dashboard" }
      - { type: exec, name: go, command: "echo go >> trail" }
`);
  const first = startRun(file, 'gated');
  const w1 = await waitForStep(file, 'waiting', 2);
  const c1 = await runCli(['-c', file, 'runbook', 'confirm', String(w1.id), '2', '--actor', 'carol']);
  assert.equal(c1.code, 0, c1.stderr);
  const r1 = await first.done;
  assert.equal(r1.code, 0, r1.out);
  assert.match(r1.out, /confirmed by carol/);
  const twice = await runCli(['-c', file, 'runbook', 'confirm', String(w1.id), 'approve']);
  assert.equal(twice.code, 2);
  assert.match(twice.stderr, /already confirmed by carol/);

  const second = startRun(file, 'gated');
  const w2 = await waitForStep(file, 'waiting', 2);
  const c2 = await runCli(['-c', file, 'runbook', 'confirm', String(w2.id), 'approve', '--reject', '--note', 'numbers look wrong']);
  assert.equal(c2.code, 0, c2.stderr);
  const r2 = await second.done;
  assert.equal(r2.code, 1, r2.out);
  const show = await runCli(['-c', file, '--json', 'runbook', 'show', String(w2.id)]);
  const run = JSON.parse(show.stdout) as Snaked<RunbookRun>;
  assert.equal(run.status, 'rolled-back');
  assert.match(run.steps[1]!.error!, /rejected by .*: numbers look wrong/);
  assert.deepEqual(readFileSync(path.join(dir, 'trail'), 'utf8').trim().split('\n'), ['prep', 'go', 'prep', 'undo-prep']);
});

test('plan resolves nothing it cannot: a missing repository is reported in the description', async () => {
  const { file } = await makeConfig(`sources:
  files-src: { kind: files, paths: [/etc/hostname] }
runbooks:
  restore-files:
    title: r
    scenario: accidental-deletion
    severity: low
    steps:
      - { type: restore, source: files-src, to: ./out }
`);
  const p = await planRunbook(loadConfig(file), 'restore-files');
  assert.match(p.steps[0]!.description, /^restore latest snapshot of source files-src \(cannot resolve it now: .*\) into \.\/out$/);
});

test('notify steps and the run\'s incident messages reach a real webhook', async () => {
  const { startWebhookReceiver } = await import('./helpers/receivers.js');
  const rx = await startWebhookReceiver();
  try {
    const { file } = await makeConfig(`services:
  api: {}
notifiers:
  channels:
    ops: { type: webhook, url: "${rx.url}/ops", retries: 0 }
incidents:
  channels: [ops]
runbooks:
  talk:
    title: Talking runbook
    scenario: other
    severity: critical
    services: [api]
    steps:
      - type: notify
        name: tell
        title: "{{runbook}}: incident #{{incident}} step {{step}} ({{impact}})"
        text: "services {{services}}"
        required: true
`);
    const cfg = loadConfig(file);
    const r = await withCatalog(file, (c) => runRunbook(cfg, c, 'talk', { actor: 'dave' }));
    assert.equal(r.status, 'success');
    const titles = rx.on('/ops').map((q) => (q.json as { title: string }).title);
    assert.deepEqual(titles, [
      `[INCIDENT #${r.incidentId}] Talking runbook (critical)`,
      `talk: incident #${r.incidentId} step tell (critical)`,
      `[INCIDENT #${r.incidentId} MONITORING] Talking runbook`,
    ]);
    assert.match(r.steps[0]!.output, /ops: delivered/);
    rx.respondWith(500);
    const failed = await withCatalog(file, (c) => runRunbook(cfg, c, 'talk', { actor: 'dave' }));
    assert.equal(failed.status, 'failed');
    assert.match(failed.steps[0]!.error!, /no channel accepted the message/);
  } finally {
    await rx.close();
  }
});

test('sql step on MySQL/MariaDB: rows come back; past the step timeout the query is ended on the server too', async () => {
  const { sqlQuery } = await import('../src/runbook/steps.js');
  const { withMy } = await import('./helpers/db.js');
  const cfg = {} as Parameters<typeof sqlQuery>[0];
  const url = 'mysql://root@127.0.0.1:3306/';
  assert.deepEqual(await sqlQuery(cfg, { url }, 'SELECT 6 * 7', 5000), { rows: [[42]], rowCount: 1 });
  const t0 = Date.now();
  await assert.rejects(sqlQuery(cfg, { url }, "SELECT SLEEP(30), 'lb-runbook-sql-probe'", 500), /mysql .*Query inactivity timeout/);
  assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
  const running = () => withMy(undefined, async (c) => ((await c.query("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE '%lb-runbook-sql-probe%' AND ID <> CONNECTION_ID()"))[0] as unknown[]).length);
  let left = await running();
  for (let i = 0; i < 20 && left > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = await running();
  }
  assert.equal(left, 0, 'the timed-out step query no longer runs on the server');
});
