import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { testOnBothCatalogs } from './helpers/catalogs.js';
import { runCli, tmpDir, type Snaked } from './helpers/tmp.js';
import { startWebhookReceiver } from './helpers/receivers.js';
import { loadConfig, parseConfig } from '../src/config/load.js';
import { openCatalog } from '../src/ops/catalog/open.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { escalateIncidents, IncidentStore, renderIncidentHtml, renderIncidentMarkdown, type Incident } from '../src/ops/incidents.js';
import { ConfigError, LifeboatError } from '../src/errors.js';
import type { WebhookPayload } from '../src/ops/notify/webhook.js';

const tmp = tmpDir('lb-incidents-');
after(() => tmp.cleanup());
const MIN = 60_000;

async function exercise(catalog: Catalog): Promise<void> {
  let clock = Date.UTC(2026, 10, 22, 3, 0, 0);
  const store = new IncidentStore(catalog, { now: () => new Date(clock) });
  const i = await store.create({ title: 'Database <down> & "out"', impact: 'major', services: ['api', 'db'], message: 'API returns 500', author: 'alice' });
  assert.equal(i.status, 'investigating');
  assert.equal(i.startedAt.getTime(), clock);
  clock += 5 * MIN;
  await store.addEvent(i.id, 'step', 'step 1/2 "restore" (restore) succeeded in 2.1 s\npassword=hunter2 from postgres://u:pw@db.internal/app');
  clock += 5 * MIN;
  await store.addUpdate(i.id, { status: 'identified', message: 'Disk full on db-1', author: 'bob' });
  await store.addUpdate(i.id, { message: 'internal note', public: false });
  clock += 20 * MIN;
  const r = await store.resolve(i.id, { message: 'Disk extended, API healthy', author: 'bob' });
  assert.equal(r.status, 'resolved');
  assert.equal(r.resolvedAt!.getTime() - r.startedAt.getTime(), 30 * MIN);
  await assert.rejects(store.resolve(i.id, { message: 'again' }), (e: Error) => e instanceof LifeboatError && /already resolved/.test(e.message));
  const pm = await store.setPostmortem(i.id, { rootCause: 'Log rotation broken', lessonsLearned: 'Alert on disk usage', actionItems: ['Fix logrotate <config>', 'Add disk alert'], summary: '30 minutes of errors' });
  assert.deepEqual(pm.actionItems, ['Fix logrotate <config>', 'Add disk alert']);
  assert.deepEqual(
    pm.timeline.map((e) => e.kind),
    ['status:investigating', 'step', 'status:identified', 'update', 'status:resolved'],
  );
  const step = pm.timeline[1]!.text;
  assert.doesNotMatch(step, /hunter2|pw@/); // redacted
  assert.equal(pm.updates.find((u) => u.message === 'internal note')!.public, false);

  const open = await store.create({ title: 'Second', impact: 'minor', services: [] });
  assert.deepEqual((await store.list({ open: true })).map((x) => x.id), [open.id]);
  assert.deepEqual((await store.list()).map((x) => x.id), [open.id, i.id]);
  // reopening clears resolved_at
  const reopened = await store.addUpdate(i.id, { status: 'investigating', message: 'errors are back' });
  assert.equal(reopened.resolvedAt, null);
  assert.equal(reopened.status, 'investigating');
  await assert.rejects(store.get(999_999).then((x) => assert.equal(x, undefined)).then(() => store.addUpdate(999_999, { message: 'x' })), /no incident #999999/);

  const md = renderIncidentMarkdown(pm);
  assert.match(md, /^# Incident #\d+: Database \\<down\\> & "out"/);
  assert.match(md, /\*\*Duration:\*\* 30m/);
  assert.match(md, /- \[ \] Fix logrotate \\<config\\>/);
  assert.match(md, /## Root cause\n\nLog rotation broken/);
  const html = renderIncidentHtml(pm);
  assert.match(html, /<h1>Incident #\d+: Database &lt;down&gt; &amp; &quot;out&quot;<\/h1>/);
  assert.match(html, /<li>Fix logrotate &lt;config&gt;<\/li>/);
  assert.doesNotMatch(html, /<down>|<config>/);
}

testOnBothCatalogs('incident store: lifecycle, timeline, post-incident review, escaped reports', () => tmp.dir, exercise);

test('incident config is validated: unknown template variables and channels', async () => {
  assert.throws(
    () => parseConfig('repositories:\n  r: { location: /tmp/x }\nincidents:\n  templates:\n    start: { title: "{{nope}}" }\n', '/x/lifeboat.yaml'),
    (e: Error) => e instanceof ConfigError && /incidents\.templates\.start\.title: unknown template variable\(s\) \{\{nope\}\}/.test(e.message),
  );
  const dir = path.join(tmp.dir, 'badch');
  await fsp.mkdir(dir);
  await fsp.writeFile(path.join(dir, 'lifeboat.yaml'), 'repositories:\n  r: { location: ./r }\ndaemon: { catalog: ./c.db }\nincidents:\n  channels: [ghost]\n');
  const r = await runCli(['-c', path.join(dir, 'lifeboat.yaml'), 'incident', 'open', '--title', 'x']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /incidents\.channels\.0: unknown notifier channel "ghost"/);
});

test('incident notifications reach a real webhook; escalation after elapsed time, once', async () => {
  const rx = await startWebhookReceiver();
  try {
    const dir = path.join(tmp.dir, 'notify');
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
    pager: { type: webhook, url: "${rx.url}/pager", retries: 0 }
incidents:
  channels: [ops]
  templates:
    update: { title: "#{{incident}} {{STATUS}}: {{title}}", text: "{{message}} ({{elapsed}})" }
  escalation:
    - after: 30m
      channels: [pager]
    - after: 2h
      channels: [pager]
      impact: [critical]
`,
    );
    const open = await runCli(['-c', file, '--json', 'incident', 'open', '--title', 'API down', '--impact', 'major', '--service', 'api', '--message', 'Checkout fails']);
    assert.equal(open.code, 0, open.stderr);
    const inc = JSON.parse(open.stdout) as Snaked<Incident>;
    assert.equal(rx.on('/ops').length, 1);
    const start = rx.on('/ops')[0]!.json as WebhookPayload;
    assert.equal(start.title, `[INCIDENT #${inc.id}] API down (major)`);
    assert.match(start.text, /Checkout fails[\s\S]*Affected services: api/);
    assert.equal(start.details.event, 'start');

    const up = await runCli(['-c', file, 'incident', 'update', String(inc.id), '--status', 'identified', '--message', 'Bad deploy']);
    assert.equal(up.code, 0, up.stderr);
    const internal = await runCli(['-c', file, 'incident', 'update', String(inc.id), '--message', 'note to self', '--internal']);
    assert.equal(internal.code, 0, internal.stderr);
    assert.equal(rx.on('/ops').length, 2);
    const upd = rx.on('/ops')[1]!.json as WebhookPayload;
    assert.equal(upd.title, `#${inc.id} IDENTIFIED: API down`);
    assert.match(upd.text, /^Bad deploy \(\d+s\)$/);

    const cfg = loadConfig(file);
    const catalog = await openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
    try {
      const t0 = new Date(inc.started_at).getTime();
      assert.deepEqual(await escalateIncidents(cfg, catalog, new Date(t0 + 10 * MIN)), []);
      assert.equal(rx.on('/pager').length, 0);
      const sent = await escalateIncidents(cfg, catalog, new Date(t0 + 31 * MIN));
      assert.deepEqual(sent.map((s) => [s.incidentId, s.level, s.results[0]!.ok]), [[inc.id, 1, true]]);
      assert.equal(rx.on('/pager').length, 1);
      const esc = rx.on('/pager')[0]!.json as WebhookPayload;
      assert.equal(esc.title, `[ESCALATION 1] incident #${inc.id} unresolved for 31m: API down`);
      assert.deepEqual(await escalateIncidents(cfg, catalog, new Date(t0 + 45 * MIN)), []); // once per level
      // level 2 only for critical incidents
      assert.deepEqual(await escalateIncidents(cfg, catalog, new Date(t0 + 3 * 60 * MIN)), []);
      // a failed delivery is retried on the next call
      rx.respondWith(500);
      const crit = await new IncidentStore(catalog).create({ title: 'Total outage', impact: 'critical', services: ['api'], startedAt: new Date(t0) });
      const failed = await escalateIncidents(cfg, catalog, new Date(t0 + 40 * MIN));
      assert.deepEqual(failed.map((s) => [s.incidentId, s.level, s.results[0]!.ok]), [[crit.id, 1, false]]);
      rx.respondWith(200);
      const retried = await escalateIncidents(cfg, catalog, new Date(t0 + 41 * MIN));
      assert.deepEqual(retried.map((s) => [s.incidentId, s.level, s.results[0]!.ok]), [[crit.id, 1, true]]);
      const lvl2 = await escalateIncidents(cfg, catalog, new Date(t0 + 121 * MIN));
      assert.deepEqual(lvl2.map((s) => [s.incidentId, s.level]), [[crit.id, 2]]);
      const t = (await new IncidentStore(catalog).get(crit.id))!.timeline.filter((e) => e.kind === 'escalation').map((e) => e.text);
      assert.equal(t.length, 3);
      assert.match(t[0]!, /escalation level 1 \(after 30m\) to pager: FAILED: POST http:\/\/127\.0\.0\.1:\d+: HTTP 500/);
    } finally {
      await catalog.close();
    }

    const res = await runCli(['-c', file, 'incident', 'resolve', String(inc.id), '--message', 'Rolled back']);
    assert.equal(res.code, 0, res.stderr);
    const resolved = rx.on('/ops').at(-1)!.json as WebhookPayload;
    assert.equal(resolved.kind, 'resolved');
    assert.equal(resolved.title, `[RESOLVED #${inc.id}] API down`);
    const pm = await runCli(['-c', file, 'incident', 'postmortem', String(inc.id), '--root-cause', 'Config typo', '--lessons', 'Review configs', '--action', 'Add config lint', '--action', 'Canary deploys']);
    assert.equal(pm.code, 0, pm.stderr);
    const out = path.join(dir, 'report.html');
    const rep = await runCli(['-c', file, 'incident', 'report', String(inc.id), '--format', 'html', '--out', out]);
    assert.equal(rep.code, 0, rep.stderr);
    const html = readFileSync(out, 'utf8');
    assert.match(html, /<li>Add config lint<\/li><li>Canary deploys<\/li>/);
    assert.match(html, /start notification to ops: delivered/);
    const md = await runCli(['-c', file, 'incident', 'report', String(inc.id), '--format', 'md']);
    assert.match(md.stdout, /## Root cause\n\nConfig typo/);
    const list = await runCli(['-c', file, '--json', 'incident', 'list', '--open']);
    assert.deepEqual((JSON.parse(list.stdout) as Incident[]).map((i) => i.title), ['Total outage']);
  } finally {
    await rx.close();
  }
});
