import { z } from 'zod';
import { Cron } from 'croner';

/**
 * `jobs.NAME.drill`: how restore drills of this job's source are run and
 * verified (see docs/drills.md).
 *
 *   drill:
 *     schedule: "0 0 4 * * 0"        # optional cron, run by the daemon
 *     server: { host: 10.0.0.9, port: 5432, user: postgres, password: { env: DRILL_PG_PASSWORD } }
 *     queries:
 *       - sql: "SELECT count(*) FROM proposals"
 *         min: 1000
 *     timeout: 30m
 *     keepTarget: false
 */

const duration = z.string().regex(/^(\d+(\.\d+)?(ms|s|m|h|d|w))+$/, 'expected a duration like 30s, 15m, 2h, 1d');

const commandLine = z.union([z.string().min(1), z.array(z.string().min(1)).min(1, 'the command needs at least the program name')]);

/** Password of the drill server: an environment variable or a file (never inline). */
const drillSecretSchema = z
  .object({
    env: z.string().min(1).optional().describe('name of an environment variable holding the password'),
    file: z.string().min(1).optional().describe('path of a file holding the password (relative to the config file)'),
  })
  .strict()
  .refine((s) => (s.env === undefined) !== (s.file === undefined), { message: 'give exactly one of env or file' });

export const drillServerSchema = z
  .object({
    host: z.string().min(1).describe('drill database server host'),
    port: z.number().int().min(1).max(65535).optional().describe('port (default: the source\'s port)'),
    user: z.string().min(1).optional().describe('user (default: the source\'s user)'),
    password: drillSecretSchema.optional(),
  })
  .strict();

export const drillQuerySchema = z
  .object({
    name: z.string().min(1).optional().describe('label shown in results (default: the query text)'),
    sql: z.string().min(1).optional().describe('SQL run in the restored database (postgres, mysql, sqlite); the first column of the first row is checked'),
    command: commandLine
      .optional()
      .describe('command run after the restore (any kind); env LIFEBOAT_DRILL_TARGET etc. describe the scratch target; its trimmed stdout is checked'),
    min: z.number().optional().describe('value must be a number >= min'),
    max: z.number().optional().describe('value must be a number <= max'),
    equals: z.union([z.number(), z.string()]).optional().describe('value must equal this (numbers compared numerically)'),
    expect: z.string().optional().describe('value as text must be exactly this'),
    equalsBackup: z
      .boolean()
      .optional()
      .describe('value must equal the same query run at backup time in the dump\'s own snapshot (postgres, sqlite sources; recorded in the snapshot)'),
    matches: z
      .string()
      .optional()
      .superRefine((s, ctx) => {
        if (s === undefined) return;
        try {
          new RegExp(s);
        } catch (e) {
          ctx.addIssue({ code: 'custom', message: `invalid regular expression: ${(e as Error).message}` });
        }
      })
      .describe('value as text must match this regular expression'),
  })
  .strict()
  .superRefine((q, ctx) => {
    if ((q.sql === undefined) === (q.command === undefined)) ctx.addIssue({ code: 'custom', path: ['sql'], message: 'give exactly one of sql or command' });
    if (q.equalsBackup && q.sql === undefined) ctx.addIssue({ code: 'custom', path: ['equalsBackup'], message: 'equalsBackup needs an sql query (it is run at backup time too)' });
    if (q.min !== undefined && q.max !== undefined && q.min > q.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `min (${q.min}) is greater than max (${q.max})` });
  });

export const drillConfigSchema = z
  .object({
    schedule: z
      .string()
      .optional()
      .superRefine((s, ctx) => {
        if (s === undefined) return;
        try {
          new Cron(s, { paused: true });
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: `invalid cron expression: ${(err as Error).message}` });
        }
      })
      .describe('cron expression: the daemon runs the drill on this schedule'),
    server: drillServerSchema.optional().describe('restore into this server instead of the source\'s server (postgres, mysql)'),
    queries: z.array(drillQuerySchema).default([]).describe('verification queries run against the restored data'),
    restoreCommand: commandLine
      .optional()
      .describe('command sources: restore command for the drill (reads the dump on stdin; env LIFEBOAT_DRILL_DIR is a scratch directory); default: restore to a scratch file'),
    timeout: duration.default('1h').describe('the whole drill is aborted after this long (the scratch target is still dropped)'),
    scratchDir: z.string().min(1).optional().describe('directory for scratch files and directories (relative to the config file; default: the system temp directory)'),
    database: z.string().min(1).optional().describe('postgres-physical sources: database the sql queries run in (default "postgres")'),
    mysqlPitr: z
      .object({
        targetTime: z.string().min(1).default('latest').describe('"latest" (the end of the binlog archive) or a time with a zone, e.g. 2026-11-22T14:30:00Z'),
      })
      .strict()
      .optional()
      .describe('mysql sources with binlog: the mysql-pitr target: the dump restored into a private scratch mariadbd and the archived binary logs replayed (docs/pitr.md)'),
    keepTarget: z.boolean().default(false).describe('leave the scratch database/directory in place for inspection'),
  })
  .strict();

export type DrillConfig = z.infer<typeof drillConfigSchema>;
export type DrillQuery = z.infer<typeof drillQuerySchema>;
export type DrillServer = z.infer<typeof drillServerSchema>;
