import { secretFromConfig } from '../../config/repos.js';
import type { SecretRef } from '../../config/password.js';
import { ConfigError } from '../../errors.js';
import { parseDuration } from '../../policy/retention.js';
import { EmailNotifier } from './email.js';
import type { Notifier } from './notifier.js';
import type { NotifiersConfig } from './schema.js';
import { SlackNotifier } from './slack.js';
import { WebhookNotifier } from './webhook.js';

/** Build the notifiers of a validated config, resolving secrets (ConfigError names a missing one, never its value). */
export function createNotifiers(config: NotifiersConfig, opts: { baseDir?: string } = {}): Map<string, Notifier> {
  const cfgDir = opts.baseDir ? { dir: opts.baseDir } : undefined;
  const secret = (ref: SecretRef, what: string) => secretFromConfig(cfgDir, ref, what);
  const url = (v: string | SecretRef, what: string) => {
    const u = typeof v === 'string' ? v : secret(v, what);
    if (!/^https?:\/\//i.test(u)) throw new ConfigError(`${what}: not an http(s) URL`);
    try {
      new URL(u);
    } catch {
      throw new ConfigError(`${what}: not a valid URL`);
    }
    return u;
  };
  const out = new Map<string, Notifier>();
  for (const [name, ch] of Object.entries(config.channels)) {
    const where = `notifiers.channels.${name}`;
    const common = { name, timeoutMs: parseDuration(ch.timeout), retries: ch.retries, retryDelayMs: parseDuration(ch.retryDelay) };
    if (ch.type === 'slack') out.set(name, new SlackNotifier({ ...common, url: url(ch.url, `${where}.url`) }));
    else if (ch.type === 'webhook') {
      out.set(
        name,
        new WebhookNotifier({
          ...common,
          url: url(ch.url, `${where}.url`),
          headers: ch.headers,
          ...(ch.secret ? { secret: secret(ch.secret, `${where}.secret`) } : {}),
        }),
      );
    } else {
      out.set(
        name,
        new EmailNotifier({
          ...common,
          host: ch.host,
          port: ch.port,
          secure: ch.secure,
          ...(ch.starttls ? { starttls: ch.starttls } : {}),
          ...(ch.tls ? { tls: ch.tls } : {}),
          ...(ch.auth ? { auth: { user: ch.auth.user, pass: secret(ch.auth.pass, `${where}.auth.pass`) } } : {}),
          from: ch.from,
          to: ch.to,
        }),
      );
    }
  }
  return out;
}
