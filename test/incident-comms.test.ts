import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, runCli, tmpDir, type Snaked } from './helpers/tmp.js';
import { startWebhookReceiver, type WebhookReceiver } from './helpers/receivers.js';
import { loadConfig } from '../src/config/load.js';
import type { LifeboatConfig } from '../src/config/config.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import { IncidentStore, remindIncidents, type Incident } from '../src/ops/incidents.js';
import { startServer } from '../src/server/server.js';
import type { WebhookPayload } from '../src/ops/notify/webhook.js';

/**
 * Incident communication (issue 14 item 7): update reminders by impact,
 * measured from the last public update, deduplicated in the catalog; and
 * audiences, each with its own channels and templates, targeted from the
 * CLI and the API. Real webhook receiver over a socket, real catalog, real
 * CLI processes, a controllable clock for reminders.
 */

const tmp = tmpDir('lb-inc-comms-');
after(() => tmp.cleanup());
const MIN = 60_000;

async function setup(name: string, rx: WebhookReceiver, extra = ''): Promise<{ file: string; cfg: LifeboatConfig }> {
  const dir = path.join(tmp.dir, name);
  await fsp.mkdir(dir);
  const file = path.join(dir, 'lifeboat.yaml');
  await fsp.writeFile(
    file,
    `repositories:
  r: { location: ./repo }
daemon: { catalog: ./catalog.db }
services:
  api: {}
notifiers:
  channels:
    ops: { type: webhook, url: "${rx.url}/ops", retries: 0 }
    oncall: { type: webhook, url: "${rx.url}/oncall", retries: 0 }
    users-mail: { type: webhook, url: "${rx.url}/users", retries: 0 }
    partner-hook: { type: webhook, url: "${rx.url}/partners", retries: 0 }
    regulator-mail: { type: webhook, url: "${rx.url}/regulators", retries: 0 }
incidents:
  channels: [ops]
  reminders:
    channels: [oncall]
${extra}  audiences:
    users:
      channels: [users-mail]
      templates:
        update: { title: "Service notice: {{title}}", text: "{{message}}" }
        resolved: { title: "Fixed: {{title}}", text: "{{message}} Thank you for your patience." }
    partners:
      channels: [partner-hook]
      templates:
        update: { title: "[{{audience}}] incident {{incident}} {{STATUS}}", text: "{{message}} (impact {{impact}}, services {{services}})" }
    regulators:
      channels: [regulator-mail]
`,
  );
  return { file, cfg: loadConfig(file) };
}

test('update reminders: every 15/30/60 minutes by impact since the last public update, once per due time, across restarts; failed ones retried', async () => {
  const rx = await startWebhookReceiver();
  try {
    const { cfg } = await setup('remind', rx, '    every: { minor: 60m }\n');
    const t0 = Date.UTC(2026, 10, 30, 9, 0, 0);
    let clock = t0;
    let catalog = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
    const store = () => new IncidentStore(catalog, { config: cfg, now: () => new Date(clock) });
    const major = await store().create({ title: 'Checkout errors', impact: 'major', services: ['api'], message: 'Looking into it', visibility: 'public' });
    const crit = await store().create({ title: 'Database down', impact: 'critical', services: ['api'] });
    const minor = await store().create({ title: 'Slow search', impact: 'minor', services: [] });
    const none = await store().create({ title: 'Cosmetic', impact: 'none', services: [] });
    const at = async (m: number) => (await remindIncidents(cfg, catalog, new Date(t0 + m * MIN))).sort((a, b) => a.incidentId - b.incidentId).map((r) => [r.incidentId, (r.dueAt.getTime() - t0) / MIN, r.results.map((x) => x.ok).join()]);

    assert.deepEqual(await at(14), []);
    assert.deepEqual(await at(15), [[crit.id, 15, 'true']]); // critical: 15m
    const first = rx.on('/oncall')[0]!.json as WebhookPayload;
    assert.equal(first.title, `[REMINDER] incident #${crit.id}: no update for 15m — Database down`);
    assert.match(first.text, /Post an update at least every 15m: lifeboat incident update \d+ --message/);
    assert.equal(first.details.event, 'reminder');
    assert.deepEqual(await at(29), []); // nothing due: critical's next is at 30
    assert.deepEqual(await at(31), [
      [major.id, 30, 'true'],
      [crit.id, 30, 'true'],
    ]);
    assert.deepEqual(await at(31), []); // once per due time
    // a restarted daemon (a new catalog connection) does not send them again
    await catalog.close();
    catalog = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
    assert.deepEqual(await at(33), []);
    // a backlog is not sent: after a long pause only the latest due reminder
    clock = t0 + 50 * MIN;
    await store().addUpdate(major.id, { message: 'Rolled back the deploy', status: 'identified' }); // resets major's clock
    await store().addUpdate(major.id, { message: 'note to self', public: false }); // internal notes do not
    assert.deepEqual(await at(61), [
      [crit.id, 60, 'true'],
      [minor.id, 60, 'true'],
    ]);
    assert.deepEqual(await at(79), [[crit.id, 75, 'true']]);
    assert.deepEqual(await at(80), [[major.id, 80, 'true']]); // 30m after the public update
    const maj = rx.on('/oncall').at(-1)!.json as WebhookPayload;
    assert.match(maj.text, /the last update was 30m ago[\s\S]*Latest: note to self/);
    // a reminder no channel accepted is released and retried on the next call
    rx.respondWith(500);
    assert.deepEqual(await at(91), [[crit.id, 90, 'false']]);
    rx.respondWith(200);
    assert.deepEqual(await at(92), [[crit.id, 90, 'true']]);
    // resolved incidents are not reminded; impact none never (default off)
    clock = t0 + 93 * MIN;
    await store().resolve(crit.id, { message: 'Failover done' });
    assert.deepEqual(await at(240), [
      [major.id, 230, 'true'],
      [minor.id, 240, 'true'],
    ]);
    assert.equal(rx.on('/oncall').filter((r) => (r.json as WebhookPayload).details.incident === none.id).length, 0);
    const tl = (await new IncidentStore(catalog).get(crit.id))!.timeline.filter((e) => e.kind === 'reminder').map((e) => e.text);
    assert.equal(tl.length, 6);
    assert.match(tl[4]!, /update reminder \(no update for 1h31m, every 15m\) to oncall: FAILED: POST http:\/\/127\.0\.0\.1:\d+: HTTP 500/);
    await catalog.close();
  } finally {
    await rx.close();
  }
});

test('audiences: an update targets audiences, each gets its own template through its own channels (CLI and API); unknown audiences are refused before anything is written', async () => {
  const rx = await startWebhookReceiver();
  try {
    const { file } = await setup('aud', rx);
    const open = await runCli(['-c', file, '--json', 'incident', 'open', '--title', 'API down', '--impact', 'major', '--service', 'api', '--message', 'We are investigating', '--audience', 'users']);
    assert.equal(open.code, 0, open.stderr);
    const inc = JSON.parse(open.stdout) as Snaked<Incident>;
    assert.equal(rx.on('/ops').length, 1);
    assert.equal((rx.on('/users')[0]!.json as WebhookPayload).title, `[INCIDENT #${inc.id}] API down (major)`); // no start template for users: the default

    const up = await runCli(['-c', file, 'incident', 'update', String(inc.id), '--status', 'identified', '--message', 'A bad deploy; rolling back', '--audience', 'users,partners']);
    assert.equal(up.code, 0, up.stderr);
    const ops = rx.on('/ops').at(-1)!.json as WebhookPayload;
    assert.equal(ops.title, `[INCIDENT #${inc.id} IDENTIFIED] API down`);
    const users = rx.on('/users').at(-1)!.json as WebhookPayload;
    assert.equal(users.title, 'Service notice: API down');
    assert.equal(users.text, 'A bad deploy; rolling back');
    const partners = rx.on('/partners')[0]!.json as WebhookPayload;
    assert.equal(partners.title, `[partners] incident ${inc.id} IDENTIFIED`);
    assert.equal(partners.text, 'A bad deploy; rolling back (impact major, services api)');
    assert.equal(rx.on('/regulators').length, 0);
    assert.equal(rx.on('/users').length, 2);

    // unknown audience, internal update to an audience: exit 2, nothing written, nobody told
    const before = rx.requests.length;
    const bad = await runCli(['-c', file, 'incident', 'update', String(inc.id), '--message', 'x', '--audience', 'press']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /unknown audience\(s\) "press" \(defined in incidents\.audiences: users, partners, regulators\)/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /);
    const internal = await runCli(['-c', file, 'incident', 'update', String(inc.id), '--message', 'x', '--internal', '--audience', 'users']);
    assert.equal(internal.code, 2);
    assert.match(internal.stderr, /an internal update cannot be sent to audiences/);
    assert.equal(rx.requests.length, before);
    const shown = JSON.parse((await runCli(['-c', file, '--json', 'incident', 'show', String(inc.id)])).stdout) as Snaked<Incident>;
    assert.equal(shown.updates.length, 2);
    assert.ok(shown.timeline.some((e) => e.kind === 'notification' && /update notification \(audience partners\) to partner-hook: delivered/.test(e.text)));

    // the API: audiences on updates and on resolve
    const tok = await runCli(['-c', file, 'token', 'create', 'ci-op', '--role', 'operator'], { env: { LIFEBOAT_PASSWORD: undefined } });
    assert.equal(tok.code, 0, tok.stderr);
    const srv = await startServer(loadConfig(file), { listen: '127.0.0.1:0' });
    try {
      const call = async (p: string, body: unknown) => {
        const r = await fetch(srv.url + p, { method: 'POST', headers: { authorization: `Bearer ${tok.stdout.trim()}`, 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(30_000) });
        return { status: r.status, json: (await r.json()) as Record<string, unknown> };
      };
      const r1 = await call(`/api/v1/incidents/${inc.id}/updates`, { message: 'Regulatory notice filed', audiences: ['regulators'] });
      assert.equal(r1.status, 200, JSON.stringify(r1.json));
      const reg = rx.on('/regulators')[0]!.json as WebhookPayload;
      assert.equal(reg.title, `[INCIDENT #${inc.id} IDENTIFIED] API down`);
      assert.match(reg.text, /^Regulatory notice filed/);
      const r2 = await call(`/api/v1/incidents/${inc.id}/updates`, { message: 'x', audiences: ['press'] });
      assert.equal(r2.status, 400, JSON.stringify(r2.json));
      const r3 = await call(`/api/v1/incidents/${inc.id}/resolve`, { message: 'Rolled back.', audiences: ['users'] });
      assert.equal(r3.status, 200, JSON.stringify(r3.json));
      const fixed = rx.on('/users').at(-1)!.json as WebhookPayload;
      assert.equal(fixed.title, 'Fixed: API down');
      assert.equal(fixed.text, 'Rolled back. Thank you for your patience.');
      assert.equal(fixed.kind, 'resolved');
    } finally {
      await srv.close();
    }
  } finally {
    await rx.close();
  }
});

test('reminder and audience config is validated: unknown channels and template variables', async () => {
  const rx = await startWebhookReceiver();
  try {
    const dir = path.join(tmp.dir, 'badcfg');
    await fsp.mkdir(dir);
    const file = path.join(dir, 'lifeboat.yaml');
    const base = `repositories:\n  r: { location: ./r }\ndaemon: { catalog: ./c.db }\nnotifiers:\n  channels:\n    ops: { type: webhook, url: "${rx.url}/ops" }\n`;
    await fsp.writeFile(file, base + 'incidents:\n  audiences:\n    users: { channels: [ghost] }\n');
    let r = await runCli(['-c', file, 'incident', 'open', '--title', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /incidents\.audiences\.users\.channels\.0: unknown notifier channel "ghost"/);
    await fsp.writeFile(file, base + 'incidents:\n  reminders: { every: { major: soon } }\n');
    r = await runCli(['-c', file, 'incident', 'open', '--title', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /incidents\.reminders\.every\.major/);
    await fsp.writeFile(file, base + 'incidents:\n  audiences:\n    users: { channels: [ops], templates: { update: { text: "{{secret}}" } } }\n');
    r = await runCli(['-c', file, 'incident', 'open', '--title', 'x']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown template variable\(s\) \{\{secret\}\}/);
  } finally {
    await rx.close();
  }
});

test('the daemon sends due update reminders from its loop; after kill -9 and a restart it does not send them again', async () => {
  const rx = await startWebhookReceiver();
  try {
    const { file, cfg } = await setup('daemon', rx, '    every: { minor: 1h }\n');
    const catalog = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
    const now = Date.now();
    const store = new IncidentStore(catalog);
    // listed newest first: the minor one is handled before the critical one in each pass
    const minor = await store.create({ title: 'Slow search', impact: 'minor', services: [], startedAt: new Date(now - 61 * MIN) });
    const crit = await store.create({ title: 'Database down', impact: 'critical', services: [], startedAt: new Date(now - 100 * MIN) });
    await catalog.close();
    const count = (id: number) => rx.on('/oncall').filter((r) => (r.json as WebhookPayload).details.incident === id).length;
    const daemon = () => {
      const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', file], { env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let log = '';
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      return { child, log: () => log };
    };
    const waitFor = async (cond: () => boolean, what: string, log: () => string) => {
      // a daemon's start-up and first pass: up to 90 s (a fixed 30 s is too short on a loaded machine)
      for (const end = Date.now() + 90_000; Date.now() < end && !cond(); ) await sleep(50);
      assert.ok(cond(), `${what}; daemon log:\n${log()}`);
    };
    const d1 = daemon();
    try {
      await waitFor(() => count(crit.id) === 1, 'first daemon reminded the critical incident', d1.log);
      assert.equal(count(minor.id), 1); // due at start + 1h
    } finally {
      d1.child.kill('SIGKILL');
      await new Promise((r) => d1.child.on('close', r));
    }
    // the critical incident's next reminder (every 15m) is not due yet: a restart must send nothing for both.
    // A sentinel, oldest so handled last in the pass, shows when the restarted daemon's first pass is done.
    const c1 = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
    const sentinel = await new IncidentStore(c1).create({ title: 'Sentinel', impact: 'critical', services: [], startedAt: new Date(now - 200 * MIN) });
    await c1.close();
    const d2 = daemon();
    try {
      await waitFor(() => count(sentinel.id) === 1, 'second daemon reminded the sentinel', d2.log);
      assert.equal(count(minor.id), 1);
      assert.equal(count(crit.id), 1);
      const c2 = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
      try {
        const rows = await c2.sql.all(`SELECT incident_id, due_ms FROM ${c2.sql.t('incident_reminders')} ORDER BY incident_id`);
        assert.deepEqual(
          rows.map((r) => [Number(r.incident_id), (Number(r.due_ms) - now) / MIN]),
          [
            [minor.id, -1],
            [crit.id, -10],
            [sentinel.id, -5],
          ],
        );
      } finally {
        await c2.close();
      }
    } finally {
      d2.child.kill('SIGKILL');
      await new Promise((r) => d2.child.on('close', r));
    }
  } finally {
    await rx.close();
  }
});
