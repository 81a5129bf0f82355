import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import * as path from 'node:path';
import { tmpDir } from './helpers/tmp.js';
import { startSmtpReceiver, startWebhookReceiver, type ReceivedRequest } from './helpers/receivers.js';
import { ConfigError } from '../src/errors.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { evaluate, type Finding, type JobSpec } from '../src/ops/monitor.js';
import { AlertManager } from '../src/ops/notify/manager.js';
import { createNotifiers } from '../src/ops/notify/create.js';
import { parseNotifiersConfig } from '../src/config/notifiers.js';
import type { WebhookPayload } from '../src/ops/notify/webhook.js';
import { renderTemplate, redactText, redactUrl } from '../src/ops/templates.js';

const H = 3600_000;
const MIN = 60_000;
const T0 = Date.UTC(2025, 5, 1, 12, 0, 0);
const SLACK_TOKEN = 'XoXbSeCrEtT0k3nValue';
const HMAC_KEY = 'hmac-key-7c1d9e4f2a';
const SMTP_PASS = 'smtp-pa55-w0rd-zz';
const DB_PASS = 'hunter2hunter2';

const tmp = tmpDir('lb-alerts-');
after(() => tmp.cleanup());
let n = 0;
const catalogFile = () => path.join(tmp.dir, `a${n++}.db`);

function verifySignature(req: ReceivedRequest, key: string): boolean {
  const header = String(req.headers['x-lifeboat-signature'] ?? '');
  const expected = Buffer.from('sha256=' + createHmac('sha256', key).update(req.raw).digest('hex'));
  return header.length === expected.length && timingSafeEqual(Buffer.from(header), expected);
}

async function addRun(c: Catalog, job: string, startedAt: number, status: 'success' | 'failed', error?: string) {
  const id = await c.startRun({ job, startedAt: new Date(startedAt) });
  await c.finishRun(id, { status, finishedAt: new Date(startedAt + MIN), totalSize: 1000, ...(error ? { error } : {}) });
}

describe('alerts delivered to real receivers', () => {
  test('fail → one alert; 10 evaluations → nothing; past the interval → one reminder; restart keeps state; recovery → one resolved', async () => {
    const hook = await startWebhookReceiver();
    const smtp = await startSmtpReceiver({ auth: { user: 'lifeboat', pass: SMTP_PASS } });
    process.env.LBT_SLACK_URL = `${hook.url}/services/T000/B000/${SLACK_TOKEN}`;
    process.env.LBT_HMAC = HMAC_KEY;
    process.env.LBT_SMTP_PASS = SMTP_PASS;
    const file = catalogFile();
    let catalog: Catalog = await SqliteCatalog.open(file);
    let now = T0;
    const logs: string[] = [];
    const config = parseNotifiersConfig({
      reminderInterval: '4h',
      channels: {
        slack: { type: 'slack', url: { env: 'LBT_SLACK_URL' } },
        hook: { type: 'webhook', url: `${hook.url}/hook`, secret: { env: 'LBT_HMAC' } },
        mail: {
          type: 'email',
          host: '127.0.0.1',
          port: smtp.port,
          starttls: 'never',
          auth: { user: 'lifeboat', pass: { env: 'LBT_SMTP_PASS' } },
          from: 'Lifeboat <lifeboat@example.com>',
          to: ['oncall@example.com'],
        },
      },
      routes: { normal: ['slack', 'hook', 'mail'] },
    });
    const newManager = () => AlertManager.fromConfig(config, { catalog, now: () => new Date(now), log: (m) => logs.push(m), host: 'backup-host' });
    let manager = newManager();
    const jobs: JobSpec[] = [{ name: 'appdb', tier: 'normal', rpoMs: 7 * 24 * H, repositories: [] }];
    const cycle = async () => manager.process((await evaluate(catalog, jobs, { now: new Date(now), skip: ['free-space'] })).findings);
    const slack = () => hook.on(`/services/T000/B000/${SLACK_TOKEN}`);
    const hooks = () => hook.on('/hook');
    const counts = () => [slack().length, hooks().length, smtp.messages.length];

    try {
      await addRun(catalog, 'appdb', T0 - H, 'success');
      await addRun(catalog, 'appdb', T0 - 10 * MIN, 'failed', `pg_dump: connection to postgres://admin:${DB_PASS}@db.internal/app failed`);

      // 1. the job fails: exactly one alert on every channel
      const out = await cycle();
      assert.deepEqual(
        out.filter((o) => o.action !== 'none').map((o) => [o.key, o.action, o.delivered]),
        [['appdb/failures', 'fired', true]],
      );
      assert.deepEqual(counts(), [1, 1, 1]);

      const s = slack()[0]!.json as { text: string; blocks: Array<{ type: string; text?: { text: string } }> };
      assert.match(s.text, /^\[WARNING\] Lifeboat appdb: failures\n/);
      assert.match(s.text, /appdb: 1 consecutive failed run: pg_dump: connection to postgres:\/\/db\.internal failed/);
      assert.deepEqual(s.blocks.map((b) => b.type), ['header', 'section', 'context']);
      assert.equal(s.blocks[0]!.text!.text, '[WARNING] Lifeboat appdb: failures');

      const w = hooks()[0]!;
      assert.ok(verifySignature(w, HMAC_KEY), 'HMAC signature over the raw body verifies');
      assert.ok(!verifySignature(w, 'wrong-key'));
      const p = w.json as WebhookPayload;
      assert.equal(w.headers['content-type'], 'application/json');
      assert.equal(w.headers['x-lifeboat-timestamp'], String(p.timestamp));
      assert.match(String(w.headers['x-lifeboat-delivery']), /^[0-9a-f-]{36}$/);
      assert.equal(p.id, w.headers['x-lifeboat-delivery']);
      assert.deepEqual(
        { kind: p.kind, status: p.status, key: p.key, job: p.job, check: p.check, severity: p.severity, tier: p.tier, count: p.count, host: p.host, at: p.at, firstAt: p.firstAt },
        { kind: 'firing', status: 'firing', key: 'appdb/failures', job: 'appdb', check: 'failures', severity: 'warning', tier: 'normal', count: 1, host: 'backup-host', at: new Date(T0).toISOString(), firstAt: new Date(T0).toISOString() },
      );
      assert.equal(p.details.streak, 1);

      const mail = smtp.messages[0]!;
      assert.equal(mail.subject, '[WARNING] Lifeboat appdb: failures');
      assert.deepEqual(mail.envelopeTo, ['oncall@example.com']);
      assert.equal(mail.envelopeFrom, 'lifeboat@example.com');
      assert.equal(mail.user, 'lifeboat');
      assert.match(mail.text, /appdb: 1 consecutive failed run: pg_dump/);
      assert.match(mail.text, /Lifeboat on backup-host · firing · job appdb · check failures/);
      assert.equal(mail.headers.get('x-lifeboat-alert-key'), 'appdb/failures');

      // 2. evaluated 10 more times within the reminder interval: nothing
      for (let i = 1; i <= 10; i++) {
        now = T0 + i * 20 * MIN; // up to 3h20m
        const o = await cycle();
        assert.ok(o.every((x) => x.action === 'none'));
      }
      assert.deepEqual(counts(), [1, 1, 1]);

      // 3. just before the interval: still nothing; at the interval: exactly one reminder
      now = T0 + 4 * H - 1;
      await cycle();
      assert.deepEqual(counts(), [1, 1, 1]);
      now = T0 + 4 * H;
      const r = await cycle();
      assert.deepEqual(r.filter((o) => o.action !== 'none').map((o) => o.action), ['reminded']);
      assert.deepEqual(counts(), [2, 2, 2]);
      assert.equal((hooks()[1]!.json as WebhookPayload).kind, 'reminder');
      assert.equal((hooks()[1]!.json as WebhookPayload).count, 2);
      assert.ok(verifySignature(hooks()[1]!, HMAC_KEY));
      assert.equal(smtp.messages[1]!.subject, '[WARNING] still firing for 4h: Lifeboat appdb: failures');
      for (let i = 1; i <= 5; i++) {
        now = T0 + 4 * H + i * 10 * MIN;
        await cycle();
      }
      assert.deepEqual(counts(), [2, 2, 2]);

      // 4. a restart (new catalog handle, new manager) keeps the dedup state
      await manager.close();
      await catalog.close();
      catalog = await SqliteCatalog.open(file);
      manager = newManager();
      await cycle();
      assert.deepEqual(counts(), [2, 2, 2]);

      // 5. the job recovers: exactly one resolved message
      now = T0 + 5 * H;
      await addRun(catalog, 'appdb', now - 5 * MIN, 'success');
      const res = await cycle();
      assert.deepEqual(res.filter((o) => o.action !== 'none').map((o) => [o.key, o.action, o.delivered]), [['appdb/failures', 'resolved', true]]);
      assert.deepEqual(counts(), [3, 3, 3]);
      const rp = hooks()[2]!.json as WebhookPayload;
      assert.equal(rp.kind, 'resolved');
      assert.equal(rp.status, 'resolved');
      assert.equal(rp.severity, 'ok');
      assert.ok(verifySignature(hooks()[2]!, HMAC_KEY));
      assert.equal(smtp.messages[2]!.subject, '[RESOLVED] Lifeboat appdb: failures');
      assert.match(smtp.messages[2]!.text, /Resolved after 5h/);
      assert.match((slack()[2]!.json as { text: string }).text, /^\[RESOLVED\]/);
      for (let i = 1; i <= 5; i++) {
        now = T0 + 5 * H + i * H;
        await addRun(catalog, 'appdb', now - 5 * MIN, 'success');
        await cycle();
      }
      assert.deepEqual(counts(), [3, 3, 3]);

      const a = (await catalog.getAlert('appdb/failures'))!;
      assert.equal(a.state, 'resolved');
      assert.equal(a.notified, 'resolved');
      assert.equal(a.count, 3);
      assert.equal((await catalog.deliveries({ alertKey: 'appdb/failures' })).length, 9);

      // no secret anywhere: logs, stored deliveries, alert rows, messages
      const stored = JSON.stringify([await catalog.deliveries(), await catalog.listAlerts(), await catalog.runs()]);
      const received = [...hook.requests.map((q) => q.raw.toString()), ...smtp.messages.map((m) => m.raw)].join('\n');
      for (const secret of [SLACK_TOKEN, HMAC_KEY, SMTP_PASS, DB_PASS]) {
        assert.ok(!logs.join('\n').includes(secret), `log leaks ${secret}`);
        assert.ok(!stored.includes(secret), `catalog leaks ${secret}`);
      }
      for (const secret of [HMAC_KEY, SMTP_PASS, DB_PASS]) assert.ok(!received.includes(secret), `message leaks ${secret}`);
      assert.ok(logs.some((l) => l === 'alerts: appdb/failures firing sent via slack'), logs.join('\n'));
    } finally {
      await manager.close();
      await catalog.close();
      await hook.close();
      await smtp.close();
    }
  });

  test('delivery failures never throw, are recorded and logged, and the message is retried later', async () => {
    const hook = await startWebhookReceiver();
    const down = await startWebhookReceiver();
    const downUrl = `${down.url}/hooks/${SLACK_TOKEN}`;
    await down.close(); // nothing listens there any more
    const catalog = await SqliteCatalog.open(catalogFile());
    const logs: string[] = [];
    const sleeps: number[] = [];
    let now = T0;
    const manager = AlertManager.fromConfig(
      parseNotifiersConfig({
        channels: {
          gone: { type: 'slack', url: downUrl, retries: 2, retryDelay: '1s' },
          flaky: { type: 'webhook', url: `${hook.url}/flaky`, retries: 2, retryDelay: '1s' },
        },
        routes: { normal: ['gone', 'flaky'] },
      }),
      { catalog, now: () => new Date(now), log: (m) => logs.push(m), sleep: async (ms) => void sleeps.push(ms) },
    );
    const finding: Finding = { job: 'j', check: 'failures', severity: 'critical', tier: 'normal', message: 'j: 3 consecutive failed runs', details: {} };
    try {
      // the flaky receiver answers 503 to the first 3 requests
      hook.respondWith((_r, i) => (i < 3 ? 503 : 200));
      const [o1] = await manager.process([finding]);
      assert.equal(o1!.action, 'fired');
      assert.equal(o1!.delivered, false);
      const gone = o1!.deliveries.find((d) => d.channel === 'gone')!;
      assert.equal(gone.ok, false);
      assert.equal(gone.attempts, 3);
      assert.match(gone.error!, new RegExp(`POST ${redactUrl(downUrl).replace(/\./g, '\\.')}: ECONNREFUSED`));
      assert.ok(!gone.error!.includes(SLACK_TOKEN));
      const flaky = o1!.deliveries.find((d) => d.channel === 'flaky')!;
      assert.deepEqual([flaky.ok, flaky.attempts], [false, 3]);
      assert.match(flaky.error!, /HTTP 503/);
      assert.deepEqual(sleeps.sort((a, b) => a - b), [1000, 1000, 2000, 2000]); // exponential backoff per channel
      const recorded = await catalog.deliveries({ alertKey: 'j/failures' });
      assert.deepEqual(recorded.map((d) => [d.channel, d.ok, d.attempts]).sort(), [
        ['flaky', false, 3],
        ['gone', false, 3],
      ]);
      assert.ok(logs.some((l) => /j\/failures firing via gone failed after 3 attempt\(s\): POST http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/.test(l)), logs.join('\n'));
      assert.ok(!logs.join('\n').includes(SLACK_TOKEN));
      assert.equal((await catalog.getAlert('j/failures'))!.lastSentAt, null);

      // next evaluation: the firing message is tried again and gets through on the flaky one
      now += 5 * MIN;
      const [o2] = await manager.process([finding]);
      assert.deepEqual([o2!.action, o2!.delivered], ['fired', true]);
      assert.equal(hook.on('/flaky').filter((r) => (r.json as WebhookPayload).kind === 'firing').length, 4);
      // same delivery id for the retries of one message
      const ids = new Set(hook.on('/flaky').slice(0, 3).map((r) => r.headers['x-lifeboat-delivery']));
      assert.equal(ids.size, 1);
      // delivered: no more until the reminder interval
      now += 5 * MIN;
      const [o3] = await manager.process([finding]);
      assert.equal(o3!.action, 'none');
      assert.equal(hook.on('/flaky').length, 4);

      // a 4xx is not retried
      hook.respondWith(400);
      const [o4] = await manager.process([{ ...finding, job: 'k' }]);
      assert.deepEqual(o4!.deliveries.find((d) => d.channel === 'flaky')!.attempts, 1);
      assert.match(o4!.deliveries.find((d) => d.channel === 'flaky')!.error!, /HTTP 400 nope/);
    } finally {
      await manager.close();
      await catalog.close();
      await hook.close();
    }
  });

  test('a receiver that never answers times out', async () => {
    const hook = await startWebhookReceiver();
    hook.respondWith(0);
    const catalog = await SqliteCatalog.open(catalogFile());
    const manager = AlertManager.fromConfig(
      parseNotifiersConfig({ channels: { slow: { type: 'webhook', url: `${hook.url}/slow`, timeout: '300ms', retries: 1 } }, routes: { normal: ['slow'] } }),
      { catalog, sleep: async () => {} },
    );
    try {
      const [o] = await manager.process([{ job: 'j', check: 'rpo', severity: 'critical', tier: 'normal', message: 'm', details: {} }]);
      assert.equal(o!.delivered, false);
      assert.deepEqual([o!.deliveries[0]!.attempts, o!.deliveries[0]!.error], [2, `POST ${hook.url}: timed out after 300ms`]);
      assert.equal(hook.on('/slow').length, 2);
    } finally {
      await manager.close();
      await catalog.close();
      await hook.close();
    }
  });

  test('SMTP: rejected login is reported without the password and not retried', async () => {
    const smtp = await startSmtpReceiver({ auth: { user: 'lifeboat', pass: 'the-right-one' } });
    const catalog = await SqliteCatalog.open(catalogFile());
    process.env.LBT_WRONG_PASS = SMTP_PASS;
    const logs: string[] = [];
    const manager = AlertManager.fromConfig(
      parseNotifiersConfig({
        channels: {
          mail: { type: 'email', host: '127.0.0.1', port: smtp.port, starttls: 'never', auth: { user: 'lifeboat', pass: { env: 'LBT_WRONG_PASS' } }, from: 'a@example.com', to: ['b@example.com'], retries: 3 },
        },
        routes: { critical: ['mail'] },
      }),
      { catalog, log: (m) => logs.push(m), sleep: async () => {} },
    );
    try {
      const [o] = await manager.process([{ job: 'j', check: 'rpo', severity: 'critical', tier: 'critical', message: 'm', details: {} }]);
      assert.equal(o!.delivered, false);
      assert.equal(o!.deliveries[0]!.attempts, 1);
      assert.match(o!.deliveries[0]!.error!, /^SMTP smtp:\/\/127\.0\.0\.1:\d+: .*535/);
      assert.deepEqual(smtp.authFailures, ['lifeboat']);
      assert.equal(smtp.messages.length, 0);
      assert.ok(!JSON.stringify([logs, await catalog.deliveries()]).includes(SMTP_PASS));
    } finally {
      await manager.close();
      await catalog.close();
      await smtp.close();
    }
  });

  test('routing per tier, escalation sent once, minSeverity, custom templates', async () => {
    const hook = await startWebhookReceiver();
    const smtp = await startSmtpReceiver();
    const catalog = await SqliteCatalog.open(catalogFile());
    let now = T0;
    const config = parseNotifiersConfig({
      channels: {
        slack: { type: 'slack', url: `${hook.url}/slack` },
        hook: { type: 'webhook', url: `${hook.url}/hook` },
        mail: { type: 'email', host: '127.0.0.1', port: smtp.port, starttls: 'never', from: 'a@example.com', to: ['oncall@example.com'] },
      },
      routes: { critical: ['mail', 'slack'], normal: ['hook'] },
      templates: { firing: { title: '{{status}} {{job}}/{{check}} ({{tier}}, #{{count}})' } },
    });
    const manager = AlertManager.fromConfig(config, { catalog, now: () => new Date(now) });
    const jobs: JobSpec[] = [
      { name: 'crit', tier: 'critical', rpoMs: 7 * 24 * H, repositories: [] },
      { name: 'norm', tier: 'normal', rpoMs: 7 * 24 * H, repositories: [] },
    ];
    const cycle = async () => manager.process((await evaluate(catalog, jobs, { now: new Date(now), skip: ['free-space'] })).findings);
    try {
      for (const j of ['crit', 'norm']) {
        await addRun(catalog, j, T0 - 2 * H, 'success');
        await addRun(catalog, j, T0 - H, 'failed', 'boom');
      }
      await cycle();
      assert.equal(hook.on('/slack').length, 1);
      assert.equal(smtp.messages.length, 1);
      assert.equal(hook.on('/hook').length, 1);
      assert.match((hook.on('/slack')[0]!.json as { text: string }).text, /^FIRING crit\/failures \(critical, #1\)/);
      assert.equal(smtp.messages[0]!.subject, 'FIRING crit/failures (critical, #1)');
      assert.equal((hook.on('/hook')[0]!.json as WebhookPayload).title, 'FIRING norm/failures (normal, #1)');
      assert.equal(hook.on('/hook')[0]!.headers['x-lifeboat-signature'], undefined); // no secret configured

      // norm keeps failing: warning → critical is sent at once, once
      now += 10 * MIN;
      await addRun(catalog, 'norm', now - 2 * MIN, 'failed', 'boom');
      await cycle();
      assert.equal(hook.on('/hook').length, 1); // streak 2: still warning
      now += 10 * MIN;
      await addRun(catalog, 'norm', now - 2 * MIN, 'failed', 'boom');
      const o = await cycle();
      assert.deepEqual(o.filter((x) => x.action !== 'none').map((x) => [x.key, x.action]), [['norm/failures', 'escalated']]);
      assert.equal(hook.on('/hook').length, 2);
      assert.equal((hook.on('/hook')[1]!.json as WebhookPayload).severity, 'critical');
      for (let i = 0; i < 5; i++) {
        now += 10 * MIN;
        await cycle();
      }
      assert.equal(hook.on('/hook').length, 2);
      assert.equal(hook.on('/slack').length, 1);
      assert.equal(smtp.messages.length, 1);

      // minSeverity critical: a warning never fires
      const strict = new AlertManager({ catalog, notifiers: createNotifiers(config), routes: { normal: ['hook'] }, minSeverity: 'critical' });
      const [w] = await strict.process([{ job: 'other', check: 'size', severity: 'warning', tier: 'normal', message: 'grew', details: {} }]);
      assert.equal(w!.action, 'none');
      assert.equal(await catalog.getAlert('other/size'), undefined);
      await strict.close();

      // a tier without a route: nothing sent, logged once, not counted as delivered
      const logs: string[] = [];
      const unrouted = new AlertManager({ catalog, notifiers: createNotifiers(config), routes: { normal: ['hook'] }, log: (m) => logs.push(m) });
      for (let i = 0; i < 3; i++) {
        const [u] = await unrouted.process([{ job: 'imp', check: 'rpo', severity: 'critical', tier: 'important', message: 'late', details: {} }]);
        assert.deepEqual([u!.action, u!.delivered, u!.deliveries], ['fired', false, []]);
      }
      assert.deepEqual(logs, ['alerts: imp/rpo firing: no channel routed for tier important; not sent']);
      await unrouted.close();
    } finally {
      await manager.close();
      await catalog.close();
      await hook.close();
      await smtp.close();
    }
  });

  test('config validation names the problem; secrets resolved with clear errors', () => {
    assert.throws(
      () => parseNotifiersConfig({ channels: { a: { type: 'slack', url: 'https://x.example' } }, routes: { critical: ['a', 'b'] } }),
      (e: unknown) => e instanceof ConfigError && /notifiers\.routes\.critical\.1: unknown channel "b" \(defined: a\)/.test((e as Error).message),
    );
    assert.throws(() => parseNotifiersConfig({ templates: { firing: { title: '{{jbo}} failed' } } }), /templates\.firing\.title: unknown template variable \{\{jbo\}\}/);
    assert.throws(() => parseNotifiersConfig({ channels: { a: { type: 'pager' } } }), /notifiers\.channels\.a/);
    assert.throws(() => parseNotifiersConfig({ channels: { a: { type: 'slack', url: 'ftp://x' } } }), /notifiers\.channels\.a\.url/);
    assert.throws(() => parseNotifiersConfig({ channels: { m: { type: 'email', host: 'h', from: 'nope', to: ['x@y.z'] } } }), /channels\.m\.from: expected an e-mail address/);
    assert.throws(() => parseNotifiersConfig({ reminderInterval: 'often' }), /reminderInterval/);
    const c = parseNotifiersConfig({ channels: { a: { type: 'webhook', url: { env: 'LBT_NOT_SET_ANYWHERE' } } } });
    assert.equal(c.reminderInterval, '4h');
    assert.equal(c.channels.a!.retries, 2);
    delete process.env.LBT_NOT_SET_ANYWHERE;
    assert.throws(() => createNotifiers(c), /notifiers\.channels\.a\.url: environment variable LBT_NOT_SET_ANYWHERE is not set/);
    process.env.LBT_NOT_A_URL = 'just-some-token';
    const bad = parseNotifiersConfig({ channels: { a: { type: 'webhook', url: { env: 'LBT_NOT_A_URL' } } } });
    assert.throws(
      () => createNotifiers(bad),
      (e: unknown) => /channels\.a\.url: not an http\(s\) URL/.test((e as Error).message) && !(e as Error).message.includes('just-some-token'),
    );
  });

  test('templates and redaction helpers', () => {
    assert.equal(renderTemplate('{{ job }}: {{message}} {{unknown}}', { job: 'a', message: 'b' }), 'a: b {{unknown}}');
    assert.equal(redactUrl('https://user:pw@hooks.slack.com:8443/services/T/B/X?token=1#f'), 'https://hooks.slack.com:8443');
    assert.equal(redactUrl('not a url'), '<redacted>');
    assert.equal(redactText('fail at https://a.example/x/y/z. retry'), 'fail at https://a.example. retry');
    assert.equal(redactText('PGPASSWORD=abc token: xyz ok'), 'PGPASSWORD=<redacted> token: <redacted> ok');
    assert.equal(redactText('the key is s3cr3t!', ['s3cr3t!']), 'the key is <redacted>');
  });
});
