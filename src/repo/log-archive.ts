import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import { IntegrityError, LifeboatError, NotFoundError, errorMessage } from '../errors.js';
import { ContentWriter, readContent } from './content.js';
import { blobId } from './crypto.js';
import { HEX_ID } from './hex-id.js';
import { type Repository, openJson, sealJson } from './repository.js';
import { byCodeUnit } from '../util/compare.js';

/**
 * A log archive: the representation shared by the PostgreSQL WAL archive
 * (src/repo/wal.ts) and the MySQL/MariaDB binary log archive
 * (src/repo/binlog.ts); docs/format.md "WAL archive" / "Binlog archive".
 *
 * A file's bytes are chunked into ordinary data blobs (compressed, encrypted,
 * deduplicated, in packs + an index file like any backup); then ONE small
 * object `<type>/<HMAC-SHA256(idKey, type + "\0" + archive + "\0" + name)>`
 * holding the sealed JSON entry {v, archive, name, size, sha256, blobs, sizes,
 * time, hostname} is created with the storage's create-only saveNew, only
 * after its packs and index file are durable: a crash mid-push leaves at most
 * unreferenced packs (prune removes them). Log archives never create snapshots.
 *
 * This module knows nothing about a kind's file names: a LogKind supplies the
 * name rule, the ordering and the words used in messages.
 */

export interface LogEntry {
  v: 1;
  archive: string;
  name: string;
  size: number;
  /** Plain SHA-256 of the whole file (hex), verified on fetch and by check --read-data. */
  sha256: string;
  blobs: string[];
  sizes: number[];
  time: string;
  hostname: string;
  /**
   * Where each blob was stored when the entry was written (addition 1.5):
   * [pack, offset, length, compression] per blob, present only when every blob
   * is a full (not delta) blob. A hint: a fetch reads the blobs there without
   * loading the index, accepts each only if its keyed hash matches, and asks
   * the index for a blob whose pack was pruned or repacked since.
   */
  at?: Array<[string, number, number, 0 | 1]>;
}

export interface LogEntryWithId extends LogEntry {
  /** Storage object name (<type>/<id>). */
  id: string;
}

/** What differs between the kinds of log archive. */
export interface LogKind {
  /** Storage object type, also the domain prefix of the object id. */
  type: 'wal' | 'binlog';
  /** Word for an entry/archive in messages: "WAL", "binlog". */
  label: string;
  /** Word for one archived file in messages: "WAL", "binary log". */
  fileLabel: string;
  /** Word for a file in the conflict message: "WAL file", "binary log". */
  conflictNoun: string;
  /** Advice appended to the conflict message. */
  conflictAdvice: string;
  /** Lock descriptions (shown by `unlock`/`status`). */
  locks: { push: string; copy: string; copySource: string };
  /** Prefix of an unexpected fetch failure, e.g. "wal-fetch". */
  fetchContext: (name: string) => string;
  /** Whether a stored entry's file name is one of this kind's. */
  isName: (name: string) => boolean;
  /** Whether a stored entry's archive name is acceptable (default: any string). */
  isArchive?: (archive: string) => boolean;
  /** Order of names within one archive. */
  compareNames: (a: string, b: string) => number;
}

export function logObjectId(kind: LogKind, repo: Repository, archive: string, name: string): string {
  return blobId(repo.key.idKey, Buffer.from(`${kind.type}\0${archive}\0${name}`, 'utf8'));
}

/** Structure check of a decoded entry (untrusted input): IntegrityError "<label> entry <id>: malformed". */
export function validateLogEntry(kind: LogKind, x: unknown, id: string): LogEntry {
  const e = x as Partial<LogEntry> | null;
  const ok =
    !!e &&
    typeof e === 'object' &&
    e.v === 1 &&
    typeof e.archive === 'string' &&
    (!kind.isArchive || kind.isArchive(e.archive)) &&
    typeof e.name === 'string' &&
    kind.isName(e.name) &&
    Number.isSafeInteger(e.size) &&
    (e.size as number) >= 0 &&
    typeof e.sha256 === 'string' &&
    HEX_ID.test(e.sha256) &&
    Array.isArray(e.blobs) &&
    e.blobs.every((b) => typeof b === 'string' && HEX_ID.test(b)) &&
    Array.isArray(e.sizes) &&
    e.sizes.length === e.blobs.length &&
    e.sizes.every((s) => Number.isSafeInteger(s) && s > 0) &&
    e.sizes.reduce((a, b) => a + b, 0) === e.size &&
    typeof e.time === 'string' &&
    (e.at === undefined || validHints(e.at, e.blobs.length));
  if (!ok) throw new IntegrityError(`${kind.label} entry ${id}: malformed`);
  return e as LogEntry;
}

function validHints(at: unknown, n: number): boolean {
  return (
    Array.isArray(at) &&
    at.length === n &&
    at.every(
      (h) =>
        Array.isArray(h) &&
        h.length === 4 &&
        typeof h[0] === 'string' &&
        HEX_ID.test(h[0]) &&
        Number.isSafeInteger(h[1]) &&
        h[1] >= 0 &&
        Number.isSafeInteger(h[2]) &&
        h[2] > 0 &&
        (h[3] === 0 || h[3] === 1),
    )
  );
}

/** The location hints of an entry's blobs (see LogEntry.at), or undefined when one is a delta or unknown. */
export function blobHints(repo: Repository, blobs: readonly string[]): LogEntry['at'] {
  const at: NonNullable<LogEntry['at']> = [];
  for (const id of blobs) {
    const l = repo.fullBlobLocation(id);
    if (!l || l.compression === 2 || repo.index.get(id)?.type !== 'data') return undefined;
    at.push([l.pack, l.offset, l.length, l.compression]);
  }
  return at;
}

/** Open (seal + structure) a stored entry and check it is stored under its own name. */
export function openLogEntry(kind: LogKind, repo: Repository, raw: Buffer, id: string): LogEntryWithId {
  const e = validateLogEntry(kind, openJson(repo.key.encKey, raw, `${kind.label} entry ${id}`), id);
  if (logObjectId(kind, repo, e.archive, e.name) !== id) {
    throw new IntegrityError(`${kind.label} entry ${id}: stored under the wrong name (says ${e.archive}/${e.name})`);
  }
  return { ...e, id };
}

/** Load one entry by object id; verifies the seal and structure. */
export async function loadLogObject(kind: LogKind, repo: Repository, id: string): Promise<LogEntryWithId> {
  return openLogEntry(kind, repo, await repo.storage.load(kind.type, id), id);
}

/** The entry for a file name, or undefined when it was never archived. */
export async function findLog(kind: LogKind, repo: Repository, archive: string, name: string): Promise<LogEntryWithId | undefined> {
  try {
    return await loadLogObject(kind, repo, logObjectId(kind, repo, archive, name));
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

/** Every entry (all archives unless one is given), sorted by archive, then the kind's name order. */
export async function listLogs(
  kind: LogKind,
  repo: Repository,
  opts: { archive?: string; onError?: (id: string, err: unknown) => void } = {},
): Promise<LogEntryWithId[]> {
  const out: LogEntryWithId[] = [];
  for (const f of await repo.storage.list(kind.type)) {
    try {
      const e = await loadLogObject(kind, repo, f.name);
      if (!opts.archive || e.archive === opts.archive) out.push(e);
    } catch (err) {
      if (opts.onError) opts.onError(f.name, err);
      else throw err;
    }
  }
  return out.sort((a, b) => byCodeUnit(a.archive, b.archive) || kind.compareNames(a.name, b.name));
}

// ---------------------------------------------------------------- push

export interface LogPushResult {
  status: 'stored' | 'already-archived';
  entry: LogEntry;
  dataAdded: number;
}

function conflict(kind: LogKind, name: string, archive: string, have: { size: number; sha256: string }, got: { size: number; sha256: string }): LifeboatError {
  return new LifeboatError(
    `${kind.conflictNoun} ${name} is already archived (archive "${archive}") with DIFFERENT content ` +
      `(archived: ${have.size} bytes, sha256 ${have.sha256.slice(0, 16)}…; now: ${got.size} bytes, sha256 ${got.sha256.slice(0, 16)}…); ` +
      `refusing to overwrite it. ${kind.conflictAdvice}`,
    1,
  );
}

function incomplete(kind: LogKind, name: string, what: string, size: number, expected: number): LifeboatError {
  return new LifeboatError(`${kind.fileLabel} ${name}: ${what} ${size} bytes but the server reports ${expected}; not archiving an incomplete file`, 1);
}

/**
 * Archive one file under `archive`/`name` (both already validated by the
 * kind). Idempotent: identical content already archived succeeds without
 * writing; different content fails. `expectedSize` (when given) refuses a file
 * of another size (a truncated or still-growing copy). `reloadIndex` makes a
 * long-running archiver deduplicate only against blobs that exist now.
 */
export async function pushLog(
  kind: LogKind,
  repo: Repository,
  file: string,
  archive: string,
  name: string,
  opts: { expectedSize?: number; reloadIndex?: boolean } = {},
): Promise<LogPushResult> {
  if (opts.expectedSize !== undefined) {
    const st = await fsp.stat(file);
    if (st.size !== opts.expectedSize) throw incomplete(kind, name, 'the copy has', st.size, opts.expectedSize);
  }
  const existing = await findLog(kind, repo, archive, name);
  if (existing) {
    const h = createHash('sha256');
    let size = 0;
    for await (const b of createReadStream(file)) {
      h.update(b as Buffer);
      size += (b as Buffer).length;
    }
    if (opts.expectedSize !== undefined && size !== opts.expectedSize) throw incomplete(kind, name, 'read', size, opts.expectedSize);
    const got = { sha256: h.digest('hex'), size };
    if (got.sha256 !== existing.sha256 || got.size !== existing.size) throw conflict(kind, name, archive, existing, got);
    return { status: 'already-archived', entry: existing, dataAdded: 0 };
  }
  const lock = await repo.lock(false, kind.locks.push);
  try {
    if (opts.reloadIndex) await repo.reloadIndex();
    const before = repo.stats.dataAdded;
    // No resemblance sketches: a log file is never the parent version of anything,
    // so nothing looks for delta bases among its chunks (the sketch costs as much as zstd).
    const w = new ContentWriter(repo, undefined, { sketch: false });
    const h = createHash('sha256');
    let size = 0;
    let fileOk = false;
    try {
      // Read straight into the chunker's window, as much as it has room for (no copy, few reads).
      const fh = await fsp.open(file, 'r');
      try {
        for (;;) {
          const n = await w.fill(async (into) => {
            const { bytesRead } = await fh.read(into, 0, into.length, null);
            h.update(into.subarray(0, bytesRead));
            return bytesRead;
          });
          if (n === 0) break;
          size += n;
        }
      } finally {
        await fh.close();
      }
      if (opts.expectedSize !== undefined && size !== opts.expectedSize) throw incomplete(kind, name, 'read', size, opts.expectedSize);
      fileOk = true;
    } finally {
      if (!fileOk) await repo.abandon();
    }
    const c = await w.finish();
    await repo.flush(); // packs + index file are durable before the entry is published
    const entry: LogEntry = {
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
    const at = blobHints(repo, entry.blobs);
    if (at) entry.at = at;
    const id = logObjectId(kind, repo, archive, name);
    if (!(await repo.storage.saveNew(kind.type, id, sealJson(repo.key.encKey, entry, false)))) {
      // A concurrent (or retried) push won the race: fine if it stored the same bytes.
      const other = await loadLogObject(kind, repo, id);
      if (other.sha256 !== entry.sha256 || other.size !== entry.size) throw conflict(kind, name, archive, other, entry);
      return { status: 'already-archived', entry: other, dataAdded: repo.stats.dataAdded - before };
    }
    return { status: 'stored', entry, dataAdded: repo.stats.dataAdded - before };
  } finally {
    await lock.release();
  }
}

// ---------------------------------------------------------------- fetch

/**
 * How an entry's blobs are loaded: where its hints say (no index needed: a
 * synchronous wal-fetch opens the repository without loading the index,
 * whose cost grows with the repository), else through the index, loaded then.
 */
function hintedLoader(repo: Repository, entry: LogEntry): (id: string, i: number) => Promise<Buffer> {
  return async (id, i) => {
    const h = entry.at?.[i];
    if (h && !repo.hasBlob(id)) {
      const data = await repo.loadBlobHinted(id, { pack: h[0], offset: h[1], length: h[2], compression: h[3] }, entry.sizes[i]!);
      if (data) return data;
    }
    await repo.ensureIndex();
    return repo.loadBlob(id);
  };
}

/**
 * An archived file's bytes, from its blobs (each authenticated by
 * readContent). Throws IntegrityError as soon as there is more data than the
 * entry's size, and after the last chunk when the total size or the SHA-256
 * differs: a consumer publishes nothing before its loop has ended.
 */
export async function* verifiedContent(kind: LogKind, repo: Repository, entry: LogEntry): AsyncGenerator<Buffer> {
  const what = `${kind.fileLabel} ${entry.name}`;
  const h = createHash('sha256');
  let size = 0;
  for await (const buf of readContent(repo, entry.blobs, undefined, hintedLoader(repo, entry))) {
    size += buf.length;
    if (size > entry.size) throw new IntegrityError(`${what}: more data than the archived ${entry.size} bytes`);
    h.update(buf);
    yield buf;
  }
  if (size !== entry.size) throw new IntegrityError(`${what}: read ${size} bytes, archived ${entry.size}`);
  if (h.digest('hex') !== entry.sha256) throw new IntegrityError(`${what}: SHA-256 of the data does not match the archived one`);
}

/**
 * Restore one archived file to `dest`: written to `dest.tmp`, verified (every
 * blob's keyed hash, total size, SHA-256), fsynced, then renamed. Damage fails
 * loudly and leaves nothing at `dest`. The caller holds a lock if it needs one.
 */
export async function fetchLogEntry(kind: LogKind, repo: Repository, entry: LogEntry, dest: string): Promise<void> {
  const tmp = `${dest}.tmp`;
  try {
    const fh = await fsp.open(tmp, 'w', 0o600);
    let ok = false;
    try {
      for await (const buf of verifiedContent(kind, repo, entry)) {
        let off = 0;
        while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
      }
      await fh.sync();
      ok = true;
    } finally {
      await fh.close();
      if (!ok) await fsp.rm(tmp, { force: true });
    }
    await fsp.rename(tmp, dest);
  } catch (err) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError(`${kind.fetchContext(entry.name)}: ${errorMessage(err)}`);
  }
}

// ---------------------------------------------------------------- retention

export interface LogRetentionPlan<E extends LogEntryWithId = LogEntryWithId> {
  /** Per archive: the oldest start position among kept backups (undefined: none, keep everything). */
  cutoff: Map<string, string | undefined>;
  remove: E[];
  keep: E[];
}

/**
 * Generic retention: per archive, the cut-off is the smallest (by `compare`)
 * of the `starts` of kept backups in it; an entry for which
 * `before(entry, cutoff)` holds is needed by none of them. An archive with no
 * start keeps everything.
 */
export function planLogRetention<E extends LogEntryWithId>(
  entries: E[],
  starts: Array<{ archive: string; at: string }>,
  compare: (a: string, b: string) => number,
  before: (e: E, cutoff: string) => boolean,
): LogRetentionPlan<E> {
  const cutoff = new Map<string, string | undefined>();
  for (const e of entries) if (!cutoff.has(e.archive)) cutoff.set(e.archive, undefined);
  for (const s of starts) {
    const cur = cutoff.get(s.archive);
    if (cur === undefined || compare(s.at, cur) < 0) cutoff.set(s.archive, s.at);
  }
  const remove: E[] = [];
  const keep: E[] = [];
  for (const e of entries) {
    const c = cutoff.get(e.archive);
    if (c !== undefined && before(e, c)) remove.push(e);
    else keep.push(e);
  }
  return { cutoff, remove, keep };
}

/** Delete the plan's entries (prune then reclaims their blobs). Caller holds an exclusive lock; `check` throws once it is lost. */
export async function removeLogEntries(kind: LogKind, repo: Repository, entries: LogEntryWithId[], check?: () => void): Promise<void> {
  for (const e of entries) {
    check?.();
    await repo.storage.remove(kind.type, e.id);
  }
}

// ---------------------------------------------------------------- check

export interface LogCheck {
  entries: number;
  bytesVerified: number;
  problems: Array<{ object: string; message: string }>;
}

/**
 * Verify an archive: every entry decodes and authenticates, and every blob it
 * needs is indexed. With readData, each file is reassembled (every blob
 * verified) and its size and SHA-256 compared with the entry.
 */
export async function checkLogs(kind: LogKind, repo: Repository, opts: { readData?: boolean } = {}): Promise<LogCheck> {
  const res: LogCheck = { entries: 0, bytesVerified: 0, problems: [] };
  const entries = await listLogs(kind, repo, { onError: (id, err) => res.problems.push({ object: id, message: errorMessage(err) }) });
  res.entries = entries.length;
  for (const e of entries) {
    const what = `${kind.label} ${e.archive}/${e.name}`;
    const missing = e.blobs.filter((b) => !repo.index.has(b));
    if (missing.length) {
      res.problems.push({ object: e.id, message: `${what}: ${missing.length} blob(s) not in any index (e.g. ${missing[0]!.slice(0, 12)})` });
      continue;
    }
    if (!opts.readData) continue;
    try {
      let size = 0;
      for await (const buf of verifiedContent(kind, repo, e)) size += buf.length;
      res.bytesVerified += size;
    } catch (err) {
      res.problems.push({ object: e.id, message: `${what}: ${errorMessage(err)}` });
    }
  }
  return res;
}

// ---------------------------------------------------------------- copies (3-2-1)

export interface LogCopyResult {
  copied: number;
  present: number;
  dataAdded: number;
  /** Entries the destination holds with different content (not overwritten). */
  conflicts: string[];
}

/**
 * Copy archived files from `src` to `dst` (so a backup copied by `copy` stays
 * restorable to a point in time from the copy). Each missing entry's data is
 * read (and verified) from the source, stored in the destination, flushed, and
 * only then is the destination's entry created (create-only), as a push does.
 * Idempotent.
 */
export async function copyLogs(
  kind: LogKind,
  src: Repository,
  dst: Repository,
  opts: { archive?: string; onProgress?: (m: string) => void } = {},
): Promise<LogCopyResult> {
  const res: LogCopyResult = { copied: 0, present: 0, dataAdded: 0, conflicts: [] };
  if ((await src.storage.list(kind.type)).length === 0) return res;
  const srcLock = await src.lock(false, kind.locks.copySource);
  const dstLock = await dst.lock(false, kind.locks.copy);
  const before = dst.stats.dataAdded;
  try {
    // the archiver keeps pushing (each push its own index file): see what it wrote since we opened
    await src.reloadIndex();
    await dst.reloadIndex();
    for (const e of await listLogs(kind, src, opts.archive ? { archive: opts.archive } : {})) {
      const have = await findLog(kind, dst, e.archive, e.name);
      if (have) {
        if (have.sha256 === e.sha256 && have.size === e.size) res.present++;
        else res.conflicts.push(`${e.archive}/${e.name}`);
        continue;
      }
      const w = new ContentWriter(dst);
      try {
        for await (const buf of verifiedContent(kind, src, e)) await w.write(buf);
      } catch (err) {
        await dst.abandon();
        throw err;
      }
      const c = await w.finish();
      await dst.flush();
      const entry: LogEntry = { v: 1, archive: e.archive, name: e.name, size: e.size, sha256: e.sha256, blobs: c.content, sizes: c.sizes, time: e.time, hostname: e.hostname };
      const at = blobHints(dst, entry.blobs);
      if (at) entry.at = at;
      await dst.storage.saveNew(kind.type, logObjectId(kind, dst, e.archive, e.name), sealJson(dst.key.encKey, entry, false));
      res.copied++;
      opts.onProgress?.(`copied ${kind.label} ${e.archive}/${e.name}`);
    }
    res.dataAdded = dst.stats.dataAdded - before;
    return res;
  } finally {
    await dstLock.release();
    await srcLock.release();
  }
}
