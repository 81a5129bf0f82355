import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, runCli, CLI } from './helpers/tmp.js';
import { parseConfig } from '../src/config/load.js';
import { Daemon } from '../src/ops/daemon.js';
import { runJob, type JobResult } from '../src/ops/jobs.js';
import { runFinishFromJobResult } from '../src/ops/catalog/job-result.js';
import { resolvePlan, type ResolvedPlan } from '../src/config/resolve.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('daemon: jobs run on second-level schedules, overlaps prevented, failures retried, copies made', async () => {
  const t = tmpDir();
  try {
    await fsp.mkdir(path.join(t.dir, 'site'));
    await fsp.writeFile(path.join(t.dir, 'site/index.html'), 'hello');
    await fsp.mkdir(path.join(t.dir, 'big'));
    await fsp.writeFile(path.join(t.dir, 'big/blob.bin'), randomBytes(48 * 1024 * 1024));
    await fsp.writeFile(path.join(t.dir, 'pw'), 'daemon-pw');
    const cfg = parseConfig(
      `
repositories:
  main: { location: ./main, password: { file: ./pw }, autoInit: true }
  copy: { location: ./copy, password: { file: ./pw }, autoInit: true }
sources:
  site: { kind: files, paths: [./site] }
  big: { kind: files, paths: [./big] }
  broken: { kind: files, paths: [./does-not-exist] }
jobs:
  site-every-2s: { source: site, schedule: "*/2 * * * * *", copyTo: [copy], retention: { keepLast: 2 } }
  big-every-1s: { source: big, schedule: "* * * * * *", catchUp: false }
  broken-every-3s: { source: broken, schedule: "*/3 * * * * *", retries: 2, retryDelay: 200ms, catchUp: false }
daemon: { concurrency: 3 }
`,
      path.join(t.dir, 'lifeboat.yaml'),
    );
    const results: Array<{ r: JobResult; attempt: number; final: boolean }> = [];
    const starts: Array<{ job: string; at: number }> = [];
    // the "big" job is made slower than its 1 s period (a real backup plus 2.5 s), so ticks overlap
    const run = async (c: ResolvedPlan, name: string, o: Parameters<typeof runJob>[2]) => {
      const r = await runJob(c, name, o);
      if (name === 'big-every-1s') await sleep(2500);
      return r;
    };
    const daemon = new Daemon(resolvePlan(cfg), {
      onRunStart: (job) => {
        starts.push({ job, at: Date.now() });
        return undefined;
      },
      onRunEnd: (r, _id, attempt, final) => {
        results.push({ r, attempt, final });
      },
      lastSuccess: () => undefined,
    }, { run });
    await daemon.start();
    // at least 7 s, then until what is judged below has happened (at most 90 s: a fixed time is too short on a loaded machine)
    const judged = () => results.filter((x) => x.r.job === 'site-every-2s' && x.r.status === 'success').length >= 2 &&
      starts.filter((s) => s.job === 'site-every-2s').length >= 3 &&
      results.filter((x) => x.r.job === 'broken-every-3s').length >= 3 &&
      (daemon.skippedOverlaps.get('big-every-1s') ?? 0) > 0;
    const started = Date.now();
    await sleep(7000);
    while (Date.now() - started < 90_000 && !judged()) await sleep(500);
    // a grace long enough for a run in flight to finish on a loaded machine: one aborted between writing its
    // snapshot and applying retention (or copying) would leave a third snapshot behind
    await daemon.stop(60_000);

    // runs still going when stop() aborted them at the end are not judged here (the SIGTERM test covers that)
    const site = results.filter((x) => x.r.job === 'site-every-2s' && !/aborted|shutting down/.test(x.r.error ?? ''));
    assert.ok(site.length >= 2, `site job ran ${site.length} times`);
    assert.ok(site.every((x) => x.r.status === "success" && x.r.copies[0]?.snapshotId), JSON.stringify(site.map((x) => [x.r.status, x.r.error, x.r.copies])));
    // bytes moved to and from the storage (the repository and its copy) reach the catalog's run record
    for (const x of site) {
      const f = runFinishFromJobResult(x.r);
      assert.ok((x.r.transferred?.bytesUploaded ?? 0) > 0 && f.bytesUploaded === x.r.transferred!.bytesUploaded, JSON.stringify(x.r.transferred));
      assert.ok((f.bytesDownloaded ?? 0) > 0, 'copying reads from the source repository');
    }
    // the catch-up run happened at start (never succeeded before)
    assert.ok(starts.filter((s) => s.job === 'site-every-2s').length >= 3);
    // the 1 s job takes longer than its period: runs never overlap, and some ticks were skipped
    const big = starts.filter((s) => s.job === 'big-every-1s').map((s) => s.at);
    assert.ok(big.length >= 1);
    assert.ok((daemon.skippedOverlaps.get('big-every-1s') ?? 0) > 0, 'overlapping ticks were not skipped');
    // the failing job: attempts 1..3 with the last one final
    const broken = results.filter((x) => x.r.job === 'broken-every-3s');
    assert.ok(broken.length >= 3, `broken job attempts: ${broken.length}`);
    assert.deepEqual(broken.slice(0, 3).map((x) => [x.attempt, x.final]), [[1, false], [2, false], [3, true]]);
    assert.match(broken[0]!.r.error!, /does-not-exist/);
    // retention keeps 2 snapshots of the site source in both repositories
    const env = { LIFEBOAT_PASSWORD: 'daemon-pw' };
    for (const repo of ['main', 'copy']) {
      const r = await runCli(['snapshots', '--repo', path.join(t.dir, repo), '--tag', 'source:site', '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      const snaps = JSON.parse(r.stdout);
      assert.equal(snaps.length, 2, `${repo} keeps ${snaps.length}`);
    }
  } finally {
    t.cleanup();
  }
});

test('daemon process: SIGTERM mid-backup stops cleanly and leaves a valid repository', async () => {
  const t = tmpDir();
  try {
    await fsp.mkdir(path.join(t.dir, 'data'));
    for (let i = 0; i < 4; i++) await fsp.writeFile(path.join(t.dir, `data/f${i}.bin`), randomBytes(64 * 1024 * 1024));
    await fsp.writeFile(
      path.join(t.dir, 'lifeboat.yaml'),
      // limits.upload (64 MiB/s): the 256 MiB backup lasts at least 4 s however fast the machine, so the SIGTERM
      // below surely arrives mid-backup
      `repositories:\n  main: { location: ./repo, autoInit: true, limits: { upload: 65536 } }\nsources:\n  data: { kind: files, paths: [./data] }\njobs:\n  data: { source: data, schedule: "* * * * * *" }\ndaemon: { shutdownGrace: 100ms }\n`,
    );
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024' };
    const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', path.join(t.dir, 'lifeboat.yaml')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    // wait until the backup is under way (packs being written), then SIGTERM (no fixed number of polls: the
    // daemon's start-up alone can take many seconds on a loaded machine)
    for (const end = Date.now() + 120_000; ; await sleep(20)) {
      const packs = await fsp.readdir(path.join(t.dir, 'repo/data'), { recursive: true }).catch(() => []);
      if (packs.filter((p) => String(p).length > 60).length >= 2) break;
      assert.ok(Date.now() < end, `no backup under way after 120 s:\n${log}`);
    }
    child.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(code, 0, log);
    assert.match(log, /received SIGTERM/);
    assert.match(log, /daemon stopped/);
    const e = { LIFEBOAT_PASSWORD: 'pw' };
    const c = await runCli(['check', '--repo', path.join(t.dir, 'repo'), '--read-data'], { env: e });
    assert.equal(c.code, 0, c.stderr);
    // the interrupted run left no snapshot
    const snaps = JSON.parse((await runCli(['snapshots', '--repo', path.join(t.dir, 'repo'), '--json'], { env: e })).stdout);
    assert.equal(snaps.length, 0, log);
    // the catalog recorded the aborted run as failed
    const { SqliteCatalog } = await import('../src/ops/catalog/sqlite.js');
    const cat = await SqliteCatalog.open(path.join(t.dir, '.lifeboat/catalog.db'));
    const runs = await cat.recentRuns('data', 5);
    await cat.close();
    assert.ok(runs.length >= 1 && runs.every((r) => r.status === 'failed'), JSON.stringify(runs));
    assert.match(runs[0]!.error ?? '', /aborted|shutting down/);
  } finally {
    t.cleanup();
  }
});

test('service: a failing job is retried, alerted once via webhook, health 503, then resolved after recovery', async () => {
  const t = tmpDir();
  const { startWebhookReceiver } = await import('./helpers/receivers.js');
  const { startService } = await import('../src/ops/service.js');
  const hook = await startWebhookReceiver();
  try {
    await fsp.writeFile(path.join(t.dir, 'pw'), 'svc-pw');
    const cfg = parseConfig(
      `
repositories:
  main: { location: ./repo, password: { file: ./pw }, autoInit: true }
sources:
  app: { kind: files, paths: [./app] }
jobs:
  app: { source: app, schedule: "*/2 * * * * *", retries: 1, retryDelay: 100ms, tier: critical }
daemon: { catalog: ./catalog.db }
notifiers:
  reminderInterval: 1h
  channels:
    hook: { type: webhook, url: "${hook.url}/alerts", secret: { env: LB_TEST_HMAC } }
  routes: { critical: [hook] }
`,
      path.join(t.dir, 'lifeboat.yaml'),
    );
    process.env.LB_TEST_HMAC = 'hmac-secret';
    const svc = await startService(cfg, { listen: '127.0.0.1:0', evaluateEveryMs: 500 });
    try {
      // ./app does not exist: every attempt fails
      const firing = () => hook.on('/alerts').map((r) => r.json as { status: string; check: string; kind: string; severity: string });
      // at least 5 s, then until a retry and a failure alert are there (at most 60 s, for a loaded machine)
      const startedWait = Date.now();
      await sleep(5000);
      while (
        Date.now() - startedWait < 60_000 &&
        !((await svc.catalog.recentRuns('app', 20)).some((r) => r.attempt === 2) && firing().some((m) => m.check === 'failures' && m.kind === 'firing'))
      )
        await sleep(250);
      const runs = await svc.catalog.recentRuns('app', 20);
      assert.ok(runs.some((r) => r.attempt === 2), 'the failed run was retried');
      // one message when the failures start (warning), one more only when it escalates to critical
      const onePerSeverity = (alerts: Array<{ severity: string }>) => {
        const bySeverity = new Map<string, number>();
        for (const m of alerts) bySeverity.set(m.severity, (bySeverity.get(m.severity) ?? 0) + 1);
        for (const [sev, n] of bySeverity) assert.equal(n, 1, `${n} firing messages at severity ${sev}: ${JSON.stringify(firing())}`);
      };
      const failAlerts = firing().filter((m) => m.check === 'failures' && m.kind === 'firing');
      assert.ok(failAlerts.length >= 1, JSON.stringify(firing()));
      onePerSeverity(failAlerts);
      const h = await fetch(`${svc.health!.url}/health/backup`);
      assert.equal(h.status, 503);
      // recover: the source appears, the next run succeeds, the alerts resolve exactly once
      await fsp.mkdir(path.join(t.dir, 'app'));
      await fsp.writeFile(path.join(t.dir, 'app/data.txt'), 'ok');
      for (const end = Date.now() + 60_000; Date.now() < end && !firing().some((m) => m.check === 'failures' && m.status === 'resolved'); ) await sleep(250);
      await sleep(1500);
      const msgs = firing();
      assert.equal(msgs.filter((m) => m.check === 'failures' && m.status === 'resolved').length, 1, JSON.stringify(msgs));
      // failures that went on until the source appeared may still have escalated to critical (three in a row
      // come quickly on a loaded machine): still one message per severity, and none after the resolution
      const allFiring = msgs.filter((m) => m.check === 'failures' && m.kind === 'firing');
      onePerSeverity(allFiring);
      const resolvedAt = msgs.findIndex((m) => m.check === 'failures' && m.status === 'resolved');
      assert.deepEqual(msgs.slice(resolvedAt + 1).filter((m) => m.check === 'failures' && m.kind === 'firing'), [], 'no further firing messages');
      assert.equal((await fetch(`${svc.health!.url}/health/backup`)).status, 200);
      const metrics = await (await fetch(`${svc.health!.url}/metrics`)).text();
      assert.match(metrics, /lifeboat_last_success_timestamp_seconds\{[^}]*job="app"[^}]*\} \d+/);
    } finally {
      await svc.stop();
    }
  } finally {
    await hook.close();
    t.cleanup();
  }
});

test('two daemons on one repository: concurrent backups, prune waits for locks, repository stays valid', async () => {
  const t = tmpDir();
  try {
    for (const d of ['a', 'b']) {
      await fsp.mkdir(path.join(t.dir, d));
      await fsp.writeFile(path.join(t.dir, d, 'data.bin'), randomBytes(4 * 1024 * 1024));
    }
    await fsp.writeFile(path.join(t.dir, 'pw'), 'two-pw');
    const yaml = (src: string) => `
repositories:
  main: { location: ./repo, password: { file: ./pw }, autoInit: true }
sources:
  ${src}: { kind: files, paths: [./${src}] }
jobs:
  ${src}: { source: ${src}, schedule: "* * * * * *", retention: { keepLast: 2 }, catchUp: false }
daemon: { maintenance: { schedule: "*/2 * * * * *", prune: true } }
`;
    // the repository exists before both daemons start (autoInit by two processes at once is not supported)
    assert.equal((await runCli(['init', '--repo', path.join(t.dir, 'repo'), '--password-file', path.join(t.dir, 'pw')])).code, 0);
    const results: JobResult[] = [];
    const maint: unknown[] = [];
    const daemons = ['a', 'b'].map(
      (src) =>
        new Daemon(resolvePlan(parseConfig(yaml(src), path.join(t.dir, `${src}.yaml`))), {
          onRunEnd: (r) => {
            // touch the data so every run has something new to store
            void fsp.appendFile(path.join(t.dir, src, 'data.bin'), randomBytes(64 * 1024));
            results.push(r);
          },
          onMaintenance: (m) => {
            maint.push(...m);
          },
        }),
    );
    for (const d of daemons) await d.start();
    // until each daemon has backed up twice and maintenance ran twice (at least 7 s, at most 90 s: a fixed
    // time is too short on a loaded machine)
    const okOf = (job: string) => results.filter((r) => r.status === 'success' && r.job === job).length;
    const started = Date.now();
    await sleep(7000);
    while (Date.now() - started < 90_000 && (okOf('a') < 2 || okOf('b') < 2 || maint.length < 2)) await sleep(500);
    await Promise.all(daemons.map((d) => d.stop(30_000)));
    const ok = results.filter((r) => r.status === 'success');
    assert.ok(ok.filter((r) => r.job === 'a').length >= 2 && ok.filter((r) => r.job === 'b').length >= 2, JSON.stringify(results.map((r) => [r.job, r.status, r.error])));
    assert.deepEqual(results.filter((r) => r.status === 'failed').map((r) => r.error), []);
    assert.ok(maint.length >= 2, 'maintenance did not run');
    const env = { LIFEBOAT_PASSWORD: 'two-pw' };
    const c = await runCli(['check', '--repo', path.join(t.dir, 'repo'), '--read-data'], { env });
    assert.equal(c.code, 0, c.stderr);
    const snaps = JSON.parse((await runCli(['snapshots', '--repo', path.join(t.dir, 'repo'), '--json'], { env })).stdout) as Array<{ id: string }>;
    assert.ok(snaps.length >= 2 && snaps.length <= 6, `retention kept ${snaps.length}`);
    for (const s of snaps) {
      const r = await runCli(['restore', s.id, '--repo', path.join(t.dir, 'repo'), '--target', path.join(t.dir, `out-${s.id}`)], { env });
      assert.equal(r.code, 0, r.stderr);
    }
  } finally {
    t.cleanup();
  }
});

test('daemon: the idle hook runs each time the last running job ends, not while another runs, not once stopping', async () => {
  const t = tmpDir();
  try {
    const cfg = parseConfig(
      `
repositories:
  main: { location: ./main, autoInit: true }
sources:
  a: { kind: files, paths: [./a] }
  b: { kind: files, paths: [./b] }
jobs:
  a: { source: a }
  b: { source: b }
daemon: { concurrency: 2 }
`,
      path.join(t.dir, 'lifeboat.yaml'),
    );
    const gates = new Map<string, () => void>();
    const result = (job: string): JobResult => ({ job, source: job, repository: 'main', status: 'success', copies: [], forgotten: 0, warnings: [], startedAt: new Date(), finishedAt: new Date() });
    // each job's run waits until the test opens its gate
    const run = (_c: ResolvedPlan, name: string) => new Promise<JobResult>((resolve) => gates.set(name, () => resolve(result(name))));
    let idle = 0;
    const daemon = new Daemon(resolvePlan(cfg), {}, { run, idle: () => void idle++, noBinlogArchivers: true });
    await daemon.start();
    const a = daemon.runNow('a', 'requested');
    const b = daemon.runNow('b', 'requested');
    for (const end = Date.now() + 10_000; gates.size < 2; await sleep(5)) assert.ok(Date.now() < end, 'both jobs started');
    gates.get('a')!();
    assert.equal(((await a) as JobResult).status, 'success');
    assert.equal(idle, 0, 'job b still runs: not idle');
    gates.get('b')!();
    await b;
    assert.equal(idle, 1, 'the last job ended: idle once');
    gates.clear();
    const c = daemon.runNow('a', 'requested');
    for (const end = Date.now() + 10_000; !gates.size; await sleep(5)) assert.ok(Date.now() < end, 'job a started again');
    gates.get('a')!();
    await c;
    assert.equal(idle, 2, 'again after the next run');
    gates.clear();
    const d = daemon.runNow('b', 'requested');
    for (const end = Date.now() + 10_000; !gates.size; await sleep(5)) assert.ok(Date.now() < end, 'job b started again');
    const stopped = daemon.stop(5_000);
    gates.get('b')!();
    await Promise.all([d, stopped]);
    assert.equal(idle, 2, 'a job ending while the daemon stops: no idle hook');
  } finally {
    t.cleanup();
  }
});

test('daemon process: a SIGTERM during start-up stops it gracefully once started (exit 0), a second one at once (130)', async () => {
  const t = tmpDir();
  try {
    await fsp.mkdir(path.join(t.dir, 'data'));
    await fsp.writeFile(path.join(t.dir, 'lifeboat.yaml'), `repositories:\n  main: { location: ./repo, autoInit: true }\nsources:\n  data: { kind: files, paths: [./data] }\njobs:\n  data: { source: data }\n`);
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024' };
    const start = async (signals: number): Promise<{ code: number | null; log: string }> => {
      const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', path.join(t.dir, 'lifeboat.yaml')], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      let sent = 0;
      child.stderr.on('data', (d: Buffer) => {
        log += d.toString();
        // the fleet registration is logged inside start-up, before the scheduler starts and the server listens;
        // a second signal once the first was taken (two sent at once may arrive as one)
        if ((sent === 0 && /fleet: agent .* registered/.test(log)) || (sent === 1 && signals === 2 && /received SIGTERM/.test(log))) {
          sent++;
          child.kill('SIGTERM');
        }
      });
      const code = await new Promise<number | null>((r) => child.on('close', r));
      return { code, log };
    };
    const one = await start(1);
    assert.equal(one.code, 0, one.log);
    assert.match(one.log, /received SIGTERM[\s\S]*daemon stopped/);
    const two = await start(2);
    assert.equal(two.code, 130, two.log);
  } finally {
    t.cleanup();
  }
});
