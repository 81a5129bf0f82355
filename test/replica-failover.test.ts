import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { runCli, tmpDir } from './helpers/tmp.js';
import { createCluster, type PgCluster } from './helpers/pgcluster.js';
import { startWebhookReceiver } from './helpers/receivers.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { startService } from '../src/ops/service.js';
import { listRunbookRuns, getRunbookRun } from '../src/runbook/engine.js';
import type { Finding } from '../src/ops/monitor.js';
import { ConfigError } from '../src/errors.js';
import { confirmManualStep } from '../src/runbook/engine.js';
import { runCapture } from '../src/sources/proc.js';
import { startScratchMysql, removeScratchMysql, type ScratchMysql } from '../src/sources/mysql/scratch.js';

/**
 * Replica health and failover with real components: a private PostgreSQL
 * primary and a streaming replica (pg_basebackup -R), the real service (monitor
 * + AlertManager + webhook receiver over HTTP), the primary killed with
 * SIGKILL, the failover runbook confirmed from another process (the CLI).
 */

const tmp = tmpDir('lb-replica-');
after(() => tmp.cleanup());

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000, everyMs = 100): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const replicaFinding = (fs: readonly Finding[]) => fs.find((f) => f.check === 'replica' && f.job === 'replica:standby')!;

test('replica monitor: healthy replica, primary killed -> critical alert -> failover runbook waits, confirmed -> replica promoted', { timeout: 240_000 }, async () => {
  let primary: PgCluster | undefined;
  let replica: PgCluster | undefined;
  const hook = await startWebhookReceiver();
  try {
    primary = await createCluster();
    await primary.query('CREATE TABLE probe (id int PRIMARY KEY)');
    replica = await createCluster({ replicaOf: primary });
    await until('replica catches up', async () => (await replica!.query("SELECT to_regclass('probe') IS NOT NULL AS ok")).rows[0]?.ok === true);
    const dir = path.join(tmp.dir, 'c1');
    await fsp.mkdir(dir);
    const file = path.join(dir, 'lifeboat.yaml');
    await fsp.writeFile(
      file,
      `repositories:
  main: { location: ./repo, autoInit: true }
daemon: { catalog: ./catalog.db }
notifiers:
  channels:
    hook: { type: webhook, url: "${hook.url}/alerts", retries: 0 }
  routes: { critical: [hook] }
replicas:
  standby:
    url: ${replica.url()}
    primary: { url: ${primary.url()} }
    connectTimeout: 2s
    queryTimeout: 2s
    lag: { warnBytes: 64MiB, criticalBytes: 1GiB, warn: 30s, critical: 5m }
    onCritical: { runbook: failover-db }
runbooks:
  failover-db:
    title: Promote the standby
    scenario: data-center-loss
    severity: critical
    steps:
      - type: manual
        name: confirm-failover
        instructions: The primary is down. Confirm that it is really gone before promoting the standby.
      - type: sql
        name: promote
        url: ${replica.url()}
        query: SELECT pg_promote(true, 60)
        expect: true
      - type: wait
        name: writable
        until: { type: sql, url: '${replica.url()}', query: SELECT pg_is_in_recovery(), expect: false }
        interval: 100ms
        timeout: 1m
`,
    );
    const cfg = loadConfig(file);
    const svc = await startService(cfg, { listen: false, evaluateEveryMs: 3_600_000, runbookPollMs: 50 });
    try {
      // healthy: streaming, lag measured against the primary, small
      await primary.query('INSERT INTO probe SELECT generate_series(1, 1000)');
      const ok = await until('replica streaming and caught up', async () => {
        const f = replicaFinding((await svc.evaluateNow()).findings);
        return f.severity === 'ok' && (f.details.lagBytes as number) < 1024 * 1024 ? f : undefined;
      });
      assert.equal(ok.details.receiverStatus, 'streaming');
      assert.equal(ok.details.lagBasis, 'primary');
      assert.equal(ok.details.primaryReachable, true);
      assert.equal(ok.details.inRecovery, true);
      // `lifeboat status` shows the replica
      const st = await runCli(['-c', file, '--json', 'status']);
      const report = JSON.parse(st.stdout.trim().split('\n').at(-1)!) as { jobs: Record<string, string>; findings: Finding[] };
      assert.equal(report.jobs['replica:standby'], 'ok', st.stdout + st.stderr);
      assert.equal((await listRunbookRuns(svc.catalog, { runbook: 'failover-db' })).length, 0);

      // the primary dies
      const tKill = Date.now();
      await primary.kill();
      const crit = await until(
        'replica alert',
        async () => {
          const f = replicaFinding((await svc.evaluateNow()).findings);
          return f.severity === 'critical' ? f : undefined;
        },
        60_000,
        50,
      );
      const tAlert = Date.now();
      assert.notEqual(crit.details.receiverStatus, 'streaming', crit.message);
      assert.equal(crit.details.primaryReachable, false);
      const fired = hook.on('/alerts').map((r) => r.json as { check: string; kind: string; severity: string; job: string });
      assert.ok(fired.some((m) => m.check === 'replica' && m.kind === 'firing' && m.severity === 'critical'), JSON.stringify(fired));

      // the failover runbook started and waits for the human
      const runs = await listRunbookRuns(svc.catalog, { runbook: 'failover-db' });
      assert.equal(runs.length, 1);
      const run = await until('run waiting', async () => {
        const r = await getRunbookRun(svc.catalog, runs[0]!.id);
        return r?.status === 'waiting' ? r : undefined;
      });
      assert.match(run.actor, /^alert replica:standby\/replica firing since /);
      assert.equal(run.steps[0]!.status, 'waiting');
      assert.equal(run.steps[1]!.status, 'pending');
      // more monitor passes while the alert fires: still one run; the replica is not promoted
      for (let i = 0; i < 3; i++) await svc.evaluateNow();
      assert.equal((await listRunbookRuns(svc.catalog, { runbook: 'failover-db' })).length, 1);
      assert.equal((await replica.query('SELECT pg_is_in_recovery() AS r')).rows[0].r, true);

      // a human confirms from another process
      const conf = await runCli(['-c', file, 'runbook', 'confirm', String(run.id), 'confirm-failover', '--actor', 'alice']);
      assert.equal(conf.code, 0, conf.stderr + conf.stdout);
      const tConfirm = Date.now();
      await until('replica promoted', async () => (await replica!.query('SELECT pg_is_in_recovery() AS r')).rows[0]?.r === false, 60_000, 20);
      const tPromoted = Date.now();
      const done = await until('run finished', async () => {
        const r = await getRunbookRun(svc.catalog, run.id);
        return r && r.status !== 'waiting' && r.status !== 'running' ? r : undefined;
      });
      assert.equal(done.status, 'success', JSON.stringify(done.steps));
      assert.equal(done.steps[0]!.confirmedBy, 'alice');
      await replica.query('INSERT INTO probe VALUES (424242)');

      // after the promotion: not a replica any more (warning), still the same firing: no second run
      const after1 = replicaFinding((await svc.evaluateNow()).findings);
      assert.equal(after1.severity, 'warning');
      assert.equal(after1.details.inRecovery, false);
      assert.equal((await listRunbookRuns(svc.catalog, { runbook: 'failover-db' })).length, 1);
      console.log(
        `# replica failover: primary killed -> critical alert in ${tAlert - tKill} ms (monitor passes every 50 ms); ` +
          `confirmation -> replica promoted in ${tPromoted - tConfirm} ms; runbook run #${run.id} took ${done.finishedAt!.getTime() - done.startedAt.getTime()} ms including the human wait`,
      );
    } finally {
      await svc.stop();
    }
  } finally {
    await hook.close();
    await replica?.stop();
    await primary?.stop();
  }
});

const my = async (s: ScratchMysql, q: string): Promise<string> =>
  (await runCapture('mariadb', ['--protocol=TCP', '--host=127.0.0.1', `--port=${s.port}`, '--user=root', '--batch', '--skip-column-names', '-e', q], { timeoutMs: 30_000 })).stdout.toString().trim();

test('MariaDB replica: healthy, primary killed -> critical -> runbook waits, confirmed -> replication stopped (promoted)', { timeout: 240_000 }, async () => {
  let primary: ScratchMysql | undefined;
  let replica: ScratchMysql | undefined;
  try {
    primary = await startScratchMysql({ dir: path.join(tmp.dir, 'my-primary'), logBin: true });
    replica = await startScratchMysql({ dir: path.join(tmp.dir, 'my-replica'), extraArgs: ['--server-id=2'] });
    await my(primary, 'CREATE DATABASE shop; CREATE TABLE shop.t (id INT PRIMARY KEY)');
    await my(replica, `CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${primary.port}, MASTER_USER='root', MASTER_CONNECT_RETRY=1, MASTER_USE_GTID=slave_pos; START SLAVE`);
    await until('replica has the table', async () => (await my(replica!, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema='shop'")) === '1');
    const dir = path.join(tmp.dir, 'c-my');
    await fsp.mkdir(dir);
    const file = path.join(dir, 'lifeboat.yaml');
    const rurl = `mysql://root@127.0.0.1:${replica.port}`;
    await fsp.writeFile(
      file,
      `repositories:
  main: { location: ./repo, autoInit: true }
daemon: { catalog: ./catalog.db }
replicas:
  standby:
    kind: mysql
    url: ${rurl}
    primary: { url: mysql://root@127.0.0.1:${primary.port} }
    connectTimeout: 2s
    onCritical: { runbook: promote-standby }
runbooks:
  promote-standby:
    title: Promote the MariaDB standby
    scenario: data-center-loss
    severity: critical
    steps:
      - { type: manual, name: confirm, instructions: Is the primary really gone? }
      - { type: sql, name: stop-replication, url: '${rurl}', query: STOP SLAVE }
      - { type: sql, name: forget-primary, url: '${rurl}', query: RESET SLAVE ALL }
`,
    );
    const svc = await startService(loadConfig(file), { listen: false, evaluateEveryMs: 3_600_000, runbookPollMs: 50 });
    try {
      await my(primary, 'INSERT INTO shop.t VALUES (1),(2),(3)');
      const ok = await until('replica ok', async () => {
        const f = replicaFinding((await svc.evaluateNow()).findings);
        return f.severity === 'ok' ? f : undefined;
      });
      assert.equal(ok.details.receiverStatus, 'streaming');
      assert.equal(ok.details.primaryReachable, true);
      assert.equal(typeof ok.details.lagBytes, 'number');
      const tKill = Date.now();
      await primary.kill();
      const crit = await until('replica alert', async () => {
        const f = replicaFinding((await svc.evaluateNow()).findings);
        return f.severity === 'critical' ? f : undefined;
      }, 60_000, 50);
      const tAlert = Date.now();
      assert.match(crit.message, /io (Connecting|No)/);
      const runs = await listRunbookRuns(svc.catalog, { runbook: 'promote-standby' });
      assert.equal(runs.length, 1);
      const run = await until('run waiting', async () => {
        const r = await getRunbookRun(svc.catalog, runs[0]!.id);
        return r?.status === 'waiting' ? r : undefined;
      });
      for (let i = 0; i < 2; i++) await svc.evaluateNow();
      assert.equal((await listRunbookRuns(svc.catalog, { runbook: 'promote-standby' })).length, 1);
      assert.notEqual(await my(replica, 'SHOW SLAVE STATUS'), '');
      await confirmManualStep(svc.catalog, run.id, 1, 'bob');
      const tConfirm = Date.now();
      await until('replication stopped', async () => (await my(replica!, 'SHOW SLAVE STATUS')) === '', 60_000, 20);
      const tPromoted = Date.now();
      const done = await until('run finished', async () => {
        const r = await getRunbookRun(svc.catalog, run.id);
        return r && r.status !== 'waiting' && r.status !== 'running' ? r : undefined;
      });
      assert.equal(done.status, 'success', JSON.stringify(done.steps));
      const after1 = replicaFinding((await svc.evaluateNow()).findings);
      assert.equal(after1.severity, 'warning');
      assert.equal(after1.details.inRecovery, false);
      await my(replica, 'INSERT INTO shop.t VALUES (4)');
      console.log(`# mariadb replica failover: primary killed -> critical alert in ${tAlert - tKill} ms; confirmation -> replication stopped in ${tPromoted - tConfirm} ms`);
    } finally {
      await svc.stop();
    }
  } finally {
    if (replica) await removeScratchMysql(replica).catch(() => {});
    if (primary) await removeScratchMysql(primary).catch(() => {});
  }
});

test('replica config: onCritical needs a manual first step unless requireConfirmation: false; no password in the URL', () => {
  const base = (steps: string, extra = '') => `repositories:
  main: { location: ./repo }
replicas:
  standby:
    url: postgres://monitor@127.0.0.1:5433/postgres
    onCritical: { runbook: fo${extra} }
runbooks:
  fo:
    title: t
    scenario: data-center-loss
    severity: critical
    steps:
${steps}`;
  const exec = '      - { type: exec, command: "true" }\n';
  assert.throws(() => parseConfig(base(exec), path.join(tmp.dir, 'x.yaml')), (e: unknown) => e instanceof ConfigError && /must start with a manual step/.test(e.message));
  parseConfig(base(exec, ', requireConfirmation: false'), path.join(tmp.dir, 'x.yaml'));
  parseConfig(base('      - { type: manual, instructions: go }\n' + exec), path.join(tmp.dir, 'x.yaml'));
  assert.throws(
    () => parseConfig(base(exec).replace('monitor@', 'monitor:secret@'), path.join(tmp.dir, 'x.yaml')),
    (e: unknown) => e instanceof ConfigError && /no password in the URL/.test(e.message) && !e.message.includes('secret@'),
  );
  assert.throws(() => parseConfig(base(exec).replace('runbook: fo', 'runbook: nope'), path.join(tmp.dir, 'x.yaml')), (e: unknown) => e instanceof ConfigError && /unknown runbook "nope"/.test(e.message));
});

test('alert triggers: once per firing, a new firing starts a new run, a runbook file without a manual first step is never started', { timeout: 60_000 }, async () => {
  const { openCatalog } = await import('../src/ops/catalog/open.js');
  const { AlertTriggers } = await import('../src/ops/alert-triggers.js');
  const dir = path.join(tmp.dir, 'c-trig');
  await fsp.mkdir(path.join(dir, 'runbooks'), { recursive: true });
  const rb = (first: string) => `title: t\nscenario: data-center-loss\nseverity: critical\nincident: false\nsteps:\n${first}  - { type: exec, name: promote, command: "true" }\n`;
  await fsp.writeFile(path.join(dir, 'runbooks', 'gated.yaml'), rb('  - { type: manual, name: gate, instructions: confirm }\n'));
  await fsp.writeFile(path.join(dir, 'runbooks', 'ungated.yaml'), rb(''));
  await fsp.writeFile(
    path.join(dir, 'lifeboat.yaml'),
    `repositories:\n  main: { location: ./repo }\ndaemon: { catalog: ./catalog.db }\nrunbooks: { dir: ./runbooks }\nreplicas:\n  a: { url: "postgres://m@127.0.0.1:1/postgres", onCritical: { runbook: gated } }\n  b: { url: "postgres://m@127.0.0.1:1/postgres", onCritical: { runbook: ungated } }\n`,
  );
  const cfg = loadConfig(path.join(dir, 'lifeboat.yaml'));
  const catalog = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
  const logs: string[] = [];
  let clock = new Date('2026-11-30T10:00:00Z');
  const trig = new AlertTriggers(cfg, catalog, { ownAlerts: true, pollMs: 20, log: (m) => logs.push(m), now: () => clock });
  try {
    const { replicasFromConfig, replicaTriggers } = await import('../src/ops/replica-monitor.js');
    const map = replicaTriggers(replicasFromConfig(cfg));
    const finding = (name: string, severity: 'ok' | 'critical'): Finding => ({ job: `replica:${name}`, check: 'replica', severity, tier: 'critical', message: severity, details: {} });
    const gatedRuns = async () => listRunbookRuns(catalog, { runbook: 'gated' });
    assert.equal((await trig.process([finding('a', 'critical'), finding('b', 'critical')], map)).length, 1);
    assert.match(logs.join('\n'), /NOT starting runbook "ungated"/);
    assert.equal((await listRunbookRuns(catalog, { runbook: 'ungated' })).length, 0);
    for (let i = 0; i < 3; i++) assert.equal((await trig.process([finding('a', 'critical')], map)).length, 0);
    assert.equal((await gatedRuns()).length, 1);
    // a second process (restarted daemon) sees the same firing in the catalog: no second run
    const other = new AlertTriggers(cfg, catalog, { ownAlerts: true });
    assert.equal((await other.process([finding('a', 'critical')], map)).length, 0);
    // recovered, then failing again: a new firing, a new run
    clock = new Date('2026-11-30T10:05:00Z');
    await trig.process([finding('a', 'ok')], map);
    clock = new Date('2026-11-30T10:10:00Z');
    const again = await trig.process([finding('a', 'critical')], map);
    assert.equal(again.length, 1);
    assert.match(again[0]!.actor, /firing since 2026-11-30T10:10:00.000Z/);
    assert.equal((await gatedRuns()).length, 2);
    const w = await until('second run waits', async () => ((await getRunbookRun(catalog, again[0]!.runId))?.status === 'waiting' ? true : undefined));
    assert.ok(w);
  } finally {
    await trig.stop();
    await catalog.close();
  }
});
