import type { Readable } from 'node:stream';
import type { BackupSummary, SourceMeta } from '../repo/snapshot.js';
import type { RestoreSummary } from '../engine/restorer.js';


/** Result of a finished dump tool, recorded in the snapshot. */
export interface ToolResult {
  exitCode: number | null;
  signal?: string | null;
  durationMs: number;
  /** Bytes the tool delivered into the dump stream (counted where they leave the tool / its transform). */
  streamBytes?: number;
  /** Extra facts learned while dumping (e.g. row counts per table), recorded in snapshot.source. */
  extra?: Record<string, unknown>;
}

/**
 * A running dump. `stream` is the tool's stdout and is consumed by the repository
 * (Repository.backupStream) straight into the chunker: no temp file.
 * `done` settles after the tool exits: it resolves on success, and rejects with a
 * LifeboatError that quotes the tail of the tool's stderr when the tool failed or
 * was killed. The repository awaits `done` before it publishes the snapshot, so a
 * failed dump never produces a snapshot.
 */
export interface DumpHandle {
  stream: Readable;
  done: Promise<ToolResult>;
  meta: SourceMeta;
  /** File name of the stream inside the snapshot, e.g. "appdb.pgdump". */
  filename: string;
  /** Kill the dump tool (used on interruption). */
  abort(): void;
}

export interface RestoreResult {
  durationMs: number;
  /** Facts checked after restoring (e.g. key count, integrity_check result). */
  checks?: Record<string, unknown>;
}

/** What backing up a source produced (any kind). */
export interface SourceBackupResult {
  snapshotId: string;
  summary: BackupSummary;
  /** Files that could not be read (files sources): the snapshot exists but is incomplete. */
  partial: boolean;
}

/**
 * Where a source is restored to. A directory source (files) reads `dir` and
 * `overwrite`; database sources read the kind's own keys (database, host, port,
 * user, passwordEnv, file, path, uri, clean, force; see restore-target.ts); a
 * command source reads `command`.
 */
export type SourceRestoreTarget = Record<string, unknown>;

/** What restoring a source did: for a files source the restorer's summary (its `errors` are failures the caller reports). */
export interface SourceRestoreResult extends RestoreResult {
  files?: RestoreSummary;
}
