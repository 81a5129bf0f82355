import { ConfigError } from '../errors.js';

/**
 * The variables of alert message templates (notifiers.templates) and their
 * validation at config load: an unknown `{{name}}` is a config error. Rendering
 * lives in src/ops/templates.ts.
 */

export const TEMPLATE_VARS = [
  'job', // job name (or "repo:NAME" for repository checks)
  'check', // rpo | size | failures | free-space
  'severity', // warning | critical | ok
  'SEVERITY', // upper-case severity
  'tier', // critical | important | normal
  'message', // the finding's one-line message
  'kind', // firing | reminder | resolved
  'status', // FIRING | STILL FIRING | RESOLVED
  'since', // ISO time the alert started firing
  'duration', // how long it has been firing, e.g. 4h10m
  'at', // ISO time of this message
  'count', // notifications sent for this alert episode, including this one
  'host', // host name of the Lifeboat process
] as const;
export type TemplateVar = (typeof TEMPLATE_VARS)[number];
export type TemplateVars = Record<TemplateVar, string>;

export const PLACEHOLDER = /\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}/g;

/** Throws ConfigError naming the unknown variable(s). `where` names the template in the message. */
export function validateTemplate(template: string, where: string): void {
  const unknown = new Set<string>();
  for (const m of template.matchAll(PLACEHOLDER)) {
    if (!(TEMPLATE_VARS as readonly string[]).includes(m[1]!)) unknown.add(m[1]!);
  }
  if (unknown.size) {
    throw new ConfigError(`${where}: unknown template variable${unknown.size > 1 ? 's' : ''} ${[...unknown].map((u) => `{{${u}}}`).join(', ')} (known: ${TEMPLATE_VARS.join(', ')})`);
  }
}
