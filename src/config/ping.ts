import { z } from 'zod';
import { secretSchema } from './secret-schema.js';
import { errorMessage } from '../errors.js';
import { parseDuration } from '../util/duration.js';

/**
 * `jobs.NAME.ping` (alias `healthcheck`): dead-man's-switch pings of every run
 * of the job, from the daemon and from `lifeboat run` / `backup --config`.
 *
 *   style healthchecks (Healthchecks.io, self-hosted Healthchecks, Cronitor's
 *   compatible endpoint): POST URL/start when the run starts; at the end
 *   POST URL (success) or URL/fail (failure) with the error tail as the body;
 *   with exitCode: true the end ping is URL/<exit code> instead. Start and end
 *   carry the same ?rid=<uuid> so the server pairs them and measures the run.
 *
 *   style uptime-kuma (push monitors): GET URL?status=up|down&msg=<text>&ping=<ms>
 *   at the end only (a query string already on the URL is replaced).
 *
 * The URL holds the check's token: give it as a secret reference
 * ({ env | file | command }); it is never logged (logs show scheme://host).
 * A ping that fails is logged and never fails the run.
 */
const durationString = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: errorMessage(e) });
  }
});

export const pingSchema = z
  .object({
    url: z.union([z.string().regex(/^https?:\/\/[^\s]+$/i, 'expected an http(s) URL or a secret reference { env | file | command }'), secretSchema]),
    style: z.enum(['healthchecks', 'uptime-kuma']).default('healthchecks'),
    start: z.boolean().default(true).describe('healthchecks: send URL/start when the run begins'),
    exitCode: z.boolean().default(false).describe('healthchecks: end with URL/<exit code> instead of URL or URL/fail'),
    timeout: durationString.default('10s').describe('per-attempt timeout'),
    retries: z.number().int().min(0).max(10).default(2),
    retryDelay: durationString.default('1s').describe('delay before the first retry, doubled each time'),
  })
  .strict();

export type PingConfig = z.infer<typeof pingSchema>;
