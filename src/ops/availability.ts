import type { LifeboatConfig } from '../config/config.js';
import type { Catalog } from './catalog/types.js';
import { IncidentStore, type IncidentImpact, type IncidentSpan, type IncidentVisibility } from './incidents.js';

/**
 * Measured availability of the services (config `services:`) from the
 * incident history, against their `availabilityTarget`.
 *
 * The rule (docs/dashboard.md, "Availability"):
 * - an incident counts for a service when it names that service; it lasts
 *   from `startedAt` to `resolvedAt` (an open incident: until now);
 * - `critical` impact is a full outage (weight 1), `major` a partial outage
 *   (weight 0.5), `minor` and `none` are not downtime (weight 0);
 *   maintenance windows are not downtime;
 * - overlapping incidents are not counted twice: at each instant the weight
 *   is the highest of the incidents covering it, so
 *   downtime = |critical ∪| + 0.5 × (|(critical ∪ major) ∪| − |critical ∪|);
 * - availability over a window = 100 × (1 − downtime / window length),
 *   rounded to 4 decimals; windows are the last 30 and 90 days up to now;
 * - one bar per UTC calendar day for the last 90 days (today: up to now),
 *   with that day's availability and a level: `up` (100 %), `degraded`
 *   (≥ 99 %, i.e. at most 14 m 24 s of full outage), `down` (< 99 %).
 *
 * Which incidents count is the caller's choice: the public status page uses
 * only published (`public`) incidents, the dashboard may use all.
 */

export const DAY_MS = 86_400_000;
export const IMPACT_WEIGHT: Record<IncidentImpact, number> = { critical: 1, major: 0.5, minor: 0, none: 0 };
export type DayLevel = 'up' | 'degraded' | 'down';

export interface AvailabilityWindow {
  days: number;
  /** Percent, 4 decimals. */
  percent: number;
  /** Weighted downtime in seconds (a major incident counts half its duration). */
  downtimeSeconds: number;
  /** Null without a target. */
  meetsTarget: boolean | null;
}

export interface AvailabilityDay {
  /** UTC date, YYYY-MM-DD. */
  date: string;
  percent: number;
  downtimeSeconds: number;
  level: DayLevel;
}

export interface ServiceAvailability {
  service: string;
  /** The configured availabilityTarget (percent), or null. */
  target: number | null;
  windows: AvailabilityWindow[];
  /** Oldest first, 90 entries (the last is today). */
  days: AvailabilityDay[];
}

type Seg = [number, number];

/** Merge intervals (sorted by start) into disjoint segments. */
function union(segs: Seg[]): Seg[] {
  const s = segs.filter(([a, b]) => b > a).sort((x, y) => x[0] - y[0]);
  const out: Seg[] = [];
  for (const [a, b] of s) {
    const last = out[out.length - 1];
    if (last && a <= last[1]) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

/** Length of the part of disjoint segments inside [from, to). */
function measure(segs: Seg[], from: number, to: number): number {
  let m = 0;
  for (const [a, b] of segs) {
    const lo = Math.max(a, from);
    const hi = Math.min(b, to);
    if (hi > lo) m += hi - lo;
  }
  return m;
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000;

export function dayLevel(percent: number): DayLevel {
  return percent >= 100 ? 'up' : percent >= 99 ? 'degraded' : 'down';
}

/** Availability of one service from incident spans (pure; see the rule above). */
export function serviceAvailability(service: string, target: number | null, spans: IncidentSpan[], now: Date, windows: readonly number[] = [30, 90], barDays = 90): ServiceAvailability {
  const nowMs = now.getTime();
  const mine = spans.filter((s) => s.services.includes(service) && IMPACT_WEIGHT[s.impact] > 0);
  const seg = (s: IncidentSpan): Seg => [s.startedAt.getTime(), Math.min(s.resolvedAt?.getTime() ?? nowMs, nowMs)];
  const full = union(mine.filter((s) => IMPACT_WEIGHT[s.impact] >= 1).map(seg));
  const any = union(mine.map(seg));
  const downtime = (from: number, to: number) => {
    const f = measure(full, from, to);
    return f + 0.5 * (measure(any, from, to) - f);
  };
  const pct = (down: number, len: number) => (len > 0 ? round4(100 * (1 - down / len)) : 100);
  const win: AvailabilityWindow[] = windows.map((d) => {
    const from = nowMs - d * DAY_MS;
    const down = downtime(from, nowMs);
    const percent = pct(down, d * DAY_MS);
    return { days: d, percent, downtimeSeconds: round4(down / 1000), meetsTarget: target === null ? null : percent >= target };
  });
  const today = Math.floor(nowMs / DAY_MS) * DAY_MS;
  const days: AvailabilityDay[] = [];
  for (let i = barDays - 1; i >= 0; i--) {
    const from = today - i * DAY_MS;
    const to = Math.min(from + DAY_MS, nowMs);
    const down = downtime(from, to);
    const percent = pct(down, to - from);
    days.push({ date: new Date(from).toISOString().slice(0, 10), percent, downtimeSeconds: round4(down / 1000), level: dayLevel(percent) });
  }
  return { service, target, windows: win, days };
}

/**
 * Availability of every configured service over the last 30 and 90 days.
 * `visibility: 'public'`: only published incidents count (the public page).
 */
export async function computeAvailability(cfg: LifeboatConfig, catalog: Catalog, opts: { now?: Date; visibility?: IncidentVisibility; windows?: number[]; barDays?: number } = {}): Promise<ServiceAvailability[]> {
  const now = opts.now ?? new Date();
  const windows = opts.windows ?? [30, 90];
  const barDays = opts.barDays ?? 90;
  const longest = Math.max(...windows, barDays) + 1;
  const spans = await new IncidentStore(catalog).spans({ from: new Date(now.getTime() - longest * DAY_MS), to: now, ...(opts.visibility ? { visibility: opts.visibility } : {}) });
  return Object.entries(cfg.services).map(([name, svc]) => serviceAvailability(name, svc.availabilityTarget ?? null, spans, now, windows, barDays));
}
