import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { chromium } from 'playwright-core';
import { tmpDir, runCli, type Snaked } from './helpers/tmp.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import { parseConfig } from '../src/config/load.js';
import { formatDurationPrecise as formatDuration } from '../src/util/format.js';
import type { DrillResult } from '../src/verify/drill-types.js';
import { recordDrill } from '../src/verify/drill-store.js';
import { buildReport, renderReportHtml, renderReportMarkdown, sparkline } from '../src/verify/report.js';

const env = { LIFEBOAT_PASSWORD: 'report-pw' };
const XSS = `<img src=x onerror="window.__xss=1">`;

test('report: real drills rendered as Markdown and as self-contained HTML (checked in Chromium)', async () => {
  const t = tmpDir();
  try {
    const db = new Database(path.join(t.dir, 'app.sqlite'));
    db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)');
    const ins = db.prepare('INSERT INTO items (v) VALUES (?)');
    for (let i = 0; i < 500; i++) ins.run(`item ${i}`);
    db.close();
    await fsp.mkdir(path.join(t.dir, 'docs'));
    await fsp.writeFile(path.join(t.dir, 'docs/a.txt'), 'hello\n');
    const cfgFile = path.join(t.dir, 'lifeboat.yaml');
    await fsp.writeFile(
      cfgFile,
      `repositories:
  main: { location: ./repo, autoInit: true }
sources:
  lite: { kind: sqlite, path: ./app.sqlite }
  docs: { kind: files, paths: [./docs] }
jobs:
  lite:
    source: lite
    tier: critical
    drill:
      queries: [{ sql: "SELECT count(*) FROM items", equals: 500 }]
  lite-bad:
    source: lite
    drill:
      queries: [{ name: '${XSS}', sql: "SELECT count(*) FROM items", min: 100000 }]
  docs: { source: docs }
daemon:
  catalog: ./catalog.db
`,
    );
    for (const job of ['lite', 'lite', 'lite-bad', 'docs']) {
      const r = await runCli(['run', job, '--config', cfgFile], { env });
      assert.equal(r.code, 0, r.stderr);
    }
    for (const job of ['lite', 'lite']) assert.equal((await runCli(['drill', job, '--config', cfgFile], { env })).code, 0);
    assert.equal((await runCli(['drill', 'lite-bad', '--config', cfgFile], { env })).code, 1);
    let r = await runCli(['drills', '--config', cfgFile, '--json', '--job', 'lite'], { env });
    const drills = JSON.parse(r.stdout) as Array<Snaked<DrillResult>>;
    assert.equal(drills.length, 2);
    const latest = drills[0]!;

    // Markdown
    r = await runCli(['report', '--config', cfgFile], { env });
    assert.equal(r.code, 0, r.stderr);
    const md = r.stdout;
    assert.match(md, /^# Recoverability report/);
    const liteRow = md.split('\n').find((l) => l.startsWith('| lite | lite | critical |'))!;
    assert.ok(liteRow, md);
    const cells = liteRow.split(' | ');
    assert.equal(cells[8], formatDuration(latest.restore_ms), 'measured restore time of the last drill');
    assert.equal(cells[9], '1h'); // critical tier RTO
    assert.equal(cells[10], 'met');
    assert.match(md, /\| docs \| docs \| normal \| .* \| never \| - \| 1d \| unknown \| FAIL \|/);
    assert.match(md, /## lite-bad[\s\S]*\*\*FAILED\*\*/);
    assert.ok(!md.includes(XSS), 'markdown escapes HTML in texts');
    assert.match(md, new RegExp(`Drill restore times \\(2 in window\\): \`[▁▂▃▄▅▆▇█]{2}\``));
    assert.match(md, /No restore drill recorded: run `lifeboat drill docs`/);

    // HTML to a file
    const out = path.join(t.dir, 'report.html');
    r = await runCli(['report', '--config', cfgFile, '--format', 'html', '--out', out, '--days', '7'], { env });
    assert.equal(r.code, 0, r.stderr);
    const html = await fsp.readFile(out, 'utf8');
    assert.ok(!html.includes(XSS));
    assert.ok(html.includes('&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;'));
    assert.ok(!/(src|href)=["']?(https?:)?\/\//i.test(html), 'no external resources');
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const requests: string[] = [];
      page.on('request', (q) => requests.push(q.url()));
      await page.goto('file://' + out);
      assert.deepEqual(requests, ['file://' + out]);
      assert.equal(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss), undefined);
      const row = page.locator('tr', { has: page.locator('a[href="#job-lite"]') });
      const rowText = await row.innerText();
      assert.ok(rowText.includes(formatDuration(latest.restore_ms)), rowText);
      // two charts per job with history; the lite drill chart has one point per drill
      const liteCharts = page.locator('#job-lite svg');
      assert.equal(await liteCharts.count(), 2);
      assert.equal(await liteCharts.nth(0).locator('circle').count(), 2);
      assert.match((await liteCharts.nth(0).locator('circle title').first().textContent())!, new RegExp(formatDuration(drills[1]!.restore_ms).replace('.', '\\.') + '$'));
      const badSection = await page.locator('#job-lite-bad').innerText();
      assert.match(badSection, /FAILED/);
      assert.ok(badSection.includes(XSS), 'the query name is shown as text');
      assert.match(await page.locator('#job-docs').innerText(), /No restore drill recorded/);
      const bbox = await liteCharts.nth(1).boundingBox();
      assert.ok(bbox && bbox.width > 100 && bbox.height > 50, 'charts render with a size');
    } finally {
      await browser.close();
    }
  } finally {
    t.cleanup();
  }
});

test('report: RPO/RTO compliance and backup-age history from catalog data', async () => {
  const t = tmpDir();
  const cfg = parseConfig(
    `repositories:
  main: { location: ./repo }
  off: { location: "s3://bucket/x" }
sources:
  a: { kind: files, paths: [./a] }
  b: { kind: files, paths: [./b] }
jobs:
  a: { source: a, rpo: 1d, rto: 10m, copyTo: [off] }
  b: { source: b, rpo: 1h }
`,
    path.join(t.dir, 'lifeboat.yaml'),
  );
  const cat = await openCatalog(path.join(t.dir, 'catalog.db'));
  try {
    const now = new Date('2025-03-10T12:00:00Z');
    const day = 86_400_000;
    // job a: a backup every day for 5 days; job b: one backup 3 days ago
    for (let i = 5; i >= 1; i--) {
      const id = await cat.startRun({ job: 'a', source: 'a', startedAt: new Date(now.getTime() - i * day) });
      await cat.finishRun(id, { status: 'success', finishedAt: new Date(now.getTime() - i * day + 60_000) });
    }
    const idb = await cat.startRun({ job: 'b', source: 'b', startedAt: new Date(now.getTime() - 3 * day) });
    await cat.finishRun(idb, { status: 'success', finishedAt: new Date(now.getTime() - 3 * day + 1000) });
    const drill = (at: Date, restoreMs: number, ok: boolean): DrillResult => ({
      job: 'a',
      source: 'a',
      kind: 'files',
      snapshotId: null,
      snapshotTime: null,
      startedAt: at,
      finishedAt: new Date(at.getTime() + restoreMs + 100),
      status: ok ? 'success' : 'failed',
      restoreMs,
      totalMs: restoreMs + 100,
      rtoMs: 600_000,
      rtoMet: ok,
      rpoMs: day,
      backupAgeMs: 3600_000,
      rpoMet: true,
      phases: [
        { name: 'restore', startedAt: at, ms: restoreMs - 10, ok: true },
        { name: 'integrity', startedAt: at, ms: 10, ok },
      ],
      checks: [{ name: 'file count', ok, detail: ok ? '3 file(s) restored, 3 in the snapshot' : '2 file(s) restored, 3 in the snapshot' }],
      target: 'scratch directory /tmp/x',
      ...(ok ? {} : { error: 'integrity: 1 check failed' }),
    });
    await recordDrill(cat, drill(new Date(now.getTime() - 4 * day), 42_000, true));
    await recordDrill(cat, drill(new Date(now.getTime() - 2 * day), 61_000, true));
    await recordDrill(cat, drill(new Date(now.getTime() - day), 75_000, false));

    const rep = await buildReport(cfg, cat, { now, days: 7 });
    const a = rep.sources.find((s) => s.job === 'a')!;
    const b = rep.sources.find((s) => s.job === 'b')!;
    assert.equal(a.backupAgeMs, day);
    assert.equal(a.rpoMet, true);
    assert.equal(a.lastDrill!.status, 'failed');
    assert.equal(a.lastVerifiedRestore!.getTime(), now.getTime() - 2 * day + 61_100);
    assert.equal(a.measuredRtoMs, 61_000, 'measured from the last drill whose restore and integrity phases passed');
    assert.equal(a.rtoMet, true);
    assert.equal(a.threeTwoOne.ok, true);
    assert.equal(b.backupAgeMs, 3 * day);
    assert.equal(b.rpoMet, false);
    assert.equal(b.rtoMet, null);
    assert.equal(b.threeTwoOne.ok, false);
    assert.ok(b.threeTwoOne.failing.some((f) => /1 off-site/.test(f)));
    // backup age history: never above one day (+ the sampling step) for a, grows to 3 days for b
    const agesA = a.history!.backupAges.map((x) => x.ageMs).filter((x): x is number => x !== null);
    assert.ok(Math.max(...agesA) <= day);
    assert.equal(a.history!.backupAges[0]!.ageMs, null, 'no backup yet at the window start');
    assert.equal(b.history!.backupAges.at(-1)!.ageMs, 3 * day);
    assert.deepEqual(a.history!.drills.map((d) => d.restoreMs), [42_000, 61_000, 75_000]);

    const md = renderReportMarkdown(rep);
    assert.match(md, /\| a \| a \| normal \| 2025-03-09 12:00:00 UTC \| 1d \| 1d \| met \| 2025-03-08 12:01:01 UTC \| 1m1s \| 10m \| met \| ok \|/);
    assert.match(md, /\| b \| b \| normal \| 2025-03-07 12:00:00 UTC \| 3d \| 1h \| MISSED \| never \| - \| 1d \| unknown \| FAIL \|/);
    assert.ok(md.includes(`\`${sparkline([42_000, 61_000, 75_000])}\``));
    assert.equal(sparkline([42_000, 61_000, 75_000]), '▁▅█');
    const html = renderReportHtml(rep);
    assert.equal((html.match(/<svg /g) ?? []).length, 3, 'a: drill + backup age charts; b: backup age chart only');
    assert.match(html, /RTO 10m/);
    assert.match(html, /RPO 1h \(above the chart\)|RPO 1h/);
  } finally {
    await cat.close();
    t.cleanup();
  }
});

test('drill store and rotation counter on the PostgreSQL catalog backend', async () => {
  const { randomBytes } = await import('node:crypto');
  const { nextRotation } = await import('../src/verify/drill-rotation.js');
  const { listDrills, lastDrill } = await import('../src/verify/drill-store.js');
  const cat = await openCatalog(`postgres://postgres@127.0.0.1:5432/test?schema=lb_x_drill_${randomBytes(4).toString('hex')}`);
  try {
    const at = new Date('2025-01-02T03:04:05.678Z');
    const r: DrillResult = {
      job: 'pg',
      source: 'pg',
      kind: 'postgres',
      snapshotId: 'ab'.repeat(32),
      snapshotTime: new Date(at.getTime() - 3600_000),
      startedAt: at,
      finishedAt: new Date(at.getTime() + 5000),
      status: 'failed',
      restoreMs: 4321,
      totalMs: 5000,
      rtoMs: 3600_000,
      rtoMet: true,
      rpoMs: 14_400_000,
      backupAgeMs: 3600_000,
      rpoMet: true,
      phases: [{ name: 'restore', startedAt: at, ms: 4000, ok: true, detail: 'into postgres://user:secret@db.example.com/x' }],
      checks: [{ name: 'people', ok: false, detail: 'got 1, expected at least 2' }],
      target: 'postgres database lifeboat_drill_pg_x',
      error: '1 check(s) failed: people: got 1, expected at least 2',
    };
    const id = await recordDrill(cat, r);
    const back = await lastDrill(cat, 'pg');
    assert.equal(back!.id, id);
    assert.equal(back!.startedAt.getTime(), at.getTime());
    assert.equal(back!.snapshotTime!.getTime(), at.getTime() - 3600_000);
    assert.equal(back!.restoreMs, 4321);
    assert.equal(back!.rtoMet, true);
    assert.equal(back!.status, 'failed');
    assert.deepEqual(back!.checks, r.checks);
    assert.ok(!back!.phases[0]!.detail!.includes('secret'), 'details are redacted');
    assert.equal((await listDrills(cat, { job: 'other' })).length, 0);
    const steps = [];
    for (let i = 0; i < 4; i++) steps.push((await nextRotation(cat, 'repo-id', 'main', '50%')).subset);
    assert.deepEqual(steps, ['1/2', '2/2', '1/2', '2/2']);
  } finally {
    await (cat as unknown as { dropSchema(): Promise<void> }).dropSchema();
    await cat.close();
  }
});
