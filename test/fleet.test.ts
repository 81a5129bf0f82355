import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { PostgresCatalog } from '../src/ops/catalog/postgres.js';
import { FleetStore } from '../src/ops/fleet/store.js';
import { pgCreateDb, pgDropDb, uniqueName } from './helpers/db.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/receivers.js';
import { axeViolations, launchChromium, startServe as startServeProcess } from './helpers/browser.js';
import { CLI, runCli, tmpDir } from './helpers/tmp.js';

/**
 * The fleet with real processes: two `lifeboat daemon` agents (alpha, beta)
 * and `lifeboat serve` sharing a PostgreSQL catalog in a fresh database on
 * loopback. Registration and heartbeats, a refused duplicate agent id, a run
 * request executed by the agent it names only, the Fleet page in Chromium
 * (filters, a run from the dashboard, axe WCAG 2.1 AA at 1280 and 390 px),
 * and `kill -9` of an agent: "missed heartbeat" in the catalog and an alert
 * on a webhook receiver, resolved when it is back.
 */

const PASSWORD = 'fleet-dashboard-pw';
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Screenshots go to docs/screenshots/ with LIFEBOAT_SCREENSHOTS=1, else to the test's temporary directory. */
function shotPath(name: string): string {
  const dir = process.env.LIFEBOAT_SCREENSHOTS === '1' ? path.join(ROOT, 'docs', 'screenshots') : path.join(tmp.dir, 'screenshots');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
const HEARTBEAT_MS = 400;

let tmp: { dir: string; cleanup: () => void };
let db: string;
let url: string;
let hook: WebhookReceiver;
let catalog: PostgresCatalog;
let store: FleetStore;
let browser: Browser;
let server: ChildProcess;
let base = '';
let serverLogOf: () => string = () => '';
const agents = new Map<string, { child: ChildProcess; log: () => string }>();

function agentConfig(id: string, job: string, service: string): string {
  return `repositories:
  main: { location: ./repo-${id}, autoInit: true, password: { file: ./repo.pw } }
sources:
  ${job}-src: { kind: files, paths: [./data-${id}] }
jobs:
  ${job}: { source: ${job}-src, tier: critical }
services:
  ${service}: { jobs: [${job}] }
daemon:
  catalog: ${url}
  agentId: ${id}
  fleet: { heartbeat: ${HEARTBEAT_MS}ms, missedAfter: 3, requestPoll: 200ms, catalogTimeout: 5s }
notifiers:
  channels:
    hook: { type: webhook, url: "${hook.url}/fleet" }
  routes: { critical: [hook] }
`;
}

function startAgent(name: string, cfgFile: string): { child: ChildProcess; log: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', cfgFile], {
    env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_PASSWORD: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  return { child, log: () => `[${name}]\n${log}`, exited };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${[...agents.values()].map((a) => a.log()).join('\n')}\n[serve]\n${serverLogOf()}`);
    await sleep(100);
  }
}

async function stateOf(id: string): Promise<string | undefined> {
  return (await store.agents()).agents.find((a) => a.id === id)?.state;
}

before(async () => {
  tmp = tmpDir('lb-fleet-');
  db = uniqueName('lb_fleet_');
  await pgCreateDb(db);
  url = `postgres://postgres@127.0.0.1:5432/${db}`;
  hook = await startWebhookReceiver();
  writeFileSync(path.join(tmp.dir, 'repo.pw'), 'fleet-repo-pw\n');
  for (const id of ['alpha', 'beta']) {
    mkdirSync(path.join(tmp.dir, `data-${id}`));
    writeFileSync(path.join(tmp.dir, `data-${id}`, 'file.txt'), `data of ${id}\n`);
  }
  writeFileSync(path.join(tmp.dir, 'alpha.yaml'), agentConfig('alpha', 'alpha-files', 'billing'));
  writeFileSync(path.join(tmp.dir, 'beta.yaml'), agentConfig('beta', 'beta-files', 'website'));
  catalog = await PostgresCatalog.open(url);
  store = new FleetStore(catalog, { timeoutMs: 5000, missedAfter: 3 });
  for (const id of ['alpha', 'beta']) agents.set(id, startAgent(id, path.join(tmp.dir, `${id}.yaml`)));
});

after(async () => {
  await browser?.close();
  for (const child of [...[...agents.values()].map((a) => a.child), server]) {
    if (child && child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    }
  }
  await catalog?.close();
  await hook?.close();
  if (db) await pgDropDb(db);
  tmp?.cleanup();
});

test('fleet: two agents register with their jobs (no secrets) and heartbeat', async () => {
  await until('both agents live', async () => (await stateOf('alpha')) === 'live' && (await stateOf('beta')) === 'live');
  const first = (await store.agents()).agents;
  const beta = first.find((a) => a.id === 'beta')!;
  assert.deepEqual(
    beta.jobs.map((j) => ({ ...j })),
    [{ name: 'beta-files', source: 'beta-files-src', sourceKind: 'files', schedule: null, repository: 'main', drillSchedule: null, services: ['website'] }],
  );
  assert.match(beta.version, /^\d+\.\d+\.\d+/);
  const raw = (await catalog.sql.all(`SELECT jobs_json FROM ${catalog.sql.t('agents')}`)).map((r) => String(r.jobs_json)).join('\n');
  assert.ok(!raw.includes('fleet-repo-pw') && !raw.includes('repo.pw') && !raw.includes(tmp.dir), raw);
  // the heartbeat moves on
  await until('a newer heartbeat', async () => (await store.agent('beta'))!.lastSeen > beta.lastSeen);
});

test('fleet: a second live agent with the same id is refused with a clear error', async () => {
  writeFileSync(path.join(tmp.dir, 'alpha-dup.yaml'), agentConfig('alpha', 'other-files', 'billing'));
  mkdirSync(path.join(tmp.dir, 'data-other'), { recursive: true });
  const dup = startAgent('alpha-dup', path.join(tmp.dir, 'alpha-dup.yaml'));
  const code = await dup.exited;
  assert.equal(code, 2, dup.log());
  assert.match(dup.log(), /agent id "alpha" is already in use by a live agent on host .*daemon\.agentId/);
  assert.doesNotMatch(dup.log(), /at .*\.js:\d+/, 'no stack trace');
  // the live alpha keeps its row and its jobs
  assert.equal(await stateOf('alpha'), 'live');
  assert.deepEqual((await store.agent('alpha'))!.jobs.map((j) => j.name), ['alpha-files']);
});

test('fleet: a run request for beta is executed by beta only and its result is recorded', async () => {
  // beta has no job "alpha-files": refused at once
  const bad = await runCli(['-c', path.join(tmp.dir, 'beta.yaml'), 'fleet', 'run', '--agent', 'beta', 'alpha-files']);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /agent "beta" has no job "alpha-files"/);
  const r = await runCli(['-c', path.join(tmp.dir, 'alpha.yaml'), '--json', 'fleet', 'run', '--agent', 'beta', 'beta-files', '--wait', '--timeout', '60s']);
  assert.equal(r.code, 0, r.stderr + agents.get('beta')!.log());
  const req = JSON.parse(r.stdout);
  assert.equal(req.status, 'success');
  assert.equal(req.agent_id, 'beta');
  const run = await catalog.getRun(req.result.run_id);
  assert.ok(run, 'the run is in the catalog');
  assert.equal(run.agentId, 'beta');
  assert.equal(run.pid, agents.get('beta')!.child.pid, 'run by the beta process');
  assert.equal(run.status, 'success');
  assert.equal(run.snapshotId, req.result.snapshot_id);
  assert.match(agents.get('beta')!.log(), new RegExp(`request #${req.id} from cli`));
  assert.doesNotMatch(agents.get('alpha')!.log(), new RegExp(`request #${req.id}`));
  assert.equal((await catalog.runs({ agentId: 'alpha' })).length, 0, 'alpha ran nothing');
  // fleet ls: both agents, and beta's job with its last run
  const ls = await runCli(['-c', path.join(tmp.dir, 'alpha.yaml'), '--json', 'fleet', 'ls']);
  assert.equal(ls.code, 0, ls.stderr);
  const v = JSON.parse(ls.stdout);
  assert.deepEqual(v.agents.map((a: { id: string; state: string }) => [a.id, a.state]), [['alpha', 'live'], ['beta', 'live']]);
  assert.equal(v.agents[1].jobs[0].last_run.status, 'success');
  const byService = JSON.parse((await runCli(['-c', path.join(tmp.dir, 'alpha.yaml'), '--json', 'fleet', 'ls', '--service', 'website'])).stdout);
  assert.deepEqual(byService.agents.map((a: { id: string }) => a.id), ['beta']);
});

async function startServe(): Promise<void> {
  const cfgFile = path.join(tmp.dir, 'server.yaml');
  writeFileSync(cfgFile, agentConfig('console', 'console-files', 'ops'));
  const add = await runCli(['-c', cfgFile, 'user', 'add', 'olga', '--role', 'operator'], { input: PASSWORD + '\n' });
  assert.equal(add.code, 0, add.stderr);
  ({ child: server, base, log: serverLogOf } = await startServeProcess(cfgFile));
  browser = await launchChromium();
}

async function login(page: Page): Promise<void> {
  await page.goto(base + '/login');
  await page.fill('#user', 'olga');
  await page.fill('#password', PASSWORD);
  await page.click('#login-submit');
  await page.waitForSelector('#who');
  await page.goto(base + '/#/fleet');
  await page.waitForSelector('#agents-table');
}


test('fleet: serve shows every host and its jobs; filters; a run requested from the dashboard runs on that agent', async () => {
  await startServe();
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
  await login(page);
  for (const id of ['alpha', 'beta']) {
    assert.equal(await page.getAttribute(`tr.agent-row[data-agent="${id}"]`, 'data-state'), 'live');
  }
  assert.match((await page.textContent('tr.fleet-job[data-agent="beta"][data-job="beta-files"] .last-run'))!, /success/);
  assert.match((await page.textContent('tr.fleet-job[data-agent="alpha"][data-job="alpha-files"] .last-run'))!, /never/);
  // filter by host, then by service
  const shown = (want: string) =>
    page.waitForFunction((w) => [...document.querySelectorAll('tr.agent-row')].map((r) => (r as HTMLElement).dataset.agent).join(',') === w, want);
  await page.selectOption('#fleet-host', 'alpha');
  await shown('alpha');
  await page.selectOption('#fleet-host', '');
  await page.selectOption('#fleet-service', 'website');
  await shown('beta');
  // the job sections follow the same filter (rendered with the table; wait rather than race the render). Once,
  // under extra load, this wait ran out after the table had shown 'beta': a timeout now says what both showed.
  const listed = () =>
    page.evaluate(() => ({
      hosts: [...document.querySelectorAll('tr.agent-row')].map((r) => (r as HTMLElement).dataset.agent).join(','),
      sections: [...document.querySelectorAll('section.agent-jobs')].map((x) => (x as HTMLElement).dataset.agent).join(','),
    }));
  await page
    .waitForFunction(() => [...document.querySelectorAll('section.agent-jobs')].map((x) => (x as HTMLElement).dataset.agent).join(',') === 'beta', undefined, { timeout: 30_000 })
    .catch(async (err: Error) => {
      throw new Error(`${err.message}; the page shows ${JSON.stringify(await listed().catch(() => 'nothing readable'))}`);
    });
  await page.selectOption('#fleet-service', '');
  await shown('alpha,beta');
  // run alpha's job from the dashboard: a request that alpha picks up
  await page.click('tr.fleet-job[data-agent="alpha"] button.fleet-run');
  const row = page.locator('tr.request-row[data-agent="alpha"]').first();
  await row.waitFor();
  await page.waitForSelector('tr.request-row[data-agent="alpha"][data-status="success"]', { timeout: 60_000 });
  assert.match((await row.textContent())!, /olga/);
  assert.match((await page.textContent('tr.fleet-job[data-agent="alpha"][data-job="alpha-files"] .last-run'))!, /success/);
  const runs = await catalog.runs({ job: 'alpha-files' });
  assert.equal(runs.length, 1);
  assert.equal(runs[0]!.agentId, 'alpha');
  assert.equal(runs[0]!.pid, agents.get('alpha')!.child.pid);
  await ctx.close();
});

for (const [label, viewport, scheme] of [
  ['1280×900, light', { width: 1280, height: 900 }, 'light'],
  ['390×844 (phone), dark', { width: 390, height: 844 }, 'dark'],
] as const) {
  test(`fleet: the Fleet page meets WCAG 2.1 AA (axe-core) at ${label}`, async () => {
    const ctx = await browser.newContext({ viewport, colorScheme: scheme, bypassCSP: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => assert.fail(`page error: ${e.message}`));
    await login(page);
    await page.waitForSelector('tr.request-row');
    const problems = await axeViolations(page);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    if (overflow > 1) problems.push(`the page is ${overflow}px wider than the viewport`);
    const header = await page.evaluate(() => document.querySelector('header.top')!.getBoundingClientRect().height);
    if (viewport.width < 500 && header > 100) problems.push(`the header takes ${header}px of a ${viewport.height}px phone screen`);
    await page.screenshot({ path: shotPath(`fleet-${viewport.width}-${scheme}.png`), fullPage: true });
    await ctx.close();
    assert.deepEqual(problems, []);
  });
}

test('fleet: kill -9 of an agent is "missed heartbeat" and an alert on the webhook; resolved when it is back', async () => {
  const alpha = agents.get('alpha')!;
  const gone = new Promise((r) => alpha.child.once('exit', r));
  alpha.child.kill('SIGKILL');
  await gone;
  await until('alpha missed', async () => (await stateOf('alpha')) === 'missed');
  assert.equal(await stateOf('beta'), 'live');
  // beta, now the first live agent, watches: one firing alert for agent:alpha
  const firing = await until('the firing webhook', async () => hook.on('/fleet').find((r) => (r.json as { key: string; kind: string }).key === 'agent:alpha/heartbeat'));
  const body = firing.json as { kind: string; severity: string; message: string; check: string };
  assert.equal(body.kind, 'firing');
  assert.equal(body.severity, 'critical');
  assert.equal(body.check, 'heartbeat');
  assert.match(body.message, /agent alpha .* missed its heartbeat/);
  // the dashboard shows it
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  await login(page);
  assert.equal(await page.getAttribute('tr.agent-row[data-agent="alpha"]', 'data-state'), 'missed');
  assert.match((await page.textContent('tr.agent-row[data-agent="alpha"]'))!, /missed heartbeat/);
  await ctx.close();
  // alpha comes back: the alert is resolved, sent once
  agents.set('alpha', startAgent('alpha', path.join(tmp.dir, 'alpha.yaml')));
  await until('alpha live again', async () => (await stateOf('alpha')) === 'live');
  await until('the resolved webhook', async () => hook.on('/fleet').find((r) => (r.json as { key: string; kind: string }).key === 'agent:alpha/heartbeat' && (r.json as { kind: string }).kind === 'resolved'));
  const forAlpha = hook.on('/fleet').filter((r) => (r.json as { key: string }).key === 'agent:alpha/heartbeat').map((r) => (r.json as { kind: string }).kind);
  assert.deepEqual(forAlpha, ['firing', 'resolved']);
});

test('fleet: with every agent dead, serve reports the missed heartbeats', async () => {
  const before = hook.on('/fleet').length;
  for (const id of ['alpha', 'beta']) {
    const a = agents.get(id)!;
    const gone = new Promise((r) => a.child.once('exit', r));
    a.child.kill('SIGKILL');
    await gone;
  }
  await until('both missed', async () => (await stateOf('alpha')) === 'missed' && (await stateOf('beta')) === 'missed');
  const fired = await until('firing for beta and alpha', async () => {
    const keys = hook
      .on('/fleet')
      .slice(before)
      .filter((r) => (r.json as { kind: string }).kind === 'firing')
      .map((r) => (r.json as { key: string }).key)
      .sort();
    return keys.length >= 2 && keys;
  });
  assert.deepEqual(fired, ['agent:alpha/heartbeat', 'agent:beta/heartbeat']);
});

test('fleet: a frozen agent whose id was taken over stops its schedules when it wakes (the id\'s jobs never run in two places)', async () => {
  mkdirSync(path.join(tmp.dir, 'data-gamma'), { recursive: true });
  writeFileSync(path.join(tmp.dir, 'data-gamma', 'file.txt'), 'data of gamma\n');
  const cfg = agentConfig('gamma', 'gamma-files', 'reports').replace('{ source: gamma-files-src, tier: critical }', '{ source: gamma-files-src, tier: critical, schedule: "* * * * * *", catchUp: false }');
  assert.match(cfg, /schedule: "\* \* \* \* \* \*"/);
  const file = path.join(tmp.dir, 'gamma.yaml');
  writeFileSync(file, cfg);
  const g1 = startAgent('gamma-1', file);
  agents.set('gamma-1', g1);
  const snapshotsIn = (log: string) => (log.match(/job gamma-files: snapshot [0-9a-f]{8}/g) ?? []).length;
  try {
    await until('a scheduled run of gamma-1', async () => snapshotsIn(g1.log()) > 0);
    g1.child.kill('SIGSTOP');
    await until('gamma missed', async () => (await stateOf('gamma')) === 'missed');
    const g2 = startAgent('gamma-2', file);
    agents.set('gamma-2', g2);
    await until('gamma-2 running the schedules', async () => snapshotsIn(g2.log()) > 0);
    g1.child.kill('SIGCONT');
    await until('gamma-1 noticing', async () => /WAS TAKEN OVER/.test(g1.log()) && /schedules stopped/.test(g1.log()));
    // a run in flight when it woke may finish (the daemon says when none is left: no fixed wait, which a
    // loaded machine outlasts); after that, nothing more from gamma-1 while gamma-2 runs the schedule on
    await until('gamma-1 idle', async () => /no job of this process running any more/.test(g1.log()));
    const before = snapshotsIn(g1.log());
    const g2before = snapshotsIn(g2.log());
    await until('gamma-2 running three more of the schedule\'s runs', async () => snapshotsIn(g2.log()) >= g2before + 3, 90_000);
    assert.equal(snapshotsIn(g1.log()), before, `gamma-1 kept running its schedules:\n${g1.log()}`);
    assert.ok(snapshotsIn(g2.log()) > g2before, 'gamma-2 runs them');
  } finally {
    for (const name of ['gamma-1', 'gamma-2']) {
      const a = agents.get(name);
      if (a && a.child.exitCode === null && a.child.signalCode === null) {
        a.child.kill('SIGCONT');
        const gone = new Promise((r) => a.child.once('exit', r));
        a.child.kill('SIGKILL');
        await gone;
      }
      agents.delete(name);
    }
  }
});
