import { z } from 'zod';
import { drillConfigSchema } from './drill.js';

/**
 * lifeboat.yaml schema. Every object is strict: an unknown key is an error that
 * names the key (typos must not silently disable a backup).
 */
export const secretSchema = z
  .object({
    env: z.string().min(1).optional().describe('name of an environment variable holding the secret'),
    file: z.string().min(1).optional().describe('path of a file holding the secret'),
    command: z.string().min(1).optional().describe('shell command that prints the secret'),
  })
  .strict()
  .refine((s) => [s.env, s.file, s.command].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of env, file or command',
  });

const size = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB)?$/i, 'expected a size like 512KiB, 1MiB, 8M')]);

export const repositorySchema = z
  .object({
    location: z.string().min(1).describe('local path, or s3:https://host/bucket/prefix, or s3://bucket/prefix'),
    password: secretSchema.optional().describe('repository password (default: env LIFEBOAT_PASSWORD)'),
    autoInit: z.boolean().default(false).describe('create the repository on first use'),
    offsite: z.boolean().optional().describe('counts as the off-site copy for 3-2-1 (default: true for S3, false for local paths)'),
    chunker: z.object({ min: size.optional(), avg: size.optional(), max: size.optional() }).strict().optional(),
    timeouts: z
      .object({
        connect: z.string().regex(/^(\d+(ms|s|m|h))+$/, 'expected a duration like 30s, 2m').optional().describe('connect timeout per attempt (default 30s)'),
        request: z.string().regex(/^(\d+(ms|s|m|h))+$/, 'expected a duration like 30s, 2m').optional().describe('deadline of one attempt of one storage request (default 2m)'),
        retries: z.number().int().min(0).max(20).optional().describe('retries of a failed request (default 3; S3 only)'),
      })
      .strict()
      .optional()
      .describe('storage timeouts (env LIFEBOAT_CONNECT_TIMEOUT / LIFEBOAT_REQUEST_TIMEOUT / LIFEBOAT_RETRIES override)'),
    s3: z
      .object({
        region: z.string().optional(),
        forcePathStyle: z.boolean().optional(),
        endpoint: z.string().url().optional().describe('custom endpoint (overrides the location\'s host)'),
        accessKeyId: secretSchema.optional(),
        secretAccessKey: secretSchema.optional(),
        sessionToken: secretSchema.optional(),
        maxAttempts: z.number().int().min(1).max(20).optional(),
        partSize: size.optional(),
        multipartThreshold: size.optional(),
        objectLock: z.object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().int().positive() }).strict().optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

const duration = z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/, 'expected a duration like 30s, 15m, 2h, 1d');

/** A scheduled backup job: a source into a repository, with copies, retention and objectives. */
export const jobSchema = z
  .object({
    source: z.string().min(1).describe('name of a source in "sources"'),
    repository: z.string().optional().describe('repository to back up into (default: defaults.repository)'),
    copyTo: z.array(z.string()).default([]).describe('further repositories the new snapshots are copied to (3-2-1)'),
    schedule: z.string().optional().describe('cron expression (croner syntax; 6 fields = with seconds)'),
    tier: z.enum(['critical', 'important', 'normal']).default('normal'),
    rpo: duration.optional(),
    rto: duration.optional(),
    retention: z.unknown().optional(),
    timeout: duration.default('6h'),
    retries: z.number().int().min(0).max(20).default(2),
    retryDelay: duration.default('30s'),
    catchUp: z.boolean().default(true).describe('run at start-up if a scheduled run was missed while the daemon was down'),
    tags: z.array(z.string()).default([]),
    drill: drillConfigSchema.optional().describe('restore drills of this job (see README: Drills)'),
  })
  .strict();

/**
 * `services:` the application's components as the operator and the status
 * page see them. A service's health follows its jobs (RPO, failures) and its
 * open incidents; runbooks and incidents name the services they affect.
 */
export const serviceSchema = z
  .object({
    description: z.string().optional(),
    jobs: z.array(z.string()).default([]).describe('jobs whose health this service reflects'),
    url: z.string().url().optional().describe('health URL shown on the dashboard'),
  })
  .strict();
export type ServiceConfig = z.infer<typeof serviceSchema>;

export const daemonSchema = z
  .object({
    concurrency: z.number().int().min(1).max(64).default(2),
    catalog: z.string().default('.lifeboat/catalog.db').describe('SQLite catalog file (relative to the config file) or postgres:// URL'),
    listen: z.string().default('127.0.0.1:9187').describe('host:port of the metrics/health HTTP server'),
    shutdownGrace: duration.default('60s').describe('on SIGTERM, how long running jobs may finish before they are aborted'),
    maintenance: z
      .object({
        schedule: z.string().default('0 30 3 * * *'),
        prune: z.boolean().default(true),
        checkReadDataSubset: z.string().optional().describe('e.g. "10%" or "1/7": read part of the data on each run'),
      })
      .strict()
      .optional(),
  })
  .strict();

export type JobConfig = z.infer<typeof jobSchema>;
export type DaemonConfig = z.infer<typeof daemonSchema>;

export const filesSourceSchema = z
  .object({
    kind: z.literal('files'),
    paths: z.array(z.string().min(1)).min(1, 'at least one path is required'),
    excludes: z.array(z.string()).default([]),
    oneFileSystem: z.boolean().default(false),
    tags: z.array(z.string()).default([]),
    repository: z.string().optional(),
  })
  .strict();

export type RepositoryConfig = z.infer<typeof repositorySchema>;
export type FilesSourceConfig = z.infer<typeof filesSourceSchema>;

export function parseSize(v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim())!;
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const mult: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
  return Math.round(n * mult[unit]!);
}
