import { redactUrl } from '../templates.js';
import { postJson, type HttpNotifierOptions } from './http.js';
import type { AlertMessage, Notifier } from './notifier.js';

/**
 * Microsoft Teams incoming webhook. format messagecard (the classic
 * Office 365 connector card) or adaptive (an Adaptive Card in a "message"
 * envelope, as Teams Workflows / Power Automate webhooks expect).
 */

const COLOR = { critical: 'D83B01', warning: 'FFB900', ok: '2EB886' } as const;

export class TeamsNotifier implements Notifier {
  readonly type = 'teams' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #url: string;
  readonly #format: 'messagecard' | 'adaptive';

  constructor(opts: HttpNotifierOptions & { format?: 'messagecard' | 'adaptive' }) {
    this.name = opts.name;
    this.#url = opts.url;
    this.#format = opts.format ?? 'messagecard';
    this.target = redactUrl(opts.url);
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  static facts(msg: AlertMessage): Array<{ name: string; value: string }> {
    return [
      { name: 'Job', value: msg.job },
      { name: 'Check', value: msg.check },
      { name: 'Severity', value: msg.severity },
      { name: 'Tier', value: msg.tier },
      { name: 'Host', value: msg.host },
      { name: 'Since', value: msg.firstAt.toISOString() },
    ];
  }

  static payload(msg: AlertMessage, format: 'messagecard' | 'adaptive' = 'messagecard'): Record<string, unknown> {
    if (format === 'messagecard') {
      return {
        '@type': 'MessageCard',
        '@context': 'https://schema.org/extensions',
        summary: msg.title.slice(0, 200),
        themeColor: COLOR[msg.severity],
        title: msg.title,
        text: msg.text,
        sections: [{ facts: TeamsNotifier.facts(msg) }],
      };
    }
    return {
      type: 'message',
      attachments: [
        {
          contentType: 'application/vnd.microsoft.card.adaptive',
          contentUrl: null,
          content: {
            $schema: 'http://adaptivecards.io/schemas/adaptive-card.json',
            type: 'AdaptiveCard',
            version: '1.4',
            body: [
              { type: 'TextBlock', size: 'Large', weight: 'Bolder', wrap: true, text: msg.title, color: msg.severity === 'critical' ? 'Attention' : msg.severity === 'warning' ? 'Warning' : 'Good' },
              { type: 'TextBlock', wrap: true, text: msg.text },
              { type: 'FactSet', facts: TeamsNotifier.facts(msg).map((f) => ({ title: f.name, value: f.value })) },
            ],
          },
        },
      ],
    };
  }

  async send(msg: AlertMessage): Promise<void> {
    await postJson(this.#url, JSON.stringify(TeamsNotifier.payload(msg, this.#format)), {}, this.timeoutMs, [this.#url]);
  }
}
