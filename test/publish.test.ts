import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { testOnBothCatalogs } from './helpers/catalogs.js';
import { runCli, tmpDir } from './helpers/tmp.js';
import { loadConfig } from '../src/config/load.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { INCIDENT_MIGRATIONS, IncidentStore } from '../src/ops/incidents.js';
import { startServer, type RunningServer } from '../src/server/server.js';

/**
 * The public status page shows only what an operator chose to publish:
 * a runbook run (even one whose http-check step fails) leaves /status,
 * /status.json and the static export unchanged; publishing with a message
 * shows exactly that message; unpublishing removes it; a published runbook
 * incident is resolved when the run succeeds (no stale outage); the
 * visibility migration keeps hand-opened incidents public and makes
 * runbook-opened ones private.
 */

const ENV = { LIFEBOAT_PASSWORD: undefined };
const ACTOR = `mallory-${randomBytes(3).toString('hex')}@ops-host-${randomBytes(2).toString('hex')}`;
const PUBLIC_MSG = `We are restoring some files from backup (${randomBytes(3).toString('hex')}).`;

let tmp: { dir: string; cleanup: () => void };
let cfgFile: string;
let srv: RunningServer;
let deadPort: number;
let operatorToken: string;

async function cli(args: string[], env: Record<string, string | undefined> = {}) {
  return runCli(['-c', cfgFile, ...args], { env: { ...ENV, ...env } });
}

/** A local port nobody listens on (connections are refused). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

/** What the public sees: /status, /status.json and a fresh static export (bytes), with the generation time masked. */
async function publicView(tag: string): Promise<{ html: string; json: string; exportHtml: string; exportJson: string; model: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const html = await (await fetch(srv.url + '/status')).text();
  const json = await (await fetch(srv.url + '/status.json')).text();
  const out = path.join(tmp.dir, `export-${tag}`);
  const r = await cli(['status-page', 'export', '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  const exportHtml = readFileSync(path.join(out, 'index.html'), 'utf8');
  const exportJson = readFileSync(path.join(out, 'status.json'), 'utf8');
  const mask = (s: string) => s.replace(/\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?Z)?( UTC)?/g, 'TIME');
  return { html: mask(html), json: mask(json), exportHtml: mask(exportHtml), exportJson: mask(exportJson), model: JSON.parse(mask(json)) };
}

function assertAbsent(view: { html: string; json: string; exportHtml: string; exportJson: string }, needles: string[]): void {
  for (const [where, text] of Object.entries(view)) {
    if (typeof text !== 'string') continue;
    for (const n of needles) assert.ok(!text.includes(n), `${where} must not contain "${n}"`);
  }
}

async function incidentsJson(): Promise<any[]> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const r = await cli(['--json', 'incident', 'list']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

before(async () => {
  tmp = tmpDir('lb-publish-');
  deadPort = await freePort();
  cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
  writeFileSync(
    cfgFile,
    `daemon: {}
repositories:
  local: { location: ./repo, autoInit: true, password: { env: NO_SUCH_PW_VAR } }
services:
  website: { description: Public website }
runbooks:
  accidental-deletion:
    title: Recover deleted files
    scenario: accidental-deletion
    severity: high
    services: [website]
    steps:
      - { type: exec, name: prepare, command: "echo preparing" }
      - { type: http-check, name: probe, url: "http://127.0.0.1:${deadPort}/health", timeout: 5s }
  announced-restore:
    title: Internal restore procedure
    scenario: other
    severity: critical
    services: [website]
    incident:
      publish: true
      impact: minor
      publicTitle: Website maintenance
      publicMessage: "${PUBLIC_MSG}"
    steps:
      - { type: exec, name: work, command: "echo working" }
server:
  statusPage: { title: Example status, refreshSeconds: 0 }
`,
  );
  srv = await startServer(loadConfig(cfgFile), { listen: '127.0.0.1:0' });
  const o = await cli(['token', 'create', 'ci-operator', '--role', 'operator']);
  assert.equal(o.code, 0, o.stderr);
  operatorToken = o.stdout.trim();
});

after(async () => {
  await srv?.close();
  tmp?.cleanup();
});

test('a runbook run with a failing http-check step changes nothing on the public page; publish shows exactly the message; unpublish removes it', async () => {
  const baseline = await publicView('before');
  assert.equal(baseline.model.state, 'operational');

  const run = await cli(['runbook', 'run', 'accidental-deletion'], { LIFEBOAT_ACTOR: ACTOR });
  assert.notEqual(run.code, 0, 'the http-check step fails');
  const [inc] = await incidentsJson();
  assert.equal(inc.visibility, 'private');
  // the internal record has it all (so the absence below is not vacuous)
  const timeline = JSON.stringify(inc.timeline);
  for (const n of ['accidental-deletion', ACTOR, 'ECONNREFUSED', `127.0.0.1:${deadPort}`]) assert.ok(timeline.includes(n), `timeline has ${n}`);

  const afterRun = await publicView('after-run');
  assert.deepEqual(afterRun, baseline, 'public page unchanged by a runbook run');
  const secret = ['accidental-deletion', ACTOR, 'mallory', 'ECONNREFUSED', `127.0.0.1:${deadPort}`, 'Recover deleted files'];
  assertAbsent(afterRun, secret);

  // dry run: shows the preview, changes nothing
  const dry = await cli(['incident', 'publish', String(inc.id), '--message', PUBLIC_MSG, '--dry-run']);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stderr + dry.stdout, new RegExp(PUBLIC_MSG.replace(/[().]/g, '\\$&')));
  assert.deepEqual(await publicView('after-dry'), baseline);

  const pub = await cli(['incident', 'publish', String(inc.id), '--message', PUBLIC_MSG, '--title', 'Some files unavailable'], { LIFEBOAT_ACTOR: ACTOR });
  assert.equal(pub.code, 0, pub.stderr);
  const published = await publicView('published');
  assert.equal(published.model.state, 'outage', 'major impact on the website');
  assert.equal(published.model.incidents.length, 1);
  const p = published.model.incidents[0];
  assert.equal(p.title, 'Some files unavailable');
  assert.deepEqual(
    p.updates.map((u: { message: string }) => u.message),
    [PUBLIC_MSG],
    'exactly the operator message',
  );
  assert.ok(published.html.includes(PUBLIC_MSG) && published.exportHtml.includes(PUBLIC_MSG) && published.exportJson.includes(PUBLIC_MSG));
  assertAbsent(published, secret);

  const un = await cli(['incident', 'unpublish', String(inc.id)]);
  assert.equal(un.code, 0, un.stderr);
  const unpublished = await publicView('unpublished');
  assert.deepEqual(unpublished, baseline, 'back to what it was');
  assertAbsent(unpublished, [PUBLIC_MSG, 'Some files unavailable']);
  // errors: unknown incident, empty message
  assert.equal((await cli(['incident', 'publish', '99999'])).code, 2);
  assert.equal((await cli(['incident', 'publish', String(inc.id), '--message', '  '])).code, 2);
});

test('API: preview shows exactly what publish then shows; publish and unpublish need an operator', async () => {
  const [inc] = await incidentsJson();
  const call = async (p: string, body?: unknown) => {
    const res = await fetch(srv.url + p, { method: 'POST', headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body ?? {}) });
    return { status: res.status, json: (await res.json()) as any }; // eslint-disable-line @typescript-eslint/no-explicit-any
  };
  const prev = await call(`/api/v1/incidents/${inc.id}/publish-preview`, { message: 'Preview text only', title: 'Public headline' });
  assert.equal(prev.status, 200);
  assert.equal(prev.json.visibility, 'private');
  assert.equal(prev.json.incident.title, 'Public headline');
  assert.deepEqual(prev.json.incident.updates.map((u: { message: string }) => u.message), [PUBLIC_MSG, 'Preview text only']);
  assert.ok(prev.json.html.includes('Preview text only') && !prev.json.html.includes(ACTOR) && !prev.json.html.includes('ECONNREFUSED'));
  assert.equal((await fetch(srv.url + '/status.json').then((r) => r.json())).incidents.length, 0, 'a preview publishes nothing');
  assert.equal((await fetch(srv.url + `/api/v1/incidents/${inc.id}/publish`, { method: 'POST' })).status, 401);
  const done = await call(`/api/v1/incidents/${inc.id}/publish`, { message: 'Preview text only', title: 'Public headline' });
  assert.equal(done.status, 200);
  const st = await fetch(srv.url + '/status.json').then((r) => r.json());
  const { generatedAt: _g, ...shown } = st.incidents[0];
  void _g;
  assert.deepEqual(st.incidents[0].updates.map((u: { message: string }) => u.message), prev.json.incident.updates.map((u: { message: string }) => u.message));
  assert.equal(shown.title, prev.json.incident.title);
  assert.equal((await call(`/api/v1/incidents/${inc.id}/unpublish`)).status, 200);
  assert.equal((await fetch(srv.url + '/status.json').then((r) => r.json())).incidents.length, 0);
  assert.equal((await call('/api/v1/incidents/424242/publish', {})).status, 404);
});

test('a runbook that publishes shows only its publicTitle and publicMessage, and success resolves it (no stale outage)', async () => {
  const run = await cli(['runbook', 'run', 'announced-restore'], { LIFEBOAT_ACTOR: ACTOR });
  assert.equal(run.code, 0, run.stderr);
  const view = await publicView('announced');
  assert.equal(view.model.state, 'operational', 'the run succeeded: no outage left');
  assert.equal(view.model.incidents.length, 0);
  const h = view.model.history.find((i: { title: string }) => i.title === 'Website maintenance');
  assert.ok(h, 'in the history');
  assert.equal(h.status, 'resolved');
  assert.deepEqual(h.updates.map((u: { message: string }) => u.message), [PUBLIC_MSG]);
  assertAbsent(view, ['announced-restore', 'Internal restore procedure', ACTOR, 'completed in']);
  // a config without publicMessage is refused
  const bad = path.join(tmp.dir, 'bad.yaml');
  writeFileSync(bad, readFileSync(cfgFile, 'utf8').replace(`      publicMessage: "${PUBLIC_MSG}"\n`, ''));
  const r = await runCli(['-c', bad, 'runbook', 'list'], { env: ENV });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /publish: true needs a publicMessage/);
});

test('maintenance windows: a time without a zone is refused; an explicit offset is honoured', async () => {
  const post = (body: unknown) => fetch(srv.url + '/api/v1/maintenance-windows', { method: 'POST', headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const r = await post({ title: 'x', start: '2031-01-01T10:00', end: '2031-01-01T11:00:00Z' });
  assert.equal(r.status, 400);
  assert.match(((await r.json()) as { error: string }).error, /start: "2031-01-01T10:00" has no time zone/);
  const ok = await post({ title: 'Berlin window', start: '2031-01-01T10:00:00+01:00', end: '2031-01-01T11:00+0100' });
  assert.equal(ok.status, 201);
  const w = (await ok.json()) as { startsAt: string; endsAt: string };
  assert.equal(w.startsAt, '2031-01-01T09:00:00.000Z');
  assert.equal(w.endsAt, '2031-01-01T10:00:00.000Z');
  const c = await cli(['maintenance-window', 'add', '--title', 'x', '--start', '2031-01-01 10:00', '--end', '2031-01-01T11:00:00Z']);
  assert.equal(c.code, 2);
  assert.match(c.stderr, /has no time zone/);
});

async function migrationCase(c: Catalog): Promise<void> {
  // a catalog as it was before visibility existed: migration 200 only
  await c.ensureMigrations(INCIDENT_MIGRATIONS.filter((m) => m.version === 200));
  const s = c.sql;
  const t0 = new Date('2026-01-01T00:00:00Z');
  const hand = await s.insertId(`INSERT INTO ${s.t('incidents')} (title, status, impact, services, started_at) VALUES (?, ?, ?, ?, ?)`, ['Billing down', 'investigating', 'major', '[]', t0]);
  const rb = await s.insertId(`INSERT INTO ${s.t('incidents')} (title, status, impact, services, started_at, runbook_run_id) VALUES (?, ?, ?, ?, ?, ?)`, ['Recover', 'monitoring', 'major', '[]', t0, 7]);
  const up = `INSERT INTO ${s.t('incident_updates')} (incident_id, at, status, message, author, public) VALUES (?, ?, ?, ?, ?, ?)`;
  await s.exec(up, [hand, t0, 'investigating', 'We are looking into it.', 'alice', true]);
  await s.exec(up, [rb, t0, 'investigating', 'Runbook "recover" started by bob@host (run #7, 2 steps, scenario other).', 'bob@host', true]);
  await s.exec(up, [rb, new Date(t0.getTime() + 1000), null, 'Restoring from backup.', 'alice', true]);
  const store = new IncidentStore(c);
  const a = (await store.get(hand))!;
  const b = (await store.get(rb))!;
  assert.equal(a.visibility, 'public');
  assert.equal(a.updates[0]!.public, true);
  assert.equal(b.visibility, 'private');
  assert.deepEqual(b.updates.map((u) => [u.system, u.public]), [[true, false], [false, true]]);
}

testOnBothCatalogs('migration 201: hand-opened incidents stay public, runbook-opened ones become private with system updates', () => tmp.dir, migrationCase);
