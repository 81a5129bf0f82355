import { redactUrl } from '../templates.js';
import { postBody, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * ntfy: POST {server}/{topic} with the text as the body and the headers
 * Title, Priority (5 critical, 4 warning, 3 resolved), Tags (emoji short
 * codes), optionally Authorization: Bearer <token>. Non-ASCII titles are sent
 * RFC 2047-encoded (=?UTF-8?B?...?=), which ntfy decodes.
 */

export interface NtfyOptions extends Omit<HttpNotifierOptions, 'url'> {
  topic: string;
  /** Default https://ntfy.sh */
  server?: string;
  token?: string;
}

/** A header value: ASCII as is, anything else RFC 2047 base64. */
export function headerText(s: string): string {
  const one = s.replace(/[\r\n]+/g, ' ');
  return /^[\x20-\x7e]*$/.test(one) ? one : `=?UTF-8?B?${Buffer.from(one, 'utf8').toString('base64')}?=`;
}

export class NtfyNotifier implements Notifier {
  readonly type = 'ntfy' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #token: string | undefined;

  constructor(opts: NtfyOptions) {
    this.name = opts.name;
    this.#token = opts.token;
    const base = (opts.server ?? 'https://ntfy.sh').replace(/\/+$/, '');
    this.#url = `${base}/${encodeURIComponent(opts.topic)}`;
    this.target = redactUrl(base);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static headers(msg: AlertMessage): Record<string, string> {
    const resolved = msg.kind === 'resolved';
    return {
      title: headerText(msg.title.slice(0, 250)),
      priority: resolved ? '3' : msg.severity === 'critical' ? '5' : '4',
      tags: [resolved ? 'white_check_mark' : msg.severity === 'critical' ? 'rotating_light' : 'warning', 'lifeboat', msg.check].join(','),
    };
  }

  async send(msg: AlertMessage): Promise<void> {
    const headers: Record<string, string> = { 'content-type': 'text/plain; charset=utf-8', ...NtfyNotifier.headers(msg) };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    await postBody(this.#url, msg.text, headers, this.timeoutMs, [...(this.#token ? [this.#token] : []), this.#url]);
  }
}
