import { PLACEHOLDER, TEMPLATE_VARS, validateTemplate, type TemplateVar, type TemplateVars } from '../config/templates.js';

/**
 * Alert message templates and text sanitising.
 *
 * Templates use `{{name}}` placeholders (whitespace inside the braces is
 * allowed). Only the variables in TEMPLATE_VARS exist; validateTemplate()
 * rejects any other name so a typo in lifeboat.yaml is a config error, not a
 * blank in a 3 a.m. page.
 */

export type MessageKind = 'firing' | 'reminder' | 'resolved';

export interface MessageTemplate {
  /** One line: e-mail subject, Slack headline. */
  title: string;
  /** Body text. */
  text: string;
}

export const DEFAULT_TEMPLATES: Readonly<Record<MessageKind, MessageTemplate>> = Object.freeze({
  firing: {
    title: '[{{SEVERITY}}] Lifeboat {{job}}: {{check}}',
    text: '{{message}}\n\nJob: {{job}} (tier {{tier}}), check: {{check}}, since {{since}}, host {{host}}.',
  },
  reminder: {
    title: '[{{SEVERITY}}] still firing for {{duration}}: Lifeboat {{job}}: {{check}}',
    text: '{{message}}\n\nStill firing since {{since}} ({{duration}}). Job: {{job}} (tier {{tier}}), host {{host}}.',
  },
  resolved: {
    title: '[RESOLVED] Lifeboat {{job}}: {{check}}',
    text: '{{message}}\n\nResolved after {{duration}} (firing since {{since}}). Job: {{job}}, host {{host}}.',
  },
});

/** Substitute `{{var}}` placeholders. Unknown names are left as they are (validate at config time). */
export function renderTemplate(template: string, vars: Partial<Record<string, string | number>>): string {
  return template.replace(PLACEHOLDER, (all, name: string) => {
    const v = vars[name];
    return v === undefined ? all : String(v);
  });
}

export function renderMessage(t: MessageTemplate, vars: TemplateVars): { title: string; text: string } {
  return { title: renderTemplate(t.title, vars).replace(/[\r\n]+/g, ' ').trim(), text: renderTemplate(t.text, vars) };
}

/**
 * A URL reduced to scheme and host (port kept): no user info, path, query or
 * fragment, which is where webhook tokens live. Non-URLs become "<redacted>".
 */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '<redacted>';
  }
}

const URL_IN_TEXT = /\b([a-z][a-z0-9+.-]*):\/\/[^\s"'<>]+/gi;
const KEY_VALUE_SECRET =
  /\b([A-Za-z0-9_-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key)|authorization)(\s*[=:]\s*)((?:bearer|basic)\s+[^\s,;&]+|"[^"]*"|'[^']*'|[^\s,;&]+)/gi;

/**
 * Remove things that look like secrets from free text (error messages, log
 * tails) before it is stored or sent: every URL is cut to scheme://host, and
 * `password=...`, `token: ...` style pairs lose their value. `extra` are known
 * secret values (resolved passwords, webhook URLs) that are replaced wherever
 * they occur.
 */
export function redactText(text: string, extra: readonly string[] = []): string {
  let out = text;
  for (const s of extra) {
    if (s && s.length >= 4) out = out.split(s).join('<redacted>');
  }
  out = out.replace(URL_IN_TEXT, (u) => redactUrl(u.replace(/[).,;:]+$/, '')) + (/[).,;:]+$/.exec(u)?.[0] ?? ''));
  out = out.replace(KEY_VALUE_SECRET, (_all, k: string, sep: string) => `${k}${sep}<redacted>`);
  return out;
}
