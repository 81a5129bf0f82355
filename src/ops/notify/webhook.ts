import { createHmac, randomUUID } from 'node:crypto';
import type { Tier } from '../../config/tiers.js';
import type { Severity } from '../catalog/types.js';
import { redactUrl, type MessageKind } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * Generic webhook request:
 *   POST <url>, Content-Type: application/json, body = WebhookPayload (JSON)
 *   X-Lifeboat-Timestamp: <unix seconds>   (also `timestamp` in the body)
 *   X-Lifeboat-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
 *   X-Lifeboat-Delivery: <uuid, the same for every retry of one message>
 * Receivers should verify the signature over the raw bytes, then reject a
 * timestamp that is far from their clock (replay) — the body's timestamp is
 * covered by the signature.
 */

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
