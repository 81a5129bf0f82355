import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import {
  type LogCheck,
  type LogCopyResult,
  type LogEntry,
  type LogEntryWithId,
  type LogKind,
  type LogPushResult,
  type LogRetentionPlan,
  checkLogs,
  copyLogs,
  fetchLogEntry,
  findLog,
  listLogs,
  loadLogObject,
  logObjectId,
  planLogRetention,
  pushLog,
  removeLogEntries,
} from './log-archive.js';
import type { Repository } from './repository.js';
import type { SnapshotWithId } from './snapshot.js';

/**
 * Archived PostgreSQL WAL (write-ahead log) files: segments, .partial
 * segments, timeline .history files and .backup labels.
 *
 * The representation is the shared log archive (src/repo/log-archive.ts; see
 * docs/format.md, "WAL archive"): the file's bytes are
 * chunked into ordinary data blobs (compressed, encrypted, deduplicated, in
 * packs + an index file like any backup); then ONE small object
 * `wal/<HMAC-SHA256(idKey, "wal\0" + archive + "\0" + name)>` holding the sealed
 * JSON entry {v, archive, name, size, sha256, blobs, sizes, time, hostname}
 * is created with the storage's create-only saveNew. The entry is published
 * only after its packs and index file are durable, so a crash mid-push leaves
 * at most unreferenced packs (prune removes them) and PostgreSQL simply retries.
 * WAL never creates snapshots, so snapshot listing stays fast.
 */


import { DEFAULT_ARCHIVE, segmentKey, validateArchiveName, validateWalName, walKind, walTimeline } from './wal-names.js';

export type WalEntry = LogEntry;
export type WalEntryWithId = LogEntryWithId;

/** WAL order within an archive: .history files first, then by segment position, then by name. */
function segmentOrder(a: string, b: string): number {
  const ka = walKind(a) === 'history' ? '' : segmentKey(a);
  const kb = walKind(b) === 'history' ? '' : segmentKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

/** The WAL kind of log archive (object type "wal"). */
export const WAL_LOG: LogKind = {
  type: 'wal',
  label: 'WAL',
  fileLabel: 'WAL',
  conflictNoun: 'WAL file',
  conflictAdvice: 'Is a second cluster archiving into the same archive? Use a separate --archive name per cluster.',
  locks: { push: 'wal-push', copy: 'copy WAL', copySource: 'copy WAL (source)' },
  fetchContext: (name) => `wal-fetch ${name}`,
  isName: (name) => walKind(name) !== undefined,
  compareNames: segmentOrder,
};

export function walObjectId(repo: Repository, archive: string, name: string): string {
  return logObjectId(WAL_LOG, repo, archive, name);
}

/** Load one entry by object id; verifies the seal and structure. */
export function loadWalObject(repo: Repository, id: string): Promise<WalEntryWithId> {
  return loadLogObject(WAL_LOG, repo, id);
}

/** The entry for a WAL file name, or undefined when it was never archived. */
export function findWal(repo: Repository, archive: string, name: string): Promise<WalEntryWithId | undefined> {
  return findLog(WAL_LOG, repo, archive, name);
}

/** Every WAL entry (all archives unless one is given), sorted by archive, timeline position, name. */
export function listWal(repo: Repository, opts: { archive?: string; onError?: (id: string, err: unknown) => void } = {}): Promise<WalEntryWithId[]> {
  return listLogs(WAL_LOG, repo, opts);
}

export type PushResult = LogPushResult;

/**
 * Archive one WAL file (PostgreSQL archive_command). Idempotent: an identical
 * file already archived succeeds without writing; a different one fails.
 */
export function pushWal(repo: Repository, file: string, opts: { archive?: string; name?: string } = {}): Promise<PushResult> {
  const archive = validateArchiveName(opts.archive ?? DEFAULT_ARCHIVE);
  const name = opts.name ?? path.basename(file);
  validateWalName(name);
  return pushLog(WAL_LOG, repo, file, archive, name);
}

export class WalNotFoundError extends LifeboatError {
  constructor(name: string, archive: string) {
    super(`wal-fetch: ${name} is not in the archive${archive === DEFAULT_ARCHIVE ? '' : ` "${archive}"`}`, 1);
    this.name = 'WalNotFoundError';
  }
}

/**
 * Restore one WAL file (PostgreSQL restore_command) to `dest`: written to
 * `dest.tmp`, verified (every blob's keyed hash, total size, SHA-256), fsynced,
 * then renamed. Damage fails loudly and leaves nothing at `dest`.
 */
export async function fetchWal(repo: Repository, name: string, dest: string, opts: { archive?: string } = {}): Promise<WalEntry> {
  const archive = validateArchiveName(opts.archive ?? DEFAULT_ARCHIVE);
  validateWalName(name);
  const entry = await findWal(repo, archive, name);
  if (!entry) throw new WalNotFoundError(name, archive);
  const lock = await repo.lock(false, 'wal-fetch');
  try {
    await fetchLogEntry(WAL_LOG, repo, entry, dest);
    return entry;
  } finally {
    await lock.release();
  }
}

// ---------------------------------------------------------------- retention

export interface WalRetentionPlan extends LogRetentionPlan<WalEntryWithId> {
  /** Per archive: the oldest start segment among kept base backups (undefined: no base backup, keep everything). */
  cutoff: Map<string, string | undefined>;
}

/** Base backup snapshots (kind pg-basebackup) with the archive they use. */
export function baseBackups(snaps: SnapshotWithId[], archive?: string): SnapshotWithId[] {
  return snaps.filter(
    (s) =>
      s.source?.kind === 'pg-basebackup' &&
      typeof s.source.startSegment === 'string' &&
      (!archive || (s.source.archive ?? DEFAULT_ARCHIVE) === archive),
  );
}

/**
 * WAL retention: within each archive, a segment (or .partial/.backup file)
 * whose position is before the start segment of the OLDEST kept base backup is
 * not needed by any of them and is removed. .history files are always kept. An
 * archive with no base backup keeps everything. The rule ignores timelines on
 * purpose: a backup starting at segment position P only ever needs WAL at
 * positions >= P, whatever the timeline, so the oldest start position is a safe
 * cut-off for every timeline.
 */
export function planWalRetention(entries: WalEntryWithId[], snaps: SnapshotWithId[]): WalRetentionPlan {
  const starts = baseBackups(snaps).map((s) => ({ archive: String(s.source!.archive ?? DEFAULT_ARCHIVE), at: segmentKey(String(s.source!.startSegment)) }));
  return planLogRetention(
    entries,
    starts,
    (a, b) => (a < b ? -1 : a > b ? 1 : 0),
    (e, c) => walKind(e.name) !== 'history' && segmentKey(e.name) < c,
  );
}

/** Apply WAL retention (delete the entries; prune then reclaims their blobs). Caller holds an exclusive lock. */
export async function applyWalRetention(repo: Repository, snaps: SnapshotWithId[], opts: { dryRun?: boolean; check?: () => void } = {}): Promise<WalRetentionPlan> {
  const plan = planWalRetention(await listWal(repo), snaps);
  if (!opts.dryRun) await removeLogEntries(WAL_LOG, repo, plan.remove, opts.check);
  return plan;
}

// ---------------------------------------------------------------- LSN helpers

export function parseLsn(lsn: string): bigint {
  const m = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(lsn.trim());
  if (!m) throw new LifeboatError(`invalid LSN "${lsn}" (expected e.g. 0/16B3748)`, 2);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

/** Name of the WAL segment holding `lsn` on `timeline`. */
export function segmentName(timeline: number, lsn: bigint, segSize: number): string {
  const seg = lsn / BigInt(segSize);
  const perId = 0x100000000n / BigInt(segSize);
  const h = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return h(timeline) + h(seg / perId) + h(seg % perId);
}

/** Segment names from `first` to `last` inclusive (same timeline). */
export function segmentRange(first: string, last: string, segSize: number): string[] {
  const perId = 0x100000000n / BigInt(segSize);
  const num = (n: string) => BigInt('0x' + n.slice(8, 16)) * perId + BigInt('0x' + n.slice(16, 24));
  const tl = walTimeline(first);
  const out: string[] = [];
  for (let s = num(first); s <= num(last) && out.length < 100000; s++) out.push(segmentName(tl, s * BigInt(segSize), segSize));
  return out;
}

// ---------------------------------------------------------------- check

export type WalCheck = LogCheck;

/**
 * Verify the WAL archive: every entry decodes and authenticates, and every blob
 * it needs is indexed. With readData, each file is reassembled (every blob
 * verified) and its size and SHA-256 compared with the entry.
 */
export function checkWal(repo: Repository, opts: { readData?: boolean } = {}): Promise<WalCheck> {
  return checkLogs(WAL_LOG, repo, opts);
}

// ---------------------------------------------------------------- copies (3-2-1)

export type WalCopyResult = LogCopyResult;

/**
 * Copy archived WAL from `src` to `dst` (a 3-2-1 copy of the archive, so a base
 * backup copied by `copy` stays restorable to a point in time from the copy).
 * Idempotent; see copyLogs.
 */
export function copyWal(src: Repository, dst: Repository, opts: { archive?: string; onProgress?: (m: string) => void } = {}): Promise<WalCopyResult> {
  return copyLogs(WAL_LOG, src, dst, opts);
}
