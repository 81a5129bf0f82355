import { z } from 'zod';
import { drillConfigSchema } from './drill.js';
import { jobAlertsSchema, repositoryAlertsSchema } from './alerts.js';
import { pingSchema } from './ping.js';

/**
 * lifeboat.yaml schema. Every object is strict: an unknown key is an error that
 * names the key (typos must not silently disable a backup).
 */
import { secretSchema } from './secret-schema.js';

export { secretSchema };

const size = z.union([z.number().int().positive(), z.string().regex(/^\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB)?$/i, 'expected a size like 512KiB, 1MiB, 8M')]);

export const repositorySchema = z
  .object({
    location: z.string().min(1).describe('local path, s3:https://host/bucket/prefix, s3://bucket/prefix, rclone:REMOTE:PATH or sftp://user@host[:port]/path'),
    password: secretSchema.optional().describe('repository password (default: env LIFEBOAT_PASSWORD)'),
    autoInit: z.boolean().default(false).describe('create the repository on the first run of a job that uses it (no successful backup of that job in the catalog yet); afterwards a missing repository is an error (a mistyped location)'),
    lockLease: z
      .string()
      .regex(/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/, 'expected a duration like 30s, 5m')
      .optional()
      .describe('lease of the locks Lifeboat takes on this repository (default 5m, at least 1s): a lock not refreshed within it is stale, so a crashed holder blocks others at most this long; LIFEBOAT_LOCK_LEASE overrides it'),
    alerts: repositoryAlertsSchema.optional().describe('free-space thresholds (bytes or percent)'),
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
        objectLock: z
          .object({ mode: z.enum(['GOVERNANCE', 'COMPLIANCE']), days: z.number().int().positive() })
          .strict()
          .optional()
          .describe('per-object retention; init and check verify that the bucket enforces Object Lock'),
        storageClass: z
          .enum(['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR', 'REDUCED_REDUNDANCY', 'EXPRESS_ONEZONE'])
          .optional()
          .describe('storage class of new objects except locks (e.g. STANDARD_IA, GLACIER_IR for copies)'),
        partConcurrency: z.number().int().min(1).max(64).optional().describe('parts of one multipart upload sent at once (default 4)'),
      })
      .strict()
      .optional(),
    appendOnly: z
      .boolean()
      .optional()
      .describe('this host may add but never delete or overwrite (except locks): forget/prune/unlock-all refused; pair with append-only credentials (docs: append-only)'),
    limits: z
      .object({
        upload: z.number().int().positive().optional().describe('upload bandwidth limit in KiB/s (like --limit-upload)'),
        download: z.number().int().positive().optional().describe('download bandwidth limit in KiB/s (like --limit-download)'),
        uploadConcurrency: z.number().int().min(1).max(64).optional().describe('objects uploaded at once'),
        downloadConcurrency: z.number().int().min(1).max(64).optional().describe('objects downloaded at once'),
      })
      .strict()
      .optional()
      .describe('bandwidth and concurrency limits of every backend (env LIFEBOAT_LIMIT_UPLOAD / LIFEBOAT_LIMIT_DOWNLOAD override)'),
    rclone: z
      .object({
        program: z.string().min(1).optional().describe('rclone binary (default: env LIFEBOAT_RCLONE or "rclone")'),
        args: z.array(z.string()).optional().describe('extra rclone flags, e.g. ["--config", "/etc/lifeboat/rclone.conf"]; never secrets'),
      })
      .strict()
      .optional(),
    sftp: z
      .object({
        keyFile: z.string().min(1).optional().describe('SSH private key (default: env LIFEBOAT_SFTP_KEY_FILE, else ssh-agent)'),
        knownHostsFile: z.string().min(1).optional().describe('known_hosts to verify the server key (default: env LIFEBOAT_SFTP_KNOWN_HOSTS, else ~/.ssh/known_hosts)'),
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
    runOn: z
      .enum(['local', 'any'])
      .default('local')
      .describe('local: this daemon runs every slot; any: every agent sharing the PostgreSQL catalog may run it, each slot (fire time, UTC) exactly once (claimed in the catalog, taken over after daemon.slots.lease if its agent dies)'),
    tags: z.array(z.string()).default([]),
    drill: drillConfigSchema.optional().describe('restore drills of this job (see README: Drills)'),
    alerts: jobAlertsSchema.optional().describe('absolute thresholds: backup age warn/critical, snapshot size min/max'),
    ping: pingSchema.optional().describe('Healthchecks-style pings: start, success, fail, exit code (docs/alerts.md)'),
    healthcheck: pingSchema.optional().describe('alias of ping'),
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
    availabilityTarget: z.number().gt(0).lte(100).optional().describe('availability objective in percent (e.g. 99.9), shown on the status page next to the measured 30/90-day availability'),
  })
  .strict();
export type ServiceConfig = z.infer<typeof serviceSchema>;

export const daemonSchema = z
  .object({
    concurrency: z.number().int().min(1).max(64).default(2),
    catalog: z.string().default('.lifeboat/catalog.db').describe('SQLite catalog file (relative to the config file) or postgres:// URL'),
    listen: z.string().default('127.0.0.1:9187').describe('host:port of the metrics/health HTTP server'),
    shutdownGrace: duration.default('60s').describe('on SIGTERM, how long running jobs may finish before they are aborted'),
    agentId: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/, 'letters, digits, ".", "_", "-" (at most 63, not starting with a punctuation mark)')
      .optional()
      .describe('this daemon\'s id in the fleet (agents sharing a catalog); default: the host name. Unique: a second live agent with the same id is refused'),
    fleet: z
      .object({
        heartbeat: duration.default('15s').describe('how often the agent writes its heartbeat to the catalog'),
        missedAfter: z.number().int().min(2).max(100).default(3).describe('an agent whose heartbeat is this many intervals old is "missed heartbeat" (an alert)'),
        requestPoll: duration.default('5s').describe('how often the agent looks for run requests addressed to it'),
        catalogTimeout: duration.default('10s').describe('deadline of every fleet catalog call (register, heartbeat, requests)'),
        tier: z.enum(['critical', 'important', 'normal']).default('critical').describe('routing tier of the missed-heartbeat alert'),
      })
      .strict()
      .prefault({}),
    slots: z
      .object({
        lease: duration.default('60s').describe('how long a claimed slot of a runOn: any job stays with its agent without a renewal (renewed every lease/4); a dead agent\'s slot is taken over after it'),
        missedAfter: duration.default('1m').describe('a slot no agent claimed this long after its fire time is reported missed (late if claimed later)'),
        keep: duration.default('7d').describe('finished slot claims older than this are deleted'),
      })
      .strict()
      .prefault({})
      .describe('high-availability scheduling of runOn: any jobs (PostgreSQL catalog)'),
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

