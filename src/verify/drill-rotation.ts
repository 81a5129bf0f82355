import { ConfigError } from '../errors.js';
import type { Catalog } from '../ops/catalog/types.js';
import { ensureDrillTables } from './drill-store.js';

/**
 * Rotating read-data checks: instead of a random sample on every run, the
 * packs are split into N parts by pack id (selectSubset 'i/N') and run k reads
 * part (k mod N)+1, so N consecutive runs read the whole repository.
 *
 *   "10%"  -> N = ceil(100 / 10) = 10 parts
 *   "30%"  -> N = ceil(100 / 30) = 4 parts (each a little under 30%... of the packs on average)
 *   "1/7"  -> N = 7 parts, the rotation starts wherever the counter is
 *
 * The run counter is kept per repository (by repository id) in the catalog
 * table check_rotation.
 */

export function rotationParts(subset: string): number {
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(subset.trim());
  if (pct) {
    const x = Number(pct[1]);
    if (!(x > 0 && x <= 100)) throw new ConfigError(`read-data subset ${subset}: percentage must be in (0, 100]`);
    return Math.ceil(100 / x);
  }
  const nm = /^(\d+)\/(\d+)$/.exec(subset.trim());
  if (nm) {
    const m = Number(nm[2]);
    const n = Number(nm[1]);
    if (!(m >= 1 && n >= 1 && n <= m)) throw new ConfigError(`read-data subset ${subset}: expected n/m with 1 <= n <= m`);
    return m;
  }
  throw new ConfigError(`read-data subset ${subset}: expected "x%" or "n/m"`);
}

export interface RotationStep {
  /** The subset to pass to checkRepository, "i/N". */
  subset: string;
  part: number;
  parts: number;
  /** Zero-based number of this run for the repository. */
  run: number;
}

/** Advance the repository's counter and return the part this run reads. */
export async function nextRotation(catalog: Catalog, repositoryId: string, repositoryName: string, subset: string, now = new Date()): Promise<RotationStep> {
  const parts = rotationParts(subset);
  await ensureDrillTables(catalog);
  const sql = catalog.sql;
  const t = sql.t('check_rotation');
  await sql.exec(`INSERT INTO ${t} (repository_id, repository, runs, parts, updated_at) VALUES (?, ?, 0, ?, ?) ON CONFLICT (repository_id) DO NOTHING`, [
    repositoryId,
    repositoryName,
    parts,
    now,
  ]);
  await sql.exec(`UPDATE ${t} SET runs = runs + 1, parts = ?, repository = ?, updated_at = ? WHERE repository_id = ?`, [parts, repositoryName, now, repositoryId]);
  const rows = await sql.all(`SELECT runs FROM ${t} WHERE repository_id = ?`, [repositoryId]);
  const run = Number(rows[0]!.runs) - 1;
  const part = (run % parts) + 1;
  return { subset: `${part}/${parts}`, part, parts, run };
}

export async function rotationState(catalog: Catalog): Promise<Array<{ repositoryId: string; repository: string; runs: number; parts: number; updatedAt: Date | null }>> {
  await ensureDrillTables(catalog);
  const rows = await catalog.sql.all(`SELECT * FROM ${catalog.sql.t('check_rotation')} ORDER BY repository`);
  return rows.map((r) => ({
    repositoryId: String(r.repository_id),
    repository: String(r.repository),
    runs: Number(r.runs),
    parts: Number(r.parts),
    updatedAt: catalog.sql.toDate(r.updated_at),
  }));
}
