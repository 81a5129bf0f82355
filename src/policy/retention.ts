import { ConfigError, LifeboatError, errorMessage } from '../errors.js';
import { parseCalendarDuration, type CalendarDuration } from '../util/duration.js';

/**
 * Retention policies with the semantics of restic's `forget --keep-*`.
 *
 * Algorithm (same as restic's ApplyPolicy):
 *  - snapshots are sorted newest first;
 *  - keep-last N keeps the N newest;
 *  - keep-hourly/daily/weekly/monthly/yearly N walk that list and keep a snapshot
 *    whenever its bucket (YYYY-MM-DD HH / YYYY-MM-DD / ISO year-week / YYYY-MM / YYYY)
 *    differs from the previously kept one, i.e. the newest snapshot of each of the N
 *    most recent buckets that contain snapshots. -1 means "no limit";
 *  - if a counted rule still has count left when the walk reaches the oldest
 *    snapshot, the oldest snapshot is kept as well ("oldest daily snapshot", ...):
 *    restic does this so a young repository keeps its full history;
 *  - keep-within D keeps every snapshot strictly newer than (latest − D), where
 *    latest is the newest snapshot that is not in the future, NOT the current time,
 *    so a host that stopped backing up does not lose its last snapshots;
 *  - keep-tags keeps snapshots that carry all tags of any one entry (an entry "a,b"
 *    needs both tags, like `restic forget --keep-tag a,b`); they are not counted;
 *  - a snapshot may be kept for several reasons, all are reported.
 *
 * Deliberate difference from restic: buckets are computed in **UTC**, while restic
 * uses the local time zone of the machine running `forget`. With UTC the result
 * does not depend on the server's TZ setting or on daylight-saving transitions
 * (in local time a day can have 23 or 25 hours and the same history could be
 * pruned differently on two machines).
 *
 * Ties (equal times) are broken by id so the result does not depend on input order.
 */
export interface RetentionPolicy {
  keepLast?: number;
  keepHourly?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /**
   * Keep everything newer than (latest snapshot time − duration). restic syntax:
   * `<n>y` years, `<n>m` MONTHS, `<n>d` days, `<n>h` hours, plus `<n>w` weeks and
   * `<n>mo` months, e.g. '7d', '2w', '1y2m3d4h'. See parseCalendarDuration.
   */
  keepWithin?: string;
  /** Tag lists; a snapshot matching any entry is kept. "a,b" requires both tags. */
  keepTags?: string[];
}

export interface SnapshotLike {
  id: string;
  time: Date | string;
  tags?: string[];
}

export interface RetentionDecision<T> {
  /** Kept snapshots, newest first, with every reason that applies. */
  keep: Array<{ snapshot: T; reasons: string[] }>;
  /** Snapshots to forget, newest first. */
  remove: T[];
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

// ---------------------------------------------------------------------------
// Durations



/** Subtract a calendar duration from an instant (UTC calendar arithmetic). */
export function subtractCalendarDuration(t: Date, d: CalendarDuration): Date {
  const r = new Date(t.getTime());
  // setUTCFullYear(y, m, d) normalises overflow exactly like Go's AddDate and,
  // unlike Date.UTC, does not map years 0..99 to 1900..1999.
  r.setUTCFullYear(r.getUTCFullYear() - d.years, r.getUTCMonth() - d.months, r.getUTCDate() - d.days);
  return new Date(r.getTime() - d.hours * HOUR_MS);
}


// ---------------------------------------------------------------------------
// Policy schema and checks


const COUNT_KEYS = ['keepLast', 'keepHourly', 'keepDaily', 'keepWeekly', 'keepMonthly', 'keepYearly'] as const;

/**
 * True when the policy would keep nothing by itself (all counts 0/absent, no
 * keep-within, no tags). applyRetention keeps everything for such a policy; the
 * CLI should refuse `forget` with a clear message instead of calling it.
 */
export function isEmptyPolicy(p: RetentionPolicy | undefined | null): boolean {
  if (!p) return true;
  return COUNT_KEYS.every((k) => !p[k]) && !(p.keepWithin && p.keepWithin.trim()) && !(p.keepTags && p.keepTags.length);
}

/** Throws ConfigError naming the bad field. */
export function validatePolicy(p: RetentionPolicy): void {
  for (const k of COUNT_KEYS) {
    const v = p[k];
    if (v !== undefined && (!Number.isInteger(v) || v < -1)) throw new ConfigError(`retention ${k}: expected a whole number >= 0 or -1 for unlimited, got ${JSON.stringify(v)}`);
  }
  if (p.keepWithin !== undefined && p.keepWithin.trim()) {
    try {
      parseCalendarDuration(p.keepWithin);
    } catch (e) {
      throw new ConfigError(`retention keepWithin: ${errorMessage(e)}`);
    }
  }
  for (const t of p.keepTags ?? []) {
    if (typeof t !== 'string' || !tagList(t).length) throw new ConfigError(`retention keepTags: empty tag ${JSON.stringify(t)}`);
  }
}

/** restic-like one-line description, e.g. "keep 7 daily, all weekly snapshots and all snapshots within 2w of the newest". */
export function describePolicy(p: RetentionPolicy): string {
  const names: Record<(typeof COUNT_KEYS)[number], string> = { keepLast: 'latest', keepHourly: 'hourly', keepDaily: 'daily', keepWeekly: 'weekly', keepMonthly: 'monthly', keepYearly: 'yearly' };
  const counts = COUNT_KEYS.filter((k) => p[k]).map((k) => (p[k] === -1 ? `all ${names[k]}` : `${p[k]} ${names[k]}`));
  const parts: string[] = [];
  if (counts.length) parts.push(`${counts.join(', ')} snapshots`);
  if (p.keepTags?.length) parts.push(`all snapshots with tags ${p.keepTags.map((t) => `[${tagList(t).join(', ')}]`).join(' or ')}`);
  if (p.keepWithin?.trim()) parts.push(`all snapshots within ${p.keepWithin.trim()} of the newest`);
  return parts.length ? `keep ${parts.join(' and ')}` : 'empty policy (keep everything)';
}

// ---------------------------------------------------------------------------
// Buckets

function pad(n: number, w = 2): string {
  return String(n).padStart(w, '0');
}

/** ISO-8601 week-numbering year and week of the UTC date of d (same as Go's Time.ISOWeek in UTC). */
export function isoWeek(d: Date): { year: number; week: number } {
  const t = new Date(0);
  t.setUTCFullYear(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const day = t.getUTCDay() || 7; // Mon=1..Sun=7
  t.setUTCDate(t.getUTCDate() + 4 - day); // Thursday of this week decides the year
  const year = t.getUTCFullYear();
  const jan1 = new Date(0);
  jan1.setUTCFullYear(year, 0, 1);
  return { year, week: Math.floor((t.getTime() - jan1.getTime()) / DAY_MS / 7) + 1 };
}

const ymdh = (d: Date) => `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}`;
const ymd = (d: Date) => `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
const yw = (d: Date) => {
  const w = isoWeek(d);
  return `${pad(w.year, 4)}-W${pad(w.week)}`;
};
const ym = (d: Date) => `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1)}`;
const y = (d: Date) => pad(d.getUTCFullYear(), 4);

/** Bucket keys (UTC) for each rule; exported for display and tests. */
export const bucketKey = { hourly: ymdh, daily: ymd, weekly: yw, monthly: ym, yearly: y } as const;

function tagList(entry: string): string[] {
  return entry
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}

function timeOf(s: SnapshotLike): number {
  const t = s.time instanceof Date ? s.time.getTime() : Date.parse(s.time);
  if (!Number.isFinite(t)) throw new LifeboatError(`snapshot ${s.id}: invalid time ${JSON.stringify(s.time instanceof Date ? String(s.time) : s.time)}`);
  return t;
}

/**
 * Decide which snapshots to keep (see the module comment for the rules).
 * Pure and deterministic for a given `now`; `now` only matters for snapshots
 * dated in the future, which (as in restic) are ignored when finding the
 * "latest" snapshot that keep-within counts back from.
 * An empty policy keeps everything (reason "policy is empty").
 */
export function applyRetention<T extends SnapshotLike>(snaps: T[], policy: RetentionPolicy, now: Date = new Date()): RetentionDecision<T> {
  validatePolicy(policy);
  const items = snaps.map((s) => ({ s, t: timeOf(s) }));
  items.sort((a, b) => b.t - a.t || (a.s.id < b.s.id ? -1 : a.s.id > b.s.id ? 1 : 0));
  const sorted = items.map((i) => i.s);
  if (isEmptyPolicy(policy)) return { keep: sorted.map((s) => ({ snapshot: s, reasons: ['policy is empty'] })), remove: [] };

  const rules: Array<{ count: number; bucket: (d: Date, nr: number) => string; last: string | undefined; reason: string }> = [
    { count: policy.keepLast ?? 0, bucket: (_d, nr) => String(nr), last: undefined, reason: 'last snapshot' },
    { count: policy.keepHourly ?? 0, bucket: ymdh, last: undefined, reason: 'hourly snapshot' },
    { count: policy.keepDaily ?? 0, bucket: ymd, last: undefined, reason: 'daily snapshot' },
    { count: policy.keepWeekly ?? 0, bucket: yw, last: undefined, reason: 'weekly snapshot' },
    { count: policy.keepMonthly ?? 0, bucket: ym, last: undefined, reason: 'monthly snapshot' },
    { count: policy.keepYearly ?? 0, bucket: y, last: undefined, reason: 'yearly snapshot' },
  ];

  let cutoff: number | undefined;
  const within = policy.keepWithin?.trim();
  if (within) {
    // Latest snapshot that is not in the future (restic: findLatestTimestamp).
    const nowMs = now.getTime();
    const latest = items.reduce<number | undefined>((acc, i) => (i.t < nowMs && (acc === undefined || i.t > acc) ? i.t : acc), undefined);
    // No usable latest (all in the future): restic uses the zero time, which keeps everything.
    cutoff = latest === undefined ? -Infinity : subtractCalendarDuration(new Date(latest), parseCalendarDuration(within)).getTime();
  }
  const tagLists = (policy.keepTags ?? []).map(tagList).filter((l) => l.length > 0);

  const keep: RetentionDecision<T>['keep'] = [];
  const remove: T[] = [];
  items.forEach(({ s, t }, nr) => {
    const reasons: string[] = [];
    const tags = new Set(s.tags ?? []);
    for (const l of tagLists) if (l.every((x) => tags.has(x))) reasons.push(`has tags ${l.join(',')}`);
    if (cutoff !== undefined && t > cutoff) reasons.push(`within ${within}`);
    const d = new Date(t);
    const oldest = nr === items.length - 1;
    for (const r of rules) {
      if (r.count === 0) continue; // exhausted or not configured; -1 never runs out
      const key = r.bucket(d, nr);
      if (key !== r.last || oldest) {
        reasons.push(key === r.last ? `oldest ${r.reason}` : r.reason);
        r.last = key;
        if (r.count > 0) r.count--;
      }
    }
    if (reasons.length) keep.push({ snapshot: s, reasons });
    else remove.push(s);
  });
  return { keep, remove };
}

/** Split snapshots into groups by key (e.g. host+paths, or source name); each group keeps input order. */
export function groupSnapshots<T>(snaps: T[], key: (s: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const s of snaps) {
    const k = key(s);
    const l = out.get(k);
    if (l) l.push(s);
    else out.set(k, [s]);
  }
  return out;
}
