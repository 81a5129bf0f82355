import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { tmpDir } from './helpers/tmp.js';
import { parseConfig } from '../src/config/load.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { checkRpo, checkSize, evaluate, jobsFromConfig, median, measureFreeSpace, backupHealth, type JobSpec } from '../src/ops/monitor.js';

const H = 3600_000;
const NOW = new Date(Date.UTC(2025, 5, 1, 12, 0, 0));
const ago = (ms: number) => new Date(NOW.getTime() - ms);

const tmp = tmpDir('lb-monitor-');
after(() => tmp.cleanup());
let n = 0;
const freshCatalog = () => SqliteCatalog.open(path.join(tmp.dir, `m${n++}.db`));

function job(name: string, rpoMs = H, repositories: JobSpec['repositories'] = []): JobSpec {
  return { name, tier: 'important', rpoMs, repositories };
}

async function addRun(c: Catalog, name: string, startedAt: Date, status: 'success' | 'failed' | 'partial', extra: { totalSize?: number; errors?: number; error?: string; willRetry?: boolean } = {}) {
  const id = await c.startRun({ job: name, startedAt });
  await c.finishRun(id, { status, finishedAt: new Date(startedAt.getTime() + 60_000), ...extra });
  return id;
}

describe('RPO', () => {
  test('boundaries: ok up to RPO, warning up to 2×RPO, critical beyond and when never successful', async () => {
    const cases: Array<[number | undefined, string]> = [
      [0, 'ok'],
      [H, 'ok'],
      [H + 1, 'warning'],
      [2 * H, 'warning'],
      [2 * H + 1, 'critical'],
      [undefined, 'critical'],
    ];
    for (const [age, expected] of cases) {
      const c = await freshCatalog();
      try {
        if (age !== undefined) await addRun(c, 'db', ago(age), 'success');
        await addRun(c, 'db', ago(10_000), 'failed'); // a later failure does not move the recovery point
        const r = await evaluate(c, [job('db', H)], { now: NOW, skip: ['size', 'failures', 'free-space'] });
        const f = r.findings.find((x) => x.check === 'rpo')!;
        assert.equal(f.severity, expected, `age ${age}: ${f.message}`);
        assert.equal(f.details.ageMs, age ?? null);
        assert.equal(f.details.rpoMs, H);
        assert.equal(r.state, expected);
        if (age === undefined) assert.match(f.message, /no successful backup/);
      } finally {
        await c.close();
      }
    }
  });

  test('a partial backup is a recovery point unless configured otherwise; clock skew counts as age 0', async () => {
    const c = await freshCatalog();
    try {
      await addRun(c, 'db', ago(3 * H), 'success');
      await addRun(c, 'db', ago(10 * 60_000), 'partial', { errors: 2 });
      const on = await evaluate(c, [job('db', H)], { now: NOW, skip: ['size', 'failures', 'free-space'] });
      assert.equal(on.findings[0]!.severity, 'ok');
      const off = await evaluate(c, [job('db', H)], { now: NOW, partialSatisfiesRpo: false, skip: ['size', 'failures', 'free-space'] });
      assert.equal(off.findings[0]!.severity, 'critical');
      const skew = checkRpo(job('db', H), { startedAt: new Date(NOW.getTime() + 5 * 60_000) } as never, NOW);
      assert.equal(skew.severity, 'ok');
      assert.equal(skew.details.ageMs, 0);
    } finally {
      await c.close();
    }
  });

  test('PITR: archived WAL newer than the last base backup is the recovery point (only on top of a successful base backup)', async () => {
    const c = await freshCatalog();
    try {
      const walAt = ago(2 * 60_000);
      const pitrJob: JobSpec = { ...job('db', 15 * 60_000), recoveryPoint: async () => walAt };
      // no successful base backup: WAL alone is not restorable
      const none = await evaluate(c, [pitrJob], { now: NOW, skip: ['size', 'failures', 'free-space'] });
      assert.equal(none.findings[0]!.severity, 'critical');
      assert.match(none.findings[0]!.message, /no successful backup/);
      // base backup a day ago (RPO 15m) but WAL archived 2 minutes ago: ok
      await addRun(c, 'db', ago(24 * H), 'success');
      const r = await evaluate(c, [pitrJob], { now: NOW, skip: ['size', 'failures', 'free-space'] });
      const f = r.findings[0]!;
      assert.equal(f.severity, 'ok', f.message);
      assert.equal(f.details.ageMs, 2 * 60_000);
      assert.equal(f.details.walArchivedAt, walAt.toISOString());
      assert.match(f.message, /newest archived WAL/);
      // the archiver stalled: WAL is as old as the RPO allows no more
      const stalled: JobSpec = { ...pitrJob, recoveryPoint: async () => ago(40 * 60_000) };
      assert.equal((await evaluate(c, [stalled], { now: NOW, skip: ['size', 'failures', 'free-space'] })).findings[0]!.severity, 'critical');
      // the same in /health/backup
      const h = await backupHealth(c, [pitrJob], { now: NOW });
      assert.equal(h.ok, true);
      // a failing recovery-point reader only loses the extra information
      const broken: JobSpec = { ...pitrJob, recoveryPoint: async () => { throw new Error('storage down'); } };
      assert.equal((await evaluate(c, [broken], { now: NOW, skip: ['size', 'failures', 'free-space'] })).findings[0]!.severity, 'critical');
    } finally {
      await c.close();
    }
  });

  test('backupHealth lists failing jobs with reasons', async () => {
    const c = await freshCatalog();
    try {
      await addRun(c, 'fresh', ago(10 * 60_000), 'success');
      await addRun(c, 'stale', ago(5 * H), 'success');
      const h = await backupHealth(c, [job('fresh', H), job('stale', H), job('never', H)], { now: NOW });
      assert.equal(h.ok, false);
      assert.deepEqual(
        h.failing.map((f) => [f.job, f.status]),
        [
          ['stale', 'critical'],
          ['never', 'critical'],
        ],
      );
      assert.match(h.failing[0]!.reason, /last success 5h ago, RPO 1h: critical/);
      assert.equal(h.jobs.find((j) => j.job === 'fresh')!.ageSeconds, 600);
      const ok = await backupHealth(c, [job('fresh', H)], { now: NOW });
      assert.equal(ok.ok, true);
      assert.deepEqual(ok.failing, []);
    } finally {
      await c.close();
    }
  });
});

describe('size anomaly', () => {
  const GB = 1024 ** 3;
  async function withSizes(sizes: number[], opts: Parameters<typeof evaluate>[2] = {}) {
    const c = await freshCatalog();
    try {
      for (const [i, s] of sizes.entries()) await addRun(c, 'dump', ago((sizes.length - i) * H), 'success', { totalSize: s });
      const r = await evaluate(c, [job('dump', 24 * H)], { now: NOW, skip: ['rpo', 'failures', 'free-space'], ...opts });
      return r.findings.find((f) => f.check === 'size')!;
    } finally {
      await c.close();
    }
  }

  test('a dump that silently shrank 90% is critical', async () => {
    const f = await withSizes([10 * GB, 10.2 * GB, 9.9 * GB, 10.1 * GB, 10 * GB, 1 * GB]);
    assert.equal(f.severity, 'critical');
    assert.equal(f.details.medianSize, 10 * GB);
    assert.ok(Math.abs((f.details.ratio as number) - 0.1) < 1e-9);
    assert.match(f.message, /shrank by 90%/);
  });

  test('growth beyond 200% is a warning; normal variation is ok; boundaries are inclusive', async () => {
    assert.equal((await withSizes([100, 100, 100, 100, 100, 201])).severity, 'warning');
    assert.equal((await withSizes([100, 100, 100, 100, 100, 200])).severity, 'ok');
    assert.equal((await withSizes([100, 100, 100, 100, 100, 50])).severity, 'ok');
    assert.equal((await withSizes([100, 100, 100, 100, 100, 49])).severity, 'critical');
    assert.equal((await withSizes([100, 110, 90, 105, 95, 120])).severity, 'ok');
  });

  test('thresholds are configurable; the window uses only the previous N successes', async () => {
    // with minRatio 0.8, a 30% drop is flagged
    assert.equal((await withSizes([100, 100, 100, 100, 70], { size: { minRatio: 0.8 } })).severity, 'critical');
    // old huge backups outside the window of 3 do not matter
    const f = await withSizes([1000, 1000, 1000, 100, 100, 100, 100], { size: { window: 3 } });
    assert.equal(f.severity, 'ok');
    assert.equal(f.details.window, 3);
  });

  test('no verdict without enough history; failed and partial runs are not part of the baseline', async () => {
    const few = await withSizes([100, 100, 10]);
    assert.equal(few.severity, 'ok');
    assert.match(few.message, /baseline not established/);

    const c = await freshCatalog();
    try {
      for (let i = 0; i < 4; i++) await addRun(c, 'dump', ago((10 - i) * H), 'success', { totalSize: 1000 });
      await addRun(c, 'dump', ago(3 * H), 'partial', { totalSize: 10 });
      await addRun(c, 'dump', ago(2 * H), 'failed', { totalSize: 0 });
      await addRun(c, 'dump', ago(1 * H), 'success', { totalSize: 950 });
      const r = await evaluate(c, [job('dump', 24 * H)], { now: NOW, skip: ['rpo', 'failures', 'free-space'] });
      assert.equal(r.findings[0]!.severity, 'ok');
      assert.equal(r.findings[0]!.details.medianSize, 1000);
    } finally {
      await c.close();
    }
  });

  test('pure helpers', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 2, 3]), 2.5);
    const zero = checkSize(job('z'), [0, 0, 0, 0].map((s, i) => ({ runId: i, startedAt: NOW, totalSize: s, bytesAdded: null, snapshotId: null })));
    assert.equal(zero.severity, 'ok');
    const fromZero = checkSize(job('z'), [5, 0, 0, 0].map((s, i) => ({ runId: i, startedAt: NOW, totalSize: s, bytesAdded: null, snapshotId: null })));
    assert.equal(fromZero.severity, 'warning');
  });
});

describe('failure streak', () => {
  test('1 failure warns, 3 are critical, retried attempts do not count, success resets, partial warns', async () => {
    const c = await freshCatalog();
    const spec = [job('app', 24 * H)];
    const failures = async () => (await evaluate(c, spec, { now: NOW, skip: ['rpo', 'size', 'free-space'] })).findings[0]!;
    try {
      await addRun(c, 'app', ago(10 * H), 'success');
      assert.equal((await failures()).severity, 'ok');
      await addRun(c, 'app', ago(9 * H), 'failed', { willRetry: true, error: 'attempt 1' });
      await addRun(c, 'app', ago(8.9 * H), 'failed', { error: 'pg_dump: error: connection to server failed\nmore' });
      let f = await failures();
      assert.equal(f.severity, 'warning');
      assert.equal(f.details.streak, 1);
      assert.equal(f.message, 'app: 1 consecutive failed run: pg_dump: error: connection to server failed');
      await addRun(c, 'app', ago(8 * H), 'failed', { error: 'x' });
      assert.equal((await failures()).severity, 'warning');
      await addRun(c, 'app', ago(7 * H), 'failed', { error: 'disk full' });
      f = await failures();
      assert.equal(f.severity, 'critical');
      assert.equal(f.details.streak, 3);
      assert.equal(f.details.lastError, 'disk full');
      // configurable
      const strict = await evaluate(c, spec, { now: NOW, skip: ['rpo', 'size', 'free-space'], failures: { warnAfter: 5, criticalAfter: 10 } });
      assert.equal(strict.findings[0]!.severity, 'ok');
      await addRun(c, 'app', ago(6 * H), 'partial', { errors: 4 });
      f = await failures();
      assert.equal(f.severity, 'warning');
      assert.match(f.message, /last run was partial: 4 item\(s\) could not be read/);
      await addRun(c, 'app', ago(5 * H), 'success');
      assert.equal((await failures()).severity, 'ok');
    } finally {
      await c.close();
    }
  });
});

describe('free space and config', () => {
  test('local repositories are measured with statfs, S3 is not measurable; thresholds apply', async () => {
    const c = await freshCatalog();
    try {
      const repoDir = path.join(tmp.dir, 'repo-not-created-yet', 'sub');
      const spec: JobSpec = {
        name: 'files',
        tier: 'critical',
        rpoMs: H,
        repositories: [
          { name: 'local', location: repoDir, localPath: repoDir },
          { name: 'offsite', location: 's3://bucket/prefix' },
        ],
      };
      const other: JobSpec = { name: 'other', tier: 'normal', rpoMs: H, repositories: [{ name: 'local', location: repoDir, localPath: repoDir }] };
      const r = await evaluate(c, [other, spec], { now: NOW, skip: ['rpo', 'size', 'failures'] });
      const local = r.findings.find((f) => f.job === 'repo:local')!;
      const s3 = r.findings.find((f) => f.job === 'repo:offsite')!;
      assert.equal(r.findings.length, 2);
      assert.equal(local.check, 'free-space');
      assert.equal(local.tier, 'critical'); // highest tier among jobs using it
      assert.equal(local.details.measurable, true);
      const fs = await measureFreeSpace(tmp.dir);
      assert.equal(local.details.totalBytes, fs.total);
      assert.ok((local.details.availableBytes as number) > 0);
      const pct = local.details.freePercent as number;
      assert.equal(local.severity, pct < 5 ? 'critical' : pct < 10 ? 'warning' : 'ok');
      assert.equal(s3.severity, 'ok');
      assert.equal(s3.details.measurable, false);
      assert.match(s3.message, /not measurable/);

      // thresholds relative to the real free percentage
      const crit = await evaluate(c, [spec], { now: NOW, skip: ['rpo', 'size', 'failures'], freeSpace: { criticalPercent: Math.min(100, pct + 1), warnPercent: 100 } });
      assert.equal(crit.findings.find((f) => f.job === 'repo:local')!.severity, 'critical');
      const warn = await evaluate(c, [spec], { now: NOW, skip: ['rpo', 'size', 'failures'], freeSpace: { criticalPercent: 0, warnPercent: Math.min(100, pct + 1) } });
      assert.equal(warn.findings.find((f) => f.job === 'repo:local')!.severity, 'warning');
      assert.equal(warn.state, 'warning');
      assert.equal(warn.jobs['repo:local'], 'warning');
      const bytes = await evaluate(c, [spec], { now: NOW, skip: ['rpo', 'size', 'failures'], freeSpace: { criticalPercent: 0, warnPercent: 0, criticalBytes: fs.available * 2 + 1 } });
      assert.equal(bytes.findings.find((f) => f.job === 'repo:local')!.severity, 'critical');
    } finally {
      await c.close();
    }
  });

  test('jobsFromConfig resolves tiers, RPO overrides and repository paths', () => {
    const cfg = parseConfig(
      `repositories:
  local: { location: ./backups }
  offsite: { location: "s3://bucket/lifeboat" }
sources:
  home: { kind: files, paths: [/home] }
jobs:
  home-critical: { source: home, repository: local, copyTo: [offsite], tier: critical }
  home-slow: { source: home, rpo: 36h }
`,
      path.join(tmp.dir, 'lifeboat.yaml'),
    );
    const jobs = jobsFromConfig(cfg);
    assert.deepEqual(jobs, [
      {
        name: 'home-critical',
        tier: 'critical',
        rpoMs: 15 * 60_000,
        repositories: [
          { name: 'local', location: './backups', localPath: path.join(tmp.dir, 'backups') },
          { name: 'offsite', location: 's3://bucket/lifeboat' },
        ],
      },
      { name: 'home-slow', tier: 'normal', rpoMs: 36 * H, repositories: [{ name: 'local', location: './backups', localPath: path.join(tmp.dir, 'backups') }] },
    ]);
  });

  test('overall report: worst severity, per-job state, every check present', async () => {
    const c = await freshCatalog();
    try {
      await addRun(c, 'ok-job', ago(10 * 60_000), 'success', { totalSize: 100 });
      await addRun(c, 'bad-job', ago(30 * 60_000), 'failed', { error: 'boom' });
      const r = await evaluate(c, [job('ok-job'), job('bad-job')], { now: NOW, skip: ['free-space'] });
      assert.equal(r.at, NOW);
      assert.equal(r.state, 'critical');
      assert.deepEqual(r.jobs, { 'ok-job': 'ok', 'bad-job': 'critical' });
      assert.deepEqual(
        r.findings.map((f) => `${f.job}/${f.check}:${f.severity}`),
        ['ok-job/rpo:ok', 'ok-job/size:ok', 'ok-job/failures:ok', 'bad-job/rpo:critical', 'bad-job/size:ok', 'bad-job/failures:warning'],
      );
    } finally {
      await c.close();
    }
  });
});
