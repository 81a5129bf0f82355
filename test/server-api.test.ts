import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describeTree, makeTree, runCli, tmpDir } from './helpers/tmp.js';
import { loadConfig } from '../src/config/load.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import { PostgresCatalog } from '../src/ops/catalog/postgres.js';
import { startServer, type RunningServer } from '../src/server/server.js';
import { FleetStore } from '../src/ops/fleet/store.js';
import { AuthStore, hashPassword, verifyPassword } from '../src/server/auth.js';
import { MaintenanceStore } from '../src/server/maintenance.js';
import Database from 'better-sqlite3';
import { TaskRegistry } from '../src/server/tasks.js';

/**
 * The API of `lifeboat serve` over real HTTP: authentication (sessions,
 * tokens), CSRF and Origin checks, roles, every documented route, and a
 * restore through the API that must reproduce the files byte for byte.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENV = { LIFEBOAT_PASSWORD: undefined };

let tmp: { dir: string; cleanup: () => void };
let cfgFile: string;
let srv: RunningServer;
let base: string;
let viewerToken: string;
let operatorToken: string;
const ALICE_PW = 'alice-' + randomBytes(6).toString('hex');
const BOB_PW = 'bob-' + randomBytes(6).toString('hex');

async function cli(args: string[], input?: string) {
  const r = await runCli(['-c', cfgFile, ...args], { env: ENV, ...(input !== undefined ? { input } : {}) });
  return r;
}

async function call(method: string, p: string, opts: { token?: string; cookie?: string; csrf?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookie) headers.cookie = opts.cookie;
  if (opts.csrf) headers['x-csrf-token'] = opts.csrf;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(base + p, { method, headers, redirect: 'manual', ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}) });
  const text = await res.text();
  let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

async function waitTask(id: number, token: string) {
  for (;;) {
    const r = await call('GET', `/api/v1/tasks/${id}`, { token });
    assert.equal(r.status, 200);
    if (r.json.status !== 'running') return r.json;
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function login(user: string, password: string) {
  const r = await call('POST', '/api/v1/login', { body: { user, password } });
  assert.equal(r.status, 200, r.text);
  const setCookie = r.headers.getSetCookie()[0]!;
  return { cookie: setCookie.split(';')[0]!, setCookie, csrf: r.json.csrfToken as string };
}

before(async () => {
  tmp = tmpDir('lb-server-api-');
  await makeTree(path.join(tmp.dir, 'data'), { files: 60, seed: 7, maxSize: 40_000 });
  await mkdir(path.join(tmp.dir, 'restores'));
  cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
  writeFileSync(path.join(tmp.dir, 'repo.pw'), 'repo-pw\n');
  writeFileSync(
    cfgFile,
    `daemon: {}
repositories:
  local: { location: ./repo, autoInit: true, password: { file: ./repo.pw } }
sources:
  docs: { kind: files, paths: [./data] }
  broken: { kind: files, paths: [./no-such-directory] }
  appdb: { kind: sqlite, path: ./app.db }
jobs:
  appdb: { source: appdb }
  docs: { source: docs, rpo: 1h }
  broken: { source: broken, rpo: 1h }
services:
  website: { description: The public website, jobs: [docs] }
  billing: { description: Billing, jobs: [broken] }
runbooks:
  rb-api:
    title: API runbook
    scenario: other
    severity: low
    incident: false
    steps:
      - { type: manual, name: ack, instructions: "acknowledge it" }
      - { type: exec, name: done, command: "echo runbook-finished" }
server:
  restoreRoots: [./restores]
  statusPage: { title: ACME status }
`,
  );
  const db = new Database(path.join(tmp.dir, 'app.db'));
  db.exec('CREATE TABLE invoices (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)');
  const ins = db.prepare('INSERT INTO invoices (customer, amount) VALUES (?, ?)');
  for (let i = 0; i < 500; i++) ins.run(`customer-${i}`, i * 1.25);
  db.close();
  assert.equal((await cli(['run', 'appdb'])).code, 0);
  assert.equal((await cli(['run', 'docs'])).code, 0);
  assert.equal((await cli(['run', 'broken'])).code, 1);
  const add = await cli(['user', 'add', 'alice', '--role', 'operator'], ALICE_PW + '\n');
  assert.equal(add.code, 0, add.stderr);
  const pwFile = path.join(tmp.dir, 'bob.pw');
  writeFileSync(pwFile, BOB_PW + '\n');
  assert.equal((await cli(['user', 'add', 'bob', '--role', 'viewer', '--password-file', pwFile])).code, 0);
  const v = await cli(['token', 'create', 'ci-viewer', '--role', 'viewer']);
  assert.equal(v.code, 0, v.stderr);
  viewerToken = v.stdout.trim();
  const o = await cli(['token', 'create', 'ci-operator', '--role', 'operator']);
  operatorToken = o.stdout.trim();
  assert.match(viewerToken, /^lbt_[A-Za-z0-9_-]{40,}$/);
  srv = await startServer(loadConfig(cfgFile), { listen: '127.0.0.1:0' });
  base = srv.url;
});

after(async () => {
  await srv?.close();
  tmp?.cleanup();
});

describe('authentication and authorization', () => {
  test('everything but the status page, the login page and the API document needs authentication', async () => {
    for (const p of ['/api/v1/overview', '/api/v1/jobs', '/api/v1/session', '/api/v1/repositories', '/api/v1/tasks']) {
      const r = await call('GET', p);
      assert.equal(r.status, 401, p);
      assert.match(r.json.error, /authentication required/);
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const shell = await call('GET', '/');
    assert.equal(shell.status, 303);
    assert.equal(shell.headers.get('location'), '/login');
    assert.equal((await call('GET', '/login')).status, 200);
    assert.equal((await call('GET', '/status')).status, 200);
    assert.equal((await call('GET', '/status.json')).status, 200);
    assert.equal((await call('GET', '/api/v1/status')).status, 200);
    assert.equal((await call('GET', '/api/v1/openapi.json')).status, 200);
    // unauthenticated state-changing request
    assert.equal((await call('POST', '/api/v1/jobs/docs/run')).status, 401);
  });

  test('API tokens: valid viewer reads, viewer cannot operate, bad and revoked tokens are refused', async () => {
    const ok = await call('GET', '/api/v1/session', { token: viewerToken });
    assert.equal(ok.status, 200);
    assert.deepEqual([ok.json.user, ok.json.role, ok.json.kind], ['token:ci-viewer', 'viewer', 'token']);
    const denied = await call('POST', '/api/v1/jobs/docs/run', { token: viewerToken });
    assert.equal(denied.status, 403);
    assert.match(denied.json.error, /needs role operator/);
    assert.equal((await call('GET', '/api/v1/overview', { token: 'lbt_' + 'x'.repeat(43) })).status, 401);
    assert.equal((await call('GET', '/api/v1/overview', { headers: { authorization: 'Basic abc' } })).status, 401);
    // a token created and revoked with the CLI
    const t = (await cli(['token', 'create', 'temp', '--role', 'operator'])).stdout.trim();
    assert.equal((await call('GET', '/api/v1/overview', { token: t })).status, 200);
    const list = await cli(['--json', 'token', 'list']);
    const names = (JSON.parse(list.stdout) as Array<{ name: string; prefix: string }>).map((x) => x.name);
    assert.deepEqual(names.sort(), ['ci-operator', 'ci-viewer', 'temp']);
    assert.ok(!list.stdout.includes(t), 'token list never shows the token');
    assert.equal((await cli(['token', 'revoke', 'temp'])).code, 0);
    assert.equal((await call('GET', '/api/v1/overview', { token: t })).status, 401);
  });

  test('login sets an HttpOnly SameSite=Strict session cookie; CSRF token and same origin are required to change state; logout ends it', async () => {
    const bad = await call('POST', '/api/v1/login', { body: { user: 'alice', password: 'wrong-password' } });
    assert.equal(bad.status, 401);
    assert.equal(bad.headers.getSetCookie().length, 0);
    const s = await login('alice', ALICE_PW);
    assert.match(s.setCookie, /^lb_session=[A-Za-z0-9_-]{40,}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);
    const me = await call('GET', '/api/v1/session', { cookie: s.cookie });
    assert.deepEqual([me.json.user, me.json.role, me.json.csrfToken], ['alice', 'operator', s.csrf]);
    // without the CSRF header
    const noCsrf = await call('POST', '/api/v1/incidents', { cookie: s.cookie, body: { title: 'x', impact: 'minor' } });
    assert.equal(noCsrf.status, 403);
    assert.match(noCsrf.json.error, /X-CSRF-Token/);
    // wrong CSRF token
    assert.equal((await call('POST', '/api/v1/jobs/docs/run', { cookie: s.cookie, csrf: 'A'.repeat(s.csrf.length) })).status, 403);
    // cross-origin, even with the right token
    const cross = await call('POST', '/api/v1/jobs/docs/run', { cookie: s.cookie, csrf: s.csrf, headers: { origin: 'http://evil.example' } });
    assert.equal(cross.status, 403);
    assert.match(cross.json.error, /cross-origin/);
    assert.equal((await call('POST', '/api/v1/jobs/docs/run', { cookie: s.cookie, csrf: s.csrf, headers: { 'sec-fetch-site': 'cross-site' } })).status, 403);
    // a token from another origin: refused too
    assert.equal((await call('POST', '/api/v1/jobs/docs/run', { token: operatorToken, headers: { origin: 'http://evil.example' } })).status, 403);
    // same origin + token: accepted
    const run = await call('POST', '/api/v1/jobs/docs/run', { cookie: s.cookie, csrf: s.csrf, headers: { origin: base, 'sec-fetch-site': 'same-origin' } });
    assert.equal(run.status, 202, run.text);
    const done = await waitTask(run.json.id, viewerToken);
    assert.equal(done.status, 'success', JSON.stringify(done));
    assert.equal(done.actor, 'alice');
    const rec = await call('GET', `/api/v1/runs/${done.result.runId}`, { token: viewerToken });
    assert.equal(rec.json.status, 'success');
    assert.equal(rec.json.snapshotId, done.result.snapshotId);
    // logout
    const out = await call('POST', '/api/v1/logout', { cookie: s.cookie, csrf: s.csrf });
    assert.equal(out.status, 200);
    assert.match(out.headers.getSetCookie()[0]!, /Max-Age=0/);
    assert.equal((await call('GET', '/api/v1/session', { cookie: s.cookie })).status, 401);
  });

  test('viewer sessions can read but not operate', async () => {
    const s = await login('bob', BOB_PW);
    assert.equal((await call('GET', '/api/v1/overview', { cookie: s.cookie })).status, 200);
    const r = await call('POST', '/api/v1/maintenance-windows', { cookie: s.cookie, csrf: s.csrf, body: { title: 'x', start: '2030-01-01T00:00:00Z', end: '2030-01-01T01:00:00Z' } });
    assert.equal(r.status, 403);
  });

  test('the HTML login form logs in (303 + cookie) and refuses cross-origin posts', async () => {
    const form = new URLSearchParams({ user: 'alice', password: ALICE_PW, next: '/#/jobs' }).toString();
    const ok = await fetch(base + '/login', { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base }, body: form });
    assert.equal(ok.status, 303);
    assert.equal(ok.headers.get('location'), '/#/jobs');
    const cookie = ok.headers.getSetCookie()[0]!.split(';')[0]!;
    const shell = await call('GET', '/', { cookie });
    assert.equal(shell.status, 200);
    assert.match(shell.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    const evil = await fetch(base + '/login', { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' }, body: form });
    assert.equal(evil.status, 403);
    // open redirects are not followed
    const off = await fetch(base + '/login', { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ user: 'alice', password: ALICE_PW, next: '//evil.example/' }).toString() });
    assert.equal(off.headers.get('location'), '/');
  });

  test('failed logins are rate limited per client and user name', async () => {
    let last;
    for (let i = 0; i < 5; i++) {
      last = await call('POST', '/api/v1/login', { body: { user: 'mallory', password: `guess-${i}` } });
      assert.equal(last.status, 401);
    }
    last = await call('POST', '/api/v1/login', { body: { user: 'mallory', password: 'guess-5' } });
    assert.equal(last.status, 429);
    assert.ok(Number(last.headers.get('retry-after')) > 0);
    // another user name from the same client is not affected
    assert.equal((await call('POST', '/api/v1/login', { body: { user: 'alice', password: ALICE_PW } })).status, 200);
  });

  test('requests for a foreign Host are refused (DNS rebinding)', async () => {
    const http = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(base + '/status.json', { headers: { host: 'attacker.example' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 421);
  });

  test('passwords and tokens are stored only as hashes', async () => {
    const db = readFileSync(path.join(tmp.dir, '.lifeboat', 'catalog.db'));
    const wal = existsSync(path.join(tmp.dir, '.lifeboat', 'catalog.db-wal')) ? readFileSync(path.join(tmp.dir, '.lifeboat', 'catalog.db-wal')) : Buffer.alloc(0);
    for (const secret of [ALICE_PW, BOB_PW, viewerToken, operatorToken]) {
      assert.ok(!db.includes(secret) && !wal.includes(secret), 'a secret is stored in clear');
    }
    const h = await hashPassword('correct horse');
    assert.match(h, /^scrypt\$32768\$8\$1\$/);
    assert.equal(await verifyPassword('correct horse', h), true);
    assert.equal(await verifyPassword('correct horsf', h), false);
    assert.notEqual(await hashPassword('correct horse'), h, 'salted');
  });
});

describe('API routes', () => {
  test('docs/openapi.json is the served document, and every route of the server is documented', async () => {
    const served = (await call('GET', '/api/v1/openapi.json')).json;
    const committed = JSON.parse(await readFile(path.join(ROOT, 'docs', 'openapi.json'), 'utf8'));
    assert.deepEqual(served, committed, 'docs/openapi.json is stale: regenerate with `lifeboat serve --openapi > docs/openapi.json`');
    assert.equal(served.openapi, '3.1.0');
    const documented = new Set<string>();
    for (const [p, ops] of Object.entries(served.paths as Record<string, Record<string, unknown>>)) for (const m of Object.keys(ops)) documented.add(`${m.toUpperCase()} ${p}`);
    const implemented = new Set(srv.routes.map((r) => `${r.method} ${r.path}`));
    assert.deepEqual([...implemented].sort(), [...documented].sort());
    assert.ok(implemented.size >= 35);
  });

  test('every documented GET route answers 200 with a valid operator token', async () => {
    const doc = (await call('GET', '/api/v1/openapi.json')).json;
    // create the objects the parameterised routes need
    const inc = await call('POST', '/api/v1/incidents', { token: operatorToken, body: { title: 'Website slow', impact: 'minor', services: ['website'], message: 'looking into it' } });
    assert.equal(inc.status, 201, inc.text);
    const mw = await call('POST', '/api/v1/maintenance-windows', { token: operatorToken, body: { title: 'DB upgrade', services: ['billing'], start: '2031-01-01T22:00:00Z', end: '2031-01-01T23:00:00Z' } });
    assert.equal(mw.status, 201, mw.text);
    const run = await call('POST', '/api/v1/jobs/docs/run', { token: operatorToken });
    const task = await waitTask(run.json.id, operatorToken);
    const snaps = await call('GET', '/api/v1/repositories/local/snapshots', { token: viewerToken });
    const params: Record<string, string> = {
      name: 'docs',
      id: String(task.result.runId),
      repo: 'local',
      snapshot: snaps.json[0].id,
    };
    const byPath: Record<string, Record<string, string>> = {
      '/api/v1/tasks/{id}': { id: String(task.id) },
      '/api/v1/incidents/{id}': { id: String(inc.json.id) },
      '/api/v1/incidents/{id}/postmortem': { id: String(inc.json.id) },
    };
    // a drill of the files job
    const drill = await call('POST', '/api/v1/drills', { token: operatorToken, body: { job: 'docs' } });
    assert.equal(drill.status, 202, drill.text);
    const drillTask = await waitTask(drill.json.id, operatorToken);
    assert.equal(drillTask.status, 'success', JSON.stringify(drillTask));
    assert.ok(drillTask.result.drillId > 0);
    // a runbook run with a manual step, confirmed through the API
    const rb = await call('POST', '/api/v1/runbooks/rb-api/runs', { token: operatorToken });
    assert.equal(rb.status, 202, rb.text);
    const runId = rb.json.runId as number;
    assert.ok(runId > 0);
    let rr;
    do {
      rr = (await call('GET', `/api/v1/runbook-runs/${runId}`, { token: viewerToken })).json;
    } while (rr.steps[0].status !== 'waiting' && (await new Promise((r) => setTimeout(r, 50)), true));
    assert.equal(rr.status, 'waiting');
    assert.equal((await call('POST', `/api/v1/runbook-runs/${runId}/steps/1/confirm`, { token: viewerToken, body: {} })).status, 403);
    assert.equal((await call('POST', `/api/v1/runbook-runs/${runId}/steps/2/confirm`, { token: operatorToken, body: {} })).status, 409);
    const conf = await call('POST', `/api/v1/runbook-runs/${runId}/steps/1/confirm`, { token: operatorToken, body: { ok: true, note: 'checked' } });
    assert.equal(conf.status, 200, conf.text);
    const rbTask = await waitTask(rb.json.task.id, operatorToken);
    assert.equal(rbTask.status, 'success', JSON.stringify(rbTask));
    rr = (await call('GET', `/api/v1/runbook-runs/${runId}`, { token: viewerToken })).json;
    assert.equal(rr.status, 'success');
    assert.equal(rr.steps[0].confirmedBy, 'token:ci-operator');
    assert.match(rr.steps[1].output, /runbook-finished/);
    byPath['/api/v1/drills/{id}'] = { id: String(drillTask.result.drillId) };
    byPath['/api/v1/runbook-runs/{id}'] = { id: String(runId) };
    byPath['/api/v1/runbooks/{name}/plan'] = { name: 'rb-api' };
    byPath['/api/v1/sources/{source}/restore-target'] = { source: 'appdb' };
    // routes with a required query
    const { readdir: listDir } = await import('node:fs/promises');
    const aFile = (await listDir(path.join(tmp.dir, 'data'), { withFileTypes: true })).find((e) => e.isFile())!.name;
    const queries: Record<string, string> = {
      '/api/v1/repositories/{repo}/snapshots/{snapshot}/search': '?q=a',
      '/api/v1/repositories/{repo}/snapshots/{snapshot}/file': `?path=${encodeURIComponent(path.join(tmp.dir, 'data', aFile))}`,
      '/api/v1/repositories/{repo}/diff': `?from=${params.snapshot}&to=${params.snapshot}`,
    };
    // a fleet agent (registered as a daemon would) and a run request for it, through the API
    await new FleetStore(srv.catalog, { timeoutMs: 5000, missedAfter: 3 }).register({
      id: 'api-agent',
      hostname: 'api-host',
      version: '0.1.0',
      instance: 'server-api-test',
      pid: 1,
      heartbeatMs: 60_000,
      jobs: [{ name: 'docs', source: 'docs', sourceKind: 'files', schedule: null, repository: 'local', drillSchedule: null, services: [] }],
    });
    assert.equal((await call('POST', '/api/v1/fleet/agents/api-agent/requests', { token: viewerToken, body: { kind: 'job', name: 'docs' } })).status, 403);
    assert.equal((await call('POST', '/api/v1/fleet/agents/api-agent/requests', { token: operatorToken, body: { kind: 'job', name: 'nope' } })).status, 400);
    const fr = await call('POST', '/api/v1/fleet/agents/api-agent/requests', { token: operatorToken, body: { kind: 'drill', name: 'docs' } });
    assert.equal(fr.status, 202, fr.text);
    assert.equal(fr.json.status, 'pending');
    assert.equal(fr.json.requestedBy, 'token:ci-operator');
    byPath['/api/v1/fleet/requests/{id}'] = { id: String(fr.json.id) };
    let checked = 0;
    for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      if (!ops.get) continue;
      const url = p.replace(/\{([A-Za-z]+)\}/g, (_, k: string) => encodeURIComponent(byPath[p]?.[k] ?? params[k]!)) + (queries[p] ?? '');
      const r = await call('GET', url, { token: operatorToken });
      assert.equal(r.status, 200, `${url}: ${r.text.slice(0, 300)}`);
      checked++;
    }
    assert.ok(checked >= 20);
    const ov = (await call('GET', '/api/v1/overview', { token: viewerToken })).json;
    const docsJob = ov.jobs.find((j: { job: string }) => j.job === 'docs');
    assert.equal(docsJob.lastDrill.id, drillTask.result.drillId);
    assert.equal(docsJob.lastDrill.status, 'success');
    // unknown ids are 404, not 500
    for (const p of ['/api/v1/runs/999999', '/api/v1/tasks/999999', '/api/v1/incidents/999999', '/api/v1/drills/999999', '/api/v1/repositories/nope/snapshots']) {
      assert.equal((await call('GET', p, { token: viewerToken })).status, 404, p);
    }
    assert.equal((await call('DELETE', '/api/v1/overview', { token: viewerToken })).status, 405);
    assert.equal((await call('GET', '/api/v1/nope', { token: viewerToken })).status, 404);
    // invalid input is 400 with the reason
    const badQ = await call('GET', '/api/v1/jobs/docs/runs?limit=abc', { token: viewerToken });
    assert.equal(badQ.status, 400);
    assert.match(badQ.json.error, /limit/);
    const badB = await call('POST', '/api/v1/incidents', { token: operatorToken, body: { title: 'x', impact: 'huge', extra: 1 } });
    assert.equal(badB.status, 400);
    assert.match(badB.json.error, /impact|extra/);
  });

  test('overview: the failing job is red with its alert, the good job is not', async () => {
    const o = (await call('GET', '/api/v1/overview', { token: viewerToken })).json;
    const broken = o.jobs.find((j: { job: string }) => j.job === 'broken');
    const docs = o.jobs.find((j: { job: string }) => j.job === 'docs');
    assert.equal(broken.light, 'red');
    assert.equal(broken.lastRun.status, 'failed');
    assert.match(broken.lastRun.error, /no-such-directory/);
    assert.equal(broken.lastBackup, null);
    assert.equal(broken.rpoStatus, 'critical');
    assert.notEqual(docs.light, 'red');
    assert.equal(docs.rpoStatus, 'ok');
    assert.equal(docs.lastBackup.status, 'success');
    assert.ok(docs.history.length >= 1);
    assert.equal(docs.threeTwoOne.ok, false, 'one local repository does not meet 3-2-1');
    assert.equal(o.light, 'red');
    assert.ok(o.alerts.some((a: { job: string; severity: string }) => a.job === 'broken' && a.severity === 'critical'));
    const alerts = (await call('GET', '/api/v1/alerts', { token: viewerToken })).json;
    assert.ok(alerts.findings.some((a: { job: string }) => a.job === 'broken'));
  });

  test('restore through the API reproduces the files byte for byte (and needs an explicit confirmation)', async () => {
    const snaps = (await call('GET', '/api/v1/repositories/local/snapshots?source=docs', { token: viewerToken })).json;
    const snap = snaps[0];
    const dataPath = path.join(tmp.dir, 'data');
    assert.deepEqual(snap.paths, [dataPath]);
    // browse to the data directory
    const tree = await call('GET', `/api/v1/repositories/local/snapshots/${snap.shortId}/tree?path=${encodeURIComponent(dataPath)}`, { token: viewerToken });
    assert.equal(tree.status, 200, tree.text);
    const names = tree.json.entries.map((e: { name: string }) => e.name).sort();
    const { readdir } = await import('node:fs/promises');
    assert.deepEqual(names, (await readdir(dataPath)).sort());
    const target = path.join(tmp.dir, 'restores', 'r1');
    const req = { type: 'files', repository: 'local', snapshot: snap.id, path: dataPath, target };
    // no or wrong confirmation
    assert.equal((await call('POST', '/api/v1/restore', { token: operatorToken, body: req })).status, 400);
    const wrong = await call('POST', '/api/v1/restore', { token: operatorToken, body: { ...req, confirm: target + '/x' } });
    assert.equal(wrong.status, 400);
    assert.match(wrong.json.error, /confirm/);
    // viewer may not restore
    assert.equal((await call('POST', '/api/v1/restore', { token: viewerToken, body: { ...req, confirm: target } })).status, 403);
    // outside the allowed roots
    const outside = await call('POST', '/api/v1/restore', { token: operatorToken, body: { ...req, target: path.join(tmp.dir, 'elsewhere'), confirm: path.join(tmp.dir, 'elsewhere') } });
    assert.equal(outside.status, 400);
    assert.match(outside.json.error, /restore roots/);
    // a symbolic link inside the root that leads outside it is refused too
    await mkdir(path.join(tmp.dir, 'elsewhere-dir'), { recursive: true });
    await symlink(path.join(tmp.dir, 'elsewhere-dir'), path.join(tmp.dir, 'restores', 'escape'));
    const viaLink = path.join(tmp.dir, 'restores', 'escape', 'r9');
    const linked = await call('POST', '/api/v1/restore', { token: operatorToken, body: { ...req, target: viaLink, confirm: viaLink } });
    assert.equal(linked.status, 400);
    assert.match(linked.json.error, /symbolic link/);
    const r = await call('POST', '/api/v1/restore', { token: operatorToken, body: { ...req, confirm: target } });
    assert.equal(r.status, 202, r.text);
    const done = await waitTask(r.json.id, operatorToken);
    assert.equal(done.status, 'success', JSON.stringify(done));
    assert.equal(done.result.errors.length, 0);
    assert.equal(done.result.verified, done.result.files);
    assert.deepEqual(await describeTree(target), await describeTree(dataPath));
    // a second restore into the same, now non-empty, directory is refused before a task starts, naming the dialog's checkbox
    const again = await call('POST', '/api/v1/restore', { token: operatorToken, body: { ...req, confirm: target } });
    assert.equal(again.status, 409, again.text);
    assert.match(again.json.error, /not empty.*tick "Overwrite existing files"/);
    assert.equal(again.json.field, 'overwrite');
    // the dialog's preflight says the same without starting anything, and accepts the target with overwrite
    const pre = await call('POST', '/api/v1/restore/check', { token: operatorToken, body: req });
    assert.equal(pre.status, 409);
    const preOk = await call('POST', '/api/v1/restore/check', { token: operatorToken, body: { ...req, overwrite: true } });
    assert.equal(preOk.status, 200, preOk.text);
    assert.equal(preOk.json.exists, true);
    assert.ok(preOk.json.entries > 0);
    const fresh = await call('POST', '/api/v1/restore/check', { token: operatorToken, body: { ...req, target: path.join(tmp.dir, 'restores', 'not-yet') } });
    assert.deepEqual(fresh.json, { target: path.join(tmp.dir, 'restores', 'not-yet'), exists: false, entries: 0 });
    assert.equal((await call('POST', '/api/v1/restore/check', { token: viewerToken, body: req })).status, 403);
    // a single sub-directory
    const sub = tree.json.entries.find((e: { type: string }) => e.type === 'dir');
    if (sub) {
      const t2 = path.join(tmp.dir, 'restores', 'r2');
      const r2 = await call('POST', '/api/v1/restore', { token: operatorToken, body: { ...req, path: sub.path, target: t2, confirm: t2 } });
      assert.equal((await waitTask(r2.json.id, operatorToken)).status, 'success');
      assert.deepEqual(await describeTree(t2), await describeTree(path.join(dataPath, sub.name)));
    }
  });

  test('database restore requests are validated before anything runs', async () => {
    const r = await call('POST', '/api/v1/restore', { token: operatorToken, body: { type: 'database', source: 'docs', confirm: 'docs' } });
    assert.equal(r.status, 400);
    assert.match(r.json.error, /files source/);
    assert.equal((await call('POST', '/api/v1/restore', { token: operatorToken, body: { type: 'database', source: 'nope', confirm: 'nope' } })).status, 404);
    const pw = await call('POST', '/api/v1/restore', { token: operatorToken, body: { type: 'database', source: 'appdb', toDatabase: 'postgres://u:secret@h/db', confirm: 'postgres://u:secret@h/db' } });
    assert.equal(pw.status, 400);
    assert.match(pw.json.error, /password/);
    const outside = path.join(tmp.dir, 'elsewhere.db');
    assert.equal((await call('POST', '/api/v1/restore', { token: operatorToken, body: { type: 'database', source: 'appdb', toDatabase: outside, confirm: outside } })).status, 400);
  });

  test('a database source restores into a new database through the API (SQLite), identical rows', async () => {
    const target = path.join(tmp.dir, 'restores', 'app-restored.db');
    const r = await call('POST', '/api/v1/restore', { token: operatorToken, body: { type: 'database', source: 'appdb', snapshot: 'latest', toDatabase: target, confirm: target } });
    assert.equal(r.status, 202, r.text);
    const done = await waitTask(r.json.id, operatorToken);
    assert.equal(done.status, 'success', JSON.stringify(done));
    const rows = (file: string) => {
      const d = new Database(file, { readonly: true });
      try {
        return d.prepare('SELECT * FROM invoices ORDER BY id').all();
      } finally {
        d.close();
      }
    };
    assert.deepEqual(rows(target), rows(path.join(tmp.dir, 'app.db')));
    assert.equal(rows(target).length, 500);
  });
});

describe('the CLI as an API client (lifeboat api)', () => {
  test('GET with a token file, POST with a body, role and authentication errors as exit codes', async () => {
    const tf = path.join(tmp.dir, 'viewer.token');
    writeFileSync(tf, viewerToken + '\n', { mode: 0o600 });
    const of = path.join(tmp.dir, 'operator.token');
    writeFileSync(of, operatorToken + '\n', { mode: 0o600 });
    const jobs = await runCli(['api', 'GET', '/api/v1/jobs', '--server', base, '--token-file', tf], { env: ENV });
    assert.equal(jobs.code, 0, jobs.stderr);
    const list = JSON.parse(jobs.stdout) as unknown;
    assert.ok(JSON.stringify(list).includes('"broken"'), 'the jobs of the config are listed');
    // the prefix may be left out; the token may come from the environment
    const ov = await runCli(['api', 'get', 'overview', '--server', base], { env: { ...ENV, LIFEBOAT_TOKEN: viewerToken } });
    assert.equal(ov.code, 0, ov.stderr);
    assert.ok(JSON.parse(ov.stdout));
    // no token: 401 -> exit 2; viewer on an operator route: 403 -> exit 2
    const anon = await runCli(['api', 'GET', '/api/v1/jobs', '--server', base], { env: ENV });
    assert.equal(anon.code, 2);
    assert.match(anon.stderr, /HTTP 401/);
    const body = JSON.stringify({ title: 'Opened from the CLI', impact: 'minor', services: ['website'], message: 'looking into it' });
    const forbidden = await runCli(['api', 'POST', '/api/v1/incidents', '--server', base, '--token-file', tf, '--data', body], { env: ENV });
    assert.equal(forbidden.code, 2);
    assert.match(forbidden.stderr, /HTTP 403/);
    const created = await runCli(['api', 'POST', '/api/v1/incidents', '--server', base, '--token-file', of, '--data', body], { env: ENV });
    assert.equal(created.code, 0, created.stderr);
    const inc = JSON.parse(created.stdout) as { id: number; title: string };
    assert.equal(inc.title, 'Opened from the CLI');
    const resolved = await runCli(['api', 'POST', `/api/v1/incidents/${inc.id}/resolve`, '--server', base, '--token-file', of, '--data', '{"message":"fixed"}'], { env: ENV });
    assert.equal(resolved.code, 0, resolved.stderr);
    assert.equal((JSON.parse(resolved.stdout) as { status: string }).status, 'resolved');
    const bad = await runCli(['api', 'POST', '/api/v1/incidents', '--server', base, '--token-file', of, '--data', '{not json'], { env: ENV });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /not valid JSON/);
    const down = await runCli(['api', 'GET', '/api/v1/jobs', '--server', 'http://127.0.0.1:9', '--token-file', tf], { env: ENV });
    assert.equal(down.code, 1);
    assert.match(down.stderr, /cannot reach/);
  });
});

describe('status page and maintenance windows', () => {
  test('components follow job health and incidents; maintenance windows via API and CLI; static export', async () => {
    let st = (await call('GET', '/status.json')).json;
    const comp = (n: string) => st.components.find((c: { name: string }) => c.name === n);
    assert.equal(comp('billing').state, 'degraded', 'its job is failing');
    assert.ok(['operational', 'degraded'].includes(comp('website').state));
    assert.ok(!JSON.stringify(st).includes('no-such-directory'), 'no internal error text on the public page');
    assert.ok(!JSON.stringify(st).includes(tmp.dir), 'no paths on the public page');
    // a critical incident on the website: outage
    const inc = await call('POST', '/api/v1/incidents', { token: operatorToken, body: { title: 'Website down', impact: 'critical', services: ['website'], message: 'We are investigating.' } });
    assert.equal(inc.status, 201, inc.text);
    const upd = await call('POST', `/api/v1/incidents/${inc.json.id}/updates`, { token: operatorToken, body: { status: 'identified', message: 'Cause found.' } });
    assert.equal(upd.status, 200, upd.text);
    const internal = await call('POST', `/api/v1/incidents/${inc.json.id}/updates`, { token: operatorToken, body: { message: 'internal note xyz', public: false } });
    assert.equal(internal.status, 200);
    st = (await call('GET', '/status.json')).json;
    assert.equal(st.state, 'outage');
    assert.equal(comp('website').state, 'outage');
    const open = st.incidents.find((i: { id: number }) => i.id === inc.json.id);
    assert.ok(open);
    assert.deepEqual(open.updates.map((u: { message: string }) => u.message).filter((m: string) => m !== 'We are investigating.'), ['Cause found.']);
    assert.ok(!JSON.stringify(st).includes('internal note xyz'));
    const html = (await call('GET', '/status')).text;
    assert.match(html, /Website down/);
    assert.match(html, /data-state="outage"/);
    // resolve: into the history
    const res = await call('POST', `/api/v1/incidents/${inc.json.id}/resolve`, { token: operatorToken, body: { message: 'Fixed.' } });
    assert.equal(res.status, 200, res.text);
    const pm = await call('PUT', `/api/v1/incidents/${inc.json.id}/postmortem`, { token: operatorToken, body: { rootCause: 'disk full', actionItems: ['alert on disk'] } });
    assert.equal(pm.status, 200, pm.text);
    const md = await call('GET', `/api/v1/incidents/${inc.json.id}/postmortem`, { token: viewerToken });
    assert.match(md.text, /disk full/);
    st = (await call('GET', '/status.json')).json;
    assert.ok(!st.incidents.some((i: { id: number }) => i.id === inc.json.id));
    assert.ok(st.history.some((i: { id: number }) => i.id === inc.json.id));

    // maintenance windows: API (in progress now) and CLI
    const now = Date.now();
    const w = await call('POST', '/api/v1/maintenance-windows', { token: operatorToken, body: { title: 'Billing DB upgrade', services: ['billing'], start: new Date(now - 60_000).toISOString(), end: new Date(now + 3_600_000).toISOString() } });
    assert.equal(w.status, 201, w.text);
    assert.equal(w.json.state, 'in-progress');
    assert.equal((await call('POST', '/api/v1/maintenance-windows', { token: operatorToken, body: { title: 'x', services: ['nope'], start: '2031-01-01T00:00:00Z', end: '2031-01-01T01:00:00Z' } })).status, 400);
    assert.equal((await call('POST', '/api/v1/maintenance-windows', { token: operatorToken, body: { title: 'x', start: '2031-01-01T02:00:00Z', end: '2031-01-01T01:00:00Z' } })).status, 400);
    st = (await call('GET', '/status.json')).json;
    assert.ok(st.maintenance.some((m: { title: string }) => m.title === 'Billing DB upgrade'));
    assert.match(comp('billing').reasons.join(' '), /maintenance: Billing DB upgrade/);
    const added = await cli(['--json', 'maintenance-window', 'add', '--title', 'Website migration', '--start', '2032-03-01T20:00:00Z', '--end', '2032-03-01T22:00:00Z', '--services', 'website']);
    assert.equal(added.code, 0, added.stderr);
    const addedId = JSON.parse(added.stdout).id as number;
    const listed = JSON.parse((await cli(['--json', 'maintenance-window', 'list'])).stdout) as Array<{ id: number; state: string }>;
    assert.ok(listed.some((x) => x.id === addedId && x.state === 'scheduled'));
    assert.equal((await cli(['maintenance-window', 'add', '--title', 'x', '--start', '2032-01-01T00:00:00Z', '--end', '2032-01-01T01:00:00Z', '--services', 'nope'])).code, 2);
    assert.equal((await cli(['maintenance-window', 'cancel', String(addedId)])).code, 0);
    const c2 = await call('POST', `/api/v1/maintenance-windows/${w.json.id}/cancel`, { token: operatorToken });
    assert.equal(c2.status, 200);
    assert.equal(c2.json.state, 'cancelled');
    assert.equal((await call('POST', `/api/v1/maintenance-windows/${w.json.id}/cancel`, { token: operatorToken })).status, 409);
    st = (await call('GET', '/status.json')).json;
    assert.ok(!st.maintenance.some((m: { id: number }) => m.id === w.json.id || m.id === addedId));

    // static export
    const out = path.join(tmp.dir, 'status-export');
    const ex = await cli(['status-page', 'export', '--out', out]);
    assert.equal(ex.code, 0, ex.stderr);
    const page = await readFile(path.join(out, 'index.html'), 'utf8');
    assert.match(page, /<title>ACME status<\/title>/);
    assert.match(page, /data-component="billing" data-state="degraded"/);
    const json = JSON.parse(await readFile(path.join(out, 'status.json'), 'utf8'));
    assert.equal(json.title, 'ACME status');
    assert.ok(json.history.some((i: { title: string }) => i.title === 'Website down'));
  });
});

describe('background tasks', () => {
  test('a task left running by a dead server process is marked interrupted; live ones are kept', async () => {
    const c = await openCatalog(':memory:');
    try {
      const reg = new TaskRegistry(c);
      await reg.init();
      const { hostname } = await import('node:os');
      const { spawnSync } = await import('node:child_process');
      const deadPid = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
      const s = c.sql;
      const ins = (pid: number, host: string) =>
        s.insertId(`INSERT INTO ${s.t('server_tasks')} (kind, title, status, actor, params, started_at, host, pid) VALUES ('restore', 't', 'running', 'a', '{}', ?, ?, ?)`, [new Date(), host, pid]);
      const dead = await ins(Number(deadPid), hostname());
      const alive = await ins(process.pid, hostname());
      const other = await ins(1, 'some-other-host');
      await new TaskRegistry(c).init();
      const fresh = new TaskRegistry(c);
      assert.equal((await fresh.get(dead))!.status, 'interrupted');
      assert.equal((await fresh.get(alive))!.status, 'running');
      assert.equal((await fresh.get(other))!.status, 'running');
      // a task that throws is failed with its message; the log and result are recorded
      const t = await fresh.start('drill', 'x', 'tester', { job: 'j' }, async ({ log }) => {
        log('step one');
        throw new Error('boom password=hunter2');
      });
      while ((await fresh.get(t.id))!.status === 'running') await new Promise((r) => setTimeout(r, 20));
      const done = (await fresh.get(t.id))!;
      assert.equal(done.status, 'failed');
      assert.match(done.error!, /boom/);
      assert.ok(!done.error!.includes('hunter2'), 'redacted');
      assert.match(done.log.join('\n'), /step one/);
    } finally {
      await c.close();
    }
  });

  test('the idle hook runs once the last running task has ended (after its outcome is recorded), not while one runs or the registry closes', async () => {
    const c = await openCatalog(':memory:');
    try {
      const seen: string[] = [];
      const reg = new TaskRegistry(c, {
        idle: () => {
          seen.push(`idle (running: ${[...(['a', 'b'] as const)].filter((k) => gates[k].open === false).join(',') || 'none'})`);
          throw new Error('an idle hook that fails is logged, not fatal');
        },
        log: (m) => seen.push(m),
      });
      const gate = () => {
        const g: { open: boolean; release: () => void; done: Promise<void> } = { open: false, release: () => {}, done: Promise.resolve() };
        g.done = new Promise<void>((r) => (g.release = () => ((g.open = true), r())));
        return g;
      };
      const gates = { a: gate(), b: gate() };
      const a = await reg.start('job-run', 'a', 'tester', { job: 'a' }, async () => gates.a.done);
      const b = await reg.start('restore', 'b', 'tester', { job: 'b' }, async () => gates.b.done);
      const settled = async (id: number) => {
        while ((await reg.get(id))!.status === 'running') await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, 20));
      };
      gates.a.release();
      await settled(a.id);
      assert.equal(seen.join('; '), '', 'task b still runs: no idle hook');
      gates.b.release();
      await settled(b.id);
      assert.deepEqual(seen, ['idle (running: none)', 'tasks: idle hook: an idle hook that fails is logged, not fatal']);
      // a task that fails ends the busy time too
      const f = await reg.start('drill', 'f', 'tester', {}, async () => {
        throw new Error('boom');
      });
      await settled(f.id);
      assert.equal(seen.filter((s) => s.startsWith('idle')).length, 2);
      // closing: a task aborted by close() does not call the hook
      const slow = await reg.start('drill', 's', 'tester', {}, ({ signal }) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(new Error('aborted')))));
      await reg.close(10);
      await settled(slow.id);
      assert.equal((await reg.get(slow.id))!.status, 'interrupted');
      assert.equal(seen.filter((s) => s.startsWith('idle')).length, 2, 'no idle hook while closing');
    } finally {
      await c.close();
    }
  });
});

describe('server stores on PostgreSQL', () => {
  test('users, tokens, sessions and maintenance windows work on a PostgreSQL catalog', async () => {
    const schema = `lb_srv_${randomBytes(4).toString('hex')}`;
    const c = (await openCatalog(`postgres://postgres@127.0.0.1:5432/test?schema=${schema}`)) as PostgresCatalog;
    try {
      const auth = new AuthStore(c);
      const u = await auth.addUser('carol', 'operator', 'carol-password');
      assert.equal(u.role, 'operator');
      await assert.rejects(auth.addUser('carol', 'viewer', 'another-pass'), /exists/);
      await assert.rejects(auth.addUser('dave', 'admin', 'another-pass'), /unknown role/);
      assert.equal(await auth.checkPassword('carol', 'nope-nope'), undefined);
      assert.equal((await auth.checkPassword('carol', 'carol-password'))?.name, 'carol');
      const s = await auth.createSession(u, 60_000);
      assert.equal((await auth.session(s.id))?.csrf, s.csrf);
      const t = await auth.createToken('deploy', 'viewer');
      assert.equal((await auth.checkToken(t.token))?.role, 'viewer');
      assert.equal(await auth.revokeToken('deploy'), true);
      assert.equal(await auth.checkToken(t.token), undefined);
      const m = new MaintenanceStore(c);
      const w = await m.add({ title: 'pg window', services: [], startsAt: new Date(Date.now() + 60_000), endsAt: new Date(Date.now() + 120_000) });
      assert.equal(w.state, 'scheduled');
      assert.equal((await m.list({ current: true })).length, 1);
      assert.equal((await m.cancel(w.id)).state, 'cancelled');
      await auth.removeUser('carol');
      assert.equal(await auth.session(s.id), undefined);
    } finally {
      await c.dropSchema();
      await c.close();
    }
  });
});

void writeFile;
