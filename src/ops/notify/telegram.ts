import { redactUrl } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * Telegram Bot API: POST {baseUrl}/bot<token>/sendMessage {chat_id, text}.
 * Plain text (no parse_mode: job names and errors need no escaping). The
 * token is part of the URL: logs and errors show scheme://host only.
 */

export interface TelegramOptions extends Omit<HttpNotifierOptions, 'url'> {
  botToken: string;
  chatId: string;
  /** Default https://api.telegram.org */
  baseUrl?: string;
}

export class TelegramNotifier implements Notifier {
  readonly type = 'telegram' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #token: string;
  readonly #chatId: string;

  constructor(opts: TelegramOptions) {
    this.name = opts.name;
    this.#token = opts.botToken;
    this.#chatId = opts.chatId;
    const base = (opts.baseUrl ?? 'https://api.telegram.org').replace(/\/+$/, '');
    this.#url = `${base}/bot${opts.botToken}/sendMessage`;
    this.target = redactUrl(base);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static payload(msg: AlertMessage, chatId: string): Record<string, unknown> {
    const icon = msg.kind === 'resolved' ? '✅' : msg.severity === 'critical' ? '🚨' : '⚠️';
    return { chat_id: chatId, text: `${icon} ${msg.title}\n\n${msg.text}`.slice(0, 4096), disable_web_page_preview: true };
  }

  async send(msg: AlertMessage): Promise<void> {
    await postJson(this.#url, JSON.stringify(TelegramNotifier.payload(msg, this.#chatId)), {}, this.timeoutMs, [this.#token, this.#url]);
  }
}
