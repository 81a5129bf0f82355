import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { tmpDir } from './helpers/tmp.js';
import { startWebhookReceiver, type ReceivedRequest, type WebhookReceiver } from './helpers/receivers.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import type { Finding } from '../src/ops/monitor.js';
import { AlertManager } from '../src/ops/notify/manager.js';
import { createNotifiers } from '../src/ops/notify/create.js';
import { deliver } from '../src/ops/notify/deliver.js';
import { parseNotifiersConfig } from '../src/config/notifiers.js';
import { Pinger } from '../src/ops/notify/ping.js';
import type { AlertMessage } from '../src/ops/notify/notifier.js';

/**
 * Issue 14 item 3: every channel's request, checked byte by byte by a real
 * HTTP receiver on 127.0.0.1 (method, path, headers, body fields), and the
 * firing → resolved cycle through the AlertManager for PagerDuty and Opsgenie.
 */

const PD_KEY = 'R0UT1NGKEYpagerduty000000000042';
const OG_KEY = 'og-api-key-5f2e9c1a';
const TG_TOKEN = '123456:ABC-telegramBotToken';
const NTFY_TOKEN = 'tk_ntfyAccessToken99';
const TW_TOKEN = 'twilioAuthTokenZZ';
const TEAMS_PATH = '/webhookb2/teams-secret-path';
const DISCORD_PATH = '/api/webhooks/1234/discord-secret-token';

let rx: WebhookReceiver;
const tmp = tmpDir('lb-channels-');
const logs: string[] = [];

function message(over: Partial<AlertMessage> = {}): AlertMessage {
  return {
    kind: 'firing',
    key: 'appdb/failures',
    job: 'appdb',
    check: 'failures',
    severity: 'critical',
    tier: 'critical',
    title: '[CRITICAL] appdb failures',
    text: 'appdb: 3 consecutive failed runs: pg_dump: connection refused',
    message: 'appdb: 3 consecutive failed runs',
    details: { streak: 3 },
    firstAt: new Date('2026-01-01T10:00:00Z'),
    at: new Date('2026-01-01T10:05:00Z'),
    count: 1,
    host: 'backup-1',
    ...over,
  };
}

function notifiers() {
  return createNotifiers(
    parseNotifiersConfig({
      channels: {
        pd: { type: 'pagerduty', routingKey: { env: 'LBT_PD_KEY' }, baseUrl: `${rx.url}/pd`, retries: 0 },
        og: { type: 'opsgenie', apiKey: { env: 'LBT_OG_KEY' }, baseUrl: `${rx.url}/og`, responders: [{ type: 'team', name: 'dba' }], tags: ['prod'], retries: 0 },
        teams: { type: 'teams', url: { env: 'LBT_TEAMS_URL' }, retries: 0 },
        teamsAdaptive: { type: 'teams', url: `${rx.url}/workflows/abc`, format: 'adaptive', retries: 0 },
        discord: { type: 'discord', url: { env: 'LBT_DISCORD_URL' }, username: 'Lifeboat', retries: 0 },
        tg: { type: 'telegram', botToken: { env: 'LBT_TG_TOKEN' }, chatId: -1001234, baseUrl: `${rx.url}/tg`, retries: 0 },
        ntfy: { type: 'ntfy', topic: 'backups', server: `${rx.url}/ntfy`, token: { env: 'LBT_NTFY_TOKEN' }, retries: 0 },
        sms: { type: 'sms', accountSid: 'AC0123', authToken: { env: 'LBT_TW_TOKEN' }, from: '+15550000001', to: ['+15550000002', '+15550000003'], baseUrl: `${rx.url}/tw`, retries: 1, retryDelay: '10ms' },
      },
    }),
  );
}

async function sendVia(name: string, msg: AlertMessage): Promise<ReceivedRequest[]> {
  const n = notifiers().get(name)!;
  const mark = rx.requests.length;
  const r = await deliver(n, msg, { sleep: async () => {} });
  assert.equal(r.ok, true, r.error);
  return rx.requests.slice(mark);
}

before(async () => {
  rx = await startWebhookReceiver();
  process.env.LBT_PD_KEY = PD_KEY;
  process.env.LBT_OG_KEY = OG_KEY;
  process.env.LBT_TG_TOKEN = TG_TOKEN;
  process.env.LBT_NTFY_TOKEN = NTFY_TOKEN;
  process.env.LBT_TW_TOKEN = TW_TOKEN;
  process.env.LBT_TEAMS_URL = `${rx.url}${TEAMS_PATH}`;
  process.env.LBT_DISCORD_URL = `${rx.url}${DISCORD_PATH}`;
});
after(async () => {
  await rx.close();
  tmp.cleanup();
});

describe('channel payloads against a local receiver', () => {
  test('PagerDuty Events API v2: trigger with payload, resolve with the same dedup key', async () => {
    const [t] = await sendVia('pd', message());
    assert.equal(t!.method, 'POST');
    assert.equal(t!.path, '/pd/v2/enqueue');
    assert.equal(t!.headers['content-type'], 'application/json');
    const body = t!.json as Record<string, any>;
    assert.equal(body.routing_key, PD_KEY);
    assert.equal(body.event_action, 'trigger');
    assert.equal(body.dedup_key, 'lifeboat/backup-1/appdb/failures');
    assert.deepEqual(
      { summary: body.payload.summary, source: body.payload.source, severity: body.payload.severity, component: body.payload.component, group: body.payload.group, class: body.payload.class },
      { summary: '[CRITICAL] appdb failures', source: 'backup-1', severity: 'critical', component: 'appdb', group: 'critical', class: 'failures' },
    );
    assert.equal(body.payload.timestamp, '2026-01-01T10:05:00.000Z');
    assert.equal(body.payload.custom_details.streak, 3);
    const [r] = await sendVia('pd', message({ kind: 'resolved', severity: 'ok' }));
    assert.deepEqual(r!.json, { routing_key: PD_KEY, event_action: 'resolve', dedup_key: 'lifeboat/backup-1/appdb/failures' });
    // acknowledge, for callers that have one
    const pd = notifiers().get('pd') as import('../src/ops/notify/pagerduty.js').PagerDutyNotifier;
    const mark = rx.requests.length;
    await pd.event('acknowledge', message());
    assert.deepEqual(rx.requests[mark]!.json, { routing_key: PD_KEY, event_action: 'acknowledge', dedup_key: 'lifeboat/backup-1/appdb/failures' });
  });

  test('Opsgenie: create with alias and GenieKey, close by alias', async () => {
    const [c] = await sendVia('og', message({ severity: 'warning' }));
    assert.equal(c!.method, 'POST');
    assert.equal(c!.path, '/og/v2/alerts');
    assert.equal(c!.headers.authorization, `GenieKey ${OG_KEY}`);
    const b = c!.json as Record<string, any>;
    assert.equal(b.message, '[CRITICAL] appdb failures');
    assert.equal(b.alias, 'lifeboat/backup-1/appdb/failures');
    assert.equal(b.priority, 'P3');
    assert.equal(b.entity, 'appdb');
    assert.equal(b.source, 'lifeboat@backup-1');
    assert.deepEqual(b.tags, ['lifeboat', 'tier:critical', 'check:failures', 'prod']);
    assert.deepEqual(b.responders, [{ type: 'team', name: 'dba' }]);
    assert.equal(b.description, message().text);
    const [x] = await sendVia('og', message({ kind: 'resolved', severity: 'ok' }));
    assert.equal(x!.path, `/og/v2/alerts/${encodeURIComponent('lifeboat/backup-1/appdb/failures')}/close?identifierType=alias`);
    assert.equal(x!.headers.authorization, `GenieKey ${OG_KEY}`);
    assert.equal((x!.json as Record<string, unknown>).source, 'lifeboat@backup-1');
  });

  test('Microsoft Teams: MessageCard and Adaptive Card', async () => {
    const [m] = await sendVia('teams', message());
    assert.equal(m!.path, TEAMS_PATH);
    const card = m!.json as Record<string, any>;
    assert.equal(card['@type'], 'MessageCard');
    assert.equal(card['@context'], 'https://schema.org/extensions');
    assert.equal(card.title, '[CRITICAL] appdb failures');
    assert.equal(card.themeColor, 'D83B01');
    assert.equal(card.text, message().text);
    assert.deepEqual(card.sections[0].facts[0], { name: 'Job', value: 'appdb' });
    const [a] = await sendVia('teamsAdaptive', message({ severity: 'warning' }));
    assert.equal(a!.path, '/workflows/abc');
    const env = a!.json as Record<string, any>;
    assert.equal(env.type, 'message');
    assert.equal(env.attachments[0].contentType, 'application/vnd.microsoft.card.adaptive');
    const content = env.attachments[0].content;
    assert.equal(content.type, 'AdaptiveCard');
    assert.equal(content.version, '1.4');
    assert.equal(content.body[0].text, '[CRITICAL] appdb failures');
    assert.equal(content.body[0].color, 'Warning');
    assert.equal(content.body[2].type, 'FactSet');
  });

  test('Discord: content + one embed, mentions disabled', async () => {
    const [d] = await sendVia('discord', message());
    assert.equal(d!.method, 'POST');
    assert.equal(d!.path, DISCORD_PATH);
    const b = d!.json as Record<string, any>;
    assert.equal(b.content, '[CRITICAL] appdb failures');
    assert.equal(b.username, 'Lifeboat');
    assert.deepEqual(b.allowed_mentions, { parse: [] });
    assert.equal(b.embeds.length, 1);
    assert.equal(b.embeds[0].color, 0xd83b01);
    assert.equal(b.embeds[0].description, message().text);
    assert.equal(b.embeds[0].timestamp, '2026-01-01T10:05:00.000Z');
    assert.deepEqual(b.embeds[0].fields.map((f: { name: string }) => f.name), ['Job', 'Check', 'Severity']);
  });

  test('Telegram: sendMessage to the chat id with the bot token in the path', async () => {
    const [t] = await sendVia('tg', message({ kind: 'resolved', severity: 'ok', title: '[OK] appdb failures' }));
    assert.equal(t!.method, 'POST');
    assert.equal(t!.path, `/tg/bot${TG_TOKEN}/sendMessage`);
    assert.equal(t!.headers['content-type'], 'application/json');
    const b = t!.json as Record<string, any>;
    assert.equal(b.chat_id, '-1001234');
    assert.equal(b.text, `✅ [OK] appdb failures\n\n${message().text}`);
    assert.equal(b.disable_web_page_preview, true);
    assert.equal(b.parse_mode, undefined);
  });

  test('ntfy: POST to the topic with Title, Priority, Tags and Bearer token', async () => {
    const [n] = await sendVia('ntfy', message());
    assert.equal(n!.method, 'POST');
    assert.equal(n!.path, '/ntfy/backups');
    assert.equal(n!.headers.title, '[CRITICAL] appdb failures');
    assert.equal(n!.headers.priority, '5');
    assert.equal(n!.headers.tags, 'rotating_light,lifeboat,failures');
    assert.equal(n!.headers.authorization, `Bearer ${NTFY_TOKEN}`);
    assert.match(String(n!.headers['content-type']), /^text\/plain/);
    assert.equal(n!.raw.toString('utf8'), message().text);
    const [u] = await sendVia('ntfy', message({ severity: 'warning', title: 'Sicherung veraltet: Ärger' }));
    assert.equal(u!.headers.priority, '4');
    assert.equal(u!.headers.title, `=?UTF-8?B?${Buffer.from('Sicherung veraltet: Ärger').toString('base64')}?=`);
  });

  test('SMS (Twilio-compatible): one form post per recipient with Basic auth; a retry skips recipients already served', async () => {
    let calls = 0;
    // the second recipient's first attempt fails with 503
    rx.respondWith((r) => (r.path.startsWith('/tw/') && new URLSearchParams(r.raw.toString()).get('To') === '+15550000003' && calls++ === 0 ? 503 : 201));
    try {
      const reqs = await sendVia('sms', message());
      assert.deepEqual(reqs.map((r) => new URLSearchParams(r.raw.toString()).get('To')), ['+15550000002', '+15550000003', '+15550000003']);
      for (const r of reqs) {
        assert.equal(r.method, 'POST');
        assert.equal(r.path, '/tw/2010-04-01/Accounts/AC0123/Messages.json');
        assert.equal(r.headers['content-type'], 'application/x-www-form-urlencoded');
        assert.equal(r.headers.authorization, `Basic ${Buffer.from(`AC0123:${TW_TOKEN}`).toString('base64')}`);
        const f = new URLSearchParams(r.raw.toString());
        assert.equal(f.get('From'), '+15550000001');
        assert.equal(f.get('Body'), '[CRITICAL] appdb failures (backup-1)');
        assert.deepEqual([...f.keys()].sort(), ['Body', 'From', 'To']);
      }
    } finally {
      rx.respondWith(200);
    }
  });

  test('a rejected delivery names the channel host only, never a token', async () => {
    rx.respondWith(500);
    try {
      for (const name of ['pd', 'og', 'teams', 'discord', 'tg', 'ntfy', 'sms']) {
        const r = await deliver(notifiers().get(name)!, message(), { sleep: async () => {} });
        assert.equal(r.ok, false);
        assert.match(r.error!, /HTTP 500/);
        for (const s of [PD_KEY, OG_KEY, TG_TOKEN, NTFY_TOKEN, TW_TOKEN, 'teams-secret-path', 'discord-secret-token']) assert.ok(!r.error!.includes(s), `${name}: ${r.error}`);
      }
    } finally {
      rx.respondWith(200);
    }
  });

  test('config: unknown keys and bad values are clear errors; a missing secret names the variable', () => {
    assert.throws(() => parseNotifiersConfig({ channels: { p: { type: 'pagerduty', routingKey: 'inline' } } }), /notifiers\.channels\.p\.routingKey/);
    assert.throws(() => parseNotifiersConfig({ channels: { s: { type: 'sms', accountSid: 'AC', authToken: { env: 'X' }, from: '+1555', to: ['0800 123'] } } }), /E\.164/);
    assert.throws(() => parseNotifiersConfig({ channels: { n: { type: 'ntfy', topic: 'a/b' } } }), /ntfy topics/);
    delete process.env.LBT_MISSING_SECRET;
    assert.throws(
      () => createNotifiers(parseNotifiersConfig({ channels: { t: { type: 'telegram', botToken: { env: 'LBT_MISSING_SECRET' }, chatId: '1' } } })),
      /LBT_MISSING_SECRET/,
    );
  });
});

describe('AlertManager through PagerDuty and Opsgenie', () => {
  let catalog: Catalog;
  before(async () => {
    catalog = await SqliteCatalog.open(path.join(tmp.dir, 'am.db'));
  });
  after(async () => catalog.close());

  test('an alert triggers, stays quiet while firing, and resolves when the job recovers', async () => {
    let now = Date.UTC(2026, 0, 1, 12);
    const config = parseNotifiersConfig({
      channels: {
        pd: { type: 'pagerduty', routingKey: { env: 'LBT_PD_KEY' }, baseUrl: `${rx.url}/pd2` },
        og: { type: 'opsgenie', apiKey: { env: 'LBT_OG_KEY' }, baseUrl: `${rx.url}/og2` },
      },
      routes: { critical: ['pd', 'og'] },
    });
    const am = AlertManager.fromConfig(config, { catalog, now: () => new Date(now), log: (m) => logs.push(m), host: 'db-host' });
    const f = (severity: Finding['severity']): Finding => ({ job: 'billing', check: 'rpo', severity, tier: 'critical', message: `billing ${severity}`, details: {} });
    const seen = () => rx.requests.filter((r) => r.path.startsWith('/pd2/') || r.path.startsWith('/og2/')).map((r) => [r.path.split('?')[0], (r.json as Record<string, string>).event_action ?? (r.json as Record<string, string>).alias ?? '']);
    try {
      await am.process([f('critical')]);
      now += 60_000;
      await am.process([f('critical')]);
      now += 60_000;
      await am.process([f('ok')]);
      // the two channels are sent to in parallel: compare per channel, in order
      const all = seen();
      assert.deepEqual(all.filter((r) => r[0]!.startsWith('/pd2/')), [
        ['/pd2/v2/enqueue', 'trigger'],
        ['/pd2/v2/enqueue', 'resolve'],
      ]);
      assert.deepEqual(all.filter((r) => r[0]!.startsWith('/og2/')), [
        ['/og2/v2/alerts', 'lifeboat/db-host/billing/rpo'],
        ['/og2/v2/alerts/lifeboat%2Fdb-host%2Fbilling%2Frpo/close', ''],
      ]);
      const pd = rx.requests.filter((r) => r.path.startsWith('/pd2/')).map((r) => (r.json as Record<string, string>).dedup_key);
      assert.deepEqual(pd, ['lifeboat/db-host/billing/rpo', 'lifeboat/db-host/billing/rpo']);
      assert.ok(!logs.join('\n').includes(PD_KEY) && !logs.join('\n').includes(OG_KEY));
    } finally {
      await am.close();
    }
  });
});

describe('Pinger', () => {
  test('a ping server that never answers: each attempt ends at the timeout, retried, logged, resolves false', async () => {
    const log: string[] = [];
    rx.respondWith((r) => (r.path.startsWith('/slow/') ? 0 : 200));
    try {
      const mark = rx.requests.length;
      const p = new Pinger({ url: `${rx.url}/slow/tok3n-abcdef`, style: 'healthchecks', start: true, exitCode: false, timeoutMs: 300, retries: 1, retryDelayMs: 10, log: (m) => log.push(m) });
      assert.equal(await p.finish({ exitCode: 12, error: 'wrong password', durationMs: 5 }), false);
      const reqs = rx.requests.slice(mark);
      assert.deepEqual(reqs.map((r) => r.path.split('?')[0]), ['/slow/tok3n-abcdef/fail', '/slow/tok3n-abcdef/fail']);
      assert.equal(reqs[0]!.raw.toString(), 'wrong password');
      assert.equal(log.length, 1);
      assert.match(log[0]!, /^ping fail \(exit 12\) to http:\/\/127\.0\.0\.1:\d+ failed: timed out after 300ms \(the run is not affected\)$/);
    } finally {
      rx.respondWith(200);
    }
  });

  test('a 404 (wrong check URL) is not retried; a long error keeps its tail', async () => {
    rx.respondWith((r) => (r.path.startsWith('/gone/') ? 404 : 200));
    try {
      const mark = rx.requests.length;
      const log: string[] = [];
      const p = new Pinger({ url: `${rx.url}/gone/x`, style: 'healthchecks', start: true, exitCode: false, timeoutMs: 2000, retries: 3, retryDelayMs: 10, log: (m) => log.push(m) });
      const long = 'A'.repeat(20_000) + 'THE-END';
      assert.equal(await p.finish({ exitCode: 1, error: long, durationMs: 5 }), false);
      const reqs = rx.requests.slice(mark);
      assert.equal(reqs.length, 1);
      assert.equal(reqs[0]!.raw.toString().length, 10_000);
      assert.ok(reqs[0]!.raw.toString().endsWith('THE-END'));
      assert.match(log[0]!, /HTTP 404/);
    } finally {
      rx.respondWith(200);
    }
  });
});
