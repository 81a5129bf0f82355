import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { CLI, describeTree, makeTree, runCli, tmpDir } from './helpers/tmp.js';

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
let serverLog = '';

function shotPath(name: string): string {
  const dir = SHOTS ? path.join(ROOT, 'docs', 'screenshots') : path.join(tmp.dir, 'screenshots');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

before(async () => {
  tmp = tmpDir('lb-dashboard-');
  await makeTree(path.join(tmp.dir, 'site'), { files: 40, seed: 11, maxSize: 20_000 });
  mkdirSync(path.join(tmp.dir, 'restores'));
  writeFileSync(path.join(tmp.dir, 'repo.pw'), 'repo-pw\n');
  cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
  writeFileSync(
    cfgFile,
    `daemon: {}
repositories:
  local: { location: ./repo, autoInit: true, password: { file: ./repo.pw } }
sources:
  site: { kind: files, paths: [./site] }
  invoices: { kind: files, paths: [./invoices-that-do-not-exist] }
jobs:
  website-files: { source: site, rpo: 1h, tier: important }
  billing-invoices: { source: invoices, rpo: 1h, tier: critical }
services:
  website: { description: Public website, jobs: [website-files] }
  billing: { description: Invoices and payments, jobs: [billing-invoices] }
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
  // a second backup, so the charts have two points
  assert.equal((await runCli(['-c', cfgFile, 'run', 'website-files'], { env })).code, 0);
  const bad = await runCli(['-c', cfgFile, 'run', 'billing-invoices'], { env });
  assert.equal(bad.code, 1, 'the billing job must fail');
  const add = await runCli(['-c', cfgFile, 'user', 'add', 'alice', '--role', 'operator'], { env, input: PASSWORD + '\n' });
  assert.equal(add.code, 0, add.stderr);

  server = spawn(process.execPath, [CLI, '-c', cfgFile, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LIFEBOAT_PASSWORD: '' } });
  server.stderr!.on('data', (d: Buffer) => (serverLog += d.toString()));
  base = await new Promise<string>((resolve, reject) => {
    let out = '';
    server.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    server.on('exit', (code) => reject(new Error(`server exited ${code}: ${serverLog}`)));
  });
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
});

after(async () => {
  await browser?.close();
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    server.kill('SIGTERM');
    await exited;
  }
  tmp?.cleanup();
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
  assert.equal(border, 'rgb(192, 57, 43)');
  assert.match((await broken.textContent())!, /failed/);
  assert.match((await broken.textContent())!, /invoices-that-do-not-exist/);
  const good = page.locator('tr.job-row[data-job="website-files"]');
  assert.notEqual(await good.getAttribute('data-light'), 'red');
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
  assert.equal(await page.locator('.pill.s-degraded').first().evaluate((el) => getComputedStyle(el).backgroundColor), 'rgb(194, 124, 14)');
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
