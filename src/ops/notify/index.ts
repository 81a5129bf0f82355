/**
 * Alert delivery: Slack-compatible incoming webhooks, generic signed JSON
 * webhooks and e-mail over SMTP, plus the AlertManager that turns monitor
 * findings into at most one message per state change (and reminders).
 *
 * Config (the `notifiers` block of lifeboat.yaml):
 *
 *   notifiers:
 *     reminderInterval: 4h          # re-notify while still firing, never more often
 *     minSeverity: warning          # warning | critical: lower findings never fire
 *     channels:
 *       ops-slack: { type: slack, url: { env: SLACK_WEBHOOK_URL } }
 *       pager:     { type: webhook, url: { env: PAGER_URL }, secret: { env: PAGER_HMAC_KEY } }
 *       oncall:    { type: email, host: smtp.example.com, port: 587, from: lifeboat@example.com,
 *                    to: [oncall@example.com], auth: { user: lifeboat, pass: { env: SMTP_PASSWORD } } }
 *     routes:                       # per job tier; repository checks use the highest tier of their jobs
 *       critical: [oncall, ops-slack]
 *       important: [ops-slack]
 *       normal: [pager]
 *     templates:                    # optional, {{var}} substitution (see ../templates.ts)
 *       firing: { title: "[{{SEVERITY}}] {{job}} {{check}}" }
 *
 * Secrets (webhook URLs carry tokens, HMAC keys, SMTP passwords) never appear
 * in logs, errors or the catalog: URLs are shown as scheme://host only.
 *
 * The generic webhook request (headers, signature) is described in webhook.ts.
 *
 * Files: schema.ts (config), notifier.ts (message, Notifier interface),
 * http.ts (shared POST), slack.ts, webhook.ts, email.ts (one per channel),
 * deliver.ts (timeout and retries), create.ts (channels from config),
 * manager.ts (AlertManager).
 */
export * from './schema.js';
export * from './notifier.js';
export * from './slack.js';
export * from './webhook.js';
export * from './email.js';
export * from './deliver.js';
export * from './create.js';
export * from './manager.js';
