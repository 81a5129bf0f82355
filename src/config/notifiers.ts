import { z } from 'zod';
import { secretSchema } from './schema.js';
import { ConfigError, errorMessage } from '../errors.js';
import { TIERS } from './tiers.js';
import { parseDuration } from '../util/duration.js';
import { validateTemplate } from './templates.js';

// --- config schemas ------------------------------------------------------------

const durationString = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

/** A webhook URL: given inline (discouraged: it contains the token) or as a secret reference. */
const urlOrSecret = z.union([
  z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http(s) URL or a secret reference { env | file | command }'),
  secretSchema,
]);

const deliveryOptions = {
  timeout: durationString.default('10s').describe('per-attempt timeout'),
  retries: z.number().int().min(0).max(10).default(2).describe('further attempts after a failed one'),
  retryDelay: durationString.default('2s').describe('delay before the first retry, doubled each time'),
};

export const slackChannelSchema = z
  .object({
    type: z.literal('slack'),
    url: urlOrSecret.describe('incoming-webhook URL (Slack, Mattermost, Rocket.Chat, ...)'),
    ...deliveryOptions,
  })
  .strict();

export const webhookChannelSchema = z
  .object({
    type: z.literal('webhook'),
    url: urlOrSecret,
    secret: secretSchema.optional().describe('HMAC-SHA256 key for X-Lifeboat-Signature'),
    headers: z.record(z.string().regex(/^[A-Za-z0-9-]+$/, 'invalid header name'), z.string()).default({}),
    ...deliveryOptions,
  })
  .strict();

const emailAddress = z.string().regex(/^[^\s@<>]+@[^\s@<>]+$|^[^<>]*<[^\s@<>]+@[^\s@<>]+>$/, 'expected an e-mail address');

export const emailChannelSchema = z
  .object({
    type: z.literal('email'),
    host: z.string().min(1),
    port: z.number().int().min(1).max(65535).default(587),
    secure: z.boolean().default(false).describe('implicit TLS from the first byte (port 465)'),
    starttls: z
      .enum(['required', 'opportunistic', 'never'])
      .optional()
      .describe('when secure is false: default "required" with auth, "opportunistic" without'),
    tls: z
      .object({
        rejectUnauthorized: z.boolean().default(true),
        servername: z.string().optional(),
      })
      .strict()
      .optional(),
    auth: z.object({ user: z.string().min(1), pass: secretSchema }).strict().optional(),
    from: emailAddress,
    to: z.array(emailAddress).min(1),
    ...deliveryOptions,
  })
  .strict();

/** An API base URL (tests and self-hosted/EU endpoints point it elsewhere). */
const baseUrl = z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http(s) URL');

export const pagerdutyChannelSchema = z
  .object({
    type: z.literal('pagerduty'),
    routingKey: secretSchema.describe('Events API v2 integration (routing) key'),
    baseUrl: baseUrl.default('https://events.pagerduty.com').describe('EU: https://events.eu.pagerduty.com'),
    ...deliveryOptions,
  })
  .strict();

export const opsgenieChannelSchema = z
  .object({
    type: z.literal('opsgenie'),
    apiKey: secretSchema.describe('API integration key (Authorization: GenieKey ...)'),
    baseUrl: baseUrl.default('https://api.opsgenie.com').describe('EU: https://api.eu.opsgenie.com'),
    responders: z.array(z.object({ type: z.enum(['team', 'user', 'escalation', 'schedule']), name: z.string().min(1) }).strict()).default([]),
    tags: z.array(z.string().min(1)).default([]),
    ...deliveryOptions,
  })
  .strict();

export const teamsChannelSchema = z
  .object({
    type: z.literal('teams'),
    url: urlOrSecret.describe('incoming webhook / Workflows URL'),
    format: z.enum(['messagecard', 'adaptive']).default('messagecard'),
    ...deliveryOptions,
  })
  .strict();

export const discordChannelSchema = z
  .object({
    type: z.literal('discord'),
    url: urlOrSecret.describe('https://discord.com/api/webhooks/ID/TOKEN'),
    username: z.string().min(1).max(80).optional(),
    ...deliveryOptions,
  })
  .strict();

export const telegramChannelSchema = z
  .object({
    type: z.literal('telegram'),
    botToken: secretSchema,
    chatId: z.union([z.string().min(1), z.number().int()]).transform(String),
    baseUrl: baseUrl.default('https://api.telegram.org'),
    ...deliveryOptions,
  })
  .strict();

export const ntfyChannelSchema = z
  .object({
    type: z.literal('ntfy'),
    topic: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'ntfy topics use letters, digits, _ and -'),
    server: baseUrl.default('https://ntfy.sh'),
    token: secretSchema.optional().describe('access token (Authorization: Bearer)'),
    ...deliveryOptions,
  })
  .strict();

const phone = z.string().regex(/^\+[1-9]\d{6,14}$/, 'expected an E.164 phone number like +14155550100');

export const smsChannelSchema = z
  .object({
    type: z.literal('sms'),
    accountSid: z.string().min(1),
    authToken: secretSchema,
    from: z.string().min(1).describe('sender number (E.164) or messaging service / alphanumeric sender id'),
    to: z.array(phone).min(1),
    baseUrl: baseUrl.default('https://api.twilio.com').describe('any Twilio-compatible API'),
    ...deliveryOptions,
  })
  .strict();

export const channelSchema = z.discriminatedUnion('type', [
  slackChannelSchema,
  webhookChannelSchema,
  emailChannelSchema,
  pagerdutyChannelSchema,
  opsgenieChannelSchema,
  teamsChannelSchema,
  discordChannelSchema,
  telegramChannelSchema,
  ntfyChannelSchema,
  smsChannelSchema,
]);

const templateOverride = z.object({ title: z.string().min(1).optional(), text: z.string().min(1).optional() }).strict();

export const notifiersSchema = z
  .object({
    reminderInterval: durationString.default('4h'),
    minSeverity: z.enum(['warning', 'critical']).default('warning'),
    channels: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'channel names use letters, digits, _ . -'), channelSchema).default({}),
    routes: z
      .object({
        critical: z.array(z.string()).optional(),
        important: z.array(z.string()).optional(),
        normal: z.array(z.string()).optional(),
      })
      .strict()
      .default({}),
    templates: z
      .object({ firing: templateOverride.optional(), reminder: templateOverride.optional(), resolved: templateOverride.optional() })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((n, ctx) => {
    const names = Object.keys(n.channels);
    for (const tier of TIERS) {
      for (const [i, ch] of (n.routes[tier] ?? []).entries()) {
        if (!n.channels[ch]) ctx.addIssue({ code: 'custom', path: ['routes', tier, i], message: `unknown channel "${ch}" (defined: ${names.join(', ') || 'none'})` });
      }
    }
    for (const [kind, t] of Object.entries(n.templates)) {
      for (const field of ['title', 'text'] as const) {
        const v = (t as { title?: string; text?: string } | undefined)?.[field];
        if (v === undefined) continue;
        try {
          validateTemplate(v, `templates.${kind}.${field}`);
        } catch (e) {
          ctx.addIssue({ code: 'custom', path: ['templates', kind, field], message: errorMessage(e) });
        }
      }
    }
  });

export type SlackChannelConfig = z.infer<typeof slackChannelSchema>;
export type WebhookChannelConfig = z.infer<typeof webhookChannelSchema>;
export type EmailChannelConfig = z.infer<typeof emailChannelSchema>;
export type ChannelConfig = z.infer<typeof channelSchema>;
export type NotifiersConfig = z.infer<typeof notifiersSchema>;

/** Validate the raw `notifiers` block (ConfigError listing the problems). */
export function parseNotifiersConfig(raw: unknown): NotifiersConfig {
  const r = notifiersSchema.safeParse(raw ?? {});
  if (!r.success) {
    const lines = r.error.issues.slice(0, 10).map((i) => `notifiers.${i.path.map(String).join('.')}: ${i.message}`);
    throw new ConfigError(`invalid notifiers configuration:\n  ${lines.join('\n  ')}`);
  }
  return r.data;
}
