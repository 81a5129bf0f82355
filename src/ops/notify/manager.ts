import { hostname } from 'node:os';
import { ConfigError, errorMessage } from '../../errors.js';
import type { Tier } from '../../config/tiers.js';
import { parseDuration } from '../../util/duration.js';
import { formatDuration } from '../../util/format.js';
import type { AlertRecord, Catalog, DeliveryRecord, Severity } from '../catalog/types.js';
import type { Finding } from '../monitor.js';
import { DEFAULT_TEMPLATES, redactText, renderMessage, type MessageKind, type MessageTemplate } from '../templates.js';
import { validateTemplate, type TemplateVars } from '../../config/templates.js';
import { createNotifiers } from './create.js';
import { deliver } from './deliver.js';
import type { AlertMessage, DeliveryResult, Notifier } from './notifier.js';
import type { NotifiersConfig } from '../../config/notifiers.js';

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
