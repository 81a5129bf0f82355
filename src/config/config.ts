import { z } from 'zod';
import { Cron } from 'croner';
import { sourceSchema } from './sources.js';
import { daemonSchema, jobSchema, repositorySchema, serviceSchema } from './schema.js';
import { runbooksConfigSchema, type RunbookDef } from './runbook.js';
import { crossCheckRunbook } from './runbook-check.js';
import { incidentsConfigSchema } from './incidents.js';
import { serverConfigSchema } from './server.js';
import { retentionPolicySchema } from './retention.js';
import { notifiersSchema } from './notifiers.js';
import { replicasSchema } from './replicas.js';

/**
 * The whole lifeboat.yaml: its schema (each section's schema is in its own
 * file here) and the LifeboatConfig type every layer may import. Reading and
 * validating a file (with positions in error messages) is load.ts, which only
 * the entry points (cli/, server start-up, the daemon) call.
 */
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
    replicas: replicasSchema.default({}),
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
      if (j.runOn === 'any' && !/^postgres(ql)?:\/\//i.test(c.daemon.catalog)) {
        ctx.addIssue({
          code: 'custom',
          path: ['jobs', name, 'runOn'],
          message: `runOn: any needs a catalog shared by the agents (daemon.catalog: postgres://...); the SQLite catalog ${c.daemon.catalog} is this host's alone`,
        });
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
    // replicas.NAME.onCritical: an inline runbook must exist and, with requireConfirmation, start with a manual gate
    for (const [name, r] of Object.entries(c.replicas)) {
      const t = r.onCritical;
      if (!t) continue;
      const def = (c.runbooks as Record<string, unknown> | undefined)?.[t.runbook] as RunbookDef | undefined;
      if (!def && !c.runbooks?.dir) {
        ctx.addIssue({ code: 'custom', path: ['replicas', name, 'onCritical', 'runbook'], message: `unknown runbook "${t.runbook}"` });
      } else if (def && t.requireConfirmation && def.steps[0]?.type !== 'manual') {
        ctx.addIssue({
          code: 'custom',
          path: ['replicas', name, 'onCritical', 'runbook'],
          message: `runbook "${t.runbook}" must start with a manual step (the human confirmation before the failover), or set requireConfirmation: false`,
        });
      }
    }
    for (const [name, s] of Object.entries(c.sources)) {
      const r = s.repository;
      if (r && !c.repositories[r]) {
        ctx.addIssue({ code: 'custom', path: ['sources', name, 'repository'], message: `unknown repository "${r}" (defined: ${repos.join(', ')})` });
      }
    }
  });

export type LifeboatConfig = z.infer<typeof configSchema> & { file: string; dir: string };
