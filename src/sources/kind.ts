import type { Readable } from 'node:stream';
import type { ResolvedSource } from '../config/resolve.js';
import type { SourceCapabilities, SourceConfig } from '../config/sources.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import type { SourceContext } from './proc.js';
import type { BackupProgress } from '../engine/progress.js';
import type { DrillTargetContext, ScratchTarget } from './scratch.js';
import type { DumpHandle, RestoreResult, SourceBackupResult, SourceRestoreResult, SourceRestoreTarget } from './types.js';

/** Options of one backup run of a source (the CLI's flags, a job's tags, the daemon's abort signal). */
export interface SourceBackupOptions {
  /** Tags added to the source's own tags (and `source:NAME`). */
  tags?: string[];
  /** Files sources: more exclude patterns (the CLI's --exclude). */
  excludes?: string[];
  /** Files sources: re-read every file. */
  force?: boolean;
  signal?: AbortSignal;
  /** Live counters for a progress display (files sources: with totals from a scan; streams: bytes only). */
  progress?: BackupProgress;
  /** Files sources: a file that could not be read. */
  onWarning?: (path: string, message: string) => void;
}

/** A point-in-time restore (kinds with `pointInTime`): the base backup into a directory, recovering up to `targetTime`. */
export interface PointInTimeRestoreOptions {
  /** Snapshot id/prefix or 'latest'/undefined: the newest base backup before the target. */
  snapshot?: string | undefined;
  to: string;
  targetTime?: Date | undefined;
  /** WAL archiving of the restored server: 'off' (a copy) or 'preserve' (promoting it into the new primary). */
  archiveMode: 'off' | 'preserve';
  /** The config file and repository the restored server fetches archived WAL from (`lifeboat wal-fetch`). */
  configFile: string;
  repository: string;
  log?: ((m: string) => void) | undefined;
}

export interface PointInTimeRestoreResult {
  snapshot: SnapshotWithId;
  to: string;
  bytes: number;
  durationMs: number;
  /** Names of the recovery settings written. */
  settings: string[];
}

/**
 * One source kind, as every caller sees it: its capabilities, how to back it
 * up into a repository, how to find a snapshot of it and how to restore one.
 * Registered in registry.ts; called through pipeline.ts.
 */
export interface SourceKind extends SourceCapabilities {
  backup(repo: Repository, source: ResolvedSource, opts: SourceBackupOptions): Promise<SourceBackupResult>;
  /** The snapshot `ref` ('latest', an id or prefix) of this source; refuses a snapshot of another source. */
  findSnapshot(repo: Repository, source: ResolvedSource, ref: string): Promise<SnapshotWithId>;
  restore(repo: Repository, source: ResolvedSource, snapshot: SnapshotWithId, target: SourceRestoreTarget): Promise<SourceRestoreResult>;
  /** After a snapshot of the source was copied to another repository: copy what else a restore needs (PostgreSQL physical: the WAL archive). */
  copyExtras?(source: ResolvedSource, from: Repository, to: Repository): Promise<void>;
  /** Kinds with `pointInTime`: restore to a point in time (runbook restore steps with targetTime). */
  restoreToPoint?(repo: Repository, source: ResolvedSource, opts: PointInTimeRestoreOptions): Promise<PointInTimeRestoreResult>;
  /** The storage type of the log archive whose newest object is a recovery point of this source (PostgreSQL physical: 'wal'; MySQL with binlog: 'binlog'), if any. */
  recoveryLog?(src: SourceConfig): 'wal' | 'binlog' | undefined;
  /** The restore drill's scratch target (sources/<kind>/drill.ts); absent: drills of this kind are not supported. */
  drill?(ctx: DrillTargetContext): ScratchTarget;
}

/** A stream kind also exposes its dump tool and its restore tool (drill targets and `pg` commands use them directly). */
export interface StreamKind extends SourceKind {
  layout: 'stream';
  dump(src: SourceConfig, ctx: SourceContext): Promise<DumpHandle>;
  restoreInput(src: SourceConfig, input: Readable, target: SourceRestoreTarget): Promise<RestoreResult>;
}
