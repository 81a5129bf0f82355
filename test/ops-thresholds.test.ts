import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { tmpDir } from './helpers/tmp.js';
import { parseConfig } from '../src/config/load.js';
import { parseBytes } from '../src/config/alerts.js';
import { ConfigError } from '../src/errors.js';
import { PostgresCatalog } from '../src/ops/catalog/postgres.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { checkFreeSpace, checkRpo, checkSize, evaluate, jobsFromConfig, type JobSpec } from '../src/ops/monitor.js';

const H = 3600_000;
const MB = 1000 ** 2;
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const tmp = tmpDir('lb-thresholds-');
after(() => tmp.cleanup());

const job = (over: Partial<JobSpec> = {}): JobSpec => ({ name: 'appdb', tier: 'normal', rpoMs: 24 * H, repositories: [], ...over });
const run = (hoursAgo: number, now: Date) => ({ id: 1, startedAt: new Date(now.getTime() - hoursAgo * H) }) as never;

describe('absolute thresholds (issue 14 item 5)', () => {
  test('every lifeboat.yaml example in docs/alerts.md is valid', () => {
    const doc = readFileSync(path.join(ROOT, 'docs', 'alerts.md'), 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
    assert.equal(blocks.length, 4);
    for (const b of blocks) assert.doesNotThrow(() => parseConfig(b, 'docs/alerts.md'), b.slice(0, 80));
  });

  test('config: alerts.age / alerts.size / repositories.alerts.freeSpace parsed into monitor specs', () => {
    const cfg = parseConfig(
      [
        'repositories:',
        '  main: { location: ./r, alerts: { freeSpace: { warn: 50 GB, critical: "5%" } } }',
        'sources:',
        '  s: { kind: files, paths: [./d] }',
        'jobs:',
        '  j: { source: s, rpo: 24h, alerts: { age: { warn: 24h, critical: 25h }, size: { min: 1 MB, max: 10 GB } } }',
      ].join('\n'),
      path.join(tmp.dir, 'lifeboat.yaml'),
    );
    const [spec] = jobsFromConfig(cfg);
    assert.deepEqual(spec!.age, { warnMs: 24 * H, criticalMs: 25 * H });
    assert.deepEqual(spec!.sizeLimits, { min: 1e6, max: 1e10 });
    assert.deepEqual(spec!.repositories[0]!.freeSpace, { warn: { bytes: 50e9 }, critical: { percent: 5 } });
    assert.throws(
      () => parseConfig('repositories:\n  main: { location: ./r }\nsources:\n  s: { kind: files, paths: [./d] }\njobs:\n  j: { source: s, alerts: { age: { warn: 48h, critical: 24h } } }\n', '/x/l.yaml'),
      (e: unknown) => e instanceof ConfigError && /warn \(48h\) is longer than critical/.test(e.message),
    );
    assert.throws(
      () => parseConfig('repositories:\n  main: { location: ./r }\nsources:\n  s: { kind: files, paths: [./d] }\njobs:\n  j: { source: s, alerts: { size: { max: 10 parsecs } } }\n', '/x/l.yaml'),
      (e: unknown) => e instanceof ConfigError && /jobs\.j\.alerts\.size\.max/.test(e.message),
    );
    assert.equal(parseBytes('10 GB'), 1e10);
    assert.equal(parseBytes('1MiB'), 1 << 20);
    assert.equal(parseBytes('2TiB'), 2 * 1024 ** 4);
  });

  test('age: absolute warn/critical (24h / 25h) instead of RPO / 2×RPO', () => {
    const now = new Date(Date.UTC(2026, 0, 1));
    const abs = job({ rpoMs: 4 * H, age: { warnMs: 24 * H, criticalMs: 25 * H } });
    assert.equal(checkRpo(abs, run(23, now), now).severity, 'ok'); // 23h > RPO 4h, but within the absolute 24h
    const w = checkRpo(abs, run(24.5, now), now);
    assert.equal(w.severity, 'warning');
    assert.match(w.message, /warn after 1d, critical after 1d1h/);
    assert.equal(checkRpo(abs, run(25.5, now), now).severity, 'critical');
    assert.equal(checkRpo(abs, undefined, now).severity, 'critical');
    // only warn given: critical stays at 2×RPO (or warn, if later)
    assert.equal(checkRpo(job({ rpoMs: 4 * H, age: { warnMs: 6 * H } }), run(7, now), now).severity, 'warning');
    assert.equal(checkRpo(job({ rpoMs: 4 * H, age: { warnMs: 6 * H } }), run(9, now), now).severity, 'critical');
    // without absolute thresholds: the RPO rule
    assert.equal(checkRpo(job({ rpoMs: 4 * H }), run(5, now), now).severity, 'warning');
  });

  test('size: under min is critical, over max a warning, even without a baseline', () => {
    const pt = (size: number, i: number) => ({ runId: i, startedAt: new Date(Date.UTC(2026, 0, 10 - i)), totalSize: size, bytesAdded: null, snapshotId: null });
    const limited = job({ sizeLimits: { min: 1 * MB, max: 10_000 * MB } });
    const small = checkSize(limited, [pt(500_000, 0)]);
    assert.equal(small.severity, 'critical');
    assert.match(small.message, /under the minimum/);
    const big = checkSize(limited, [pt(11_000 * MB, 0)]);
    assert.equal(big.severity, 'warning');
    assert.match(big.message, /over the maximum/);
    assert.equal(checkSize(limited, [pt(5 * MB, 0)]).severity, 'ok');
    // the relative check still works alongside (a 90% shrink is critical though above min)
    assert.equal(checkSize(limited, [pt(2 * MB, 0), pt(20 * MB, 1), pt(20 * MB, 2), pt(20 * MB, 3)]).severity, 'critical');
    // no limits configured: a 1-byte first backup is fine
    assert.equal(checkSize(job(), [pt(1, 0)]).severity, 'ok');
  });

  test('free space: per-repository thresholds in bytes or percent', () => {
    const space = { available: 40e9, total: 1000e9 }; // 4%
    const repo = (fs?: JobSpec['repositories'][0]['freeSpace']) => ({ name: 'main', location: './r', localPath: '/r', ...(fs ? { freeSpace: fs } : {}) });
    assert.equal(checkFreeSpace(repo(), 'normal', space).severity, 'critical'); // default 5%
    assert.equal(checkFreeSpace(repo({ warn: { bytes: 50e9 }, critical: { bytes: 10e9 } }), 'normal', space).severity, 'warning');
    const c = checkFreeSpace(repo({ critical: { bytes: 100e9 } }), 'normal', { available: 90e9, total: 200e9 });
    assert.equal(c.severity, 'critical');
    assert.match(c.message, /below 93\.1 GiB/);
    assert.equal(checkFreeSpace(repo({ warn: { percent: 1 }, critical: { percent: 2 } }), 'normal', space).severity, 'ok');
  });

  test('free space measured with statfs on a real directory', async () => {
    const dir = path.join(tmp.dir, 'repo');
    mkdirSync(dir);
    const c = await SqliteCatalog.open(path.join(tmp.dir, 'fs.db'));
    try {
      const spec = (fs: JobSpec['repositories'][0]['freeSpace']) => [job({ repositories: [{ name: 'main', location: dir, localPath: dir, freeSpace: fs }] })];
      const huge = await evaluate(c, spec({ critical: { bytes: Number.MAX_SAFE_INTEGER } }), { skip: ['rpo', 'size', 'failures'] });
      assert.equal(huge.findings[0]!.severity, 'critical');
      const none = await evaluate(c, spec({ warn: { bytes: 0 }, critical: { bytes: 0 } }), { skip: ['rpo', 'size', 'failures'] });
      assert.equal(none.findings[0]!.severity, 'ok');
      assert.equal(none.findings[0]!.details.measurable, true);
    } finally {
      await c.close();
    }
  });
});

/** Runs for the view tests: times relative to the real clock (the views use the database's now()). */
async function seed(c: Catalog): Promise<void> {
  const now = Date.now();
  const add = async (job: string, hoursAgo: number, status: 'success' | 'failed' | 'partial', size: number | null, error?: string, kind: 'backup' | 'check' = 'backup') => {
    const startedAt = new Date(now - hoursAgo * H);
    const id = await c.startRun({ job, source: `${job}-src`, kind, repository: 'main', startedAt });
    await c.finishRun(id, { status, finishedAt: new Date(startedAt.getTime() + 90_000), ...(size !== null ? { totalSize: size } : {}), ...(error ? { error } : {}) });
  };
  await add('fresh', 30, 'success', 100);
  await add('fresh', 2, 'success', 200);
  await add('stale', 30, 'success', 300); // 30h: warning (24h/48h defaults)
  await add('dead', 60, 'success', 400); // 60h: critical
  await add('broken', 1, 'success', 500);
  await add('broken', 0.5, 'failed', null, 'pg_dump: connection refused'); // recent success, last run failed: warning
  await add('never', 1, 'failed', null, 'no route to host'); // never succeeded: critical
  await add('tight', 3, 'success', 600); // 3h with thresholds 1h/2h from job_thresholds: critical
  await add('fresh', 1, 'success', null, undefined, 'check'); // other kinds do not count
  const running = await c.startRun({ job: 'fresh', kind: 'backup', startedAt: new Date(now - 60_000) });
  void running; // a running backup is not the latest finished one
}

function viewTests(name: string, open: () => Promise<Catalog>) {
  test(`${name}: backup_log and backup_status views`, async () => {
    const c = await open();
    try {
      await seed(c);
      await evaluate(c, [job({ name: 'tight', rpoMs: 1 * H })], { skip: ['rpo', 'size', 'failures', 'free-space'] }); // writes job_thresholds
      const log = await c.sql.all(`SELECT * FROM ${c.sql.t('backup_log')} ORDER BY id`);
      assert.equal(log.length, 10);
      const first = log[0]!;
      assert.equal(first.job, 'fresh');
      assert.equal(first.type, 'backup');
      assert.equal(first.status, 'success');
      assert.equal(Number(first.size_bytes), 100);
      assert.equal(Number(first.duration_seconds), 90);
      assert.equal(first.location, 'main');
      assert.equal(first.error, null);
      assert.ok(c.sql.toDate(first.started_at) instanceof Date || typeof first.started_at === 'string');
      const failed = log.find((r) => r.job === 'never')!;
      assert.equal(failed.status, 'failed');
      assert.equal(failed.error, 'no route to host');
      assert.equal(failed.size_bytes, null);

      const rows = await c.sql.all(`SELECT * FROM ${c.sql.t('backup_status')} ORDER BY job`);
      const by = Object.fromEntries(rows.map((r) => [r.job as string, r]));
      assert.deepEqual(Object.keys(by), ['broken', 'dead', 'fresh', 'never', 'stale', 'tight']);
      assert.deepEqual(
        Object.fromEntries(rows.map((r) => [r.job, r.status])),
        { broken: 'warning', dead: 'critical', fresh: 'healthy', never: 'critical', stale: 'warning', tight: 'critical' },
      );
      assert.equal(Number(by.fresh!.last_size_bytes), 200);
      const age = Number(by.fresh!.age_seconds);
      assert.ok(age >= 2 * 3600 - 5 && age <= 2 * 3600 + 120, String(age));
      assert.equal(by.never!.age_seconds, null);
      assert.equal(by.never!.last_success_at, null);
      assert.equal(by.broken!.last_status, 'failed');
      assert.equal(by.broken!.last_error, 'pg_dump: connection refused');
      assert.equal(Number(by.tight!.warn_after_seconds), 3600);
      assert.equal(Number(by.tight!.critical_after_seconds), 7200);
      assert.equal(Number(by.fresh!.warn_after_seconds), 86400);
      // the sample query of docs/catalog-views.md
      const bad = await c.sql.all(`SELECT job, status, age_seconds FROM ${c.sql.t('backup_status')} WHERE status <> 'healthy' ORDER BY job`);
      assert.deepEqual(bad.map((r) => r.job), ['broken', 'dead', 'never', 'stale', 'tight']);
      // every sample query of docs/catalog-views.md runs on its backend
      const doc = readFileSync(path.join(ROOT, 'docs', 'catalog-views.md'), 'utf8');
      const queries = [...doc.matchAll(/```sql\n([\s\S]*?)```/g)].map((m) => m[1]!);
      assert.equal(queries.length, 3);
      const mine = c.backend === 'postgres' ? [queries[0]!, queries[1]!] : [queries[0]!, queries[2]!];
      for (const q of mine) {
        const sql = q.replace(/lifeboat\.backup_log/g, c.sql.t('backup_log')).replace(/FROM backup_(status|log)/g, (_m, v: string) => `FROM ${c.sql.t(`backup_${v}`)}`);
        const rows = await c.sql.all(sql);
        assert.ok(rows.length > 0, sql);
      }
    } finally {
      await c.close();
    }
  });
}

describe('catalog views (issue 14 item 6)', () => {
  let n = 0;
  viewTests('sqlite', async () => SqliteCatalog.open(path.join(tmp.dir, `v${n++}.db`)));
  const schemas: string[] = [];
  after(async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    } finally {
      await client.end();
    }
  });
  viewTests('postgres', async () => {
    const s = `lb_views_${process.pid}_${randomBytes(4).toString('hex')}`;
    schemas.push(s);
    return PostgresCatalog.open(PG_URL, { schema: s });
  });
});
