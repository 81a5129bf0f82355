import { z } from 'zod';
import { secretSchema } from './schema.js';
import { parseDuration } from '../util/duration.js';
import { errorMessage } from '../errors.js';

/**
 * Runbooks: ordered, typed recovery steps for one disaster scenario, each
 * optionally with a rollback step. Configured under the top-level `runbooks:`
 * key of lifeboat.yaml:
 *
 *   runbooks:
 *     dir: ./runbooks            # optional: every *.yaml / *.yml file in it is one runbook (name = file name)
 *     failover-db:               # inline runbooks: NAME: { ...runbook... }
 *       title: ...
 *       steps: [...]
 *
 * Cross-checks that need the rest of the config (service, source, channel
 * names) are done by src/config/runbook-check.ts (inline runbooks when the config is loaded, runbook files when src/runbook/load.ts loads them).
 */

export const duration = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

export const SCENARIOS = ['database-corruption', 'data-center-loss', 'accidental-deletion', 'security-breach', 'application-failure', 'other'] as const;
export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
export type Scenario = (typeof SCENARIOS)[number];
export type RunbookSeverity = (typeof SEVERITIES)[number];

const NAME_RE = /^[A-Za-z0-9_.-]+$/;
const noPasswordInUrl = (s: string) => {
  try {
    return !new URL(s).password;
  } catch {
    return true;
  }
};

const common = {
  name: z.string().regex(NAME_RE, 'step names use letters, digits, _ . -').optional().describe('step name (default: TYPE-N); unique in the runbook'),
  description: z.string().optional(),
  /** Re-run automatically by `runbook resume` when Lifeboat died while it was running. */
  idempotent: z.boolean().optional(),
  /** Continue with the next step when this one fails (it is recorded as failed). */
  continueOnError: z.boolean().default(false),
};

const sqlConnection = {
  url: z
    .string()
    .regex(/^(postgres|postgresql|mysql):\/\/[^\s]+$/i, 'expected postgres://user@host:port/db or mysql://user@host:port/db')
    .refine(noPasswordInUrl, 'put no password in the URL: use "password: { env | file | command }"')
    .optional(),
  source: z.string().optional().describe('use the connection of a configured postgres/mysql source instead of url'),
  database: z.string().optional().describe('with source: connect to this database instead of the source\'s'),
  password: secretSchema.optional(),
};

const sqlCheck = z
  .object({
    type: z.literal('sql'),
    ...sqlConnection,
    query: z.string().min(1),
    /** Expected value of the first column of the first row (compared as text; true/false/null allowed). */
    expect: z.union([z.string(), z.number(), z.boolean(), z.null()]).optional(),
    expectRows: z.number().int().min(0).optional(),
    timeout: duration.default('60s'),
  })
  .strict();

const httpCheck = z
  .object({
    type: z.literal('http-check'),
    url: z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http(s) URL'),
    method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
    expectStatus: z.union([z.number().int().min(100).max(599), z.array(z.number().int().min(100).max(599)).min(1)]).default(200),
    bodyContains: z.string().optional(),
    bodyMatches: z
      .string()
      .refine((s) => {
        try {
          new RegExp(s);
          return true;
        } catch {
          return false;
        }
      }, 'invalid regular expression')
      .optional(),
    headers: z.record(z.string(), z.string()).default({}),
    retries: z.number().int().min(0).max(1000).default(0),
    interval: duration.default('2s'),
    timeout: duration.default('10s').describe('per request'),
  })
  .strict();

const sqlStep = sqlCheck.extend(common).strict();
const httpStep = httpCheck.extend(common).strict();

const restoreStep = z
  .object({
    type: z.literal('restore'),
    ...common,
    source: z.string().min(1).describe('configured source whose snapshot is restored'),
    snapshot: z.string().min(1).default('latest').describe('"latest" or a snapshot id (prefix)'),
    repository: z.string().optional().describe('repository to restore from (default: the source\'s / the default repository)'),
    to: z
      .string()
      .min(1)
      .refine(noPasswordInUrl, 'put no password in the URL: the source\'s passwordEnv/passwordFile is used')
      .optional()
      .describe('target: database URL or name (postgres/mysql/mongodb), file (sqlite/redis), directory (files); default: the source itself (databases only)'),
    clean: z.boolean().default(false).describe('databases: drop the objects of the dump in the target first'),
    force: z.boolean().default(false).describe('databases: allow a non-empty target'),
    overwrite: z.boolean().default(false).describe('files: allow a non-empty target directory'),
    targetTime: z
      .string()
      .refine((s) => !Number.isNaN(Date.parse(s)), 'expected an ISO 8601 time, e.g. 2026-11-22T03:15:00Z')
      .optional()
      .describe('PostgreSQL point-in-time recovery target'),
    archiveMode: z
      .enum(['off', 'preserve'])
      .default('off')
      .describe('postgres-physical: WAL archiving of the restored server; "preserve" keeps archive_command, only for promoting it into the new primary'),
  })
  .strict();

const execStep = z
  .object({
    type: z.literal('exec'),
    ...common,
    command: z.union([z.string().min(1), z.array(z.string()).min(1)]).describe('a shell command line (string, run with /bin/sh -c) or argv (array)'),
    env: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'invalid environment variable name'), z.string()).default({}),
    cwd: z.string().optional(),
    timeout: duration.default('10m'),
    expectExitCode: z.number().int().min(0).max(255).default(0),
  })
  .strict();

const waitStep = z
  .object({
    type: z.literal('wait'),
    ...common,
    duration: duration.optional().describe('wait this long'),
    until: z.discriminatedUnion('type', [sqlCheck, httpCheck]).optional().describe('or wait until this check passes'),
    interval: duration.default('1s'),
    timeout: duration.default('10m'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if ((s.duration === undefined) === (s.until === undefined)) ctx.addIssue({ code: 'custom', path: ['duration'], message: 'give exactly one of duration or until' });
  });

const notifyStep = z
  .object({
    type: z.literal('notify'),
    ...common,
    channels: z.array(z.string()).optional().describe('notifier channels (default: incidents.channels)'),
    title: z.string().min(1),
    text: z.string().default(''),
    /** Fail the step when no channel accepted the message (default: only warn). */
    required: z.boolean().default(false),
  })
  .strict();

const manualStep = z
  .object({
    type: z.literal('manual'),
    ...common,
    instructions: z.string().min(1),
    timeout: duration.optional().describe('fail the step when nobody confirms within this time'),
  })
  .strict();

const stepVariants = [restoreStep, execStep, sqlStep, httpStep, waitStep, notifyStep, manualStep] as const;
export const STEP_TYPES = ['restore', 'exec', 'sql', 'http-check', 'wait', 'notify', 'manual'] as const;
export type StepType = (typeof STEP_TYPES)[number];

/** A rollback is a step of any type (without a rollback of its own). */
export const rollbackStepSchema = z.discriminatedUnion('type', stepVariants);

export const stepSchema = z.discriminatedUnion('type', [
  restoreStep.extend({ rollback: rollbackStepSchema.optional() }).strict(),
  execStep.extend({ rollback: rollbackStepSchema.optional() }).strict(),
  sqlStep.extend({ rollback: rollbackStepSchema.optional() }).strict(),
  httpStep.extend({ rollback: rollbackStepSchema.optional() }).strict(),
  waitStep.safeExtend({ rollback: rollbackStepSchema.optional() }),
  notifyStep.extend({ rollback: rollbackStepSchema.optional() }).strict(),
  manualStep.extend({ rollback: rollbackStepSchema.optional() }).strict(),
]);

export type RollbackStep = z.infer<typeof rollbackStepSchema>;
export type RunbookStep = z.infer<typeof stepSchema>;

export const runbookIncidentSchema = z
  .object({
    open: z.boolean().default(true).describe('open an incident for each run'),
    publish: z.boolean().default(false).describe('put the incident on the public status page (default: private)'),
    impact: z.enum(['none', 'minor', 'major', 'critical']).optional().describe('incident impact (default: from severity)'),
    publicTitle: z.string().trim().min(1).max(200).optional().describe('headline on the status page (default: the runbook title)'),
    publicMessage: z.string().trim().min(1).max(4000).optional().describe('the public update posted when the run starts; required with publish: true'),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.publish && !o.publicMessage) ctx.addIssue({ code: 'custom', path: ['publicMessage'], message: 'publish: true needs a publicMessage (the text the status page shows)' });
  });

export type RunbookIncident = z.infer<typeof runbookIncidentSchema>;

/** The incident settings of a runbook, normalized (`incident: true|false` included). */
export function runbookIncident(def: { incident?: boolean | RunbookIncident }): RunbookIncident {
  const v = def.incident ?? true;
  if (typeof v === 'boolean') return { open: v, publish: false };
  return v;
}

export const runbookSchema = z
  .object({
    title: z.string().min(1),
    description: z.string().default(''),
    scenario: z.enum(SCENARIOS),
    severity: z.enum(SEVERITIES),
    services: z.array(z.string()).default([]).describe('names from the top-level services: key'),
    estimatedTime: duration.optional(),
    /**
     * The run's incident: `true` (default) / `false`, or its settings. The
     * incident is private (not on the status page) unless `publish: true`;
     * then the status page shows only the operator-written `publicTitle`
     * (default: the runbook's title) and `publicMessage` — never the runbook's
     * name, who started it, or step errors.
     */
    incident: z.union([z.boolean(), runbookIncidentSchema]).default(true),
    /** Resolve the run's incident when the run succeeds (default false: it goes to "monitoring"). */
    resolveOnSuccess: z.boolean().default(false),
    steps: z.array(stepSchema).min(1, 'a runbook needs at least one step'),
  })
  .strict()
  .superRefine((r, ctx) => {
    const seen = new Map<string, number>();
    r.steps.forEach((s, i) => {
      const n = s.name ?? `${s.type}-${i + 1}`;
      if (seen.has(n)) ctx.addIssue({ code: 'custom', path: ['steps', i, 'name'], message: `duplicate step name "${n}" (also step ${seen.get(n)! + 1})` });
      seen.set(n, i);
    });
  });

export type RunbookDef = z.infer<typeof runbookSchema>;

/** `runbooks:` = optional `dir` (string or list) + inline runbooks by name. */
export const runbooksConfigSchema = z
  .object({
    dir: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional().describe('directory (or directories) of runbook YAML files, relative to the config file'),
  })
  .catchall(runbookSchema)
  .superRefine((o, ctx) => {
    for (const k of Object.keys(o)) {
      if (k !== 'dir' && !NAME_RE.test(k)) ctx.addIssue({ code: 'custom', path: [k], message: 'runbook names use letters, digits, _ . -' });
    }
  });

export type RunbooksConfig = z.infer<typeof runbooksConfigSchema>;
