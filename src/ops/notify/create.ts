import { secretFromConfig } from '../../config/repos.js';
import type { SecretRef } from '../../config/password.js';
import { ConfigError } from '../../errors.js';
import { parseDuration } from '../../util/duration.js';
import { EmailNotifier } from './email.js';
import type { Notifier } from './notifier.js';
import type { NotifiersConfig } from '../../config/notifiers.js';
import { SlackNotifier } from './slack.js';
import { WebhookNotifier } from './webhook.js';
import { PagerDutyNotifier } from './pagerduty.js';
import { OpsgenieNotifier } from './opsgenie.js';
import { TeamsNotifier } from './teams.js';
import { DiscordNotifier } from './discord.js';
import { TelegramNotifier } from './telegram.js';
import { NtfyNotifier } from './ntfy.js';
import { SmsNotifier } from './sms.js';

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
    else if (ch.type === 'pagerduty') out.set(name, new PagerDutyNotifier({ ...common, routingKey: secret(ch.routingKey, `${where}.routingKey`), baseUrl: url(ch.baseUrl, `${where}.baseUrl`) }));
    else if (ch.type === 'opsgenie') {
      out.set(name, new OpsgenieNotifier({ ...common, apiKey: secret(ch.apiKey, `${where}.apiKey`), baseUrl: url(ch.baseUrl, `${where}.baseUrl`), responders: ch.responders, tags: ch.tags }));
    } else if (ch.type === 'teams') out.set(name, new TeamsNotifier({ ...common, url: url(ch.url, `${where}.url`), format: ch.format }));
    else if (ch.type === 'discord') out.set(name, new DiscordNotifier({ ...common, url: url(ch.url, `${where}.url`), ...(ch.username ? { username: ch.username } : {}) }));
    else if (ch.type === 'telegram') {
      out.set(name, new TelegramNotifier({ ...common, botToken: secret(ch.botToken, `${where}.botToken`), chatId: ch.chatId, baseUrl: url(ch.baseUrl, `${where}.baseUrl`) }));
    } else if (ch.type === 'ntfy') {
      out.set(name, new NtfyNotifier({ ...common, topic: ch.topic, server: url(ch.server, `${where}.server`), ...(ch.token ? { token: secret(ch.token, `${where}.token`) } : {}) }));
    } else if (ch.type === 'sms') {
      out.set(name, new SmsNotifier({ ...common, accountSid: ch.accountSid, authToken: secret(ch.authToken, `${where}.authToken`), from: ch.from, to: ch.to, baseUrl: url(ch.baseUrl, `${where}.baseUrl`) }));
    } else if (ch.type === 'webhook') {
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
