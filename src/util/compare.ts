/**
 * Strings in UTF-16 code unit order: timestamps (ISO 8601, one format), hex ids and object names
 * sort the same on every machine. Not String.prototype.localeCompare: that depends on the locale
 * and starts ICU's collator, whose data (~3 MB resident) and set-up every command that sorts
 * snapshots or keys paid (docs/benchmarks.md, "check and start-up, 2026-12-01").
 */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
