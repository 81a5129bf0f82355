import { redactUrl } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * PagerDuty Events API v2: POST {baseUrl}/v2/enqueue with the integration's
 * routing key. firing and reminder → trigger (PagerDuty folds repeats into
 * the open incident by dedup_key), resolved → resolve. The dedup key is
 * "lifeboat/<host>/<job>/<check>", so the resolve closes exactly the incident
 * its trigger opened. acknowledge is available through PagerDutyNotifier.event()
 * (e.g. for an operator's "ack" in another tool).
 */

export type PagerDutyAction = 'trigger' | 'acknowledge' | 'resolve';

export interface PagerDutyOptions extends Omit<HttpNotifierOptions, 'url'> {
  routingKey: string;
  /** Default https://events.pagerduty.com (EU: https://events.eu.pagerduty.com). */
  baseUrl?: string;
}

export class PagerDutyNotifier implements Notifier {
  readonly type = 'pagerduty' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #key: string;

  constructor(opts: PagerDutyOptions) {
    this.name = opts.name;
    this.#key = opts.routingKey;
    this.#url = `${(opts.baseUrl ?? 'https://events.pagerduty.com').replace(/\/+$/, '')}/v2/enqueue`;
    this.target = redactUrl(this.#url);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static dedupKey(msg: Pick<AlertMessage, 'host' | 'key'>): string {
    return `lifeboat/${msg.host}/${msg.key}`.slice(0, 255);
  }

  static payload(routingKey: string, action: PagerDutyAction, msg: AlertMessage): Record<string, unknown> {
    const body: Record<string, unknown> = { routing_key: routingKey, event_action: action, dedup_key: PagerDutyNotifier.dedupKey(msg) };
    if (action === 'trigger') {
      body.payload = {
        summary: msg.title.slice(0, 1024),
        source: msg.host,
        severity: msg.severity === 'critical' ? 'critical' : 'warning',
        timestamp: msg.at.toISOString(),
        component: msg.job,
        group: msg.tier,
        class: msg.check,
        custom_details: { message: msg.message, text: msg.text, since: msg.firstAt.toISOString(), count: msg.count, ...msg.details },
      };
      body.client = 'Lifeboat';
    }
    return body;
  }

  async event(action: PagerDutyAction, msg: AlertMessage): Promise<void> {
    await postJson(this.#url, JSON.stringify(PagerDutyNotifier.payload(this.#key, action, msg)), {}, this.timeoutMs, [this.#key]);
  }

  async send(msg: AlertMessage): Promise<void> {
    await this.event(msg.kind === 'resolved' ? 'resolve' : 'trigger', msg);
  }
}
