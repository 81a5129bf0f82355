import { redactUrl } from '../templates.js';
import { postBody, type HttpNotifierOptions } from './http.js';
import { DeliveryError, type AlertMessage, type Notifier } from './notifier.js';

/**
 * SMS through a Twilio-compatible API: for each recipient
 *   POST {baseUrl}/2010-04-01/Accounts/{accountSid}/Messages.json
 *   Authorization: Basic base64(accountSid:authToken)
 *   Content-Type: application/x-www-form-urlencoded, body To=&From=&Body=
 * The body is the title (at most 320 characters: two SMS segments). A retry
 * sends only to the recipients that have not accepted the message yet.
 */

export interface SmsOptions extends Omit<HttpNotifierOptions, 'url'> {
  accountSid: string;
  authToken: string;
  from: string;
  to: string[];
  /** Default https://api.twilio.com */
  baseUrl?: string;
}

export class SmsNotifier implements Notifier {
  readonly type = 'sms' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #opts: SmsOptions;
  /** Recipients that accepted a message (per message, across retries). */
  readonly #done = new WeakMap<AlertMessage, Set<string>>();

  constructor(opts: SmsOptions) {
    this.name = opts.name;
    this.#opts = opts;
    const base = (opts.baseUrl ?? 'https://api.twilio.com').replace(/\/+$/, '');
    this.#url = `${base}/2010-04-01/Accounts/${encodeURIComponent(opts.accountSid)}/Messages.json`;
    this.target = redactUrl(base);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static text(msg: AlertMessage): string {
    const t = `${msg.title} (${msg.host})`;
    return t.length <= 320 ? t : `${t.slice(0, 319)}…`;
  }

  static form(msg: AlertMessage, from: string, to: string): string {
    return new URLSearchParams({ To: to, From: from, Body: SmsNotifier.text(msg) }).toString();
  }

  async send(msg: AlertMessage): Promise<void> {
    let done = this.#done.get(msg);
    if (!done) this.#done.set(msg, (done = new Set()));
    const auth = `Basic ${Buffer.from(`${this.#opts.accountSid}:${this.#opts.authToken}`).toString('base64')}`;
    const failures: DeliveryError[] = [];
    for (const to of this.#opts.to) {
      if (done.has(to)) continue;
      try {
        await postBody(
          this.#url,
          SmsNotifier.form(msg, this.#opts.from, to),
          { 'content-type': 'application/x-www-form-urlencoded', authorization: auth },
          this.timeoutMs,
          [this.#opts.authToken, auth.slice(6)],
        );
        done.add(to);
      } catch (err) {
        failures.push(err as DeliveryError);
      }
    }
    if (failures.length) {
      const e = failures[0]!;
      throw new DeliveryError(`${failures.length} of ${this.#opts.to.length} recipient(s) failed: ${e.message}`, failures.some((f) => f.retryable !== false));
    }
  }
}
