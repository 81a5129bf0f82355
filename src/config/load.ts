import * as path from 'node:path';
import type { LineCounter, parseDocument } from 'yaml';
import { yamlPosition } from './yaml-position.js';
import { parseYamlLimited, readYamlFile } from './yaml-safe.js';
import { didYouMean, knownKeysAt } from './suggest.js';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { sourceSchema } from './sources.js';
import { Cron } from 'croner';
import { daemonSchema, jobSchema, repositorySchema, secretSchema, serviceSchema } from './schema.js';
import { runbooksConfigSchema, type RunbookDef } from './runbook.js';
import { crossCheckRunbook } from './runbook-check.js';
import { incidentsConfigSchema } from './incidents.js';
import { serverConfigSchema } from './server.js';
import { retentionPolicySchema } from './retention.js';
import { notifiersSchema } from './notifiers.js';

export const configSchema = z
  .object({
    version: z.literal(1).default(1),
    repositories: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'repository names use letters, digits, _ . -'), repositorySchema),
    sources: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'source names use letters, digits, _ . -'), sourceSchema).default({}),
    jobs: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'job names use letters, digits, _ . -'), jobSchema).default({}),
    daemon: daemonSchema.prefault({}),
    notifiers: notifiersSchema.optional(),
    services: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'service names use letters, digits, _ . -'), serviceSchema).default({}),
    runbooks: runbooksConfigSchema.optional(),
    incidents: incidentsConfigSchema.optional(),
    server: serverConfigSchema.optional(),
    defaults: z
      .object({
        repository: z.string().optional(),
        retention: retentionPolicySchema.optional(),
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    const repos = Object.keys(c.repositories);
    if (repos.length === 0) ctx.addIssue({ code: 'custom', path: ['repositories'], message: 'define at least one repository' });
    if (c.defaults.repository && !c.repositories[c.defaults.repository]) {
      ctx.addIssue({ code: 'custom', path: ['defaults', 'repository'], message: `unknown repository "${c.defaults.repository}" (defined: ${repos.join(', ')})` });
    }
    for (const [name, j] of Object.entries(c.jobs)) {
      if (!c.sources[j.source]) {
        ctx.addIssue({ code: 'custom', path: ['jobs', name, 'source'], message: `unknown source "${j.source}" (defined: ${Object.keys(c.sources).join(', ') || 'none'})` });
      }
      for (const [i, r] of [j.repository, ...j.copyTo].entries()) {
        if (r && !c.repositories[r]) {
          ctx.addIssue({ code: 'custom', path: ['jobs', name, i === 0 ? 'repository' : 'copyTo'], message: `unknown repository "${r}" (defined: ${repos.join(', ')})` });
        }
      }
      const srcKind = c.sources[j.source]?.kind;
      for (const [qi, q] of (j.drill?.queries ?? []).entries()) {
        if (q.equalsBackup && srcKind && srcKind !== 'postgres' && srcKind !== 'sqlite') {
          ctx.addIssue({
            code: 'custom',
            path: ['jobs', name, 'drill', 'queries', qi, 'equalsBackup'],
            message: `equalsBackup needs a postgres or sqlite source (the value must come from the dump's own snapshot); "${j.source}" is ${srcKind}: use min/max/equals`,
          });
        }
      }
      if (j.schedule) {
        try {
          new Cron(j.schedule, { paused: true });
        } catch (err) {
          ctx.addIssue({ code: 'custom', path: ['jobs', name, 'schedule'], message: `invalid cron expression: ${(err as Error).message}` });
        }
      }
      if (j.retention !== undefined) {
        const r = retentionPolicySchema.safeParse(j.retention);
        if (!r.success) {
          for (const iss of r.error.issues) ctx.addIssue({ code: 'custom', path: ['jobs', name, 'retention', ...iss.path.map(String)], message: iss.message });
        }
      }
    }
    for (const [name, svc] of Object.entries(c.services)) {
      for (const [i, j] of svc.jobs.entries()) {
        if (!c.jobs[j]) ctx.addIssue({ code: 'custom', path: ['services', name, 'jobs', i], message: `unknown job "${j}" (defined: ${Object.keys(c.jobs).join(', ') || 'none'})` });
      }
    }
    // inline runbooks: names of services, sources, channels (runbook files are checked when loaded)
    for (const [name, def] of Object.entries((c.runbooks ?? {}) as Record<string, unknown>)) {
      if (name === 'dir') continue;
      for (const msg of crossCheckRunbook(c as unknown as LifeboatConfig, name, def as RunbookDef)) {
        ctx.addIssue({ code: 'custom', path: ['runbooks', name], message: msg.replace(/^runbook [^:]+: /, '') });
      }
    }
    for (const [name, s] of Object.entries(c.sources)) {
      const r = (s as { repository?: string }).repository;
      if (r && !c.repositories[r]) {
        ctx.addIssue({ code: 'custom', path: ['sources', name, 'repository'], message: `unknown repository "${r}" (defined: ${repos.join(', ')})` });
      }
    }
  });

export type LifeboatConfig = z.infer<typeof configSchema> & { file: string; dir: string };
export { secretSchema };

function formatIssue(file: string, doc: ReturnType<typeof parseDocument>, lc: LineCounter, issue: z.core.$ZodIssue, raw: unknown): string {
  const p = issue.path.map(String).join('.');
  let msg = issue.message;
  if (issue.code === 'unrecognized_keys') {
    const known = knownKeysAt(configSchema, issue.path, raw);
    const shown = issue.keys.slice(0, 5).map((k) => `"${k}"${didYouMean(k, known)}`);
    if (issue.keys.length > shown.length) shown.push(`and ${issue.keys.length - shown.length} more`);
    msg = `unknown key${issue.keys.length > 1 ? 's' : ''} ${shown.join(', ')}`;
    const where = yamlPosition(doc, lc, [...issue.path, issue.keys[0]!]);
    return `${file}${where}: ${p ? p + ': ' : ''}${msg}`;
  }
  if (issue.code === 'invalid_union' && p.startsWith('sources.')) msg = `${msg} (check "kind" and the keys for that kind)`;
  return `${file}${yamlPosition(doc, lc, issue.path)}: ${p || '(top level)'}: ${msg}`;
}

/** Parse and validate a config file. Errors name the file, line, key path and reason. */
export function loadConfig(file: string): LifeboatConfig {
  const abs = path.resolve(file);
  return parseConfig(readYamlFile(abs, 'config file'), abs);
}

export function parseConfig(text: string, file: string): LifeboatConfig {
  const { doc, lc, value } = parseYamlLimited(text, file);
  const raw = value ?? {};
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((i) => formatIssue(file, doc, lc, i, raw));
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const cfg = parsed.data as LifeboatConfig;
  cfg.file = file;
  cfg.dir = path.dirname(file);
  return cfg;
}

export { configPath } from './paths.js';
