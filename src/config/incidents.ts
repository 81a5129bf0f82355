import { z } from 'zod';
import { parseDuration } from '../util/duration.js';
import { errorMessage } from '../errors.js';

/**
 * Top-level `incidents:` key: who is told about incidents, with which
 * templates, and who else after how long (escalation).
 *
 *   incidents:
 *     channels: [ops-slack]            # notifier channels (notifiers.channels) for start/update/resolved
 *     notifyOn: [start, update, resolved]
 *     templates:
 *       start: { title: "...", text: "..." }
 *     escalation:
 *       - after: 30m
 *         channels: [pager]
 *     reminders:                       # "post an update": while open, measured from the last operator update
 *       channels: [ops-slack]          # default: incidents.channels
 *       every: { critical: 15m, major: 30m, minor: 60m }   # the defaults; none: no reminders; "off" disables one
 *     audiences:                       # who else is told, when an update targets them (--audience users,partners)
 *       users:
 *         channels: [status-mail]
 *         templates:
 *           update: { title: "...", text: "..." }
 *
 * Template variables: see INCIDENT_TEMPLATE_VARS.
 */

export const INCIDENT_EVENTS = ['start', 'update', 'resolved', 'escalation', 'reminder'] as const;
export type IncidentEvent = (typeof INCIDENT_EVENTS)[number];

export const INCIDENT_TEMPLATE_VARS = [
  'incident', // incident id
  'title',
  'status', // investigating | identified | monitoring | resolved
  'STATUS',
  'impact', // none | minor | major | critical
  'services', // comma-separated
  'message', // the update's message
  'event', // start | update | resolved | escalation
  'runbook', // runbook name (or empty)
  'run', // runbook run id (or empty)
  'step', // step name (notify steps)
  'startedAt',
  'at',
  'elapsed', // time since the incident started, e.g. 42m
  'level', // escalation level (1-based)
  'host',
  'audience', // the audience a message is rendered for (empty for the responders' channels)
  'sinceUpdate', // reminders: time since the last operator update, e.g. 31m
  'every', // reminders: the reminder interval for this impact, e.g. 30m
] as const;

const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}/g;

const template = z.string().superRefine((s, ctx) => {
  const unknown = [...s.matchAll(PLACEHOLDER)].map((m) => m[1]!).filter((n) => !(INCIDENT_TEMPLATE_VARS as readonly string[]).includes(n));
  if (unknown.length) ctx.addIssue({ code: 'custom', message: `unknown template variable(s) ${[...new Set(unknown)].map((u) => `{{${u}}}`).join(', ')} (known: ${INCIDENT_TEMPLATE_VARS.join(', ')})` });
});

const duration = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

const messageTemplate = z.object({ title: template.optional(), text: template.optional() }).strict();

/** A reminder interval: a duration, or "off". */
const interval = z.union([z.literal('off'), duration]);

export const DEFAULT_REMINDER_EVERY = { critical: '15m', major: '30m', minor: '60m', none: 'off' } as const;

const audienceName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'audience names use letters, digits, _ . - (at most 64)');

export const incidentAudienceSchema = z
  .object({
    description: z.string().max(500).optional(),
    channels: z.array(z.string()).min(1).describe('notifier channels (notifiers.channels) of this audience'),
    templates: z
      .object({ start: messageTemplate.optional(), update: messageTemplate.optional(), resolved: messageTemplate.optional() })
      .strict()
      .default({})
      .describe('per-event templates for this audience (default: the incidents.templates, then the built-in ones)'),
  })
  .strict();

export const incidentsConfigSchema = z
  .object({
    channels: z.array(z.string()).default([]).describe('notifier channels told about incident start, updates and resolution'),
    notifyOn: z.array(z.enum(['start', 'update', 'resolved'])).default(['start', 'update', 'resolved']),
    templates: z
      .object({ start: messageTemplate.optional(), update: messageTemplate.optional(), resolved: messageTemplate.optional(), escalation: messageTemplate.optional() })
      .strict()
      .default({}),
    escalation: z
      .array(
        z
          .object({
            after: duration.describe('time since the incident started'),
            channels: z.array(z.string()).min(1),
            impact: z.array(z.enum(['none', 'minor', 'major', 'critical'])).optional().describe('only incidents with these impacts (default all)'),
            template: messageTemplate.optional(),
          })
          .strict(),
      )
      .default([]),
    reminders: z
      .object({
        channels: z.array(z.string()).optional().describe('who is reminded (default: incidents.channels)'),
        every: z
          .object({ critical: interval.default(DEFAULT_REMINDER_EVERY.critical), major: interval.default(DEFAULT_REMINDER_EVERY.major), minor: interval.default(DEFAULT_REMINDER_EVERY.minor), none: interval.default(DEFAULT_REMINDER_EVERY.none) })
          .strict()
          .default({ ...DEFAULT_REMINDER_EVERY }),
        template: messageTemplate.optional(),
      })
      .strict()
      .default({ every: { ...DEFAULT_REMINDER_EVERY } }),
    audiences: z.record(audienceName, incidentAudienceSchema).default({}),
  })
  .strict();

export type IncidentAudience = z.infer<typeof incidentAudienceSchema>;
export type IncidentsConfig = z.infer<typeof incidentsConfigSchema>;

export const DEFAULT_INCIDENT_TEMPLATES: Record<IncidentEvent, { title: string; text: string }> = {
  start: {
    title: '[INCIDENT #{{incident}}] {{title}} ({{impact}})',
    text: '{{message}}\n\nStatus: {{status}}. Impact: {{impact}}. Affected services: {{services}}. Started {{startedAt}}.',
  },
  update: {
    title: '[INCIDENT #{{incident}} {{STATUS}}] {{title}}',
    text: '{{message}}\n\nStatus: {{status}}. Impact: {{impact}}. Affected services: {{services}}. Open for {{elapsed}}.',
  },
  resolved: {
    title: '[RESOLVED #{{incident}}] {{title}}',
    text: '{{message}}\n\nResolved after {{elapsed}}. Affected services: {{services}}.',
  },
  escalation: {
    title: '[ESCALATION {{level}}] incident #{{incident}} unresolved for {{elapsed}}: {{title}}',
    text: 'Incident #{{incident}} ({{impact}}, {{status}}) has been open for {{elapsed}} (since {{startedAt}}). Affected services: {{services}}.\n\nLatest: {{message}}',
  },
  reminder: {
    title: '[REMINDER] incident #{{incident}}: no update for {{sinceUpdate}} — {{title}}',
    text: 'Incident #{{incident}} ({{impact}}, {{status}}) is open for {{elapsed}}; the last update was {{sinceUpdate}} ago. Post an update at least every {{every}}: lifeboat incident update {{incident}} --message "..."\n\nLatest: {{message}}',
  },
};

export function renderIncidentTemplate(t: string, vars: Partial<Record<string, string | number>>): string {
  return t.replace(PLACEHOLDER, (all, name: string) => (vars[name] === undefined ? all : String(vars[name])));
}

/** Cross-check channel names against notifiers.channels. */
export function checkIncidentChannels(inc: IncidentsConfig, channels: string[]): string[] {
  const out: string[] = [];
  const known = (c: string, where: string) => {
    if (!channels.includes(c)) out.push(`incidents.${where}: unknown notifier channel "${c}" (defined in notifiers.channels: ${channels.join(', ') || 'none'})`);
  };
  inc.channels.forEach((c, i) => known(c, `channels.${i}`));
  inc.escalation.forEach((e, i) => e.channels.forEach((c, j) => known(c, `escalation.${i}.channels.${j}`)));
  (inc.reminders.channels ?? []).forEach((c, i) => known(c, `reminders.channels.${i}`));
  for (const [name, a] of Object.entries(inc.audiences)) a.channels.forEach((c, i) => known(c, `audiences.${name}.channels.${i}`));
  return out;
}
