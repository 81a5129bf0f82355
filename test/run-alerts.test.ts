import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { createServer } from 'node:net';
import { makeTree, runCli, tmpDir } from './helpers/tmp.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from './helpers/receivers.js';
import { loadConfig } from '../src/config/load.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { JobResult } from '../src/ops/jobs.js';
import { catalogHooks } from '../src/ops/service.js';

/**
 * Issue 14 item 2: `lifeboat run`, `backup --config` and `check` (real CLI
 * processes) ping and alert like the daemon, deduplicated by the catalog.
 */

const HC_TOKEN = '5b1d2f0e-hc-token-9a7c';
const KUMA_TOKEN = 'kumaPushT0ken42';
let tmp: { dir: string; cleanup: () => void };
let hook: WebhookReceiver;
let cfgFile: string;
let env: Record<string, string | undefined>;

function rid(r: ReceivedRequest): string {
  return new URL(r.path, 'http://x').searchParams.get('rid') ?? '';
}
const pathOnly = (r: ReceivedRequest) => r.path.split('?')[0];
const alertsOf = (reqs: ReceivedRequest[]) => reqs.filter((r) => r.path === '/hook').map((r) => r.json as { key: string; kind: string; severity: string; message: string });

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}
let deadPort = 0;

before(async () => {
  tmp = tmpDir('lb-run-alerts-');
  deadPort = await closedPort();
  hook = await startWebhookReceiver();
  await makeTree(path.join(tmp.dir, 'site'), { files: 10, seed: 3, maxSize: 5000 });
  writeFileSync(path.join(tmp.dir, 'repo.pw'), 'run-alerts-pw\n');
  cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
  env = { LIFEBOAT_PASSWORD: undefined, LBT_HC_URL: `${hook.url}/hc/${HC_TOKEN}`, LBT_KUMA: `${hook.url}/api/push/${KUMA_TOKEN}?status=up&msg=OK&ping=` };
  writeFileSync(
    cfgFile,
    `repositories:
  local: { location: ./repo, autoInit: true, password: { file: ./repo.pw } }
sources:
  site: { kind: files, paths: [./site] }
  data: { kind: files, paths: [./data] }
  coded-src: { kind: files, paths: [./missing-dir] }
jobs:
  site: { source: site, rpo: 1h, ping: { url: { env: LBT_KUMA }, style: uptime-kuma } }
  broken: { source: data, rpo: 1h, healthcheck: { url: { env: LBT_HC_URL }, retries: 0 } }
  coded: { source: coded-src, rpo: 1h, ping: { url: "${hook.url}/hc2/abc", exitCode: true } }
  unreachable-ping: { source: site, rpo: 1h, ping: { url: "http://127.0.0.1:${deadPort}/ping/${HC_TOKEN}", retries: 1, retryDelay: 10ms, timeout: 2s } }
notifiers:
  channels:
    hook: { type: webhook, url: "${hook.url}/hook", retries: 0 }
  routes: { normal: [hook] }
`,
  );
});

after(async () => {
  await hook.close();
  tmp.cleanup();
});

describe('alerts and pings from CLI runs', () => {
  test('failing `run` pings start + fail with the error, alerts once; the second failure does not page again; recovery pings success and resolves', async () => {
    const before = hook.requests.length;
    const bad = await runCli(['-c', cfgFile, 'run', 'broken'], { env });
    assert.equal(bad.code, 1, bad.stderr);
    let reqs = hook.requests.slice(before);
    const pings = reqs.filter((r) => r.path.startsWith('/hc/'));
    assert.deepEqual(pings.map((r) => [r.method, pathOnly(r)]), [
      ['POST', `/hc/${HC_TOKEN}/start`],
      ['POST', `/hc/${HC_TOKEN}/fail`],
    ]);
    assert.equal(rid(pings[0]!), rid(pings[1]!), 'start and end carry the same rid');
    assert.match(rid(pings[0]!), /^[0-9a-f-]{36}$/);
    assert.equal(pings[0]!.raw.length, 0);
    assert.match(String(pings[1]!.headers['content-type']), /^text\/plain/);
    assert.match(pings[1]!.raw.toString(), /missing|no such file|ENOENT|data/i, pings[1]!.raw.toString());
    assert.match(String(pings[1]!.headers['user-agent']), /^lifeboat/);
    const fired = alertsOf(reqs);
    assert.deepEqual(fired.map((a) => [a.key, a.kind]).sort(), [
      ['broken/failures', 'firing'],
      ['broken/rpo', 'firing'],
    ]);
    assert.ok(!bad.stderr.includes(HC_TOKEN), 'the ping token is never logged');

    // cron runs it again, still failing: pings again, pages nobody again
    const mark = hook.requests.length;
    const bad2 = await runCli(['-c', cfgFile, 'run', 'broken'], { env });
    assert.equal(bad2.code, 1);
    reqs = hook.requests.slice(mark);
    assert.deepEqual(reqs.filter((r) => r.path.startsWith('/hc/')).map(pathOnly), [`/hc/${HC_TOKEN}/start`, `/hc/${HC_TOKEN}/fail`]);
    assert.deepEqual(alertsOf(reqs), [], 'a repeated failure within the reminder interval sends no alert');

    // fixed: success ping on the bare URL, one "resolved" per alert
    await makeTree(path.join(tmp.dir, 'data'), { files: 3, seed: 5, maxSize: 1000 });
    const mark2 = hook.requests.length;
    const good = await runCli(['-c', cfgFile, 'run', 'broken'], { env });
    assert.equal(good.code, 0, good.stderr);
    reqs = hook.requests.slice(mark2);
    const okPings = reqs.filter((r) => r.path.startsWith('/hc/'));
    assert.deepEqual(okPings.map((r) => [r.method, pathOnly(r)]), [
      ['POST', `/hc/${HC_TOKEN}/start`],
      ['POST', `/hc/${HC_TOKEN}`],
    ]);
    assert.match(okPings[1]!.raw.toString(), /^snapshot [0-9a-f]{8}, \d+ bytes$/);
    assert.deepEqual(alertsOf(reqs).map((a) => [a.key, a.kind]).sort(), [
      ['broken/failures', 'resolved'],
      ['broken/rpo', 'resolved'],
    ]);
  });

  test('exitCode: true ends with URL/<exit code>; Uptime Kuma push gets status=up, msg and ping', async () => {
    const mark = hook.requests.length;
    const r = await runCli(['-c', cfgFile, 'run', 'coded'], { env });
    assert.equal(r.code, 1);
    const coded = hook.requests.slice(mark).filter((q) => q.path.startsWith('/hc2/'));
    assert.deepEqual(coded.map((q) => [q.method, pathOnly(q)]), [
      ['POST', '/hc2/abc/start'],
      ['POST', '/hc2/abc/1'],
    ]);

    const mark2 = hook.requests.length;
    const ok = await runCli(['-c', cfgFile, 'run', 'site'], { env });
    assert.equal(ok.code, 0, ok.stderr);
    const kuma = hook.requests.slice(mark2).filter((q) => q.path.startsWith('/api/push/'));
    assert.equal(kuma.length, 1, 'Uptime Kuma: no start ping, one push at the end');
    const u = new URL(kuma[0]!.path, 'http://x');
    assert.equal(kuma[0]!.method, 'GET');
    assert.equal(u.pathname, `/api/push/${KUMA_TOKEN}`);
    assert.equal(u.searchParams.get('status'), 'up');
    assert.match(u.searchParams.get('msg')!, /^snapshot [0-9a-f]{8}/);
    assert.match(u.searchParams.get('ping')!, /^\d+$/);
    assert.deepEqual([...u.searchParams.keys()].sort(), ['msg', 'ping', 'status']);
  });

  test('a ping that cannot be delivered is logged (without its token) and does not fail the backup', async () => {
    const r = await runCli(['-c', cfgFile, 'run', 'unreachable-ping'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`ping start to http://127\\.0\\.0\\.1:${deadPort} failed: ECONNREFUSED \\(the run is not affected\\)`));
    assert.match(r.stderr, /ping success to .* failed: ECONNREFUSED/);
    assert.ok(!r.stderr.includes(HC_TOKEN));
  });

  test('`backup --config --source` counts as the job: pings and catalog', async () => {
    const mark = hook.requests.length;
    const r = await runCli(['-c', cfgFile, 'backup', '--source', 'data'], { env });
    assert.equal(r.code, 0, r.stderr);
    const pings = hook.requests.slice(mark).filter((q) => q.path.startsWith('/hc/'));
    assert.deepEqual(pings.map(pathOnly), [`/hc/${HC_TOKEN}/start`, `/hc/${HC_TOKEN}`]);
    const st = await runCli(['-c', cfgFile, '--json', 'status'], { env });
    const report = JSON.parse(st.stdout.trim().split('\n').pop()!) as { findings: Array<{ job: string; check: string; severity: string }> };
    assert.equal(report.findings.find((f) => f.job === 'broken' && f.check === 'failures')!.severity, 'ok');
  });

  test('`check` with notifiers: corrupted pack → integrity alert (critical), once', async () => {
    const packs: string[] = [];
    const walk = (d: string) => {
      for (const e of readdirSync(d)) {
        const p = path.join(d, e);
        if (statSync(p).isDirectory()) walk(p);
        else packs.push(p);
      }
    };
    walk(path.join(tmp.dir, 'repo', 'data'));
    assert.ok(packs.length > 0);
    const victim = packs[0]!;
    const bytes = readFileSync(victim);
    bytes[Math.floor(bytes.length / 2)] ^= 0xff;
    writeFileSync(victim, bytes);
    const mark = hook.requests.length;
    const r = await runCli(['-c', cfgFile, 'check', '--read-data'], { env });
    assert.equal(r.code, 5, r.stderr);
    const a = alertsOf(hook.requests.slice(mark));
    assert.deepEqual(a.map((x) => [x.key, x.kind, x.severity]), [['repo:local/integrity', 'firing', 'critical']]);
    assert.match(a[0]!.message, /check found \d+ problem/);
    const mark2 = hook.requests.length;
    assert.equal((await runCli(['-c', cfgFile, 'check', '--read-data'], { env })).code, 5);
    assert.deepEqual(alertsOf(hook.requests.slice(mark2)), []);
    mkdirSync(path.join(tmp.dir, 'unused'), { recursive: true });
  });
});

describe('daemon hooks', () => {
  test('retried attempts ping start once and the final outcome once (no fail ping for an attempt that will be retried)', async () => {
    const cfg = loadConfig(cfgFile);
    const catalog = await SqliteCatalog.open(path.join(tmp.dir, 'hooks.db'));
    const logs: string[] = [];
    process.env.LBT_HC_URL = env.LBT_HC_URL;
    try {
      const hooks = catalogHooks(cfg, catalog, undefined, { log: (m) => logs.push(m) });
      const result = (status: JobResult['status'], error?: string): JobResult => ({
        job: 'broken',
        source: 'data',
        repository: 'local',
        status,
        copies: [],
        forgotten: 0,
        warnings: [],
        ...(error ? { error, exitCode: 1 } : { snapshotId: 'ab'.repeat(32) }),
        startedAt: new Date(Date.now() - 1000),
        finishedAt: new Date(),
      });
      const mark = hook.requests.length;
      const id1 = await hooks.onRunStart('broken', 1);
      await hooks.onRunEnd(result('failed', 'transient: connection reset'), id1, 1, false);
      const id2 = await hooks.onRunStart('broken', 2);
      await hooks.onRunEnd(result('success'), id2, 2, true);
      const pings = hook.requests.slice(mark).filter((r) => r.path.startsWith('/hc/'));
      assert.deepEqual(pings.map(pathOnly), [`/hc/${HC_TOKEN}/start`, `/hc/${HC_TOKEN}`]);
      assert.equal(rid(pings[0]!), rid(pings[1]!));
      assert.deepEqual((await catalog.runs({ job: 'broken' })).map((r) => [r.status, r.willRetry]), [['success', false], ['failed', true]]);
      assert.deepEqual(logs, []);
    } finally {
      await catalog.close();
    }
  });
});
