import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { tmpDir } from './helpers/tmp.js';
import { LifeboatError } from '../src/errors.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import { PostgresCatalog } from '../src/ops/catalog/postgres.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import { runFinishFromJobResult } from '../src/ops/catalog/job-result.js';
import { LogTail } from '../src/ops/catalog/log-tail.js';
import type { Catalog } from '../src/ops/catalog/types.js';

const SQLITE_CATALOG_JS = fileURLToPath(new URL('../src/ops/catalog/sqlite.js', import.meta.url));
const POSTGRES_CATALOG_JS = fileURLToPath(new URL('../src/ops/catalog/postgres.js', import.meta.url));
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test';
const T0 = Date.UTC(2025, 0, 1, 0, 0, 0);
const H = 3600_000;
const at = (hours: number) => new Date(T0 + hours * H);

/** Run a node script (ESM) in a child process; resolves with its stdout. */
function runNode(script: string, opts: { keepAlive?: boolean } = {}): { done: Promise<string>; child: ReturnType<typeof spawn>; firstLine: Promise<string> } {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let resolveLine: (s: string) => void;
  const firstLine = new Promise<string>((r) => (resolveLine = r));
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('\n')) resolveLine(out.split('\n')[0]!);
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<string>((resolve, reject) =>
    child.on('close', (code, signal) => (code === 0 || opts.keepAlive ? resolve(out) : reject(new Error(`child exited ${code ?? signal}: ${err}`)))),
  );
  return { done, child, firstLine };
}

/** Behaviour every Catalog implementation must have. */
function catalogBehaviour(name: string, open: () => Promise<Catalog>) {
  describe(`${name}: catalog queries`, () => {
    test('start/finish/get a run, with fields and redaction', async () => {
      const c = await open();
      try {
        const id = await c.startRun({ job: 'appdb', source: 'pg-main', kind: 'backup', repository: 'local', startedAt: at(0), toolVersions: { pg_dump: '15.4' } });
        assert.ok(id > 0);
        let r = (await c.getRun(id))!;
        assert.equal(r.status, 'running');
        assert.equal(r.finishedAt, null);
        assert.equal(r.source, 'pg-main');
        assert.deepEqual(r.toolVersions, { pg_dump: '15.4' });
        await c.finishRun(id, {
          status: 'failed',
          finishedAt: new Date(T0 + 90_000),
          bytesRead: 10,
          bytesAdded: 5,
          bytesUploaded: 7,
          bytesDownloaded: 2 ** 40,
          totalSize: 1000,
          files: 3,
          errors: 1,
          error: 'connect to postgres://admin:hunter2@db.internal:5432/app failed; password=hunter2',
          logTail: 'line1\nusing https://hooks.slack.com/services/T0/B0/SECRETTOKEN\nline3',
        });
        r = (await c.getRun(id))!;
        assert.equal(r.status, 'failed');
        assert.equal(r.durationMs, 90_000);
        assert.equal(r.bytesRead, 10);
        assert.equal(r.bytesAdded, 5);
        assert.equal(r.bytesUploaded, 7);
        assert.equal(r.bytesDownloaded, 2 ** 40);
        assert.equal(r.totalSize, 1000);
        assert.equal(r.files, 3);
        assert.equal(r.errors, 1);
        assert.equal(r.repository, 'local');
        assert.ok(!r.error!.includes('hunter2'), r.error!);
        assert.ok(r.error!.includes('postgres://db.internal:5432'), r.error!);
        assert.ok(!r.logTail!.includes('SECRETTOKEN'), r.logTail!);
        assert.ok(r.logTail!.includes('https://hooks.slack.com'));
        await assert.rejects(c.finishRun(999_999, { status: 'success' }), (e: unknown) => e instanceof LifeboatError && /no run with id 999999/.test((e as Error).message));
        await assert.rejects(c.startRun({ job: 'x', kind: 'bogus' as never }), /unknown run kind "bogus"/);
        await assert.rejects(c.finishRun(id, { status: 'success', bytesAdded: -1 }), /bytesAdded must be a non-negative number/);
      } finally {
        await c.close();
      }
    });

    test('lastSuccess, recentRuns, runs(filter), runCounts, jobs, deleteRunsBefore', async () => {
      const c = await open();
      try {
        const add = async (job: string, h: number, status: 'success' | 'failed' | 'partial' | 'running', kind: 'backup' | 'prune' = 'backup', totalSize?: number) => {
          const id = await c.startRun({ job, kind, startedAt: at(h) });
          if (status !== 'running') await c.finishRun(id, { status, finishedAt: at(h + 0.5), ...(totalSize !== undefined ? { totalSize } : {}) });
          return id;
        };
        const s1 = await add('web', 1, 'success', 'backup', 100);
        const p2 = await add('web', 2, 'partial', 'backup', 90);
        const f3 = await add('web', 3, 'failed');
        const r4 = await add('web', 4, 'running');
        const m5 = await add('web', 5, 'success', 'prune');
        await add('db', 1, 'success', 'backup', 500);

        assert.equal((await c.lastSuccess('web'))!.id, s1);
        assert.equal((await c.lastSuccess('web', { includePartial: true }))!.id, p2);
        assert.equal((await c.lastSuccess('web', { kind: 'prune' }))!.id, m5);
        assert.equal(await c.lastSuccess('nope'), undefined);

        assert.deepEqual((await c.recentRuns('web', 3)).map((r) => r.id), [m5, r4, f3]);
        assert.deepEqual((await c.runs({ job: 'web', status: ['success', 'partial'] })).map((r) => r.id), [m5, p2, s1]);
        assert.deepEqual((await c.runs({ job: 'web', kind: 'backup', order: 'asc' })).map((r) => r.id), [s1, p2, f3, r4]);
        assert.deepEqual((await c.runs({ since: at(2), until: at(4) })).map((r) => r.id), [f3, p2]);
        assert.deepEqual(await c.runs({ status: [] }), []);
        assert.equal((await c.runs({})).length, 6);

        const counts = await c.runCounts();
        assert.deepEqual(
          counts.filter((x) => x.job === 'web').map((x) => `${x.kind}:${x.status}=${x.count}`),
          ['backup:failed=1', 'backup:partial=1', 'backup:running=1', 'backup:success=1', 'prune:success=1'],
        );
        assert.deepEqual(await c.jobs(), ['db', 'web']);

        // sizeHistory: successful backups only, newest first
        assert.deepEqual((await c.sizeHistory('web', 10)).map((s) => [s.runId, s.totalSize]), [[s1, 100]]);

        // running runs are never deleted
        assert.equal(await c.deleteRunsBefore(at(4.5)), 4); // s1 p2 f3 (web) + db
        assert.deepEqual((await c.runs({ order: 'asc' })).map((r) => r.id), [r4, m5]);
      } finally {
        await c.close();
      }
    });

    test('failureStreak: consecutive final failures since the last success or partial', async () => {
      const c = await open();
      try {
        const add = async (h: number, status: 'success' | 'failed' | 'partial', willRetry = false) => {
          const id = await c.startRun({ job: 'j', startedAt: at(h) });
          await c.finishRun(id, { status, finishedAt: at(h + 0.1), willRetry });
        };
        assert.equal(await c.failureStreak('j'), 0);
        await add(0, 'failed');
        await add(1, 'success');
        assert.equal(await c.failureStreak('j'), 0);
        await add(2, 'failed', true); // retried attempt: not counted
        await add(2.1, 'failed');
        assert.equal(await c.failureStreak('j'), 1);
        await add(3, 'failed');
        await add(4, 'failed');
        assert.equal(await c.failureStreak('j'), 3);
        await add(5, 'partial');
        assert.equal(await c.failureStreak('j'), 0);
        await add(6, 'failed');
        assert.equal(await c.failureStreak('j'), 1);
        assert.equal(await c.failureStreak('j', { kind: 'prune' }), 0);
        // an unfinished run does not count
        await c.startRun({ job: 'j', startedAt: at(7) });
        assert.equal(await c.failureStreak('j'), 1);
      } finally {
        await c.close();
      }
    });

    test('alerts and deliveries round-trip', async () => {
      const c = await open();
      try {
        assert.equal(await c.getAlert('j/rpo'), undefined);
        const a = {
          key: 'j/rpo',
          job: 'j',
          check: 'rpo',
          state: 'firing' as const,
          severity: 'critical' as const,
          firstAt: at(1),
          lastChangeAt: at(1),
          lastSentAt: null,
          count: 0,
          notified: null,
          notifiedSeverity: null,
          resolvedAt: null,
          message: 'no successful backup',
        };
        await c.saveAlert(a);
        assert.deepEqual(await c.getAlert('j/rpo'), a);
        const b = { ...a, state: 'resolved' as const, lastSentAt: at(2), count: 2, notified: 'resolved' as const, notifiedSeverity: 'critical' as const, resolvedAt: at(2) };
        await c.saveAlert(b);
        assert.deepEqual(await c.getAlert('j/rpo'), b);
        assert.equal((await c.listAlerts({ state: 'firing' })).length, 0);
        assert.equal((await c.listAlerts()).length, 1);
        await c.recordDelivery({ alertKey: 'j/rpo', kind: 'firing', channel: 'slack', at: at(1), ok: false, attempts: 3, error: 'POST https://hooks.example.com/T/B/TOKEN: HTTP 500' });
        await c.recordDelivery({ alertKey: 'j/rpo', kind: 'firing', channel: 'slack', at: at(1.5), ok: true, attempts: 1, error: null });
        const d = await c.deliveries({ alertKey: 'j/rpo' });
        assert.equal(d.length, 2);
        assert.equal(d[0]!.ok, true);
        assert.equal(d[1]!.ok, false);
        assert.equal(d[1]!.attempts, 3);
        assert.ok(!d[1]!.error!.includes('TOKEN'), d[1]!.error!);
      } finally {
        await c.close();
      }
    });
  });
}

describe('SQLite catalog', () => {
  const tmp = tmpDir('lb-catalog-');
  after(() => tmp.cleanup());
  let n = 0;
  const fresh = () => path.join(tmp.dir, `c${n++}`, 'catalog.db');
  catalogBehaviour('sqlite', async () => SqliteCatalog.open(fresh()));

  test('migrations are numbered, applied once and idempotent on reopen; WAL; indexes', async () => {
    const f = fresh();
    const c1 = await SqliteCatalog.open(f);
    assert.ok(existsSync(f));
    assert.deepEqual(await c1.migrations(), [1, 2, 3, 4, 5, 6]);
    const id = await c1.startRun({ job: 'x' });
    await c1.close();
    const c2 = (await openCatalog(path.relative(tmp.dir, f), { baseDir: tmp.dir })) as SqliteCatalog;
    try {
      assert.equal(c2.backend, 'sqlite');
      assert.deepEqual(await c2.migrations(), [1, 2, 3, 4, 5, 6]);
      assert.equal((await c2.getRun(id))!.job, 'x');
      const db = c2.database;
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      const idx = db.prepare("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name").all() as Array<{ name: string; tbl_name: string; sql: string }>;
      const byName = new Map(idx.map((i) => [i.name, i]));
      assert.match(byName.get('runs_job_started_idx')!.sql, /ON runs \(job, started_at\)/);
      assert.match(byName.get('runs_status_idx')!.sql, /ON runs \(status\)/);
      const rows = db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all();
      assert.deepEqual(rows, [
        { version: 1, name: 'runs' },
        { version: 2, name: 'alerts' },
        { version: 3, name: 'views' },
        { version: 4, name: 'runs bytes transferred' },
        { version: 5, name: 'fleet' },
        { version: 6, name: 'job slots' },
      ]);
      // the query planner uses the index for the per-job queries
      const plan = db.prepare("EXPLAIN QUERY PLAN SELECT * FROM runs WHERE job = 'x' ORDER BY started_at DESC LIMIT 5").all() as Array<{ detail: string }>;
      assert.ok(plan.some((p) => p.detail.includes('runs_job_started_idx')), JSON.stringify(plan));
    } finally {
      await c2.close();
    }
  });

  test('several processes opening a new catalog at once apply each migration exactly once', async () => {
    const f = fresh();
    const script = `import { SqliteCatalog } from ${JSON.stringify(SQLITE_CATALOG_JS)};
      const c = await SqliteCatalog.open(${JSON.stringify(f)});
      await c.startRun({ job: 'p' + process.pid });
      console.log(JSON.stringify(await c.migrations()));
      await c.close();`;
    const outs = await Promise.all([runNode(script).done, runNode(script).done, runNode(script).done, runNode(script).done]);
    for (const o of outs) assert.equal(o.trim(), '[1,2,3,4,5,6]');
    const c = await SqliteCatalog.open(f);
    try {
      assert.equal((await c.runs()).length, 4);
      assert.deepEqual(c.database.prepare('SELECT count(*) AS n FROM schema_migrations').get(), { n: 6 });
    } finally {
      await c.close();
    }
  });

  test('markInterruptedRuns: runs of dead processes fail, live ones and our own stay running', async () => {
    const f = fresh();
    // a process that starts a run and dies without finishing it
    const crashed = `import { SqliteCatalog } from ${JSON.stringify(SQLITE_CATALOG_JS)};
      const c = await SqliteCatalog.open(${JSON.stringify(f)});
      console.log(await c.startRun({ job: 'crashed' }));
      process.kill(process.pid, 'SIGKILL');`;
    const r1 = runNode(crashed, { keepAlive: true });
    const crashedId = Number(await r1.firstLine);
    await r1.done;
    // a process that starts a run and is still alive
    const alive = `import { SqliteCatalog } from ${JSON.stringify(SQLITE_CATALOG_JS)};
      const c = await SqliteCatalog.open(${JSON.stringify(f)});
      console.log(await c.startRun({ job: 'alive' }));
      setInterval(() => {}, 1000);`;
    const r2 = runNode(alive, { keepAlive: true });
    const aliveId = Number(await r2.firstLine);

    const c = await SqliteCatalog.open(f);
    try {
      const mine = await c.startRun({ job: 'mine' });
      assert.equal(await c.markInterruptedRuns(), 1);
      const cr = (await c.getRun(crashedId))!;
      assert.equal(cr.status, 'failed');
      assert.match(cr.error!, /interrupted/);
      assert.ok(cr.finishedAt);
      assert.equal((await c.getRun(aliveId))!.status, 'running');
      assert.equal((await c.getRun(mine))!.status, 'running');
      // idempotent
      assert.equal(await c.markInterruptedRuns(), 0);

      r2.child.kill('SIGKILL');
      await r2.done;
      assert.equal(await c.markInterruptedRuns({ message: 'daemon restarted' }), 1);
      assert.equal((await c.getRun(aliveId))!.error, 'daemon restarted');
      assert.equal((await c.getRun(mine))!.status, 'running');
      // streak counts the interrupted run as a failure
      assert.equal(await c.failureStreak('crashed'), 1);
    } finally {
      await c.close();
    }
  });

  test('openCatalog rejects unknown schemes; unwritable location is a clear error', async () => {
    await assert.rejects(openCatalog('mysql://x/y'), /unsupported location mysql:\/\//);
    writeFileSync(path.join(tmp.dir, 'a-file'), 'x');
    await assert.rejects(SqliteCatalog.open(path.join(tmp.dir, 'a-file', 'catalog.db')), /cannot open catalog .*a-file/);
  });

  test('runFinishFromJobResult and LogTail', () => {
    const f = runFinishFromJobResult({
      job: 'j',
      source: 's',
      repository: 'r',
      status: 'partial',
      snapshotId: 'abc',
      summary: { filesNew: 1, filesChanged: 2, filesUnmodified: 3, dirs: 1, totalBytes: 1000, bytesRead: 600, blobsNew: 1, blobsDelta: 0, dataAddedRaw: 500, dataAdded: 300, errors: 0, durationMs: 5 },
      copies: [{ repository: 'offsite', error: 'connection reset' }],
      forgotten: 0,
      warnings: ['copy to offsite failed: connection reset'],
      startedAt: at(0),
      finishedAt: at(1),
    });
    assert.deepEqual(f, {
      status: 'partial',
      finishedAt: at(1),
      repository: 'r',
      bytesRead: 600,
      bytesAdded: 300,
      totalSize: 1000,
      files: 6,
      errors: 0,
      snapshotId: 'abc',
      error: 'copy to offsite failed: connection reset',
      logTail: 'copy to offsite failed: connection reset',
    });
    const t = new LogTail(3);
    for (let i = 0; i < 10; i++) t.push(`line ${i}`);
    assert.equal(t.toString(), 'line 7\nline 8\nline 9');
  });
});

describe('PostgreSQL catalog', () => {
  const schemas: string[] = [];
  const newSchema = () => {
    const s = `lb_test_${process.pid}_${randomBytes(4).toString('hex')}`;
    schemas.push(s);
    return s;
  };
  after(async () => {
    const client = new pg.Client({ connectionString: PG_URL });
    await client.connect();
    try {
      for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    } finally {
      await client.end();
    }
  });

  catalogBehaviour('postgres', async () => PostgresCatalog.open(PG_URL, { schema: newSchema() }));

  test('migrations idempotent, concurrent openers, indexes, types', async () => {
    const schema = newSchema();
    const [a, b] = await Promise.all([PostgresCatalog.open(`${PG_URL}?schema=${schema}`), PostgresCatalog.open(PG_URL, { schema })]);
    try {
      assert.equal(a.schema, schema);
      assert.deepEqual(await a.migrations(), [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(await b.migrations(), [1, 2, 3, 4, 5, 6]);
      assert.ok(!a.location.includes('postgres@'), a.location);
      const id = await a.startRun({ job: 'x', startedAt: at(0) });
      await a.finishRun(id, { status: 'success', finishedAt: at(1), bytesAdded: 2 ** 40 });
      assert.equal((await b.getRun(id))!.bytesAdded, 2 ** 40);
      await b.close();
      const c = await openCatalog(`${PG_URL}?schema=${schema}`);
      assert.equal(c.backend, 'postgres');
      assert.deepEqual(await c.migrations(), [1, 2, 3, 4, 5, 6]);
      assert.equal((await c.lastSuccess('x'))!.startedAt.getTime(), at(0).getTime());
      await c.close();

      const client = new pg.Client({ connectionString: PG_URL });
      await client.connect();
      try {
        const idx = await client.query('SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname', [schema]);
        const defs = new Map(idx.rows.map((r: { indexname: string; indexdef: string }) => [r.indexname, r.indexdef]));
        assert.match(defs.get('runs_job_started_idx')!, /\(job, started_at\)/);
        assert.match(defs.get('runs_status_idx')!, /\(status\)/);
        const types = await client.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = 'runs'", [schema]);
        const t = new Map(types.rows.map((r: { column_name: string; data_type: string }) => [r.column_name, r.data_type]));
        assert.equal(t.get('started_at'), 'timestamp with time zone');
        assert.equal(t.get('tool_versions'), 'jsonb');
        const mig = await client.query(`SELECT count(*)::int AS n FROM "${schema}".schema_migrations`);
        assert.equal(mig.rows[0].n, 6);
        assert.equal(t.get('bytes_uploaded'), 'bigint');
      } finally {
        await client.end();
      }
    } finally {
      await a.close();
    }
  });

  test('markInterruptedRuns on PostgreSQL', async () => {
    const schema = newSchema();
    const crashed = `import { PostgresCatalog } from ${JSON.stringify(POSTGRES_CATALOG_JS)};
      const c = await PostgresCatalog.open(${JSON.stringify(PG_URL)}, { schema: ${JSON.stringify(schema)} });
      console.log(await c.startRun({ job: 'crashed' }));
      process.kill(process.pid, 'SIGKILL');`;
    const r = runNode(crashed, { keepAlive: true });
    const id = Number(await r.firstLine);
    await r.done;
    const c = await PostgresCatalog.open(PG_URL, { schema });
    try {
      assert.equal(await c.markInterruptedRuns(), 1);
      assert.equal((await c.getRun(id))!.status, 'failed');
    } finally {
      await c.close();
    }
  });

  test('bad URL or unreachable server: clear errors without the password', async () => {
    await assert.rejects(PostgresCatalog.open('not a url'), /invalid PostgreSQL URL/);
    await assert.rejects(PostgresCatalog.open(PG_URL, { schema: 'bad-name;drop' }), /invalid schema name/);
    await assert.rejects(PostgresCatalog.open('postgres://postgres:s3cretpw@127.0.0.1:1/test', { connectTimeoutMs: 2000 }), (e: unknown) => {
      const m = (e as Error).message;
      assert.match(m, /cannot open catalog postgres:\/\/127\.0\.0\.1:1\/test/);
      assert.ok(!m.includes('s3cretpw'), m);
      return true;
    });
  });
});

before(() => {
  // make sure the compiled module exists for the child processes
  for (const f of [SQLITE_CATALOG_JS, POSTGRES_CATALOG_JS]) assert.ok(existsSync(f), f);
});

test('retryBusy: SQLITE_BUSY is tried again within the window (a new catalog switched to WAL by several processes at once); other errors and a spent window are thrown', async () => {
  const { retryBusy } = await import('../src/ops/catalog/sqlite.js');
  const busy = Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
  let calls = 0;
  assert.equal(
    await retryBusy(() => {
      if (++calls < 3) throw busy;
      return 'wal';
    }, 10_000),
    'wal',
  );
  assert.equal(calls, 3);
  calls = 0;
  const other = Object.assign(new Error('disk I/O error'), { code: 'SQLITE_IOERR' });
  await assert.rejects(
    retryBusy(() => {
      calls++;
      throw other;
    }, 10_000),
    /disk I\/O error/,
  );
  assert.equal(calls, 1, 'not retried');
  // a window spent: thrown after the try that found it spent
  let t = 0;
  calls = 0;
  await assert.rejects(
    retryBusy(
      () => {
        calls++;
        t += 60;
        throw busy;
      },
      100,
      () => t,
    ),
    /database is locked/,
  );
  assert.equal(calls, 2);
});
