import type { DrillCheck } from '../sources/scratch.js';

/**
 * The types the drill modules share (results, phases), so drill.ts,
 * drill-queries.ts and drill-store.ts can all depend on this file instead of
 * on each other. Checks, query values and scratch targets are the source
 * kinds' (src/sources/scratch.ts).
 */

export interface DrillPhase { name: string; startedAt: Date; ms: number; ok: boolean; detail?: string }
export interface DrillResult {
  /** Catalog id once recorded. */
  id?: number;
  job: string; source: string;
  /** Source kind (postgres, mysql, files, ...). */
  kind: string;
  snapshotId: string | null; snapshotTime: Date | null;
  startedAt: Date; finishedAt: Date;
  status: 'success' | 'failed';
  /** Measured restore time (restore + integrity phases): the number compared with the RTO. */
  restoreMs: number;
  totalMs: number;
  rtoMs: number; rtoMet: boolean;
  /** Age of the newest restorable point at drill time. */
  rpoMs: number; backupAgeMs: number | null; rpoMet: boolean;
  phases: DrillPhase[]; checks: DrillCheck[];
  /** Scratch target description (database name / directory), no secrets. */
  target: string;
  error?: string;
  /** For a drill that failed with an error (not a failed check): its exit code (src/errors.ts), e.g. 12 wrong password. */
  exitCode?: number;
}
