import type { Transporter } from 'nodemailer';
import { redactText } from '../templates.js';
import { DeliveryError, type AlertMessage, type Notifier } from './notifier.js';

export interface EmailNotifierOptions {
  name: string;
  host: string;
  port?: number;
  secure?: boolean;
  starttls?: 'required' | 'opportunistic' | 'never';
  tls?: { rejectUnauthorized?: boolean; servername?: string };
  auth?: { user: string; pass: string };
  from: string;
  to: string[];
  timeoutMs?: number;
  retries?: number;
  retryDelayMs?: number;
}

/** E-mail over SMTP (nodemailer): plain-text message, subject = title. */
export class EmailNotifier implements Notifier {
  readonly type = 'email' as const;
  readonly name: string;
  readonly target: string;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly retryDelayMs: number;
  readonly #opts: EmailNotifierOptions;
  // nodemailer is loaded on first use: most CLI runs never send mail
  #transport: Promise<Transporter> | undefined;

  constructor(opts: EmailNotifierOptions) {
    this.name = opts.name;
    this.#opts = opts;
    const port = opts.port ?? 587;
    this.target = `smtp://${opts.host}:${port}`;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.retries = opts.retries ?? 2;
    this.retryDelayMs = opts.retryDelayMs ?? 2000;
  }

  #transporter(): Promise<Transporter> {
    const opts = this.#opts;
    const port = opts.port ?? 587;
    const starttls = opts.starttls ?? (opts.auth ? 'required' : 'opportunistic');
    return (this.#transport ??= import('nodemailer').then(({ createTransport }) => createTransport({
      host: opts.host,
      port,
      secure: opts.secure ?? false,
      requireTLS: !opts.secure && starttls === 'required',
      ignoreTLS: !opts.secure && starttls === 'never',
      ...(opts.auth ? { auth: { user: opts.auth.user, pass: opts.auth.pass } } : {}),
      tls: { rejectUnauthorized: opts.tls?.rejectUnauthorized ?? true, ...(opts.tls?.servername ? { servername: opts.tls.servername } : {}) },
      connectionTimeout: this.timeoutMs,
      greetingTimeout: this.timeoutMs,
      socketTimeout: this.timeoutMs,
      disableFileAccess: true,
      disableUrlAccess: true,
      logger: false,
    })));
  }

  async send(msg: AlertMessage): Promise<void> {
    const secrets = this.#opts.auth ? [this.#opts.auth.pass] : [];
    try {
      await (await this.#transporter()).sendMail({
        from: this.#opts.from,
        to: this.#opts.to,
        subject: msg.title,
        text: `${msg.text}\n\n--\nLifeboat on ${msg.host} · ${msg.kind} · job ${msg.job} · check ${msg.check} · severity ${msg.severity}\n`,
        headers: {
          'X-Lifeboat-Alert-Key': msg.key,
          'X-Lifeboat-Alert-Kind': msg.kind,
          'X-Lifeboat-Severity': msg.severity,
        },
      });
    } catch (err) {
      const e = err as Error & { code?: string; responseCode?: number; response?: string };
      // 5xx SMTP replies (bad recipient, auth rejected) will not fix themselves; network errors and 4xx may
      const permanent = e.responseCode !== undefined && e.responseCode >= 500;
      const why = e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message;
      throw new DeliveryError(redactText(`SMTP ${this.target}: ${why}`, secrets), !permanent);
    }
  }

  async close(): Promise<void> {
    if (this.#transport) (await this.#transport).close();
  }
}
