import type { LifeboatConfig } from '../config/load.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import type { SourceConfig } from '../sources/registry.js';
import type { DrillConfig } from './drill-config.js';

/**
 * The types the drill modules share (results, checks, query values, scratch
 * targets), so drill.ts, drill-targets.ts, drill-queries.ts, drill-store.ts
 * and drill-pitr.ts can all depend on this file instead of on each other.
 */

export interface DrillPhase { name: string; startedAt: Date; ms: number; ok: boolean; detail?: string }
/** Integrity checks and verification queries. */
export interface DrillCheck { name: string; ok: boolean; detail: string }
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

/** Value of a verification query. */
export type QueryValue = string | number | bigint | boolean | null;

export interface DrillTargetContext {
  cfg: LifeboatConfig;
  job: string;
  drill: DrillConfig;
  sourceName: string;
  src: SourceConfig;
  repo: Repository;
  snapshot: SnapshotWithId;
  signal: AbortSignal;
  log: (m: string) => void;
}

export interface ScratchTarget {
  /** Where the data goes (no secrets). */
  readonly description: string;
  /** Restore the snapshot into the target (throws on failure). */
  restore(): Promise<void>;
  /** Integrity checks of what was restored. */
  integrity(): Promise<DrillCheck[]>;
  /** Run SQL in the restored database: first column of the first row (kinds with SQL only). */
  sql?(text: string): Promise<QueryValue>;
  /** Environment for verification commands. */
  env(): Record<string, string>;
  /** Remove the target (idempotent; also after a failed restore). */
  cleanup(): Promise<void>;
}
