import { z } from 'zod';
import { ConfigError } from '../errors.js';

/**
 * Retention policies with restic's `forget` semantics. Time buckets are
 * computed in UTC (restic uses local time); UTC makes the result independent
 * of the server's time zone and of daylight-saving changes.
 */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Keep everything newer than (latest snapshot time - duration), e.g. '7d', '2w', '1y2m3d4h'. */
  keepWithin?: string;
  keepTags?: string[];
}

export interface SnapshotLike {
  id: string;
  time: Date | string;
  tags?: string[];
}

export interface RetentionDecision<T> {
  keep: Array<{ snapshot: T; reasons: string[] }>;
  remove: T[];
}

const count = z.number().int().min(-1, 'use -1 for unlimited, or a count >= 0');
export const retentionPolicySchema = z
  .object({
    keepLast: count.optional(),
    keepHourly: count.optional(),
    keepDaily: count.optional(),
    keepWeekly: count.optional(),
    keepMonthly: count.optional(),
    keepYearly: count.optional(),
    keepWithin: z
      .string()
      .refine((s) => {
        try {
          parseDuration(s);
          return true;
        } catch {
          return false;
        }
      }, 'expected a duration like 7d, 2w, 1y2m3d4h')
      .optional(),
    keepTags: z.array(z.string().min(1)).optional(),
  })
  .strict();

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000, // minutes when used alone with h/d... see parseDuration
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/**
 * Parse a duration: a sequence of <number><unit> with units
 * y (365 d), mo or M (30 d), w, d, h, m (minutes), s. Examples: '15m', '1h', '7d', '1y2mo3d'.
 * restic's keep-within uses y/m/d/h where m is months; we accept 'mo' for months and
 * treat a plain 'm' as months only when it follows y (restic style "1y2m"), else minutes.
 */
export function parseDuration(s: string): number {
  const str = String(s).trim();
  if (!str) throw new ConfigError('empty duration');
  const re = /(\d+(?:\.\d+)?)\s*(mo|ms|y|M|w|d|h|m|s)/gy;
  let total = 0;
  let sawYear = false;
  let pos = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(str)) !== null) {
    const n = Number(m[1]);
    let unit = m[2]!;
    if (unit === 'm' && sawYear) unit = 'mo';
    if (unit === 'y') sawYear = true;
    const ms = unit === 'mo' || unit === 'M' ? 30 * 86_400_000 : unit === 'ms' ? 1 : UNIT_MS[unit]!;
    total += n * ms;
    pos = re.lastIndex;
  }
  if (pos !== str.length || total <= 0) throw new ConfigError(`invalid duration "${s}" (expected e.g. 15m, 1h, 7d, 2w, 1y2mo)`);
  return total;
}

export function isEmptyPolicy(p: RetentionPolicy): boolean {
  return (
    !p.keepLast &&
    !p.keepHourly &&
    !p.keepDaily &&
    !p.keepWeekly &&
    !p.keepMonthly &&
    !p.keepYearly &&
    !p.keepWithin &&
    !(p.keepTags && p.keepTags.length)
  );
}

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** ISO-8601 week-numbering year and week, in UTC. */
export function isoWeek(d: Date): { year: number; week: number } {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const yearStart = Date.UTC(t.getUTCFullYear(), 0, 1);
  return { year: t.getUTCFullYear(), week: Math.ceil(((t.getTime() - yearStart) / 86_400_000 + 1) / 7) };
}

const BUCKETS: Array<{ key: keyof RetentionPolicy; reason: string; bucket: (d: Date) => string }> = [
  { key: 'keepHourly', reason: 'hourly snapshot', bucket: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}` },
  { key: 'keepDaily', reason: 'daily snapshot', bucket: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` },
  {
    key: 'keepWeekly',
    reason: 'weekly snapshot',
    bucket: (d) => {
      const w = isoWeek(d);
      return `${w.year}-W${pad(w.week)}`;
    },
  },
  { key: 'keepMonthly', reason: 'monthly snapshot', bucket: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}` },
  { key: 'keepYearly', reason: 'yearly snapshot', bucket: (d) => `${d.getUTCFullYear()}` },
];

const toDate = (t: Date | string) => (t instanceof Date ? t : new Date(t));

/**
 * Decide which snapshots to keep. Deterministic and independent of input order:
 * snapshots are sorted newest first (ties broken by id).
 */
export function applyRetention<T extends SnapshotLike>(snaps: T[], policy: RetentionPolicy): RetentionDecision<T> {
  const sorted = [...snaps].sort((a, b) => toDate(b.time).getTime() - toDate(a.time).getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  if (isEmptyPolicy(policy)) return { keep: sorted.map((s) => ({ snapshot: s, reasons: ['no policy'] })), remove: [] };
  const reasons = new Map<T, string[]>();
  const add = (s: T, r: string) => {
    const l = reasons.get(s) ?? [];
    if (!l.includes(r)) l.push(r);
    reasons.set(s, l);
  };
  if (policy.keepLast) {
    const n = policy.keepLast === -1 ? sorted.length : policy.keepLast;
    sorted.slice(0, n).forEach((s) => add(s, 'last snapshot'));
  }
  for (const b of BUCKETS) {
    const limit = policy[b.key] as number | undefined;
    if (!limit) continue;
    let left = limit === -1 ? Infinity : limit;
    let lastBucket: string | undefined;
    for (const s of sorted) {
      if (left <= 0) break;
      const k = b.bucket(toDate(s.time));
      if (k !== lastBucket) {
        add(s, b.reason);
        lastBucket = k;
        left--;
      }
    }
  }
  if (policy.keepWithin && sorted.length) {
    const latest = toDate(sorted[0]!.time).getTime();
    const cutoff = latest - parseDuration(policy.keepWithin);
    for (const s of sorted) if (toDate(s.time).getTime() >= cutoff) add(s, 'within ' + policy.keepWithin);
  }
  if (policy.keepTags?.length) {
    for (const s of sorted) if (s.tags?.some((t) => policy.keepTags!.includes(t))) add(s, 'tagged');
  }
  const keep: RetentionDecision<T>['keep'] = [];
  const remove: T[] = [];
  for (const s of sorted) {
    const r = reasons.get(s);
    if (r) keep.push({ snapshot: s, reasons: r });
    else remove.push(s);
  }
  return { keep, remove };
}

export function groupSnapshots<T>(snaps: T[], key: (s: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const s of snaps) {
    const k = key(s);
    const l = out.get(k) ?? [];
    l.push(s);
    out.set(k, l);
  }
  return out;
}
