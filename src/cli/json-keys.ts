/**
 * One naming style in every --json output of the CLI: snake_case keys, as
 * restic's (`snapshot_id`, `files_new`, `total_bytes`). The library's objects
 * keep their camelCase fields; output.ts converts each emitted document here.
 * The HTTP API (`lifeboat api`, the dashboard) is not affected.
 */

/**
 * Objects under these names are maps whose keys are data (job names, query
 * names, archive names, table names, header names): their keys are kept as
 * they are. Only a plain object is kept so; an array under the same name is
 * converted as usual.
 */
const DATA_KEYED = new Set(['jobs', 'verification', 'verification_errors', 'cutoff', 'checks', 'values', 'errors', 'headers', 'vars', 'env', 'inputs', 'params', 'labels']);

/** 'filesNew' -> 'files_new', 'dedupRatio' -> 'dedup_ratio', 'walRemoved' -> 'wal_removed', 'snapshotID' -> 'snapshot_id'. */
export function snakeCase(key: string): string {
  if (!/^[a-z][A-Za-z0-9]*$/.test(key)) return key;
  return key
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/([A-Z])([A-Z][a-z])/g, '$1_$2')
    .toLowerCase();
}

function convert(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(convert);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const key = snakeCase(k);
    out[key] = DATA_KEYED.has(key) && x !== null && typeof x === 'object' && !Array.isArray(x) ? x : convert(x);
  }
  return out;
}

/** The document as JSON.stringify sees it (Dates as strings, Maps as {}), with snake_case keys. */
export function snakeKeys(doc: unknown): unknown {
  if (doc === undefined) return undefined;
  return convert(JSON.parse(JSON.stringify(doc)));
}
