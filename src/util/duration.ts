import { ConfigError } from '../errors.js';

/** Duration syntax shared by the config, the storage timeouts and the retention policy. */
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

/**
 * Parse an exact duration into milliseconds: one or more `<integer><unit>` parts,
 * units ms, s, m (MINUTES), h, d, w (7 d), mo (30 d), y (365 d).
 * Examples: '90s', '15m', '1h30m', '24h', '7d', '2w'. Used for RPO/RTO, timeouts, ...
 * Each unit may appear once; the result must be > 0. Throws ConfigError otherwise.
 *
 * Note: keep-within uses parseCalendarDuration instead, where 'm' means months
 * (restic compatibility).
 */
export function parseDuration(s: string): number {
  const parts = splitDuration(s, ['ms', 'mo', 's', 'm', 'h', 'd', 'w', 'y'], 'e.g. 30s, 15m, 1h30m, 24h, 7d, 2w');
  const unitMs: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: HOUR_MS, d: DAY_MS, w: 7 * DAY_MS, mo: 30 * DAY_MS, y: 365 * DAY_MS };
  let total = 0;
  for (const [unit, n] of parts) total += n * unitMs[unit]!;
  if (!Number.isSafeInteger(total)) throw new ConfigError(`invalid duration "${s}": too large`);
  return total;
}

/** Split '1h30m' into [unit, n] parts, checking the allowed units, repeats and zero. */
export function splitDuration(s: string, units: string[], example: string): Array<[string, number]> {
  if (typeof s !== 'string') throw new ConfigError(`invalid duration ${JSON.stringify(s)}: expected a string (${example})`);
  const str = s.trim();
  if (!str) throw new ConfigError(`invalid duration "": empty (${example})`);
  // Longer units first so 'mo' / 'ms' win over 'm'.
  const re = new RegExp(`(\\d+)(${[...units].sort((a, b) => b.length - a.length).join('|')})`, 'y');
  const out: Array<[string, number]> = [];
  const seen = new Set<string>();
  let pos = 0;
  let total = 0;
  while (pos < str.length) {
    re.lastIndex = pos;
    const m = re.exec(str);
    if (!m) {
      const rest = str.slice(pos);
      const why = /^\d+$/.test(rest)
        ? `number ${rest} has no unit`
        : /^\d+[A-Za-z]/.test(rest)
          ? `unknown unit in "${rest}" (allowed: ${units.join(', ')})`
          : `unexpected "${rest}"`;
      throw new ConfigError(`invalid duration "${s}": ${why} (${example})`);
    }
    const n = Number(m[1]);
    const unit = m[2]!;
    if (seen.has(unit)) throw new ConfigError(`invalid duration "${s}": unit "${unit}" given twice`);
    seen.add(unit);
    out.push([unit, n]);
    total += n;
    pos = re.lastIndex;
  }
  if (total <= 0) throw new ConfigError(`invalid duration "${s}": must be greater than zero`);
  return out;
}

/** A calendar duration as restic's keep-within understands it. */
export interface CalendarDuration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

/**
 * Parse a keep-within duration the way restic does: `<n>y` years, `<n>m` months,
 * `<n>d` days, `<n>h` hours; we also accept `<n>w` (= 7 days) and `<n>mo` (months).
 * Years and months are calendar units (subtracted with calendar arithmetic in UTC,
 * like Go's time.AddDate), so '1m' from 31 March is 3 March (31 February normalised).
 * Minutes and seconds are not supported here (restic neither). Must be > 0.
 */
export function parseCalendarDuration(s: string): CalendarDuration {
  const parts = splitDuration(s, ['mo', 'y', 'm', 'w', 'd', 'h'], 'e.g. 7d, 2w, 6m, 1y2m3d4h (m = months)');
  if (parts.filter(([u]) => u === 'm' || u === 'mo').length > 1) throw new ConfigError(`invalid duration "${s}": months given twice`);
  const d: CalendarDuration = { years: 0, months: 0, days: 0, hours: 0 };
  for (const [unit, n] of parts) {
    if (unit === 'y') d.years += n;
    else if (unit === 'm' || unit === 'mo') d.months += n;
    else if (unit === 'w') d.days += 7 * n;
    else if (unit === 'd') d.days += n;
    else d.hours += n;
  }
  return d;
}
