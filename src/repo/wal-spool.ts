import { createHash } from 'node:crypto';
import { closeSync, openSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { IntegrityError, LifeboatError, errorMessage } from '../errors.js';
import { Cksum } from '../util/cksum.js';
import { validateWalName, walKind } from './wal-names.js';

/**
 * The local WAL spool of `wal-push --spool` / `wal-fetch --spool` (see
 * docs/pitr.md, "Asynchronous archiving and prefetch"). This file is the part
 * PostgreSQL's archive_command / restore_command run: it loads no repository
 * code and needs no password, so a call costs a node start-up, one copy or
 * one SHA-256 of the segment, and fsyncs. The long-running worker that
 * empties / fills the spool is wal-spool-worker.ts.
 *
 * Layout of a spool directory (one per cluster and archive):
 *   push/NAME            a queued WAL file: complete and fsynced (directory too)
 *                        before archive_command returns; removed by the
 *                        worker only after its entry is published in the repository
 *   push/.NAME.<pid>.tmp a copy in progress (never pushed; removed when stale)
 *   push/error           the worker's last failure (JSON), reported by every
 *                        archive_command until a push succeeds again
 *   push.lock            flock(2) held by the one push worker
 *   fetch/NAME           a prefetched WAL file, verified against the repository
 *   fetch/NAME.cksum     "<CRC> <size>" of NAME as POSIX `cksum` prints them
 *                        (util/cksum.ts), written after the worker re-read NAME and
 *                        matched its SHA-256 with the archive's entry; restore_command
 *                        checks NAME against it again before handing it over (a
 *                        CRC-32 finds accidental damage; coreutils' cksum, which
 *                        bin/lifeboat-wal runs, takes 7-11 ms for 16 MiB, b2sum 20-24)
 *   fetch/NAME.missing   the worker found NAME absent from the archive (at its mtime)
 *   fetch/want           the last name restore_command asked for
 *   fetch.lock           flock(2) held by the one prefetch worker
 */

/**
 * A "not in the archive" answer of the prefetch worker (fetch/NAME.missing,
 * refreshed every 2 s while the worker runs) is trusted this long; PostgreSQL
 * asks for absent files at every start and end of recovery (the next
 * timeline's history, the segment after the last), and each would otherwise
 * cost a repository open.
 */
export const MISSING_TTL_MS = 5_000;

/** Checksum of prefetched files: POSIX `cksum` (util/cksum.ts), in NAME + SPOOL_SUM_SUFFIX. */
export const SPOOL_DIGEST = 'cksum';
/** The file beside a prefetched NAME that holds its checksum and size. */
export const SPOOL_SUM_SUFFIX = '.cksum';

/** At most this many files queued: beyond it archive_command fails, so PostgreSQL keeps the WAL (the RPO stays bounded). */
export const DEFAULT_SPOOL_MAX_FILES = 256;

interface Flock {
  flockSync(fd: number, flags: 'exnb' | 'un'): void;
}
let flockLib: Flock | undefined | null = null;
function flockImpl(): Flock | undefined {
  if (flockLib === null) {
    try {
      flockLib = createRequire(import.meta.url)('fs-ext') as Flock;
    } catch {
      flockLib = undefined;
    }
  }
  return flockLib;
}

/** An exclusive, non-blocking flock on `file`; undefined when another process holds it. Released by the kernel if the holder dies. */
export function tryLock(file: string): { release(): void } | undefined {
  const lib = flockImpl();
  if (!lib) throw new LifeboatError('the WAL spool needs flock(2) (the fs-ext module did not load)');
  const fd = openSync(file, 'a', 0o600);
  try {
    lib.flockSync(fd, 'exnb');
  } catch (err) {
    closeSync(fd);
    if ((err as NodeJS.ErrnoException).code === 'EAGAIN' || (err as NodeJS.ErrnoException).code === 'EWOULDBLOCK') return undefined;
    throw err;
  }
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      closeSync(fd); // closing the last descriptor drops the lock
    },
  };
}

export function spoolPaths(spool: string) {
  return {
    push: path.join(spool, 'push'),
    pushError: path.join(spool, 'push', 'error'),
    pushLock: path.join(spool, 'push.lock'),
    fetch: path.join(spool, 'fetch'),
    fetchLock: path.join(spool, 'fetch.lock'),
    want: path.join(spool, 'fetch', 'want'),
    log: path.join(spool, 'worker.log'),
  };
}

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function hashFile(file: string, algorithms: string[] = [SPOOL_DIGEST]): Promise<{ digests: string[]; size: number }> {
  // one reused buffer: memory stays flat (a stream allocates a new buffer per read)
  // 'cksum': POSIX cksum's CRC in decimal (util/cksum.ts); any other name: node's hash of that name, in hex
  const hs = algorithms.map((a) => {
    if (a !== 'cksum') return createHash(a);
    const c = new Cksum();
    return { update: (b: Uint8Array) => c.update(b), digest: () => String(c.value()) };
  });
  const buf = Buffer.allocUnsafe(256 << 10);
  const fh = await fsp.open(file, 'r');
  let size = 0;
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      for (const h of hs) h.update(buf.subarray(0, bytesRead));
      size += bytesRead;
    }
  } finally {
    await fh.close();
  }
  return { digests: hs.map((h) => h.digest('hex')), size };
}

/** Write a small file atomically (tmp, fsync, rename). */
export async function writeSmall(file: string, text: string, sync = true): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  const fh = await fsp.open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(text);
    if (sync) await fh.sync();
  } finally {
    await fh.close();
  }
  await fsp.rename(tmp, file);
}

/** Names of the WAL files queued for the push worker, oldest position first (.history files before segments of their timeline). */
export async function queuedWal(spool: string): Promise<string[]> {
  const names = await fsp.readdir(spoolPaths(spool).push).catch(() => [] as string[]);
  return names.filter((n) => walKind(n) !== undefined).sort();
}

export interface QueueResult {
  status: 'queued' | 'already-queued';
  name: string;
  size: number;
  queued: number;
}

/**
 * archive_command with a spool: copy `file` into the queue durably (data and
 * directory fsynced) and return. PostgreSQL may recycle its WAL file as soon as
 * this returns, so the copy must be complete and on disk first. Fails (so
 * PostgreSQL keeps the file and retries) when the push worker reported an error
 * or the queue is full.
 */
export async function queueWal(spool: string, file: string, opts: { name?: string; maxFiles?: number } = {}): Promise<QueueResult> {
  const name = opts.name ?? path.basename(file);
  validateWalName(name);
  const p = spoolPaths(spool);
  await fsp.mkdir(p.push, { recursive: true, mode: 0o700 });
  const err = await fsp.readFile(p.pushError, 'utf8').catch(() => undefined);
  if (err !== undefined) {
    let msg = err;
    try {
      const e = JSON.parse(err) as { name?: string; message?: string; time?: string };
      msg = `${e.name ?? '?'}: ${e.message ?? '?'} (at ${e.time ?? '?'})`;
    } catch {
      /* the raw text */
    }
    throw new LifeboatError(`wal-push: the spool's push worker failed: ${msg}; ${name} was not queued (PostgreSQL keeps it and retries). Worker log: ${p.log}`, 1);
  }
  const dest = path.join(p.push, name);
  const queued = (await queuedWal(spool)).length;
  const existing = await fsp.stat(dest).catch(() => undefined);
  if (existing) {
    // the same bytes or not: a cryptographic hash, not the hand-over's CRC
    const [a, b] = await Promise.all([hashFile(dest, ['sha256']), hashFile(file, ['sha256'])]);
    if (a.digests[0] !== b.digests[0] || a.size !== b.size) {
      throw new LifeboatError(`wal-push: ${name} is already queued in ${spool} with DIFFERENT content; refusing to replace it`, 1);
    }
    return { status: 'already-queued', name, size: a.size, queued };
  }
  const max = opts.maxFiles ?? DEFAULT_SPOOL_MAX_FILES;
  if (queued >= max) {
    throw new LifeboatError(
      `wal-push: the spool ${spool} already holds ${queued} WAL files (limit ${max}): the push worker is not keeping up or cannot reach the repository (log: ${p.log}); ${name} stays with PostgreSQL`,
      1,
    );
  }
  const tmp = path.join(p.push, `.${name}.${process.pid}.tmp`);
  try {
    await fsp.copyFile(file, tmp);
    const fh = await fsp.open(tmp, 'r+');
    let size: number;
    try {
      size = (await fh.stat()).size;
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, dest);
    await fsyncDir(p.push);
    return { status: 'queued', name, size, queued: queued + 1 };
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => {});
    if (e instanceof LifeboatError) throw e;
    throw new LifeboatError(`wal-push: could not queue ${name} in ${spool}: ${errorMessage(e)}`, 1);
  }
}

/**
 * restore_command with a spool: hand over a prefetched file. Returns false when
 * none is ready (the caller fetches from the repository), 'missing' when the
 * worker found moments ago that the archive does not have it. A prefetched file is
 * re-hashed against the checksum the worker recorded from verified bytes; a mismatch (a
 * damaged spool) removes it and returns false, so PostgreSQL never gets it.
 */
export async function takePrefetched(spool: string, name: string, dest: string, warn: (m: string) => void = () => {}): Promise<boolean | 'missing'> {
  validateWalName(name);
  const p = spoolPaths(spool);
  const file = path.join(p.fetch, name);
  const side = await fsp.readFile(file + SPOOL_SUM_SUFFIX, 'utf8').catch(() => undefined);
  if (side === undefined) {
    const miss = await fsp.stat(`${file}.missing`).catch(() => undefined);
    return miss && Date.now() - miss.mtimeMs < MISSING_TTL_MS ? 'missing' : false;
  }
  const m = /^(\d{1,10}) (\d{1,16})\n?$/.exec(side);
  try {
    if (!m) throw new IntegrityError(`prefetched ${name}: malformed checksum file`);
    const got = await hashFile(file);
    if (got.digests[0] !== m[1] || got.size !== Number(m[2])) {
      throw new IntegrityError(`prefetched ${name} in ${p.fetch} does not match its checksum/size (damaged spool)`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // cleaned up meanwhile
    warn(`lifeboat: ${errorMessage(err)}; not used, fetching ${name} from the repository`);
    await fsp.rm(file, { force: true }).catch(() => {});
    await fsp.rm(file + SPOOL_SUM_SUFFIX, { force: true }).catch(() => {});
    return false;
  }
  try {
    await fsp.rename(file, dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    // spool on another file system: copy, fsync, rename (nothing half-written under dest)
    const tmp = `${dest}.tmp`;
    await fsp.copyFile(file, tmp);
    const fh = await fsp.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, dest);
    await fsp.rm(file, { force: true });
  }
  await fsp.rm(file + SPOOL_SUM_SUFFIX, { force: true }).catch(() => {});
  return true;
}

/** Tell the prefetch worker where recovery is (segments only). */
export async function setWant(spool: string, name: string): Promise<void> {
  if (walKind(name) !== 'segment') return;
  const p = spoolPaths(spool);
  await fsp.mkdir(p.fetch, { recursive: true, mode: 0o700 });
  await writeSmall(p.want, name + '\n', false); // a hint: no fsync
}
