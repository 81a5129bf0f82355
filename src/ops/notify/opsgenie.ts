import { redactUrl } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * Opsgenie Alert API: firing/reminder → POST {baseUrl}/v2/alerts (create; a
 * second create with the same alias only raises its count), resolved →
 * POST {baseUrl}/v2/alerts/{alias}/close?identifierType=alias. The alias is
 * "lifeboat/<host>/<job>/<check>". Header Authorization: GenieKey <apiKey>.
 */

export interface OpsgenieOptions extends Omit<HttpNotifierOptions, 'url'> {
  apiKey: string;
  /** Default https://api.opsgenie.com (EU: https://api.eu.opsgenie.com). */
  baseUrl?: string;
  /** Responders, e.g. [{ type: team, name: dba }]. */
  responders?: Array<{ type: 'team' | 'user' | 'escalation' | 'schedule'; name: string }>;
  tags?: string[];
}

export class OpsgenieNotifier implements Notifier {
  readonly type = 'opsgenie' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #base: string;
  readonly #opts: OpsgenieOptions;

  constructor(opts: OpsgenieOptions) {
    this.name = opts.name;
    this.#opts = opts;
    this.#base = (opts.baseUrl ?? 'https://api.opsgenie.com').replace(/\/+$/, '');
    this.target = redactUrl(this.#base);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static alias(msg: Pick<AlertMessage, 'host' | 'key'>): string {
    return `lifeboat/${msg.host}/${msg.key}`.slice(0, 512);
  }

  /** [path, body] of the request for a message. */
  static request(msg: AlertMessage, opts: Pick<OpsgenieOptions, 'responders' | 'tags'> = {}): [string, Record<string, unknown>] {
    const alias = OpsgenieNotifier.alias(msg);
    if (msg.kind === 'resolved') {
      return [`/v2/alerts/${encodeURIComponent(alias)}/close?identifierType=alias`, { source: `lifeboat@${msg.host}`, user: 'lifeboat', note: msg.title.slice(0, 25000) }];
    }
    return [
      '/v2/alerts',
      {
        message: msg.title.slice(0, 130),
        alias,
        description: msg.text.slice(0, 15000),
        priority: msg.severity === 'critical' ? 'P1' : 'P3',
        source: `lifeboat@${msg.host}`,
        entity: msg.job,
        tags: ['lifeboat', `tier:${msg.tier}`, `check:${msg.check}`, ...(opts.tags ?? [])],
        details: { job: msg.job, check: msg.check, severity: msg.severity, since: msg.firstAt.toISOString(), count: String(msg.count) },
        ...(opts.responders?.length ? { responders: opts.responders } : {}),
      },
    ];
  }

  async send(msg: AlertMessage): Promise<void> {
    const [path, body] = OpsgenieNotifier.request(msg, this.#opts);
    await postJson(`${this.#base}${path}`, JSON.stringify(body), { authorization: `GenieKey ${this.#opts.apiKey}` }, this.timeoutMs, [this.#opts.apiKey]);
  }
}
