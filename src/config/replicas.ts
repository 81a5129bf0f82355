import { z } from 'zod';
import { secretSchema } from './secret-schema.js';
import { duration } from './runbook.js';
import { TIERS } from './tiers.js';
import { parseBytes } from './alerts.js';
import { errorMessage } from '../errors.js';

/**
 * `replicas:` — streaming replicas Lifeboat watches (src/ops/replica-monitor.ts):
 *
 *   replicas:
 *     app-db-standby:
 *       kind: postgres                      # or mysql (MariaDB/MySQL: SHOW REPLICA STATUS)
 *       url: postgres://monitor@10.0.0.12:5432/postgres
 *       password: { env: REPLICA_PASSWORD }  # never in the URL
 *       primary: { url: postgres://monitor@10.0.0.11:5432/postgres }   # optional: lag vs the primary's current WAL
 *       tier: critical                      # alert routing (notifiers.routes)
 *       lag: { warnBytes: 16MiB, criticalBytes: 256MiB, warn: 30s, critical: 5m }
 *       onCritical: { runbook: failover-db, requireConfirmation: true }
 *
 * Each replica yields one finding (job "replica:NAME", check "replica") per
 * monitor pass; onCritical starts the named runbook once per alert firing.
 */

const noPasswordInUrl = (s: string) => {
  try {
    return !new URL(s).password;
  } catch {
    return false;
  }
};

const pgUrl = z
  .string()
  .regex(/^(postgres(ql)?|mysql|mariadb):\/\/[^\s]+$/i, 'expected postgres://user@host:port/db or mysql://user@host:port')
  .refine(noPasswordInUrl, 'put no password in the URL: use "password: { env | file | command }"');

const bytes = z.union([z.number(), z.string()]).superRefine((v, ctx) => {
  try {
    parseBytes(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

export const replicaSchema = z
  .object({
    kind: z.enum(['postgres', 'mysql']).default('postgres').describe('mysql: MariaDB or MySQL (SHOW REPLICA STATUS)'),
    url: pgUrl.describe('connection to the replica (a role that may read pg_stat_wal_receiver, e.g. pg_monitor)'),
    password: secretSchema.optional(),
    primary: z.object({ url: pgUrl, password: secretSchema.optional() }).strict().optional().describe('optional: lag measured against the primary\'s pg_current_wal_lsn()'),
    tier: z.enum(TIERS).default('critical').describe('routing tier of the replica\'s alerts'),
    connectTimeout: duration.default('5s'),
    queryTimeout: duration.default('5s'),
    lag: z
      .object({
        warnBytes: bytes.default('16MiB'),
        criticalBytes: bytes.default('256MiB'),
        warn: duration.default('30s'),
        critical: duration.default('5m'),
      })
      .strict()
      .prefault({}),
    onCritical: z
      .object({
        runbook: z.string().regex(/^[A-Za-z0-9_.-]+$/),
        /** The runbook's first step must be a manual step: a human confirms before anything runs (default true). */
        requireConfirmation: z.boolean().default(true),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    const scheme = /^([a-z]+):/i.exec(r.url)?.[1]?.toLowerCase() ?? '';
    const url = { postgres: { re: /^postgres(ql)?:/i, hint: 'postgres://' }, mysql: { re: /^(mysql|mariadb):/i, hint: 'mysql://' } }[r.kind];
    const ok = (u: string) => url.re.test(u);
    if (!ok(r.url)) ctx.addIssue({ code: 'custom', path: ['url'], message: `kind ${r.kind} needs a ${url.hint} URL, not ${scheme}://` });
    if (r.primary && !ok(r.primary.url)) ctx.addIssue({ code: 'custom', path: ['primary', 'url'], message: `kind ${r.kind} needs a ${url.hint} URL` });
  });

export type ReplicaConfig = z.infer<typeof replicaSchema>;

export const replicasSchema = z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'replica names use letters, digits, _ . -'), replicaSchema);
