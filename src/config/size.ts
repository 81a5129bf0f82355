/** A size from the config or the command line: a number of bytes, or "64MiB", "1.5 GB" (binary units). No schema library: the CLI parses sizes without loading the config schemas. */
export function parseSize(v: number | string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'number') return v;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(v.trim())!;
  const n = Number(m[1]);
  const unit = (m[2] ?? '').toLowerCase();
  const mult: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1 << 20, mb: 1 << 20, mib: 1 << 20, g: 1 << 30, gb: 1 << 30, gib: 1 << 30 };
  return Math.round(n * mult[unit]!);
}
