import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { parseDuration } from '../util/duration.js';

/**
 * Absolute alert thresholds (issue 14 item 5), the schemas of
 *   jobs.NAME.alerts:          { age: { warn, critical }, size: { min, max } }
 *   repositories.NAME.alerts:  { freeSpace: { warn, critical } }
 * The monitor (ops/monitor.ts) evaluates them.
 */

const BYTE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
  t: 1024 ** 4,
  tb: 1000 ** 4,
  tib: 1024 ** 4,
};
const BYTES_RE = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i;

/** "10 GB" (10^9), "10GiB" (2^30), "512" bytes, a number = bytes. Throws ConfigError. */
export function parseBytes(v: number | string): number {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new ConfigError(`invalid size ${v}: expected a whole number of bytes`);
    return v;
  }
  const m = BYTES_RE.exec(v.trim());
  const mult = m ? BYTE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) throw new ConfigError(`invalid size "${v}": expected e.g. 1 MB, 10 GB, 512MiB, 2TiB`);
  const n = Math.round(Number(m[1]) * mult);
  if (!Number.isSafeInteger(n)) throw new ConfigError(`invalid size "${v}": too large`);
  return n;
}

const bytes = z.union([z.number().int().nonnegative(), z.string()]).superRefine((v, ctx) => {
  try {
    parseBytes(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

const duration = z.string().superRefine((s, ctx) => {
  try {
    parseDuration(s);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

/** Free space: an amount ("50 GB") or a share of the file system ("10%"). */
const freeAmount = z.union([z.number().int().nonnegative(), z.string()]).superRefine((v, ctx) => {
  if (typeof v === 'string' && /%\s*$/.test(v)) {
    const p = Number(v.trim().slice(0, -1));
    if (!(p >= 0 && p <= 100)) ctx.addIssue({ code: 'custom', message: `invalid percentage "${v}" (0% to 100%)` });
    return;
  }
  try {
    parseBytes(v);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
  }
});

export const jobAlertsSchema = z
  .object({
    age: z
      .object({
        warn: duration.optional().describe('warning when the newest good backup is older than this (default: the RPO)'),
        critical: duration.optional().describe('critical when older than this (default: 2 × the RPO)'),
      })
      .strict()
      .optional(),
    size: z
      .object({
        min: bytes.optional().describe('critical when the newest snapshot is smaller (e.g. "1 MB": an empty dump)'),
        max: bytes.optional().describe('warning when the newest snapshot is larger (e.g. "10 GB")'),
      })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((a, ctx) => {
    if (a.age?.warn && a.age.critical && parseDuration(a.age.warn) > parseDuration(a.age.critical)) {
      ctx.addIssue({ code: 'custom', path: ['age'], message: `warn (${a.age.warn}) is longer than critical (${a.age.critical})` });
    }
    if (a.size?.min !== undefined && a.size.max !== undefined && parseBytes(a.size.min) > parseBytes(a.size.max)) {
      ctx.addIssue({ code: 'custom', path: ['size'], message: 'min is larger than max' });
    }
  });

export const repositoryAlertsSchema = z
  .object({
    freeSpace: z
      .object({
        warn: freeAmount.optional().describe('warning below this much free space: bytes ("50 GB") or percent ("10%"); default 10%'),
        critical: freeAmount.optional().describe('critical below this: bytes or percent; default 5%'),
      })
      .strict()
      .optional(),
  })
  .strict();

export type JobAlertsConfig = z.infer<typeof jobAlertsSchema>;
export type RepositoryAlertsConfig = z.infer<typeof repositoryAlertsSchema>;

/** A free-space threshold: { bytes } or { percent }. */
export type FreeThreshold = { bytes: number } | { percent: number };

export function parseFreeThreshold(v: number | string): FreeThreshold {
  if (typeof v === 'string' && /%\s*$/.test(v)) return { percent: Number(v.trim().slice(0, -1)) };
  return { bytes: parseBytes(v) };
}
