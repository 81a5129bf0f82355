/**
 * Human-readable sizes and durations. There are several formats on purpose:
 * each keeps the exact output its callers have always printed (messages,
 * reports and tests depend on them).
 *
 *   formatBytes             1.50 KiB, 10.5 KiB, 100 KiB  (CLI output)
 *   formatBytesOneDecimal   1.5 KiB, 100.0 KiB           (runbook step output)
 *   formatDuration          1h30m, 1d1s, 500ms           (config syntax; alerts, objectives)
 *   formatDurationPrecise   500ms, 1.50s, then as formatDuration (drills)
 *   formatElapsed           500 ms, 1.5 s, 2m3s          (CLI progress and summaries)
 */

/** Binary units; two significant decimals below 10, one below 100, none above. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

/** Binary units with always one decimal above bytes. */
export function formatBytesOneDecimal(n: number): string {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) (v /= 1024), i++;
  return `${i === 0 ? v : v.toFixed(1)} ${u[i]}`;
}

/** Human-readable rendering of a millisecond duration, e.g. 5400000 → '1h30m'. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  const neg = ms < 0;
  let rest = Math.round(Math.abs(ms));
  if (rest < 1000) return `${neg ? '-' : ''}${rest}ms`;
  rest = Math.floor(rest / 1000);
  const parts: string[] = [];
  for (const [unit, size] of [['d', 86_400], ['h', 3600], ['m', 60], ['s', 1]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n) parts.push(`${n}${unit}`);
  }
  return (neg ? '-' : '') + parts.join('');
}

/** Durations for drill output: milliseconds below 1s, two decimals below a minute, else 1h2m3s. */
export function formatDurationPrecise(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)}s`;
  return formatDuration(ms);
}

/** Elapsed time for CLI output: '500 ms', '1.5 s', '2m3s'. */
export function formatElapsed(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}m${Math.round(s - m * 60)}s`;
}
