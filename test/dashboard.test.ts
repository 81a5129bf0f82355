import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { axeViolations, launchChromium, startServe } from './helpers/browser.js';
import { describeTree, makeTree, runCli, tmpDir } from './helpers/tmp.js';
import { pgCreateDb, pgDropDb, pgExec, uniqueName } from './helpers/db.js';
import { loadConfig } from '../src/config/load.js';
import { openConfigCatalog } from '../src/ops/service.js';
import { IncidentStore } from '../src/ops/incidents.js';

/**
 * The dashboard in a real browser (Debian Chromium driven by playwright-core)
 * against `lifeboat serve` running as a child process: log in, see the
 * failing job in red with its alert, browse a snapshot and restore it through
 * the confirmation dialog (files checked on disk), run a runbook and confirm
 * its manual step, and view the public status page logged out.
 *
 * Screenshots are written to docs/screenshots/ when LIFEBOAT_SCREENSHOTS=1,
 * otherwise to the test's temporary directory (they are always taken).
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = process.env.LIFEBOAT_SCREENSHOTS === '1';
const PASSWORD = 'dashboard-test-pw';

let tmp: { dir: string; cleanup: () => void };
let cfgFile: string;
let server: ChildProcess;
let base: string;
let browser: Browser;
/** A PostgreSQL database (on the local test server) backed up by the app-db job: the database restore dialog's live target. */
const PG_DB = uniqueName('lb_dash_');

function shotPath(name: string): string {
  const dir = SHOTS ? path.join(ROOT, 'docs', 'screenshots') : path.join(tmp.dir, 'screenshots');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

before(async () => {
  tmp = tmpDir('lb-dashboard-');
  await makeTree(path.join(tmp.dir, 'site'), { files: 40, seed: 11, maxSize: 20_000 });
  // names that sort differently in natural and in byte order, and a later change for the diff
  mkdirSync(path.join(tmp.dir, 'site', 'pages'));
  for (const n of ['page1', 'page2', 'page10']) writeFileSync(path.join(tmp.dir, 'site', 'pages', `${n}.html`), `<h1>${n}</h1>\n`);
  mkdirSync(path.join(tmp.dir, 'restores'));
  await pgCreateDb(PG_DB);
  await pgExec(PG_DB, 'CREATE TABLE orders (id int PRIMARY KEY, item text); INSERT INTO orders SELECT g, $$item $$ || g FROM generate_series(1, 50) g');
  writeFileSync(path.join(tmp.dir, 'repo.pw'), 'repo-pw\n');
  cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
  writeFileSync(
    cfgFile,
    `daemon: {}
repositories:
  local: { location: ./repo, autoInit: true, password: { file: ./repo.pw } }
  dbrepo: { location: ./dbrepo, autoInit: true, password: { file: ./repo.pw } }
sources:
  site: { kind: files, paths: [./site] }
  invoices: { kind: files, paths: [./invoices-that-do-not-exist] }
  appdb: { kind: postgres, host: 127.0.0.1, port: 5432, user: postgres, database: ${PG_DB} }
jobs:
  website-files: { source: site, rpo: 1h, tier: important, schedule: '*/15 * * * *' }
  billing-invoices: { source: invoices, rpo: 1h, tier: critical }
  app-db: { source: appdb, repository: dbrepo, rpo: 1h }
services:
  website: { description: Public website, jobs: [website-files] }
  billing: { description: Invoices and payments, jobs: [billing-invoices], availabilityTarget: 99.9 }
runbooks:
  restore-website:
    title: Restore the website
    description: Bring the website back from the latest backup
    scenario: accidental-deletion
    severity: low
    services: [website]
    steps:
      - { type: exec, name: prepare, command: "echo preparing the standby" }
      - { type: manual, name: check-dns, instructions: "Check that DNS points to the standby host" }
      - { type: exec, name: finish, command: "echo website restored" }
server:
  statusPage: { title: ACME status, refreshSeconds: 0 }
`,
  );
  const env = { LIFEBOAT_PASSWORD: undefined };
  const ok = await runCli(['-c', cfgFile, 'run', 'website-files'], { env });
  assert.equal(ok.code, 0, ok.stderr);
  // a second backup, so the charts have two points; with a new page and a changed one (the diff shows them)
  writeFileSync(path.join(tmp.dir, 'site', 'pages', 'page3.html'), '<h1>page3</h1>\n');
  writeFileSync(path.join(tmp.dir, 'site', 'pages', 'page1.html'), '<h1>page1, edited</h1>\n');
  assert.equal((await runCli(['-c', cfgFile, 'run', 'website-files'], { env })).code, 0);
  const db = await runCli(['-c', cfgFile, 'run', 'app-db'], { env });
  assert.equal(db.code, 0, db.stderr);
  const bad = await runCli(['-c', cfgFile, 'run', 'billing-invoices'], { env });
  assert.equal(bad.code, 1, 'the billing job must fail');
  const add = await runCli(['-c', cfgFile, 'user', 'add', 'alice', '--role', 'operator'], { env, input: PASSWORD + '\n' });
  assert.equal(add.code, 0, add.stderr);

  ({ child: server, base } = await startServe(cfgFile));
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  tmp?.cleanup();
  await pgDropDb(PG_DB).catch(() => {});
});

async function newPage(opts: { timezoneId?: string } = {}): Promise<Page> {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 }, ...opts });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
  return page;
}

test('dashboard: login, failing job in red, snapshot restore, runbook with a manual step, public status page', async () => {
  const page = await newPage();

  // --- login through the form
  await page.goto(base + '/');
  assert.ok(page.url().endsWith('/login'), `redirected to the login page, got ${page.url()}`);
  await page.fill('#user', 'alice');
  await page.fill('#password', 'not-the-password');
  await page.click('#login-submit');
  await page.waitForSelector('#login-error');
  assert.match((await page.textContent('#login-error'))!, /wrong user name or password/);
  await page.fill('#password', PASSWORD);
  await page.click('#login-submit');
  await page.waitForSelector('#jobs-table');
  assert.equal(await page.textContent('#who'), 'alice (operator)');
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'lb_session')!;
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Strict');

  // --- overview: the failing job is red, with its alert
  const broken = page.locator('tr.job-row[data-job="billing-invoices"]');
  assert.equal(await broken.getAttribute('data-light'), 'red');
  const bg = await broken.evaluate((el) => getComputedStyle(el).backgroundColor);
  assert.equal(bg, 'rgb(253, 236, 234)', 'red row background');
  const border = await broken.locator('td').first().evaluate((el) => getComputedStyle(el).borderLeftColor);
  assert.equal(border, 'rgb(176, 48, 37)');
  assert.match((await broken.textContent())!, /failed/);
  assert.match((await broken.textContent())!, /invoices-that-do-not-exist/);
  const good = page.locator('tr.job-row[data-job="website-files"]');
  assert.notEqual(await good.getAttribute('data-light'), 'red');
  // every light that is not green has its reasons in the alert list (no amber job with an empty list)
  for (const row of await page.locator('tr.job-row').all()) {
    const job = (await row.getAttribute('data-job'))!;
    const color = (await row.getAttribute('data-light'))!;
    const reasons = await page.locator(`li.alert[data-job="${job}"]`).count();
    if (color === 'green') assert.equal(reasons, 0, `${job} is green and has no alert`);
    else assert.ok(reasons > 0, `${job} is ${color}: its reasons are listed as alerts`);
  }
  assert.match((await page.textContent('#alerts'))!, /website-files · drill: no restore drill has been run/);
  const alert = page.locator('li.alert[data-job="billing-invoices"][data-severity="critical"]').first();
  assert.ok(await alert.isVisible());
  assert.equal(await alert.evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(253, 236, 234)');
  assert.ok((await page.locator('svg.chart polyline.line').count()) >= 1, 'size chart drawn');
  await page.screenshot({ path: shotPath('overview.png'), fullPage: true });

  // --- job page: history and log of the failed run
  await page.click('a[href="#/jobs/billing-invoices"]');
  await page.waitForSelector('tr[data-run]');
  await page.locator('tr[data-run] a').first().click();
  await page.waitForSelector('#run-log .card');
  assert.match((await page.textContent('#run-log'))!, /invoices-that-do-not-exist/);

  // --- snapshots: browse and restore through the confirmation dialog
  await page.click('a[data-page="snapshots"]');
  await page.waitForSelector('a.browse');
  await page.locator('a.browse').first().click();
  await page.waitForSelector('#tree tr.entry');
  const site = path.join(tmp.dir, 'site');
  assert.match((await page.textContent('#crumbs'))!, /site/);
  const listed = await page.locator('#tree tr.entry').count();
  const { readdir } = await import('node:fs/promises');
  assert.equal(listed, (await readdir(site)).length);
  await page.click('#restore-dir');
  await page.waitForSelector('#confirm-dialog[open]');
  const target = path.join(tmp.dir, 'restores', 'from-dashboard');
  await page.fill('#restore-target', target);
  await page.screenshot({ path: shotPath('restore.png') });
  await page.click('#dialog-confirm');
  await page.waitForSelector('.task[data-status="success"], .task[data-status="failed"]');
  assert.equal(await page.locator('.task').first().getAttribute('data-status'), 'success', await page.locator('.task').first().textContent() ?? '');
  assert.deepEqual(await describeTree(target), await describeTree(site), 'restored files are identical');

  // --- runbook: start, follow, confirm the manual step
  await page.click('a[data-page="runbooks"]');
  await page.waitForSelector('tr[data-runbook="restore-website"]');
  await page.click('tr[data-runbook="restore-website"] button.start-runbook');
  // the start dialog says what the public will see: nothing (a private incident)
  assert.match((await page.textContent('#start-incident'))!, /private incident: nothing is shown on the public status page/);
  await page.click('#dialog-confirm');
  await page.waitForURL(/#\/runbook-runs\/\d+$/);
  await page.waitForSelector('li.step[data-status="waiting"] button.confirm-step-ok');
  await page.waitForSelector('li.step[data-status="waiting"] .instructions');
  assert.match((await page.textContent('li.step[data-status="waiting"] .instructions'))!, /Check that DNS points to the standby host/);
  assert.equal(await page.locator('li.step[data-index="1"]').getAttribute('data-status'), 'success');
  assert.match((await page.textContent('li.step[data-index="1"]'))!, /preparing the standby/);
  assert.equal(await page.locator('li.step[data-index="3"]').getAttribute('data-status'), 'pending');
  await page.screenshot({ path: shotPath('runbook.png'), fullPage: true });
  await page.click('li.step[data-status="waiting"] button.confirm-step-ok');
  await page.waitForSelector('#runbook-run h1 .badge[data-status="success"], #runbook-run h1 .badge[data-status="failed"]');
  const runId = Number(/#\/runbook-runs\/(\d+)/.exec(page.url())![1]);
  const run = await page.evaluate(async (id) => (await fetch(`/api/v1/runbook-runs/${id}`)).json(), runId);
  assert.equal(run.status, 'success');
  assert.equal(run.steps[1].status, 'success');
  assert.equal(run.steps[1].confirmedBy, 'alice');
  assert.match(run.steps[2].output, /website restored/);

  // --- status page admin shows the state; then log out
  await page.click('a[data-page="status-admin"]');
  await page.waitForSelector('li[data-component="billing"]');
  assert.match((await page.textContent('li[data-component="billing"]'))!, /degraded/);
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  const after = await page.evaluate(async () => (await fetch('/api/v1/session')).status);
  assert.equal(after, 401, 'logged out');

  // --- public status page, logged out
  await page.goto(base + '/status');
  assert.equal(await page.title(), 'ACME status');
  assert.equal(await page.getAttribute('[data-component="billing"]', 'data-state'), 'degraded');
  const overall = await page.getAttribute('#overall', 'data-state');
  assert.ok(overall === 'degraded' || overall === 'outage', overall ?? '');
  // the runbook opened an incident for the website, but it is private: nothing of it is public
  assert.equal(await page.locator('.card.incident').count(), 0, 'a runbook incident is private by default');
  const publicHtml = await page.content();
  for (const secret of ['restore-website', 'Restore the website', 'alice', 'started by']) assert.ok(!publicHtml.includes(secret), `public page shows "${secret}"`);
  assert.equal(await page.locator('.pill.s-degraded').first().evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(138, 90, 0)');
  await page.screenshot({ path: shotPath('status.png'), fullPage: true });
  await page.context().close();
});

test('dashboard: a viewer sees no operator actions, and the API refuses them', async () => {
  const env = { LIFEBOAT_PASSWORD: undefined };
  assert.equal((await runCli(['-c', cfgFile, 'user', 'add', 'victor', '--role', 'viewer'], { env, input: 'viewer-password\n' })).code, 0);
  const page = await newPage();
  await page.goto(base + '/login');
  await page.fill('#user', 'victor');
  await page.fill('#password', 'viewer-password');
  await page.click('#login-submit');
  await page.waitForSelector('#jobs-table');
  await page.click('a[data-page="jobs"]');
  await page.waitForSelector('tr[data-job]');
  assert.equal(await page.locator('button.run-now').count(), 0);
  // every page renders for a viewer, without errors and without operator controls
  for (const name of ['overview', 'jobs', 'snapshots', 'drills', 'runbooks', 'incidents', 'status-admin', 'tasks']) {
    await page.click(`a[data-page="${name}"]`);
    await page.waitForSelector(`.page[data-page="${name}"]`);
    const errors = await page.locator('.page > p.error').allTextContents();
    assert.deepEqual(errors, [], `page ${name} shows an error`);
  }
  assert.equal(await page.locator('#incident-form, #mw-form, #start-drill, .start-runbook').count(), 0);
  await page.click('a[data-page="incidents"]');
  await page.waitForSelector('tr[data-incident]');
  await page.locator('tr[data-incident] a').first().click();
  // the list page has an h1 too: wait for the detail page's own heading
  await page.locator('.page[data-page="incidents"] h1', { hasText: /Incident #\d+/ }).waitFor();
  assert.match((await page.textContent('.page h1'))!, /Incident #\d+/);
  await page.click('a[data-page="tasks"]');
  await page.waitForSelector('.page[data-page="tasks"] tr a');
  assert.match((await page.textContent('.page[data-page="tasks"]'))!, /restore/);
  const status = await page.evaluate(async () => {
    const s = await (await fetch('/api/v1/session')).json();
    const r = await fetch('/api/v1/jobs/website-files/run', { method: 'POST', headers: { 'x-csrf-token': s.csrfToken } });
    return r.status;
  });
  assert.equal(status, 403);
  await page.context().close();
});

async function loginAs(page: Page, user: string, password: string): Promise<void> {
  await page.goto(base + '/login');
  await page.fill('#user', user);
  await page.fill('#password', password);
  await page.click('#login-submit');
  await page.waitForSelector('#jobs-table');
}

test('dashboard: an operator publishes an incident through the toggle, after a preview of exactly the public text, and unpublishes it', async () => {
  const page = await newPage();
  await loginAs(page, 'alice', PASSWORD);
  await page.click('a[data-page="incidents"]');
  await page.waitForSelector('tr[data-incident][data-visibility="private"]');
  await page.locator('tr[data-incident][data-visibility="private"] a').first().click();
  await page.waitForSelector('#publish-toggle');
  assert.equal(await page.getAttribute('#visibility', 'data-visibility'), 'private');
  assert.equal(await page.isChecked('#publish-toggle'), false);
  const message = 'The website may be slow while we restore it.';
  await page.fill('#publish-title', 'Website slow');
  await page.fill('#publish-message', message);
  await page.click('#publish-toggle');
  await page.waitForSelector('#confirm-dialog[open] iframe#publish-preview');
  assert.equal(await page.isChecked('#publish-toggle'), false, 'nothing changes before confirmation');
  const frame = page.frameLocator('#publish-preview');
  await frame.locator('.card.incident').waitFor();
  const previewText = (await frame.locator('.card.incident').textContent())!;
  assert.match(previewText, /Website slow/);
  assert.match(previewText, /The website may be slow while we restore it\./);
  for (const secret of ['restore-website', 'Restore the website', 'alice', 'started by', 'preparing the standby']) assert.ok(!previewText.includes(secret), `preview shows "${secret}"`);
  // the preview uses the status page's own style (allowed by the dashboard's CSP)
  assert.equal(await frame.locator('.card.incident').evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(255, 255, 255)');
  const before = await page.evaluate(async () => (await fetch('/status.json')).json());
  assert.equal(before.incidents.length + before.history.length, 0, 'a preview publishes nothing');
  await page.screenshot({ path: shotPath('publish-preview.png') });
  await page.click('#dialog-confirm');
  await page.waitForSelector('#visibility[data-visibility="public"]');
  assert.equal(await page.isChecked('#publish-toggle'), true);

  const pub = await page.context().newPage();
  await pub.goto(base + '/status');
  const cards = pub.locator('.card.incident');
  assert.equal(await cards.count(), 1);
  const shown = (await cards.first().textContent())!;
  assert.equal(shown.replace(/\d{4}-\d\d-\d\d \d\d:\d\d UTC/g, 'T'), previewText.replace(/\d{4}-\d\d-\d\d \d\d:\d\d UTC/g, 'T'), 'the public page shows what the preview showed');
  assert.ok(!(await pub.content()).includes('alice'));

  // unpublish: confirm, and it is gone
  await page.click('#publish-toggle');
  await page.waitForSelector('#confirm-dialog[open]');
  await page.click('#dialog-confirm');
  await page.waitForSelector('#visibility[data-visibility="private"]');
  await pub.reload();
  assert.equal(await pub.locator('.card.incident').count(), 0);
  assert.ok(!(await pub.content()).includes(message));
  await page.context().close();
});

test('dashboard: in Europe/Berlin, a maintenance window starting "in 1 h" (the form default) is stored 1 h ahead, not in progress', async () => {
  const page = await newPage({ timezoneId: 'Europe/Berlin' });
  assert.equal(await page.evaluate(() => Intl.DateTimeFormat().resolvedOptions().timeZone), 'Europe/Berlin');
  await loginAs(page, 'alice', PASSWORD);
  // one rule for times: the zone is always shown, with seconds; the user switches between local and UTC, and the choice is kept
  const shownTimes = async () => (await page.textContent('#jobs-table'))!.match(/\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC(?:[+-]\d\d:\d\d)?/g) ?? [];
  const local = await shownTimes();
  assert.ok(local.length > 0, 'times with seconds and a zone on the overview');
  for (const t of local) assert.match(t, /UTC\+01:00$/, `Berlin in November is UTC+01:00: ${t}`);
  assert.match((await page.textContent('#tz-toggle'))!, /local \(UTC\+01:00\)/);
  await page.click('#tz-toggle');
  await page.waitForFunction(() => /Times: UTC/.test(document.getElementById('tz-toggle')!.textContent!));
  await page.waitForFunction(() => !/UTC\+01:00/.test(document.getElementById('jobs-table')?.textContent ?? 'UTC+01:00'));
  const utc = await shownTimes();
  assert.equal(utc.length, local.length);
  for (const [i, t] of utc.entries()) {
    assert.match(t, / UTC$/);
    const parse = (x: string) => Date.parse(x.replace(' ', 'T').replace(/ UTC(.*)$/, (_m, off: string) => off || 'Z'));
    assert.equal(parse(t), parse(local[i]!), `${t} and ${local[i]} are the same instant`);
  }
  await page.reload();
  await page.waitForSelector('#jobs-table');
  assert.match((await page.textContent('#tz-toggle'))!, /Times: UTC/, 'the choice survives a reload');
  await page.click('#tz-toggle');
  await page.click('a[data-page="status-admin"]');
  await page.waitForSelector('#mw-form');
  assert.match((await page.textContent('#mw-zone'))!, /Europe\/Berlin \(UTC\+0[12]:00\)/);
  await page.fill('#mw-title', 'Berlin maintenance');
  const t0 = Date.now();
  await page.click('#mw-form button[type="submit"]');
  await page.waitForSelector('tr[data-window]');
  const windows = await page.evaluate(async () => (await fetch('/api/v1/maintenance-windows')).json());
  const w = windows.find((x: { title: string }) => x.title === 'Berlin maintenance');
  assert.ok(w, 'stored');
  assert.equal(w.state, 'scheduled', 'not in progress');
  const ahead = Date.parse(w.startsAt) - t0;
  assert.ok(ahead > 55 * 60_000 && ahead < 65 * 60_000, `starts ${Math.round(ahead / 60_000)} min ahead, expected about 60`);
  assert.equal(Date.parse(w.endsAt) - Date.parse(w.startsAt), 3600_000);
  await page.context().close();
});

test('dashboard: task feedback — a drill without a snapshot is refused with its reason, Run now refreshes the history, a finished drill keeps its log and opens its detail page', async () => {
  const page = await newPage();
  await loginAs(page, 'alice', PASSWORD);

  // a drill of a job that never produced a snapshot: refused up front, nothing recorded
  const drillsBefore = await page.evaluate(async () => (await fetch('/api/v1/drills')).json());
  await page.click('a[data-page="drills"]');
  await page.waitForSelector('#start-drill');
  await page.selectOption('#drill-job', 'billing-invoices');
  await page.click('#start-drill');
  await page.waitForSelector('#toast.bad:not([hidden])');
  assert.match((await page.textContent('#toast'))!, /billing-invoices has no snapshot of source invoices/);
  assert.equal(await page.locator('.task').count(), 0, 'no task was started');
  const drillsAfter = await page.evaluate(async () => (await fetch('/api/v1/drills')).json());
  assert.equal(drillsAfter.length, drillsBefore.length, 'no drill was recorded');

  // Run now on the job page: the task box shows no literal "null", and the history gains the run without a reload
  await page.goto(base + '/#/jobs/website-files');
  await page.waitForSelector('tr[data-run]');
  const runsBefore = await page.locator('tr[data-run]').count();
  await page.click('h1 button');
  await page.waitForSelector('.task[data-status="success"], .task[data-status="failed"]');
  assert.equal(await page.locator('.task').first().getAttribute('data-status'), 'success');
  assert.doesNotMatch((await page.locator('.task').first().textContent())!, /null/);
  await page.waitForFunction((n) => document.querySelectorAll('tr[data-run]').length > n, runsBefore, { timeout: 60_000 });
  assert.equal(await page.locator('.task[data-status="success"]').count(), 1, 'the finished task box stays after the refresh');

  // a drill that runs: its log stays after it finishes, and it links to its detail page
  await page.click('a[data-page="drills"]');
  await page.waitForSelector('#start-drill');
  await page.selectOption('#drill-job', 'website-files');
  await page.click('#start-drill');
  await page.waitForSelector('.task[data-status="success"], .task[data-status="failed"]', { timeout: 60_000 });
  assert.equal(await page.locator('.task').first().getAttribute('data-status'), 'success', (await page.locator('.task').first().textContent()) ?? '');
  await page.waitForSelector('tr[data-drill]');
  await page.waitForSelector('.task a.drill-link');
  assert.match((await page.locator('.task pre.log').first().textContent())!, /drill website-files: success/, 'the finished drill keeps its log');
  assert.doesNotMatch((await page.locator('.task').first().textContent())!, /null/);
  await page.click('.task a.drill-link');
  await page.waitForSelector('tr[data-phase="restore"]');
  assert.match((await page.textContent('h1'))!, /Drill #\d+: website-files/);
  assert.ok((await page.locator('tr[data-phase]').count()) >= 3, 'phases listed');
  await page.screenshot({ path: shotPath('drill-detail.png'), fullPage: true });
  // the overview lists open incidents (the runbook's private one) and no longer lists the drill as missing
  await page.click('a[data-page="overview"]');
  await page.waitForSelector('#jobs-table');
  assert.ok((await page.locator('#open-incidents li[data-incident]').count()) >= 1, 'open incidents on the overview');
  assert.doesNotMatch((await page.textContent('#alerts'))!, /website-files · drill/, 'a passed drill is no longer an alert');
  await page.context().close();
});

test('dashboard: long lists are paged, filtered and sorted; a job shows its schedule in words with the next run', async () => {
  const page = await newPage({ timezoneId: 'UTC' });
  await loginAs(page, 'alice', PASSWORD);
  // 60 more incidents through the API
  const made = await page.evaluate(async () => {
    const s = await (await fetch('/api/v1/session')).json();
    let ok = 0;
    for (let i = 0; i < 60; i++) {
      const r = await fetch('/api/v1/incidents', { method: 'POST', headers: { 'x-csrf-token': s.csrfToken, 'content-type': 'application/json' }, body: JSON.stringify({ title: `bulk incident ${String(i).padStart(2, '0')}`, impact: i % 2 ? 'minor' : 'major' }) });
      if (r.status === 201 || r.status === 200) ok++;
    }
    return ok;
  });
  assert.equal(made, 60);
  const listed: Array<{ impact: string }> = await page.evaluate(async () => (await fetch('/api/v1/incidents?limit=1000')).json());
  const total = listed.length;
  const minor = listed.filter((i) => i.impact === 'minor').length;
  assert.ok(minor >= 30 && minor < total);
  await page.click('a[data-page="incidents"]');
  await page.waitForSelector('#incident-list');
  assert.equal(await page.locator('#incident-list tbody tr').count(), 50, 'one page of 50');
  assert.equal(await page.textContent('#incident-list .lv-count'), `1–50 of ${total}`);
  await page.click('#incident-list .lv-next');
  assert.equal(await page.locator('#incident-list tbody tr').count(), total - 50);
  assert.equal(await page.textContent('#incident-list .lv-count'), `51–${total} of ${total}`);
  // text filter
  await page.fill('#incident-list .lv-search', 'bulk incident 07');
  assert.equal(await page.locator('#incident-list tbody tr').count(), 1);
  assert.match((await page.textContent('#incident-list tbody tr'))!, /bulk incident 07/);
  await page.fill('#incident-list .lv-search', '');
  // select filter: impact minor
  await page.selectOption('#incident-list select[data-filter="Impact"]', 'minor');
  assert.equal(await page.textContent('#incident-list .lv-count'), `1–${minor} of ${minor} (filtered from ${total})`);
  // sort by title, ascending then descending
  await page.click('#incident-list th button.sort:has-text("Title")');
  assert.match((await page.locator('#incident-list tbody tr').first().textContent())!, /bulk incident 01/);
  await page.click('#incident-list th button.sort:has-text("Title")');
  assert.match((await page.locator('#incident-list tbody tr').nth(0).textContent())!, /Restore the website/, 'natural, case-insensitive order');
  assert.match((await page.locator('#incident-list tbody tr').nth(1).textContent())!, /bulk incident 59/);
  assert.equal(await page.getAttribute('#incident-list th:has(button:has-text("Title"))', 'aria-sort'), 'descending');

  // snapshots: filter by source
  await page.click('a[data-page="snapshots"]');
  await page.waitForSelector('#snapshot-list');
  const all = await page.locator('#snapshot-list tbody tr').count();
  assert.ok(all >= 2);
  await page.selectOption('#snapshot-list select[data-filter="Source"]', 'site');
  assert.equal(await page.locator('#snapshot-list tbody tr').count(), all, 'every snapshot here is of the site source');
  await page.fill('#snapshot-list .lv-search', 'no-such-snapshot');
  assert.equal(await page.locator('#snapshot-list tbody tr').count(), 0);
  assert.match((await page.textContent('#snapshot-list'))!, /Nothing matches/);

  // the job's schedule in words and its next run
  await page.click('a[data-page="jobs"]');
  await page.waitForSelector('td.schedule');
  const sched = (await page.locator('tr', { hasText: 'website-files' }).locator('td.schedule').textContent())!;
  assert.match(sched, /Every 15 minutes/);
  const next = /next (\d{4}-\d\d-\d\d \d\d:(\d\d):00 UTC(?:\+00:00)?)/.exec(sched);
  assert.ok(next, sched);
  assert.equal(Number(next[2]) % 15, 0, 'the next quarter hour');
  await page.screenshot({ path: shotPath('lists.png'), fullPage: true });
  await page.context().close();
});

/** Whether the placeholder of a textarea fits inside it (wrapped as the textarea wraps it), and the field inside the viewport. */
async function placeholderFits(page: Page, selector: string): Promise<{ fits: boolean; need: number; have: number; insideViewport: boolean }> {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel) as HTMLTextAreaElement;
    const cs = getComputedStyle(el);
    const px = (v: string) => parseFloat(v) || 0;
    const probe = document.createElement('div');
    Object.assign(probe.style, { position: 'absolute', visibility: 'hidden', font: cs.font, lineHeight: cs.lineHeight, letterSpacing: cs.letterSpacing, whiteSpace: 'pre-wrap', overflowWrap: cs.overflowWrap, wordBreak: cs.wordBreak, width: `${el.clientWidth - px(cs.paddingLeft) - px(cs.paddingRight)}px` });
    probe.textContent = el.placeholder;
    document.body.append(probe);
    const need = probe.getBoundingClientRect().height;
    probe.remove();
    const have = el.clientHeight - px(cs.paddingTop) - px(cs.paddingBottom);
    const r = el.getBoundingClientRect();
    return { fits: need <= have + 0.5, need, have, insideViewport: r.left >= 0 && r.right <= window.innerWidth };
  }, selector);
}

for (const [label, viewport] of [
  ['1280×900', { width: 1280, height: 900 }],
  ['390×844', { width: 390, height: 844 }],
] as const) {
  test(`dashboard at ${label}: the snapshot browser opens at the data, sorts naturally, searches, downloads and diffs; restore dialogs check before closing`, async () => {
    const ctx = await browser.newContext({ viewport, bypassCSP: true, acceptDownloads: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
    await loginAs(page, 'alice', PASSWORD);
    const problems: string[] = [];
    const axe = async (what: string) => {
      for (const v of await axeViolations(page)) problems.push(`${what}: ${v}`);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) problems.push(`${what}: the page is ${overflow}px wider than the viewport`);
    };
    const site = path.join(tmp.dir, 'site');
    const pages = path.join(site, 'pages');
    const snaps: Array<{ id: string; time: string }> = await page.evaluate(async () => (await fetch('/api/v1/repositories/local/snapshots')).json());
    const newest = snaps[0]!;
    const oldest = snaps[snaps.length - 1]!;

    // --- opens at the data (the backed-up directory), not at "/"
    await page.click('a[data-page="snapshots"]');
    await page.waitForSelector(`tr[data-snapshot="${newest.id}"] a.browse`);
    await page.click(`tr[data-snapshot="${newest.id}"] a.browse`);
    await page.waitForSelector('#tree tr.entry');
    const crumbs = async () => (await page.textContent('#crumbs'))!.replace(/\s+/g, '');
    assert.equal(await crumbs(), site, 'the browser opens at the backed-up directory');
    assert.ok(await page.locator(`#tree tr.entry[data-path="${pages}"]`).count(), 'the data is listed at once');
    // one click up
    await page.click('#browse-up');
    await page.waitForFunction((p) => document.getElementById('crumbs')?.textContent?.replace(/\s+/g, '') === p, path.dirname(site));
    assert.ok(await page.locator(`#tree tr.entry[data-path="${site}"]`).count());
    await page.click(`#tree tr.entry[data-path="${site}"] a`);
    await page.waitForFunction((p) => document.getElementById('crumbs')?.textContent?.replace(/\s+/g, '') === p, site);

    // --- natural order: page2 before page10
    await page.click(`#tree tr.entry[data-path="${pages}"] a`);
    await page.waitForSelector(`#tree tr.entry[data-path="${pages}/page10.html"]`);
    const names = await page.locator('#tree tr.entry').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.path!.split('/').pop()));
    assert.deepEqual(names, ['page1.html', 'page2.html', 'page3.html', 'page10.html']);

    // --- search (server-side) under the current directory
    await page.click('#browse-up');
    await page.waitForFunction((p) => document.getElementById('crumbs')?.textContent?.replace(/\s+/g, '') === p, site);
    await page.fill('#snap-search-q', 'PAGE1');
    await page.press('#snap-search-q', 'Enter');
    await page.waitForSelector('#search-results tr.match');
    const found = await page.locator('#search-results tr.match').evaluateAll((rows) => rows.map((r) => (r as HTMLElement).dataset.path));
    assert.deepEqual(found, [`${pages}/page1.html`, `${pages}/page10.html`]);
    assert.match((await page.textContent('#search-count'))!, /2 match\(es\) for “PAGE1”/);
    // a search that finds more than its cap says it was cut short
    const capped = await page.evaluate(async ([snap, dir]) => (await fetch(`/api/v1/repositories/local/snapshots/${snap}/search?q=a&limit=3&path=${encodeURIComponent(dir!)}`)).json(), [newest.id, site] as const);
    assert.equal(capped.matches.length, 3);
    assert.equal(capped.truncated, true);

    // --- download one file: a real browser download of exactly the file's bytes
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(`#search-results tr.match[data-path="${pages}/page10.html"] a.download`)]);
    assert.equal(dl.suggestedFilename(), 'page10.html');
    assert.deepEqual(readFileSync((await dl.path())!), readFileSync(path.join(pages, 'page10.html')));
    // headers, a larger file, and paths that leave the snapshot or are not files
    // the largest file at the top of the site (several KiB)
    const { readdir, lstat } = await import('node:fs/promises');
    const sized = await Promise.all((await readdir(site)).map(async (n) => ({ n, st: await lstat(path.join(site, n)) })));
    const big = sized.filter((x) => x.st.isFile()).sort((a, b) => b.st.size - a.st.size)[0]!.n;
    const bigPath = path.join(site, big);
    assert.ok(readFileSync(bigPath).length > 5000, `${big} is a larger file`);
    const fetchFile = (p: string) =>
      page.evaluate(async ([snap, p]) => {
        const res = await fetch(`/api/v1/repositories/local/snapshots/${snap}/file?path=${encodeURIComponent(p!)}`);
        const body = new Uint8Array(await res.arrayBuffer());
        return { status: res.status, length: res.headers.get('content-length'), disposition: res.headers.get('content-disposition'), type: res.headers.get('content-type'), body: Array.from(body.length < 100_000 ? body : []) };
      }, [newest.id, p] as const);
    const got = await fetchFile(bigPath);
    assert.equal(got.status, 200);
    assert.equal(got.type, 'application/octet-stream');
    assert.match(got.disposition!, new RegExp(`^attachment; filename="${big.replace(/[.]/g, '\\.')}"`));
    assert.equal(Number(got.length), readFileSync(bigPath).length);
    assert.deepEqual(Buffer.from(got.body), readFileSync(bigPath));
    assert.equal((await fetchFile(`${site}/../site/pages/page1.html`)).status, 400, '".." is refused');
    assert.equal((await fetchFile(site)).status, 400, 'a directory is not a file');
    assert.equal((await fetchFile('/etc/passwd')).status, 404, 'only paths inside the snapshot');

    // --- diff against the first backup: page3 added, page1 changed
    await page.selectOption('#diff-other', oldest.id);
    await page.click('#diff-run');
    await page.waitForSelector('#diff-list tr.change');
    const changes = await page.locator('#diff-list tr.change').evaluateAll((rows) => rows.map((r) => `${(r as HTMLElement).dataset.change} ${(r as HTMLElement).dataset.path}`));
    assert.deepEqual(changes, [`modified ${pages}/page1.html`, `added ${pages}/page3.html`].sort((a, b) => a.split(' ')[1]!.localeCompare(b.split(' ')[1]!)));
    assert.match((await page.textContent('#diff-counts'))!, /^1 added, 0 removed, 1 changed/);
    assert.match((await page.textContent('#diff'))!, new RegExp(`Changes from ${oldest.id.slice(0, 8)}`), 'from the older snapshot to the newer');
    await axe('snapshot browser with search results and a diff');
    await page.screenshot({ path: shotPath(`browse-${viewport.width}.png`), fullPage: true });

    // --- files restore: a non-empty target is refused before the dialog closes, naming the checkbox
    await page.click(`#tree tr.entry[data-path="${pages}"] a`);
    await page.waitForSelector(`#tree tr.entry[data-path="${pages}/page10.html"]`);
    const busy = path.join(tmp.dir, 'restores', `busy-${viewport.width}`);
    mkdirSync(busy);
    writeFileSync(path.join(busy, 'keep.txt'), 'keep me\n');
    await page.click('#restore-dir');
    await page.waitForSelector('#confirm-dialog[open]');
    await page.fill('#restore-target', busy);
    await page.click('#dialog-confirm');
    await page.waitForFunction(() => !!document.getElementById('dialog-error')?.textContent);
    const refusal = (await page.textContent('#dialog-error'))!;
    assert.match(refusal, /is not empty/);
    assert.match(refusal, /tick "Overwrite existing files"/);
    assert.doesNotMatch(refusal, /--overwrite/);
    assert.ok(await page.locator('#confirm-dialog[open]').isVisible(), 'the dialog stays open');
    assert.equal(await page.locator('.task').count(), 0, 'no restore was started');
    assert.ok(await page.getByLabel('Overwrite existing files').isVisible(), 'the checkbox the message names');
    await axe('files restore dialog with the refusal');
    await page.screenshot({ path: shotPath(viewport.width === 1280 ? 'restore.png' : `restore-${viewport.width}.png`) });
    await page.check('#restore-overwrite');
    await page.click('#dialog-confirm');
    await page.waitForSelector('#confirm-dialog', { state: 'detached' });
    await page.waitForSelector('.task[data-status="success"], .task[data-status="failed"]');
    assert.equal(await page.locator('.task').first().getAttribute('data-status'), 'success', (await page.locator('.task').first().textContent()) ?? '');
    assert.deepEqual(readFileSync(path.join(busy, 'page10.html')), readFileSync(path.join(pages, 'page10.html')));
    assert.equal(readFileSync(path.join(busy, 'keep.txt'), 'utf8'), 'keep me\n');

    // --- database restore: the empty target means the live database, said in full with its host
    await page.goto(`${base}/#/snapshots/dbrepo`);
    await page.waitForSelector('#snapshot-list tr[data-snapshot] button');
    await page.locator('#snapshot-list tr[data-snapshot] button').first().click();
    await page.waitForSelector('#confirm-dialog[open] #restore-db-target');
    const live = `127.0.0.1:5432/${PG_DB}`;
    assert.equal(await page.getAttribute('#restore-db-target', 'placeholder'), `empty = restore into the live database ${live}`);
    const fit = await placeholderFits(page, '#restore-db-target');
    assert.ok(fit.fits, `the placeholder needs ${fit.need}px, the field shows ${fit.have}px`);
    assert.ok(fit.insideViewport, 'the target field is inside the screen');
    assert.match((await page.textContent('#restore-db-live'))!, new RegExp(`live database at ${live.replace(/[.]/g, '\\.')}`));
    assert.match((await page.textContent('#restore-db-confirm-label'))!, /Type the source name “appdb” to confirm/);
    await page.fill('#restore-db-confirm', 'yes');
    await page.click('#dialog-confirm');
    await page.waitForFunction(() => /type the source name/.test(document.getElementById('dialog-error')?.textContent ?? ''));
    assert.ok(await page.locator('#confirm-dialog[open]').isVisible());
    assert.equal(await page.locator('.task').count(), 0);
    await axe('database restore dialog');
    await page.screenshot({ path: shotPath(`restore-db-${viewport.width}.png`) });
    // a named target asks for that name instead
    await page.fill('#restore-db-target', 'scratch_copy');
    assert.match((await page.textContent('#restore-db-confirm-label'))!, /Type the target again/);
    assert.equal(await page.textContent('#restore-db-live'), '');
    await page.fill('#restore-db-target', '');
    if (viewport.width === 1280) {
      // into the live database, confirmed with the source name
      await pgExec(PG_DB, 'DELETE FROM orders WHERE id > 10');
      await page.fill('#restore-db-confirm', 'appdb');
      await page.check('#restore-db-clean');
      await page.click('#dialog-confirm');
      await page.waitForSelector('#confirm-dialog', { state: 'detached' });
      await page.waitForSelector('.task[data-status="success"], .task[data-status="failed"]', { timeout: 60_000 });
      assert.equal(await page.locator('.task').first().getAttribute('data-status'), 'success', (await page.locator('.task').first().textContent()) ?? '');
      assert.equal((await pgExec(PG_DB, 'SELECT count(*)::int AS n FROM orders')).rows[0].n, 50, 'the live database is back');
    } else {
      await page.click('#dialog-cancel');
    }
    await ctx.close();
    assert.deepEqual(problems, []);
  });
}

test('dashboard: the overview shows each service\'s internal 30/90-day availability, private incidents included', async () => {
  // a private, resolved, critical incident of billing: two hours, three days ago
  const cfg = await loadConfig(cfgFile);
  const catalog = await openConfigCatalog(cfg);
  try {
    const started = new Date(Date.now() - 3 * 86_400_000);
    const i = await new IncidentStore(catalog, { now: () => started }).create({ title: 'billing down', impact: 'critical', services: ['billing'], startedAt: started, visibility: 'private' });
    await new IncidentStore(catalog, { now: () => new Date(started.getTime() + 7_200_000) }).resolve(i.id, { message: 'fixed' });
  } finally {
    await catalog.close();
  }
  for (const viewport of [
    { width: 1280, height: 900 },
    { width: 390, height: 844 },
  ]) {
    const ctx = await browser.newContext({ viewport, bypassCSP: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
    await loginAs(page, 'alice', PASSWORD);
    await page.waitForSelector('#services-table tr[data-service="billing"]');
    const cell = (days: number) => page.locator(`#services-table tr[data-service="billing"] td.avail[data-days="${days}"]`);
    // 2 h of full outage: 100 × (1 − 7200 / (30 × 86400)) and over 90 days
    assert.equal(await cell(30).getAttribute('data-percent'), '99.7222');
    assert.equal(await cell(90).getAttribute('data-percent'), '99.9074');
    assert.match((await cell(30).textContent())!, /99\.722 %/);
    assert.match((await cell(30).textContent())!, /2h 0m down/);
    assert.equal(await cell(30).evaluate((el) => el.classList.contains('red')), true, 'below the 99.9 % target');
    assert.match((await page.textContent('#services-table tr[data-service="billing"]'))!, /99\.9 %/, 'the target is shown');
    // the public page counts only published incidents: the private one is not there
    const pub = await page.evaluate(async () => (await fetch('/status.json')).json());
    const billing = pub.components.find((c: { name: string }) => c.name === 'billing');
    assert.equal(billing.availability.windows.find((w: { days: number }) => w.days === 30).percent, 100);
    assert.deepEqual(await axeViolations(page), []);
    assert.ok((await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)) <= 1, 'no sideways scrolling');
    await page.locator('#services-table').screenshot({ path: shotPath(`services-availability-${viewport.width}.png`) });
    await ctx.close();
  }
});


for (const [label, viewport, scheme] of [
  ['1280×900, light', { width: 1280, height: 900 }, 'light'],
  ['390×844 (phone), dark', { width: 390, height: 844 }, 'dark'],
] as const) {
  test(`dashboard: every page meets WCAG 2.1 AA (axe-core) at ${label}`, async () => {
    const ctx = await browser.newContext({ viewport, colorScheme: scheme, bypassCSP: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
    await page.goto(base + '/login');
    assert.deepEqual(await axeViolations(page), [], 'login page');
    await page.fill('#user', 'alice');
    await page.fill('#password', PASSWORD);
    await page.click('#login-submit');
    await page.waitForSelector('#jobs-table');
    const problems: string[] = [];
    for (const name of ['overview', 'jobs', 'snapshots', 'drills', 'runbooks', 'incidents', 'status-admin', 'tasks']) {
      await page.goto(`${base}/#/${name}`);
      await page.waitForSelector(`.page[data-page="${name}"]`);
      await page.waitForTimeout(200);
      for (const v of await axeViolations(page)) problems.push(`${name}: ${v}`);
      // nothing wider than the screen (phone)
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      if (overflow > 1) problems.push(`${name}: the page is ${overflow}px wider than the viewport`);
    }
    const header = await page.evaluate(() => document.querySelector('header.top')!.getBoundingClientRect().height);
    if (viewport.width < 500 && header > 100) problems.push(`the header takes ${header}px of a ${viewport.height}px phone screen`);
    const pub = await ctx.newPage();
    await pub.goto(base + '/status');
    for (const v of await axeViolations(pub)) problems.push(`status: ${v}`);
    if (scheme === 'dark') {
      const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      const [r, g, b] = bg.match(/\d+/g)!.map(Number);
      if (r! + g! + b! > 3 * 80) problems.push(`dark theme: body background is ${bg}`);
    }
    await page.goto(`${base}/#/overview`);
    await page.waitForSelector('#jobs-table');
    await page.screenshot({ path: shotPath(`overview-${viewport.width}-${scheme}.png`), fullPage: true });
    await ctx.close();
    assert.deepEqual(problems, []);
  });
}
