import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { tmpDir } from './helpers/tmp.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { startHealthServer, parseListen, type HealthServer } from '../src/ops/health-server.js';
import { OpsMetrics } from '../src/ops/metrics.js';
import type { JobSpec } from '../src/ops/monitor.js';

const H = 3600_000;
const NOW = Date.UTC(2025, 5, 1, 12, 0, 0);

/** Parse the Prometheus text format into "name{labels}" -> value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(m, `unparseable metrics line: ${line}`);
    out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe('metrics and health endpoints', () => {
  const tmp = tmpDir('lb-metrics-');
  let catalog: Catalog;
  let server: HealthServer;
  let now = NOW;
  const jobs: JobSpec[] = [
    { name: 'db', tier: 'critical', rpoMs: H, repositories: [] },
    { name: 'files', tier: 'normal', rpoMs: 4 * H, repositories: [] },
  ];

  before(async () => {
    catalog = await SqliteCatalog.open(path.join(tmp.dir, 'catalog.db'));
    // db: a failure, then a success 10 minutes ago that took 90 s
    let id = await catalog.startRun({ job: 'db', startedAt: new Date(NOW - 2 * H) });
    await catalog.finishRun(id, { status: 'failed', finishedAt: new Date(NOW - 2 * H + 5000), error: 'boom' });
    id = await catalog.startRun({ job: 'db', startedAt: new Date(NOW - 10 * 60_000) });
    await catalog.finishRun(id, { status: 'success', finishedAt: new Date(NOW - 10 * 60_000 + 90_000), bytesAdded: 12345, totalSize: 1_000_000 });
    // files: success 1 h ago, a prune, and one run in progress
    id = await catalog.startRun({ job: 'files', startedAt: new Date(NOW - H) });
    await catalog.finishRun(id, { status: 'partial', finishedAt: new Date(NOW - H + 30_000), bytesAdded: 7, totalSize: 500, errors: 1 });
    id = await catalog.startRun({ job: 'files', kind: 'prune', startedAt: new Date(NOW - 0.5 * H) });
    await catalog.finishRun(id, { status: 'success', finishedAt: new Date(NOW - 0.5 * H + 1000) });
    await catalog.startRun({ job: 'files', startedAt: new Date(NOW - 60_000) });
    server = await startHealthServer({ port: 0, catalog, jobs, now: () => new Date(now) });
  });

  after(async () => {
    await server?.close();
    await catalog?.close();
    tmp.cleanup();
  });

  test('listens on 127.0.0.1 by default', () => {
    assert.equal(server.host, '127.0.0.1');
    assert.ok(server.port > 0);
    assert.equal(server.url, `http://127.0.0.1:${server.port}`);
  });

  test('GET /metrics: every metric with the values from the catalog', async () => {
    const res = await fetch(`${server.url}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/plain/);
    const text = await res.text();
    assert.match(text, /# TYPE lifeboat_runs_total counter/);
    assert.match(text, /# TYPE lifeboat_rpo_compliant gauge/);
    const m = parseMetrics(text);
    const expect: Record<string, number> = {
      'lifeboat_last_success_timestamp_seconds{job="db"}': (NOW - 10 * 60_000) / 1000,
      'lifeboat_last_success_timestamp_seconds{job="files"}': (NOW - H) / 1000,
      'lifeboat_backup_age_seconds{job="db"}': 600,
      'lifeboat_backup_age_seconds{job="files"}': 3600,
      'lifeboat_rpo_seconds{job="db"}': 3600,
      'lifeboat_rpo_seconds{job="files"}': 14400,
      'lifeboat_rpo_compliant{job="db"}': 1,
      'lifeboat_rpo_compliant{job="files"}': 1,
      'lifeboat_last_run_duration_seconds{job="db"}': 90,
      'lifeboat_last_run_duration_seconds{job="files"}': 30,
      'lifeboat_last_run_bytes_added{job="db"}': 12345,
      'lifeboat_last_run_bytes_added{job="files"}': 7,
      'lifeboat_last_run_success{job="db"}': 1,
      'lifeboat_last_run_success{job="files"}': 0.5,
      'lifeboat_last_backup_size_bytes{job="db"}': 1_000_000,
      'lifeboat_running_jobs{job="db"}': 0,
      'lifeboat_running_jobs{job="files"}': 1,
      'lifeboat_runs_total{job="db",kind="backup",status="failed"}': 1,
      'lifeboat_runs_total{job="db",kind="backup",status="success"}': 1,
      'lifeboat_runs_total{job="files",kind="backup",status="partial"}': 1,
      'lifeboat_runs_total{job="files",kind="prune",status="success"}': 1,
      'lifeboat_failures_total{job="db",kind="backup"}': 1,
      'lifeboat_failures_total{job="files",kind="backup"}': 0,
    };
    for (const [k, v] of Object.entries(expect)) assert.equal(m.get(k), v, k);
    // the running run is not a finished run
    assert.equal(m.get('lifeboat_runs_total{job="files",kind="backup",status="running"}'), undefined);
  });

  test('GET /health and /health/backup: 200, then 503 once a job is stale', async () => {
    let res = await fetch(`${server.url}/health`);
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { status: 'ok' });

    res = await fetch(`${server.url}/health/backup`);
    assert.equal(res.status, 200);
    let body = (await res.json()) as { status: string; failing: unknown[]; jobs: Array<{ job: string; status: string }> };
    assert.equal(body.status, 'ok');
    assert.deepEqual(body.failing, []);
    assert.deepEqual(body.jobs.map((j) => [j.job, j.status]), [
      ['db', 'ok'],
      ['files', 'ok'],
    ]);

    // 1 h later: db's last success is 1h10m old, beyond its 1 h RPO; files (4 h) still fine
    now = NOW + H;
    res = await fetch(`${server.url}/health/backup`);
    assert.equal(res.status, 503);
    body = (await res.json()) as typeof body;
    assert.equal(body.status, 'failing');
    assert.deepEqual(body.failing, [{ job: 'db', status: 'warning', reason: 'db: last success 1h10m ago, RPO 1h: warning' }]);
    const m = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
    assert.equal(m.get('lifeboat_rpo_compliant{job="db"}'), 0);
    assert.equal(m.get('lifeboat_rpo_compliant{job="files"}'), 1);
    assert.equal(m.get('lifeboat_backup_age_seconds{job="db"}'), 4200);

    // /health stays 200: the process is up
    assert.equal((await fetch(`${server.url}/health`)).status, 200);

    // a new successful backup brings it back
    const id = await catalog.startRun({ job: 'db', startedAt: new Date(now - 60_000) });
    await catalog.finishRun(id, { status: 'success', finishedAt: new Date(now), totalSize: 1 });
    assert.equal((await fetch(`${server.url}/health/backup`)).status, 200);
    const m2 = parseMetrics(await (await fetch(`${server.url}/metrics`)).text());
    assert.equal(m2.get('lifeboat_runs_total{job="db",kind="backup",status="success"}'), 2);
    now = NOW;
  });

  test('unknown paths 404, other methods 405, HEAD works', async () => {
    assert.equal((await fetch(`${server.url}/nope`)).status, 404);
    const post = await fetch(`${server.url}/metrics`, { method: 'POST', body: 'x' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get('allow'), 'GET, HEAD');
    const head = await fetch(`${server.url}/health`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });

  test('a never-successful job is non-compliant, with no age series', async () => {
    const metrics = new OpsMetrics({ catalog, jobs: [{ name: 'new-job', tier: 'normal', rpoMs: H, repositories: [] }], now: () => new Date(NOW) });
    const m = parseMetrics(await metrics.render());
    assert.equal(m.get('lifeboat_rpo_compliant{job="new-job"}'), 0);
    assert.equal(m.get('lifeboat_last_success_timestamp_seconds{job="new-job"}'), 0);
    assert.equal(m.get('lifeboat_backup_age_seconds{job="new-job"}'), undefined);
  });

  test('listen address parsing and errors', async () => {
    assert.deepEqual(parseListen('127.0.0.1:9187'), { host: '127.0.0.1', port: 9187 });
    assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
    assert.deepEqual(parseListen(':9000'), { host: '127.0.0.1', port: 9000 });
    assert.deepEqual(parseListen('0.0.0.0:80'), { host: '0.0.0.0', port: 80 });
    assert.throws(() => parseListen('localhost'), /invalid listen address "localhost"/);
    assert.throws(() => parseListen('a:99999'), /port out of range/);
    await assert.rejects(startHealthServer({ listen: `127.0.0.1:${server.port}`, catalog, jobs }), /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/);
  });
});
