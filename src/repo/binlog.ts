import * as path from 'node:path';
import { ExitCode, LifeboatError } from '../errors.js';
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
 * Archived MySQL/MariaDB binary log files (point-in-time recovery of the
 * `mysql` source; docs/format.md "Binlog archive", docs/pitr.md).
 *
 * The shared log archive representation (src/repo/log-archive.ts), under its
 * own object type so each archive has its own names, ordering and retention:
 * the file's bytes are ordinary data blobs; ONE small object
 * `binlog/<HMAC-SHA256(idKey, "binlog\0" + archive + "\0" + name)>` holds the
 * sealed JSON entry {v, archive, name, size, sha256, blobs, sizes, time,
 * hostname}, created create-only after its packs and index file are durable.
 * Only COMPLETE (rotated) binary logs are archived; `size` is the size the
 * server reported for the file, checked before the push.
 */

export const DEFAULT_BINLOG_ARCHIVE = 'default';
/** Binary log file names: "<basename>.<sequence number>", e.g. mysql-bin.000042. */
const BINLOG_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,100}(\.[A-Za-z0-9_-]{1,100}){0,4}\.([0-9]{6,10})$/;
const ARCHIVE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type BinlogEntry = LogEntry;
export type BinlogEntryWithId = LogEntryWithId;

export function isBinlogName(name: string): boolean {
  return BINLOG_RE.test(name);
}

export function validateBinlogName(name: string): string {
  if (!BINLOG_RE.test(name)) throw new LifeboatError(`"${name}" is not a binary log file name (expected e.g. mysql-bin.000042)`, 2);
  return name;
}

export function validateBinlogArchive(archive: string): string {
  if (!ARCHIVE_RE.test(archive)) throw new LifeboatError(`invalid binlog archive name "${archive}" (letters, digits, . _ -; at most 64)`, 2);
  return archive;
}

/** "mysql-bin.000042" → { base: "mysql-bin", seq: 42 }. */
export function binlogSeq(name: string): { base: string; seq: number } {
  const m = BINLOG_RE.exec(name);
  if (!m) throw new LifeboatError(`"${name}" is not a binary log file name`, 2);
  return { base: name.slice(0, name.length - m[2]!.length - 1), seq: Number(m[2]) };
}

/** Name of the binary log following `name` (same base, same digit count unless it overflows). */
export function nextBinlogName(name: string): string {
  const m = BINLOG_RE.exec(name)!;
  const digits = m[2]!;
  const next = String(Number(digits) + 1).padStart(digits.length, '0');
  return name.slice(0, name.length - digits.length) + next;
}

export function compareBinlogNames(a: string, b: string): number {
  const x = binlogSeq(a);
  const y = binlogSeq(b);
  return x.base < y.base ? -1 : x.base > y.base ? 1 : x.seq - y.seq;
}

/** The binary log kind of log archive (object type "binlog"). */
export const BINLOG_LOG: LogKind = {
  type: 'binlog',
  label: 'binlog',
  fileLabel: 'binary log',
  conflictNoun: 'binary log',
  conflictAdvice: 'Is a second server archiving into the same archive (use one binlog archive name per server), or was the server re-initialised?',
  locks: { push: 'binlog-archive', copy: 'copy binlogs', copySource: 'copy binlogs (source)' },
  fetchContext: (name) => `fetching binary log ${name}`,
  isName: isBinlogName,
  isArchive: (archive) => ARCHIVE_RE.test(archive),
  compareNames: compareBinlogNames,
};

export function binlogObjectId(repo: Repository, archive: string, name: string): string {
  return logObjectId(BINLOG_LOG, repo, archive, name);
}

export function loadBinlogObject(repo: Repository, id: string): Promise<BinlogEntryWithId> {
  return loadLogObject(BINLOG_LOG, repo, id);
}

export function findBinlog(repo: Repository, archive: string, name: string): Promise<BinlogEntryWithId | undefined> {
  return findLog(BINLOG_LOG, repo, archive, name);
}

/** Every binlog entry (all archives unless one is given), sorted by archive, base name, sequence. */
export function listBinlogs(repo: Repository, opts: { archive?: string; onError?: (id: string, err: unknown) => void } = {}): Promise<BinlogEntryWithId[]> {
  return listLogs(BINLOG_LOG, repo, opts);
}

export type BinlogPushResult = LogPushResult;

/**
 * Archive one complete binary log file. `expectedSize` is the size the server
 * reports for it (SHOW BINARY LOGS): a file of another size is refused (a
 * truncated or still-growing copy). Idempotent: identical content already
 * archived succeeds without writing; different content fails.
 */
export function pushBinlog(
  repo: Repository,
  file: string,
  opts: { archive?: string; name?: string; expectedSize?: number; reloadIndex?: boolean } = {},
): Promise<BinlogPushResult> {
  const archive = validateBinlogArchive(opts.archive ?? DEFAULT_BINLOG_ARCHIVE);
  const name = validateBinlogName(opts.name ?? path.basename(file));
  return pushLog(BINLOG_LOG, repo, file, archive, name, { expectedSize: opts.expectedSize, reloadIndex: opts.reloadIndex });
}

/**
 * Restore one archived binary log to `dest`: written to `dest.tmp`, verified
 * (every blob authenticated, total size, SHA-256), fsynced, renamed. Damage
 * fails loudly and leaves nothing at `dest`.
 */
export function fetchBinlog(repo: Repository, entry: BinlogEntry, dest: string): Promise<void> {
  return fetchLogEntry(BINLOG_LOG, repo, entry, dest);
}

export class BinlogGapError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.ARCHIVE_GAP);
    this.name = 'BinlogGapError';
  }
}

/**
 * The archived binary logs needed to replay from `from` (the dump's
 * coordinates file) up to `upTo` (a file name; undefined: every archived one
 * after `from`). Refuses a gap in the sequence (a missing file in the middle)
 * and a missing first file with BinlogGapError (exit code 6, ExitCode.ARCHIVE_GAP).
 */
export function binlogChain(entries: BinlogEntryWithId[], from: string, upTo?: string): BinlogEntryWithId[] {
  const byName = new Map(entries.map((e) => [e.name, e]));
  const first = byName.get(from);
  if (!first) {
    throw new BinlogGapError(`binary log ${from} (where the dump's coordinates point) is not in the archive: cannot replay from the dump; archive binary logs before taking the dump`);
  }
  const { base } = binlogSeq(from);
  const later = entries.filter((e) => binlogSeq(e.name).base === base && compareBinlogNames(e.name, from) >= 0);
  if (upTo !== undefined && compareBinlogNames(upTo, from) < 0) {
    throw new LifeboatError(`target position ${upTo} is before the dump's coordinates (${from})`, 2);
  }
  const chain: BinlogEntryWithId[] = [];
  let want = from;
  for (let i = 0; i < 1_000_000; i++) {
    const e = byName.get(want);
    if (!e) {
      const newer = later.filter((x) => compareBinlogNames(x.name, want) > 0);
      if (upTo !== undefined && compareBinlogNames(want, upTo) <= 0) {
        throw new BinlogGapError(
          newer.length
            ? `binary log ${want} is missing from the archive (archived: …${chain.at(-1)!.name}, then ${newer[0]!.name}…): the binlog sequence has a gap, refusing to replay past it`
            : `binary log ${want} (needed to reach the target in ${upTo}) is not archived yet`,
        );
      }
      if (newer.length) {
        throw new BinlogGapError(
          `binary log ${want} is missing from the archive (archived: …${chain.at(-1)!.name}, then ${newer[0]!.name}…): the binlog sequence has a gap, refusing to replay past it`,
        );
      }
      break;
    }
    chain.push(e);
    if (upTo !== undefined && e.name === upTo) break;
    want = nextBinlogName(want);
  }
  return chain;
}

/**
 * Like binlogChain without a last file, but a gap ends the chain instead of
 * failing: the caller decides whether the files before it reach its target.
 */
export function binlogChainUntilGap(entries: BinlogEntryWithId[], from: string): { chain: BinlogEntryWithId[]; gap?: BinlogGapError } {
  try {
    return { chain: binlogChain(entries, from) };
  } catch (err) {
    if (!(err instanceof BinlogGapError) || !entries.some((e) => e.name === from)) throw err;
    const chain: BinlogEntryWithId[] = [];
    const byName = new Map(entries.map((e) => [e.name, e]));
    for (let want = from, i = 0; byName.has(want) && i < 1_000_000; want = nextBinlogName(want), i++) chain.push(byName.get(want)!);
    return { chain, gap: err };
  }
}

// ---------------------------------------------------------------- retention

export interface BinlogRetentionPlan extends LogRetentionPlan<BinlogEntryWithId> {
  /** Per archive: the oldest coordinates file among kept dumps (undefined: no dump, keep everything). */
  cutoff: Map<string, string | undefined>;
}

/** Dump snapshots (mysql source) that recorded binlog coordinates. */
export function binlogDumps(snaps: SnapshotWithId[], archive?: string): SnapshotWithId[] {
  return snaps.filter((s) => {
    const b = s.source?.binlog as { file?: unknown; archive?: unknown } | undefined;
    return s.source?.kind === 'mysql' && b && typeof b.file === 'string' && isBinlogName(b.file) && (!archive || (b.archive ?? DEFAULT_BINLOG_ARCHIVE) === archive);
  });
}

/**
 * Binlog retention: within an archive, a file older (same base name, lower
 * sequence) than the coordinates file of the OLDEST kept dump is needed by none
 * of them. An archive with no dump keeps everything.
 */
export function planBinlogRetention(entries: BinlogEntryWithId[], snaps: SnapshotWithId[]): BinlogRetentionPlan {
  const starts = binlogDumps(snaps).map((s) => {
    const b = s.source!.binlog as { file: string; archive?: string };
    return { archive: String(b.archive ?? DEFAULT_BINLOG_ARCHIVE), at: b.file };
  });
  return planLogRetention(entries, starts, compareBinlogNames, (e, c) => binlogSeq(e.name).base === binlogSeq(c).base && compareBinlogNames(e.name, c) < 0);
}

export async function applyBinlogRetention(repo: Repository, snaps: SnapshotWithId[], opts: { dryRun?: boolean; check?: () => void } = {}): Promise<BinlogRetentionPlan> {
  const plan = planBinlogRetention(await listBinlogs(repo), snaps);
  if (!opts.dryRun) await removeLogEntries(BINLOG_LOG, repo, plan.remove, opts.check);
  return plan;
}

// ---------------------------------------------------------------- check

export type BinlogCheck = LogCheck;

export function checkBinlogs(repo: Repository, opts: { readData?: boolean } = {}): Promise<BinlogCheck> {
  return checkLogs(BINLOG_LOG, repo, opts);
}

// ---------------------------------------------------------------- copies (3-2-1)

export type BinlogCopyResult = LogCopyResult;

/**
 * Copy archived binary logs from `src` to `dst` (so a dump copied by `copy`
 * stays restorable to a point in time from the copy). Idempotent; see copyLogs.
 */
export function copyBinlogs(src: Repository, dst: Repository, opts: { archive?: string } = {}): Promise<BinlogCopyResult> {
  return copyLogs(BINLOG_LOG, src, dst, opts);
}
