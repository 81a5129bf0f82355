import { redactUrl } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * Discord webhook: POST {content, embeds: [one embed]}. Mentions in the
 * text are disabled (allowed_mentions.parse = []) so a job name cannot ping
 * @everyone.
 */

const COLOR = { critical: 0xd83b01, warning: 0xffb900, ok: 0x2eb886 } as const;

export class DiscordNotifier implements Notifier {
  readonly type = 'discord' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #username: string | undefined;

  constructor(opts: HttpNotifierOptions & { username?: string }) {
    this.name = opts.name;
    this.#url = opts.url;
    this.#username = opts.username;
    this.target = redactUrl(opts.url);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static payload(msg: AlertMessage, username?: string): Record<string, unknown> {
    return {
      ...(username ? { username } : {}),
      content: msg.title.slice(0, 2000),
      allowed_mentions: { parse: [] },
      embeds: [
        {
          title: msg.title.slice(0, 256),
          description: msg.text.slice(0, 4096),
          color: COLOR[msg.severity],
          timestamp: msg.at.toISOString(),
          fields: [
            { name: 'Job', value: msg.job.slice(0, 1024), inline: true },
            { name: 'Check', value: msg.check, inline: true },
            { name: 'Severity', value: msg.severity, inline: true },
          ],
          footer: { text: `Lifeboat on ${msg.host}`.slice(0, 2048) },
        },
      ],
    };
  }

  async send(msg: AlertMessage): Promise<void> {
    await postJson(this.#url, JSON.stringify(DiscordNotifier.payload(msg, this.#username)), {}, this.timeoutMs, [this.#url]);
  }
}
