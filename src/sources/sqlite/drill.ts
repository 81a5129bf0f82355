import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { resolveSourcePaths } from '../../config/resolve.js';
import { snapshotStream, scratchDir, meta, rowCountCheck, type DrillCheck, type QueryValue, type DrillTargetContext, type ScratchTarget } from '../scratch.js';
import { restoreSqlite } from './dump.js';

/** Restore drill target of a sqlite source (see ../scratch.ts and src/verify/drill.ts). */

export function sqliteTarget(ctx: DrillTargetContext): ScratchTarget {
  let dir: string | undefined;
  let file: string | undefined;
  let restored: Record<string, unknown> = {};
  return {
    get description() {
      return `scratch file ${file ?? '(not created yet)'}`;
    },
    async restore() {
      dir = await scratchDir(ctx);
      const src = ctx.src as { path: string };
      file = path.join(dir, path.basename(src.path) || 'restored.db');
      const r = await restoreSqlite(resolveSourcePaths(ctx.src, ctx.cfg) as Parameters<typeof restoreSqlite>[0], await snapshotStream(ctx), { path: file, integrityCheck: true });
      restored = r.checks ?? {};
    },
    async integrity() {
      const checks: DrillCheck[] = [
        { name: 'integrity_check', ok: restored.integrityCheck === 'ok', detail: restored.integrityCheck === 'ok' ? 'PRAGMA integrity_check: ok' : 'PRAGMA integrity_check did not run' },
      ];
      const recorded = meta(ctx).rowCounts as Record<string, number> | undefined;
      const now = (restored.rowCounts ?? {}) as Record<string, number>;
      if (recorded) checks.push(rowCountCheck(recorded, new Map(Object.entries(now).map(([k, v]) => [k, Number(v)])), true));
      return checks;
    },
    async sql(text) {
      const db = new Database(file!, { readonly: true, fileMustExist: true });
      try {
        const row = db.prepare(text).raw(true).get() as unknown[] | undefined;
        const v = row?.[0] ?? null;
        return (Buffer.isBuffer(v) ? v.toString('utf8') : v) as QueryValue;
      } finally {
        db.close();
      }
    },
    env: () => ({ LIFEBOAT_DRILL_KIND: 'sqlite', LIFEBOAT_DRILL_TARGET: file ?? '' }),
    async cleanup() {
      if (dir) await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
