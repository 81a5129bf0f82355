import { redactUrl } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

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
