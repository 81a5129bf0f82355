import { createHmac, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { z } from 'zod';
import type { Transporter } from 'nodemailer';
import { secretFromConfig } from '../config/repos.js';
import { secretSchema } from '../config/schema.js';
import type { SecretRef } from '../config/password.js';
import { ConfigError, errorMessage } from '../errors.js';
import { TIERS, type Tier } from '../policy/objectives.js';
import { formatDuration, parseDuration } from '../policy/retention.js';
import type { AlertRecord, Catalog, DeliveryRecord, Severity } from './catalog.js';
import type { Finding } from './monitor.js';
import {
  DEFAULT_TEMPLATES,
  redactText,
  redactUrl,
  renderMessage,
  validateTemplate,
  type MessageKind,
  type MessageTemplate,
  type TemplateVars,
} from './templates.js';

/**
 * Alert delivery: Slack-compatible incoming webhooks, generic signed JSON
 * webhooks and e-mail over SMTP, plus the AlertManager that turns monitor
 * findings into at most one message per state change (and reminders).
 *
 * Config (the `notifiers` block of lifeboat.yaml):
 *
 *   notifiers:
 *     reminderInterval: 4h          # re-notify while still firing, never more often
 *     minSeverity: warning          # warning | critical: lower findings never fire
 *     channels:
 *       ops-slack: { type: slack, url: { env: SLACK_WEBHOOK_URL } }
 *       pager:     { type: webhook, url: { env: PAGER_URL }, secret: { env: PAGER_HMAC_KEY } }
 *       oncall:    { type: email, host: smtp.example.com, port: 587, from: lifeboat@example.com,
 *                    to: [oncall@example.com], auth: { user: lifeboat, pass: { env: SMTP_PASSWORD } } }
 *     routes:                       # per job tier; repository checks use the highest tier of their jobs
 *       critical: [oncall, ops-slack]
 *       important: [ops-slack]
 *       normal: [pager]
 *     templates:                    # optional, {{var}} substitution (see templates.ts)
 *       firing: { title: "[{{SEVERITY}}] {{job}} {{check}}" }
 *
 * Secrets (webhook URLs carry tokens, HMAC keys, SMTP passwords) never appear
 * in logs, errors or the catalog: URLs are shown as scheme://host only.
 *
 * Generic webhook request:
 *   POST <url>, Content-Type: application/json, body = WebhookPayload (JSON)
 *   X-Lifeboat-Timestamp: <unix seconds>   (also `timestamp` in the body)
 *   X-Lifeboat-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
 *   X-Lifeboat-Delivery: <uuid, the same for every retry of one message>
 * Receivers should verify the signature over the raw bytes, then reject a
 * timestamp that is far from their clock (replay) — the body's timestamp is
 * covered by the signature.
 */

// --- config schemas ------------------------------------------------------------

const durationString = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

/** A webhook URL: given inline (discouraged: it contains the token) or as a secret reference. */
const urlOrSecret = z.union([
  z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http(s) URL or a secret reference { env | file | command }'),
  secretSchema,
]);

const deliveryOptions = {
  timeout: durationString.default('10s').describe('per-attempt timeout'),
  retries: z.number().int().min(0).max(10).default(2).describe('further attempts after a failed one'),
  retryDelay: durationString.default('2s').describe('delay before the first retry, doubled each time'),
};

export const slackChannelSchema = z
  .object({
    type: z.literal('slack'),
    url: urlOrSecret.describe('incoming-webhook URL (Slack, Mattermost, Rocket.Chat, ...)'),
    ...deliveryOptions,
  })
  .strict();

export const webhookChannelSchema = z
  .object({
    type: z.literal('webhook'),
    url: urlOrSecret,
    secret: secretSchema.optional().describe('HMAC-SHA256 key for X-Lifeboat-Signature'),
    headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'invalid header name'), z.string()).default({}),
    ...deliveryOptions,
  })
  .strict();

const emailAddress = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$|^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/, 'expected an e-mail address');

export const emailChannelSchema = z
  .object({
    type: z.literal('email'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    secure: z.boolean().default(false).describe('implicit TLS from the first byte (port 465)'),
    starttls: z
      .enum(['required', 'opportunistic', 'never'])
      .optional()
      .describe('when secure is false: default "required" with auth, "opportunistic" without'),
    tls: z
      .object({
        rejectUnauthorized: z.boolean().default(true),
        servername: z.string().optional(),
      })
      .strict()
      .optional(),
    auth: z.object({ user: z.string().min(1), pass: secretSchema }).strict().optional(),
    from: emailAddress,
    to: z.array(emailAddress).min(1),
    ...deliveryOptions,
  })
  .strict();

export const channelSchema = z.discriminatedUnion('type', [slackChannelSchema, webhookChannelSchema, emailChannelSchema]);

const templateOverride = z.object({ title: z.string().min(1).optional(), text: z.string().min(1).optional() }).strict();

export const notifiersSchema = z
  .object({
    reminderInterval: durationString.default('4h'),
    minSeverity: z.enum(['warning', 'critical']).default('warning'),
    channels: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'channel names use letters, digits, _ . -'), channelSchema).default({}),
    routes: z
      .object({
        critical: z.array(z.string()).optional(),
        important: z.array(z.string()).optional(),
        normal: z.array(z.string()).optional(),
      })
      .strict()
      .default({}),
    templates: z
      .object({ firing: templateOverride.optional(), reminder: templateOverride.optional(), resolved: templateOverride.optional() })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((n, ctx) => {
    const names = Object.keys(n.channels);
    for (const tier of TIERS) {
      for (const [i, ch] of (n.routes[tier] ?? []).entries()) {
        if (!n.channels[ch]) ctx.addIssue({ code: 'custom', path: ['routes', tier, i], message: `unknown channel "${ch}" (defined: ${names.join(', ') || 'none'})` });
      }
    }
    for (const [kind, t] of Object.entries(n.templates)) {
      for (const field of ['title', 'text'] as const) {
        const v = (t as { title?: string; text?: string } | undefined)?.[field];
        if (v === undefined) continue;
        try {
          validateTemplate(v, `templates.${kind}.${field}`);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: ['templates', kind, field], message: errorMessage(e) });
        }
      }
    }
  });

export type SlackChannelConfig = z.infer<typeof slackChannelSchema>;
export type WebhookChannelConfig = z.infer<typeof webhookChannelSchema>;
export type EmailChannelConfig = z.infer<typeof emailChannelSchema>;
export type ChannelConfig = z.infer<typeof channelSchema>;
export type NotifiersConfig = z.infer<typeof notifiersSchema>;

/** Validate the raw `notifiers` block (ConfigError listing the problems). */
export function parseNotifiersConfig(raw: unknown): NotifiersConfig {
  const r = notifiersSchema.safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.slice(0, 10).map((i) => `notifiers.${i.path.map(String).join('.')}: ${i.message}`);
    throw new ConfigError(`invalid notifiers configuration:\n  ${lines.join('\n  ')}`);
  }
  return r.data;
}

// --- messages and notifiers -------------------------------------------------------

export interface AlertMessage {
  kind: MessageKind;
  /** "job/check" */
  key: string;
  job: string;
  check: string;
  severity: Severity;
  tier: Tier;
  title: string;
  text: string;
  /** The finding's one-line message. */
  message: string;
  details: Record<string, unknown>;
  firstAt: Date;
  at: Date;
  /** Notifications of this episode including this one. */
  count: number;
  host: string;
}

/** JSON body of the generic webhook. */
export interface WebhookPayload {
  version: 1;
  /** Unix seconds when the message was built (equals X-Lifeboat-Timestamp). */
  timestamp: number;
  id: string;
  kind: MessageKind;
  status: 'firing' | 'resolved';
  key: string;
  job: string;
  check: string;
  severity: Severity;
  tier: Tier;
  title: string;
  text: string;
  message: string;
  details: Record<string, unknown>;
  firstAt: string;
  at: string;
  count: number;
  host: string;
}

/** A failed delivery attempt. `retryable` false: do not try again (4xx, bad config). Message is already redacted. */
export class DeliveryError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'DeliveryError';
  }
}

export interface Notifier {
  readonly name: string;
  readonly type: 'slack' | 'webhook' | 'email';
  /** Where it sends to, safe to log (scheme://host, SMTP host:port). */
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  /** One attempt. Throws DeliveryError (redacted) on failure. */
  send(msg: AlertMessage): Promise<void>;
  close?(): Promise<void>;
}

export interface DeliveryResult {
  channel: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

const USER_AGENT = 'lifeboat-alerts/1';

interface HttpNotifierOptions {
  name: string;
  url: string;
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

async function postJson(url: string, body: string, headers: Record<string, string>, timeoutMs: number, secrets: string[]): Promise<void> {
  const target = redactUrl(url);
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': USER_AGENT, ...headers },
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `timed out after ${formatDuration(timeoutMs)}` : e.cause?.code ?? e.cause?.message ?? e.message;
    throw new DeliveryError(redactText(`POST ${target}: ${why}`, secrets), true);
  }
  let text = '';
  try {
    text = (await res.text()).slice(0, 200);
  } catch {
    /* ignore body errors */
  }
  if (res.status >= 200 && res.status < 300) return;
  const retryable = res.status >= 500 || res.status === 408 || res.status === 429;
  throw new DeliveryError(redactText(`POST ${target}: HTTP ${res.status}${text ? ` ${text.replace(/\s+/g, ' ').trim()}` : ''}`, secrets), retryable);
}

function escapeSlack(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Slack-compatible incoming webhook: POST {text, blocks}. */
export class SlackNotifier implements Notifier {
  readonly type = 'slack' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;

  constructor(opts: HttpNotifierOptions) {
    this.name = opts.name;
    this.#url = opts.url;
    this.target = redactUrl(opts.url);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  /** The JSON body sent for a message. */
  static payload(msg: AlertMessage): { text: string; blocks: unknown[] } {
    const icon = msg.kind === 'resolved' ? ':white_check_mark:' : msg.severity === 'critical' ? ':rotating_light:' : ':warning:';
    return {
      text: escapeSlack(`${msg.title}\n${msg.text}`),
      blocks: [
        { type: 'header', text: { type: 'plain_text', text: msg.title.slice(0, 150) } },
        { type: 'section', text: { type: 'mrkdwn', text: `${icon} ${escapeSlack(msg.text)}`.slice(0, 3000) } },
        {
          type: 'context',
          elements: [{ type: 'mrkdwn', text: escapeSlack(`job ${msg.job} · check ${msg.check} · ${msg.kind} · severity ${msg.severity} · tier ${msg.tier} · ${msg.host}`) }],
        },
      ],
    };
  }

  async send(msg: AlertMessage): Promise<void> {
    await postJson(this.#url, JSON.stringify(SlackNotifier.payload(msg)), {}, this.timeoutMs, [this.#url]);
  }
}

/** HMAC-SHA256 of the raw body, as sent in X-Lifeboat-Signature. */
export function signBody(secret: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** Generic JSON webhook, signed when a secret is configured. */
export class WebhookNotifier implements Notifier {
  readonly type = 'webhook' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #secret: string | undefined;
  readonly #headers: Record<string, string>;
  /** Body per message, so every retry sends the same bytes and delivery id. */
  readonly #bodies = new WeakMap<AlertMessage, { body: string; id: string; timestamp: number }>();

  constructor(opts: HttpNotifierOptions & { secret?: string; headers?: Record<string, string> }) {
    this.name = opts.name;
    this.#url = opts.url;
    this.#secret = opts.secret;
    this.#headers = opts.headers ?? {};
    this.target = redactUrl(opts.url);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static payload(msg: AlertMessage, id: string, timestamp: number): WebhookPayload {
    return {
      version: 1,
      timestamp,
      id,
      kind: msg.kind,
      status: msg.kind === 'resolved' ? 'resolved' : 'firing',
      key: msg.key,
      job: msg.job,
      check: msg.check,
      severity: msg.severity,
      tier: msg.tier,
      title: msg.title,
      text: msg.text,
      message: msg.message,
      details: msg.details,
      firstAt: msg.firstAt.toISOString(),
      at: msg.at.toISOString(),
      count: msg.count,
      host: msg.host,
    };
  }

  async send(msg: AlertMessage): Promise<void> {
    let b = this.#bodies.get(msg);
    if (!b) {
      const id = randomUUID();
      const timestamp = Math.floor(Date.now() / 1000);
      b = { id, timestamp, body: JSON.stringify(WebhookNotifier.payload(msg, id, timestamp)) };
      this.#bodies.set(msg, b);
    }
    const headers: Record<string, string> = { ...this.#headers, 'x-lifeboat-timestamp': String(b.timestamp), 'x-lifeboat-delivery': b.id };
    if (this.#secret !== undefined) headers['x-lifeboat-signature'] = signBody(this.#secret, b.body);
    const secrets = [this.#url, ...(this.#secret ? [this.#secret] : []), ...Object.values(this.#headers)];
    await postJson(this.#url, b.body, headers, this.timeoutMs, secrets);
  }
}

export interface EmailNotifierOptions {
  name: string;
  host: string;
  port?: number;
  secure?: boolean;
  starttls?: 'required' | 'opportunistic' | 'never';
  tls?: { rejectUnauthorized?: boolean; servername?: string };
  auth?: { user: string; pass: string };
  from: string;
  to: string[];
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

/** E-mail over SMTP (nodemailer): plain-text message, subject = title. */
export class EmailNotifier implements Notifier {
  readonly type = 'email' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #opts: EmailNotifierOptions;
  // nodemailer is loaded on first use: most CLI runs never send mail
  #transport: Promise<Transporter> | undefined;

  constructor(opts: EmailNotifierOptions) {
    this.name = opts.name;
    this.#opts = opts;
    const port = opts.port ?? 587;
    this.target = `smtp://${opts.host}:${port}`;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  #transporter(): Promise<Transporter> {
    const opts = this.#opts;
    const port = opts.port ?? 587;
    const starttls = opts.starttls ?? (opts.auth ? 'required' : 'opportunistic');
    return (this.#transport ??= import('nodemailer').then(({ createTransport }) => createTransport({
      host: opts.host,
      port,
      secure: opts.secure ?? false,
      requireTLS: !opts.secure && starttls === 'required',
      ignoreTLS: !opts.secure && starttls === 'never',
      ...(opts.auth ? { auth: { user: opts.auth.user, pass: opts.auth.pass } } : {}),
      tls: { rejectUnauthorized: opts.tls?.rejectUnauthorized ?? true, ...(opts.tls?.servername ? { servername: opts.tls.servername } : {}) },
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
    })));
  }

  async send(msg: AlertMessage): Promise<void> {
    const secrets = this.#opts.auth ? [this.#opts.auth.pass] : [];
    try {
      await (await this.#transporter()).sendMail({
        from: this.#opts.from,
        to: this.#opts.to,
        subject: msg.title,
        text: `${msg.text}\n\n--\nLifeboat on ${msg.host} · ${msg.kind} · job ${msg.job} · check ${msg.check} · severity ${msg.severity}\n`,
        headers: {
          'X-Lifeboat-Alert-Key': msg.key,
          'X-Lifeboat-Alert-Kind': msg.kind,
          'X-Lifeboat-Severity': msg.severity,
        },
      });
    } catch (err) {
      const e = err as Error & { code?: string; responseCode?: number; response?: string };
      // 5xx SMTP replies (bad recipient, auth rejected) will not fix themselves; network errors and 4xx may
      const permanent = e.responseCode !== undefined && e.responseCode >= 500;
      const why = e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message;
      throw new DeliveryError(redactText(`SMTP ${this.target}: ${why}`, secrets), !permanent);
    }
  }

  async close(): Promise<void> {
    if (this.#transport) (await this.#transport).close();
  }
}

/** One message through one notifier with its timeout and retries. Never throws. */
export async function deliver(
  notifier: Notifier,
  msg: AlertMessage,
  opts: { sleep?: (ms: number) => Promise<void> } = {},
): Promise<DeliveryResult> {
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  let attempts = 0;
  let lastError = '';
  for (;;) {
    attempts++;
    try {
      await notifier.send(msg);
      return { channel: notifier.name, ok: true, attempts };
    } catch (err) {
      const retryable = err instanceof DeliveryError ? err.retryable : true;
      // errors from send() are redacted by the notifier; redact again in case a foreign error slipped through
      lastError = err instanceof DeliveryError ? err.message : redactText(`${notifier.type} ${notifier.target}: ${errorMessage(err)}`);
      if (!retryable || attempts > notifier.retries) return { channel: notifier.name, ok: false, attempts, error: lastError };
    }
    await sleep(notifier.retryDelayMs * 2 ** (attempts - 1));
  }
}

/** Build the notifiers of a validated config, resolving secrets (ConfigError names a missing one, never its value). */
export function createNotifiers(config: NotifiersConfig, opts: { baseDir?: string } = {}): Map<string, Notifier> {
  const cfgDir = opts.baseDir ? { dir: opts.baseDir } : undefined;
  const secret = (ref: SecretRef, what: string) => secretFromConfig(cfgDir, ref, what);
  const url = (v: string | SecretRef, what: string) => {
    const u = typeof v === 'string' ? v : secret(v, what);
    if (!/^https?:\/\//i.test(u)) throw new ConfigError(`${what}: not an http(s) URL`);
    try {
      new URL(u);
    } catch {
      throw new ConfigError(`${what}: not a valid URL`);
    }
    return u;
  };
  const out = new Map<string, Notifier>();
  for (const [name, ch] of Object.entries(config.channels)) {
    const where = `notifiers.channels.${name}`;
    const common = { name, timeoutMs: parseDuration(ch.timeout), retries: ch.retries, retryDelayMs: parseDuration(ch.retryDelay) };
    if (ch.type === 'slack') out.set(name, new SlackNotifier({ ...common, url: url(ch.url, `${where}.url`) }));
    else if (ch.type === 'webhook') {
      out.set(
        name,
        new WebhookNotifier({
          ...common,
          url: url(ch.url, `${where}.url`),
          headers: ch.headers,
          ...(ch.secret ? { secret: secret(ch.secret, `${where}.secret`) } : {}),
        }),
      );
    } else {
      out.set(
        name,
        new EmailNotifier({
          ...common,
          host: ch.host,
          port: ch.port,
          secure: ch.secure,
          ...(ch.starttls ? { starttls: ch.starttls } : {}),
          ...(ch.tls ? { tls: ch.tls } : {}),
          ...(ch.auth ? { auth: { user: ch.auth.user, pass: secret(ch.auth.pass, `${where}.auth.pass`) } } : {}),
          from: ch.from,
          to: ch.to,
        }),
      );
    }
  }
  return out;
}

// --- alert manager -----------------------------------------------------------------

export interface AlertManagerOptions {
  catalog: Catalog;
  notifiers: Map<string, Notifier> | Record<string, Notifier>;
  /** Channel names per job tier. A tier without a route sends nothing (logged once per alert). */
  routes: Partial<Record<Tier, string[]>>;
  /** Reminder while still firing, never more often (default 4h). */
  reminderIntervalMs?: number;
  /** Findings below this severity do not fire (default 'warning'). */
  minSeverity?: 'warning' | 'critical';
  templates?: Partial<Record<MessageKind, Partial<MessageTemplate>>>;
  /** Clock (tests, simulations). */
  now?: () => Date;
  log?: (msg: string) => void;
  /** Delay between delivery retries (default: real sleep). */
  sleep?: (ms: number) => Promise<void>;
  /** Host name shown in messages (default os.hostname()). */
  host?: string;
}

export type AlertAction = 'fired' | 'escalated' | 'reminded' | 'resolved' | 'none';

export interface AlertOutcome {
  key: string;
  /** What was attempted for this key (none: nothing due). */
  action: AlertAction;
  /** At least one channel accepted the message. */
  delivered: boolean;
  deliveries: DeliveryResult[];
}

const RANK: Record<Severity, number> = { ok: 0, warning: 1, critical: 2 };

export function alertKey(f: Pick<Finding, 'job' | 'check'>): string {
  return `${f.job}/${f.check}`;
}

/**
 * Turns findings into notifications, with state in the catalog `alerts` table
 * (survives restarts). Per key (job/check):
 *
 *  - starts firing (severity ≥ minSeverity): one "firing" message;
 *  - still firing: a "reminder" once reminderInterval has passed since the last
 *    delivered message, never more often; a rise in severity (warning →
 *    critical) is sent at once as a "firing" message (at most once per level);
 *  - back to ok: one "resolved" message (only if receivers heard it fire).
 *
 * A message counts as delivered when at least one routed channel accepted it;
 * failures of each channel are logged and recorded (catalog.deliveries). When
 * every channel failed the message is retried at the next process() call.
 * Keys absent from a batch are left as they are. process() never throws for
 * delivery problems; calls are serialised.
 */
export class AlertManager {
  private readonly catalog: Catalog;
  private readonly notifiers: Map<string, Notifier>;
  private readonly routes: Partial<Record<Tier, string[]>>;
  readonly reminderIntervalMs: number;
  private readonly minRank: number;
  private readonly templates: Record<MessageKind, MessageTemplate>;
  private readonly now: () => Date;
  private readonly log: (msg: string) => void;
  private readonly sleep: ((ms: number) => Promise<void>) | undefined;
  private readonly host: string;
  private queue: Promise<unknown> = Promise.resolve();
  /** Keys already logged as having no route (logged once per process). */
  private readonly unrouted = new Set<string>();

  constructor(opts: AlertManagerOptions) {
    this.catalog = opts.catalog;
    this.notifiers = opts.notifiers instanceof Map ? opts.notifiers : new Map(Object.entries(opts.notifiers));
    this.routes = opts.routes;
    for (const [tier, names] of Object.entries(opts.routes)) {
      for (const n of names ?? []) if (!this.notifiers.has(n)) throw new ConfigError(`notifiers.routes.${tier}: unknown channel "${n}"`);
    }
    this.reminderIntervalMs = opts.reminderIntervalMs ?? 4 * 3600_000;
    if (!(this.reminderIntervalMs > 0)) throw new ConfigError(`reminderInterval must be positive, got ${this.reminderIntervalMs}`);
    this.minRank = RANK[opts.minSeverity ?? 'warning'];
    const t = (k: MessageKind): MessageTemplate => {
      const o = opts.templates?.[k] ?? {};
      for (const f of ['title', 'text'] as const) if (o[f] !== undefined) validateTemplate(o[f]!, `templates.${k}.${f}`);
      return { title: o.title ?? DEFAULT_TEMPLATES[k].title, text: o.text ?? DEFAULT_TEMPLATES[k].text };
    };
    this.templates = { firing: t('firing'), reminder: t('reminder'), resolved: t('resolved') };
    this.now = opts.now ?? (() => new Date());
    this.log = opts.log ?? (() => {});
    this.sleep = opts.sleep;
    this.host = opts.host ?? hostname();
  }

  /** From a validated `notifiers` config block (secrets resolved now). */
  static fromConfig(
    config: NotifiersConfig,
    deps: { catalog: Catalog; baseDir?: string } & Pick<AlertManagerOptions, 'now' | 'log' | 'sleep' | 'host'>,
  ): AlertManager {
    const templates: AlertManagerOptions['templates'] = {};
    for (const [k, v] of Object.entries(config.templates)) {
      if (v) templates[k as MessageKind] = { ...(v.title ? { title: v.title } : {}), ...(v.text ? { text: v.text } : {}) };
    }
    return new AlertManager({
      catalog: deps.catalog,
      notifiers: createNotifiers(config, deps.baseDir ? { baseDir: deps.baseDir } : {}),
      routes: config.routes,
      reminderIntervalMs: parseDuration(config.reminderInterval),
      minSeverity: config.minSeverity,
      templates,
      ...(deps.now ? { now: deps.now } : {}),
      ...(deps.log ? { log: deps.log } : {}),
      ...(deps.sleep ? { sleep: deps.sleep } : {}),
      ...(deps.host ? { host: deps.host } : {}),
    });
  }

  /** Channels a tier routes to. */
  channelsFor(tier: Tier): Notifier[] {
    return (this.routes[tier] ?? []).map((n) => this.notifiers.get(n)!).filter(Boolean);
  }

  /** Process one evaluation's findings. Serialised with other calls; never throws for delivery failures. */
  process(findings: readonly Finding[]): Promise<AlertOutcome[]> {
    const run = this.queue.then(() => this.processNow(findings));
    this.queue = run.catch(() => {});
    return run;
  }

  private async processNow(findings: readonly Finding[]): Promise<AlertOutcome[]> {
    const out: AlertOutcome[] = [];
    for (const f of findings) {
      try {
        out.push(await this.processOne(f));
      } catch (err) {
        // catalog trouble: log and go on with the next finding
        this.log(`alerts: ${alertKey(f)}: ${redactText(errorMessage(err))}`);
        out.push({ key: alertKey(f), action: 'none', delivered: false, deliveries: [] });
      }
    }
    return out;
  }

  private async processOne(f: Finding): Promise<AlertOutcome> {
    const key = alertKey(f);
    const now = this.now();
    const firing = RANK[f.severity] >= this.minRank && f.severity !== 'ok';
    let a = await this.catalog.getAlert(key);
    const none: AlertOutcome = { key, action: 'none', delivered: false, deliveries: [] };

    if (firing) {
      if (!a || a.state === 'resolved') {
        a = {
          key,
          job: f.job,
          check: f.check,
          state: 'firing',
          severity: f.severity,
          firstAt: now,
          lastChangeAt: now,
          lastSentAt: null,
          count: 0,
          // carried over: if a "resolved" never got through, receivers still think it fires
          notified: a?.notified ?? null,
          notifiedSeverity: null,
          resolvedAt: null,
          message: f.message,
        };
      } else if (a.severity !== f.severity) {
        a.severity = f.severity;
        a.lastChangeAt = now;
      }
      a.message = f.message;
      let kind: MessageKind | undefined;
      let action: AlertAction = 'none';
      if (a.lastSentAt === null) {
        kind = 'firing';
        action = 'fired';
      } else if (a.notifiedSeverity !== null && RANK[f.severity] > RANK[a.notifiedSeverity]) {
        kind = 'firing';
        action = 'escalated';
      } else if (now.getTime() - a.lastSentAt.getTime() >= this.reminderIntervalMs) {
        kind = 'reminder';
        action = 'reminded';
      }
      if (!kind) {
        await this.catalog.saveAlert(a);
        return none;
      }
      const res = await this.send(kind, a, f, now);
      if (res.delivered) {
        a.lastSentAt = now;
        a.count++;
        a.notified = 'firing';
        a.notifiedSeverity = a.notifiedSeverity && RANK[a.notifiedSeverity] > RANK[f.severity] ? a.notifiedSeverity : f.severity;
      }
      await this.catalog.saveAlert(a);
      return { key, action, ...res };
    }

    // not firing
    if (!a) return none;
    if (a.state === 'firing') {
      a.state = 'resolved';
      a.resolvedAt = now;
      a.lastChangeAt = now;
      a.message = f.message;
      if (a.notified !== 'firing') {
        // receivers never heard it fire: resolve silently
        await this.catalog.saveAlert(a);
        return none;
      }
    } else if (a.notified !== 'firing') {
      return none; // resolved and told
    }
    // resolved (now or earlier) and receivers last heard "firing": send / retry "resolved"
    const res = await this.send('resolved', a, f, now);
    if (res.delivered) {
      a.notified = 'resolved';
      a.lastSentAt = now;
      a.count++;
    }
    await this.catalog.saveAlert(a);
    return { key, action: 'resolved', ...res };
  }

  private async send(kind: MessageKind, a: AlertRecord, f: Finding, now: Date): Promise<{ delivered: boolean; deliveries: DeliveryResult[] }> {
    const channels = this.channelsFor(f.tier);
    if (channels.length === 0) {
      const warnKey = `${a.key}\0${f.tier}`;
      if (!this.unrouted.has(warnKey)) {
        this.unrouted.add(warnKey);
        this.log(`alerts: ${a.key} ${kind}: no channel routed for tier ${f.tier}; not sent`);
      }
      return { delivered: false, deliveries: [] };
    }
    const until = kind === 'resolved' ? (a.resolvedAt ?? now) : now;
    const count = a.count + 1;
    const vars: TemplateVars = {
      job: f.job,
      check: f.check,
      severity: kind === 'resolved' ? 'ok' : f.severity,
      SEVERITY: (kind === 'resolved' ? 'ok' : f.severity).toUpperCase(),
      tier: f.tier,
      message: f.message,
      kind,
      status: kind === 'firing' ? 'FIRING' : kind === 'reminder' ? 'STILL FIRING' : 'RESOLVED',
      since: a.firstAt.toISOString(),
      duration: formatDuration(Math.max(0, until.getTime() - a.firstAt.getTime())),
      at: now.toISOString(),
      count: String(count),
      host: this.host,
    };
    const { title, text } = renderMessage(this.templates[kind], vars);
    const msg: AlertMessage = {
      kind,
      key: a.key,
      job: f.job,
      check: f.check,
      severity: kind === 'resolved' ? 'ok' : f.severity,
      tier: f.tier,
      title,
      text,
      message: f.message,
      details: f.details,
      firstAt: a.firstAt,
      at: now,
      count,
      host: this.host,
    };
    const results = await Promise.all(channels.map((n) => deliver(n, msg, this.sleep ? { sleep: this.sleep } : {})));
    for (const r of results) {
      const rec: DeliveryRecord = { alertKey: a.key, kind, channel: r.channel, at: now, ok: r.ok, attempts: r.attempts, error: r.error ?? null };
      try {
        await this.catalog.recordDelivery(rec);
      } catch (err) {
        this.log(`alerts: cannot record delivery for ${a.key}: ${redactText(errorMessage(err))}`);
      }
      if (r.ok) this.log(`alerts: ${a.key} ${kind} sent via ${r.channel}${r.attempts > 1 ? ` (attempt ${r.attempts})` : ''}`);
      else this.log(`alerts: ${a.key} ${kind} via ${r.channel} failed after ${r.attempts} attempt(s): ${r.error}`);
    }
    return { delivered: results.some((r) => r.ok), deliveries: results };
  }

  /** Current alert states (from the catalog). */
  alerts(filter?: { state?: 'firing' | 'resolved' }): Promise<AlertRecord[]> {
    return this.catalog.listAlerts(filter);
  }

  /** Close SMTP transports. The catalog is the caller's. */
  async close(): Promise<void> {
    await this.queue.catch(() => {});
    for (const n of this.notifiers.values()) await n.close?.().catch(() => {});
  }
}
