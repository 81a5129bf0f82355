import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { hostname } from 'node:os';
import { IntegrityError, LifeboatError, NotFoundError, errorMessage } from '../errors.js';
import { ContentWriter, readContent } from './content.js';
import { blobId } from './crypto.js';
import { type Repository, openJson, sealJson } from './repository.js';
import type { SnapshotWithId } from './snapshot.js';

/**
 * Archived PostgreSQL WAL (write-ahead log) files: segments, .partial
 * segments, timeline .history files and .backup labels.
 *
 * Representation (see docs/format.md, "WAL archive"): the file's bytes are
 * chunked into ordinary data blobs (compressed, encrypted, deduplicated, in
 * packs + an index file like any backup); then ONE small object
 * `wal/<HMAC-SHA256(idKey, "wal\0" + archive + "\0" + name)>` holding the sealed
 * JSON entry {v, archive, name, size, sha256, blobs, sizes, time, hostname}
 * is created with the storage's create-only saveNew. The entry is published
 * only after its packs and index file are durable, so a crash mid-push leaves
 * at most unreferenced packs (prune removes them) and PostgreSQL simply retries.
 * WAL never creates snapshots, so snapshot listing stays fast.
 */

export const DEFAULT_ARCHIVE = 'default';
const SEGMENT_RE = /^[0-9A-F]{24}$/;
const PARTIAL_RE = /^[0-9A-F]{24}\.partial$/;
const HISTORY_RE = /^[0-9A-F]{8}\.history$/;
const BACKUP_RE = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
/** WAL archive names (wal-push --archive, the source's `archive`). */
export const ARCHIVE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type WalKind = 'segment' | 'partial' | 'history' | 'backup';

export interface WalEntry {
  v: 1;
  archive: string;
  name: string;
  size: number;
  /** Plain SHA-256 of the whole file (hex), verified by wal-fetch and check --read-data. */
  sha256: string;
  blobs: string[];
  sizes: number[];
  time: string;
  hostname: string;
}

export interface WalEntryWithId extends WalEntry {
  /** Storage object name (wal/<id>). */
  id: string;
}

export function walKind(name: string): WalKind | undefined {
  if (SEGMENT_RE.test(name)) return 'segment';
  if (PARTIAL_RE.test(name)) return 'partial';
  if (HISTORY_RE.test(name)) return 'history';
  if (BACKUP_RE.test(name)) return 'backup';
  return undefined;
}

export function validateWalName(name: string): WalKind {
  const k = walKind(name);
  if (!k) {
    throw new LifeboatError(
      `"${name}" is not a PostgreSQL WAL file name (expected a 24-hex-digit segment, a .partial segment, TTTTTTTT.history or a .backup file)`,
      2,
    );
  }
  return k;
}

export function validateArchiveName(archive: string): string {
  if (!ARCHIVE_RE.test(archive)) throw new LifeboatError(`invalid WAL archive name "${archive}" (letters, digits, . _ -; at most 64)`, 2);
  return archive;
}

/** Timeline of a WAL file name (segments, partials, backups, history files). */
export function walTimeline(name: string): number {
  return parseInt(name.slice(0, 8), 16);
}

/** Position key of a segment-like name: compares like the segment number within a timeline. */
export function segmentKey(name: string): string {
  return name.slice(8, 24);
}

export function walObjectId(repo: Repository, archive: string, name: string): string {
  return blobId(repo.key.idKey, Buffer.from(`wal\0${archive}\0${name}`, 'utf8'));
}

const HEX64 = /^[0-9a-f]{64}$/;

function validateEntry(x: unknown, id: string): WalEntry {
  const e = x as Partial<WalEntry>;
  const ok =
    e &&
    e.v === 1 &&
    typeof e.archive === 'string' &&
    typeof e.name === 'string' &&
    walKind(e.name) !== undefined &&
    Number.isSafeInteger(e.size) &&
    (e.size as number) >= 0 &&
    typeof e.sha256 === 'string' &&
    HEX64.test(e.sha256) &&
    Array.isArray(e.blobs) &&
    e.blobs.every((b) => typeof b === 'string' && HEX64.test(b)) &&
    Array.isArray(e.sizes) &&
    e.sizes.length === e.blobs.length &&
    e.sizes.every((s) => Number.isSafeInteger(s) && s > 0) &&
    e.sizes.reduce((a, b) => a + b, 0) === e.size &&
    typeof e.time === 'string';
  if (!ok) throw new IntegrityError(`WAL entry ${id}: malformed`);
  return e as WalEntry;
}

/** Load one entry by object id; verifies the seal and structure. */
export async function loadWalObject(repo: Repository, id: string): Promise<WalEntryWithId> {
  const raw = await repo.storage.load('wal', id);
  const e = validateEntry(openJson(repo.key.encKey, raw, `WAL entry ${id}`), id);
  if (walObjectId(repo, e.archive, e.name) !== id) {
    throw new IntegrityError(`WAL entry ${id}: stored under the wrong name (says ${e.archive}/${e.name})`);
  }
  return { ...e, id };
}

/** The entry for a WAL file name, or undefined when it was never archived. */
export async function findWal(repo: Repository, archive: string, name: string): Promise<WalEntryWithId | undefined> {
  const id = walObjectId(repo, archive, name);
  try {
    return await loadWalObject(repo, id);
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Every WAL entry (all archives unless one is given), sorted by archive, timeline position, name. */
export async function listWal(
  repo: Repository,
  opts: { archive?: string; onError?: (id: string, err: unknown) => void } = {},
): Promise<WalEntryWithId[]> {
  const out: WalEntryWithId[] = [];
  for (const f of await repo.storage.list('wal')) {
    try {
      const e = await loadWalObject(repo, f.name);
      if (!opts.archive || e.archive === opts.archive) out.push(e);
    } catch (err) {
      if (opts.onError) opts.onError(f.name, err);
      else throw err;
    }
  }
  return out.sort((a, b) => a.archive.localeCompare(b.archive) || segmentOrder(a.name, b.name));
}

function segmentOrder(a: string, b: string): number {
  const ka = walKind(a) === 'history' ? '' : segmentKey(a);
  const kb = walKind(b) === 'history' ? '' : segmentKey(b);
  return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
}

async function hashFile(file: string): Promise<{ sha256: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const b of createReadStream(file)) {
    h.update(b as Buffer);
    size += (b as Buffer).length;
  }
  return { sha256: h.digest('hex'), size };
}

export interface PushResult {
  status: 'stored' | 'already-archived';
  entry: WalEntry;
  dataAdded: number;
}

function conflict(name: string, archive: string, have: WalEntry, got: { sha256: string; size: number }): LifeboatError {
  return new LifeboatError(
    `WAL file ${name} is already archived (archive "${archive}") with DIFFERENT content ` +
      `(archived: ${have.size} bytes, sha256 ${have.sha256.slice(0, 16)}…; now: ${got.size} bytes, sha256 ${got.sha256.slice(0, 16)}…); ` +
      'refusing to overwrite it. Is a second cluster archiving into the same archive? Use a separate --archive name per cluster.',
    1,
  );
}

/**
 * Archive one WAL file (PostgreSQL archive_command). Idempotent: an identical
 * file already archived succeeds without writing; a different one fails.
 */
export async function pushWal(repo: Repository, file: string, opts: { archive?: string; name?: string } = {}): Promise<PushResult> {
  const archive = validateArchiveName(opts.archive ?? DEFAULT_ARCHIVE);
  const name = opts.name ?? path.basename(file);
  validateWalName(name);
  const existing = await findWal(repo, archive, name);
  if (existing) {
    const got = await hashFile(file);
    if (got.sha256 !== existing.sha256 || got.size !== existing.size) throw conflict(name, archive, existing, got);
    return { status: 'already-archived', entry: existing, dataAdded: 0 };
  }
  const lock = await repo.lock(false, 'wal-push');
  try {
    const before = repo.stats.dataAdded;
    const w = new ContentWriter(repo);
    const h = createHash('sha256');
    let fileOk = false;
    try {
      for await (const b of createReadStream(file)) {
        h.update(b as Buffer);
        await w.write(b as Buffer);
      }
      fileOk = true;
    } finally {
      if (!fileOk) await repo.abandon();
    }
    const c = await w.finish();
    await repo.flush(); // packs + index file are durable before the entry is published
    const entry: WalEntry = {
      v: 1,
      archive,
      name,
      size: c.size,
      sha256: h.digest('hex'),
      blobs: c.content,
      sizes: c.sizes,
      time: new Date().toISOString(),
      hostname: hostname(),
    };
    const id = walObjectId(repo, archive, name);
    if (!(await repo.storage.saveNew('wal', id, sealJson(repo.key.encKey, entry, false)))) {
      // A concurrent (or retried) push won the race: fine if it stored the same bytes.
      const other = await loadWalObject(repo, id);
      if (other.sha256 !== entry.sha256 || other.size !== entry.size) throw conflict(name, archive, other, entry);
      return { status: 'already-archived', entry: other, dataAdded: repo.stats.dataAdded - before };
    }
    return { status: 'stored', entry, dataAdded: repo.stats.dataAdded - before };
  } finally {
    await lock.release();
  }
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
  const tmp = `${dest}.tmp`;
  const lock = await repo.lock(false, 'wal-fetch');
  try {
    const fh = await fsp.open(tmp, 'w', 0o600);
    let ok = false;
    try {
      const h = createHash('sha256');
      let size = 0;
      for await (const buf of readContent(repo, entry.blobs)) {
        h.update(buf);
        size += buf.length;
        let off = 0;
        while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
      }
      if (size !== entry.size) throw new IntegrityError(`WAL ${name}: restored ${size} bytes, archived ${entry.size}`);
      if (h.digest('hex') !== entry.sha256) throw new IntegrityError(`WAL ${name}: SHA-256 of the restored file does not match the archive`);
      await fh.sync();
      ok = true;
    } finally {
      await fh.close();
      if (!ok) await fsp.rm(tmp, { force: true });
    }
    await fsp.rename(tmp, dest);
    return entry;
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError(`wal-fetch ${name}: ${errorMessage(err)}`);
  } finally {
    await lock.release();
  }
}

// ---------------------------------------------------------------- retention

export interface WalRetentionPlan {
  /** Per archive: the oldest start segment among kept base backups (undefined: no base backup, keep everything). */
  cutoff: Map<string, string | undefined>;
  remove: WalEntryWithId[];
  keep: WalEntryWithId[];
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
  const cutoff = new Map<string, string | undefined>();
  for (const e of entries) if (!cutoff.has(e.archive)) cutoff.set(e.archive, undefined);
  for (const s of baseBackups(snaps)) {
    const a = String(s.source!.archive ?? DEFAULT_ARCHIVE);
    const k = segmentKey(String(s.source!.startSegment));
    const cur = cutoff.get(a);
    if (cur === undefined || k < cur) cutoff.set(a, k);
  }
  const remove: WalEntryWithId[] = [];
  const keep: WalEntryWithId[] = [];
  for (const e of entries) {
    const c = cutoff.get(e.archive);
    if (c !== undefined && walKind(e.name) !== 'history' && segmentKey(e.name) < c) remove.push(e);
    else keep.push(e);
  }
  return { cutoff, remove, keep };
}

/** Apply WAL retention (delete the entries; prune then reclaims their blobs). Caller holds an exclusive lock. */
export async function applyWalRetention(repo: Repository, snaps: SnapshotWithId[], opts: { dryRun?: boolean } = {}): Promise<WalRetentionPlan> {
  const entries = await listWal(repo);
  const plan = planWalRetention(entries, snaps);
  if (!opts.dryRun) for (const e of plan.remove) await repo.storage.remove('wal', e.id);
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

export interface WalCheck {
  entries: number;
  bytesVerified: number;
  problems: Array<{ object: string; message: string }>;
}

/**
 * Verify the WAL archive: every entry decodes and authenticates, and every blob
 * it needs is indexed. With readData, each file is reassembled (every blob
 * verified) and its size and SHA-256 compared with the entry.
 */
export async function checkWal(repo: Repository, opts: { readData?: boolean } = {}): Promise<WalCheck> {
  const res: WalCheck = { entries: 0, bytesVerified: 0, problems: [] };
  const entries = await listWal(repo, { onError: (id, err) => res.problems.push({ object: id, message: errorMessage(err) }) });
  res.entries = entries.length;
  for (const e of entries) {
    const what = `${e.archive}/${e.name}`;
    const missing = e.blobs.filter((b) => !repo.index.has(b));
    if (missing.length) {
      res.problems.push({ object: e.id, message: `WAL ${what}: ${missing.length} blob(s) not in any index (e.g. ${missing[0]!.slice(0, 12)})` });
      continue;
    }
    if (!opts.readData) continue;
    try {
      const h = createHash('sha256');
      let size = 0;
      for await (const buf of readContent(repo, e.blobs)) {
        h.update(buf);
        size += buf.length;
      }
      if (size !== e.size || h.digest('hex') !== e.sha256) throw new IntegrityError('content does not match the archived size/SHA-256');
      res.bytesVerified += size;
    } catch (err) {
      res.problems.push({ object: e.id, message: `WAL ${what}: ${errorMessage(err)}` });
    }
  }
  return res;
}

// ---------------------------------------------------------------- copies (3-2-1)

export interface WalCopyResult {
  copied: number;
  present: number;
  dataAdded: number;
  /** Entries the destination holds with different content (not overwritten). */
  conflicts: string[];
}

/**
 * Copy archived WAL from `src` to `dst` (a 3-2-1 copy of the archive, so a base
 * backup copied by `copy` stays restorable to a point in time from the copy).
 * Each missing entry's data is read (and verified) from the source, stored in
 * the destination, flushed, and only then is the destination's entry created
 * (create-only), as wal-push does. Idempotent.
 */
export async function copyWal(src: Repository, dst: Repository, opts: { archive?: string; onProgress?: (m: string) => void } = {}): Promise<WalCopyResult> {
  const res: WalCopyResult = { copied: 0, present: 0, dataAdded: 0, conflicts: [] };
  if ((await src.storage.list('wal')).length === 0) return res;
  const srcLock = await src.lock(false, 'copy WAL (source)');
  const dstLock = await dst.lock(false, 'copy WAL');
  const before = dst.stats.dataAdded;
  try {
    // the archiver keeps pushing (each push its own index file): see what it wrote since we opened
    await src.reloadIndex();
    const entries = await listWal(src, opts.archive ? { archive: opts.archive } : {});
    for (const e of entries) {
      const have = await findWal(dst, e.archive, e.name);
      if (have) {
        if (have.sha256 === e.sha256 && have.size === e.size) res.present++;
        else res.conflicts.push(`${e.archive}/${e.name}`);
        continue;
      }
      const w = new ContentWriter(dst);
      const h = createHash('sha256');
      try {
        for await (const buf of readContent(src, e.blobs)) {
          h.update(buf);
          await w.write(buf);
        }
      } catch (err) {
        await dst.abandon();
        throw err;
      }
      if (h.digest('hex') !== e.sha256) {
        await dst.abandon();
        throw new IntegrityError(`WAL ${e.archive}/${e.name}: SHA-256 of the source data does not match its entry`);
      }
      const c = await w.finish();
      await dst.flush();
      const entry: WalEntry = { ...e, blobs: c.content, sizes: c.sizes };
      delete (entry as Partial<WalEntryWithId>).id;
      await dst.storage.saveNew('wal', walObjectId(dst, e.archive, e.name), sealJson(dst.key.encKey, entry, false));
      res.copied++;
      opts.onProgress?.(`copied WAL ${e.archive}/${e.name}`);
    }
    res.dataAdded = dst.stats.dataAdded - before;
    return res;
  } finally {
    await dstLock.release();
    await srcLock.release();
  }
}
