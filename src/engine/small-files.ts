import { type BigIntStats, constants as fsc, lstat } from 'node:fs';
import { open as openFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import { SKETCH_MIN } from '../repo/codec.js';
import type { NativeEncodePool, NativeFileRead } from '../repo/native-encode-pool.js';
import { readXattrs } from './fsmeta.js';
import { LifeboatError } from '../errors.js';
import { WorkerPool } from '../repo/pool.js';
import type { Repository } from '../repo/repository.js';
import type { Compression } from '../repo/pack.js';

/**
 * The small-file reader of a files backup: files up to SMALL_FILE_MAX bytes
 * (and smaller than the chunker's minimum: one chunk each) are read, hashed,
 * compressed, sealed and, from SKETCH_MIN bytes, sketched in worker threads
 * (small-files-worker.ts), many per message. On the main thread, each of the
 * five calls per file (open, extended attributes, read, the read at the end
 * of the file, close) was a round trip through libuv's thread pool, and the
 * file's bytes were hashed there and posted to an encode worker: with many
 * small files that was most of a backup's CPU time.
 *
 * Files queue here; a batch goes to a worker when it holds BATCH_FILES files
 * or BATCH_BYTES bytes, or as soon as a worker is idle. Memory: the archiver
 * bounds the files in flight (its entry slots); each costs at most its sealed
 * bytes (≤ SMALL_FILE_MAX + overhead) until it is added to a pack.
 */
/**
 * The same workers lstat the entries of a directory in chunks (one message per
 * chunk rather than one thread-pool round trip per entry) once they run; no
 * worker is started for lstat alone: measured on an unchanged re-backup of
 * 30,000 files, that cost ~16 MB of RSS for no CPU gain within the noise.
 */
/** The lstat fields the archiver uses, in the order a worker sends them. */
export const STAT_FIELDS = ['dev', 'ino', 'mode', 'nlink', 'uid', 'gid', 'rdev', 'size', 'blocks', 'mtimeNs', 'ctimeNs'] as const;
/** What the archiver reads of an lstat (a BigIntStats has all of it). */
export type EntryStat = Pick<
  BigIntStats,
  (typeof STAT_FIELDS)[number] | 'isFile' | 'isDirectory' | 'isSymbolicLink' | 'isFIFO' | 'isCharacterDevice' | 'isBlockDevice' | 'isSocket'
>;

/** An lstat received from a worker. */
class PackedStat implements EntryStat {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly size: bigint;
  readonly blocks: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  constructor(f: BigInt64Array, i: number) {
    const o = i * STAT_FIELDS.length;
    const u = (j: number) => BigInt.asUintN(64, f[o + j]!);
    this.dev = u(0);
    this.ino = u(1);
    this.mode = u(2);
    this.nlink = u(3);
    this.uid = u(4);
    this.gid = u(5);
    this.rdev = u(6);
    this.size = u(7);
    this.blocks = u(8);
    this.mtimeNs = f[o + 9]!;
    this.ctimeNs = f[o + 10]!;
  }
  private is(t: number): boolean {
    return (Number(this.mode) & fsc.S_IFMT) === t;
  }
  isFile(): boolean {
    return this.is(fsc.S_IFREG);
  }
  isDirectory(): boolean {
    return this.is(fsc.S_IFDIR);
  }
  isSymbolicLink(): boolean {
    return this.is(fsc.S_IFLNK);
  }
  isFIFO(): boolean {
    return this.is(fsc.S_IFIFO);
  }
  isCharacterDevice(): boolean {
    return this.is(fsc.S_IFCHR);
  }
  isBlockDevice(): boolean {
    return this.is(fsc.S_IFBLK);
  }
  isSocket(): boolean {
    return this.is(fsc.S_IFSOCK);
  }
}

/** lstat with nanosecond times; the callback form costs about half the CPU of fs.promises.lstat per call. */
export function lstatBig(p: Buffer): Promise<BigIntStats> {
  return new Promise((resolve, reject) => lstat(p, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
}

/**
 * Paths for a worker: their bytes in one buffer, and where each ends. (Posted
 * one by one, a path that is a view of Buffer's shared 8 KiB pool would be
 * cloned with the whole pool.)
 */
export function packPaths(paths: Buffer[]): { pathBytes: Buffer; pathEnds: number[] } {
  const pathEnds: number[] = [];
  let end = 0;
  for (const p of paths) pathEnds.push((end += p.length));
  return { pathBytes: Buffer.concat(paths, end), pathEnds };
}

/** The paths of a request from packPaths (views of its buffer), or undefined if malformed. */
export function unpackPaths(msg: { pathBytes?: unknown; pathEnds?: unknown }): Buffer[] | undefined {
  const { pathBytes, pathEnds } = msg;
  if (!(pathBytes instanceof Uint8Array) || !Array.isArray(pathEnds)) return undefined;
  const all = Buffer.from(pathBytes.buffer, pathBytes.byteOffset, pathBytes.byteLength);
  const out: Buffer[] = [];
  let start = 0;
  for (const end of pathEnds) {
    if (!(Number.isSafeInteger(end) && end >= start && end <= all.length)) return undefined;
    out.push(all.subarray(start, end));
    start = end;
  }
  return out;
}

function toError(e: { message: string; code?: string }): NodeJS.ErrnoException {
  const err = new Error(e.message) as NodeJS.ErrnoException;
  if (e.code) err.code = e.code;
  return err;
}

/**
 * Largest file read by the workers (the archiver reads larger ones itself): the
 * default chunker's minimum chunk, so every file that is one chunk, and not a
 * delta candidate, is read off the main thread.
 */
export const SMALL_FILE_MAX = 512 * 1024;
const BATCH_FILES = 64;
const BATCH_BYTES = 1024 * 1024;
/**
 * Batches sent to the workers and not yet answered, beyond one per worker: a
 * full batch waits past this (each answer holds up to its batch's sealed bytes).
 */
const EXTRA_BATCHES = 2;

/** What a worker reports for one file (exactly one of: error, grew, or size with the rest). */
export interface SmallFileResult {
  error?: { message: string; code?: string };
  /** Larger than its lstat size when read: the caller reads it again its own way. */
  grew?: true;
  size?: number;
  /** Keyed hash of the content, and the sealed blob at [off, off + len) of the batch's buffer (size > 0 only). */
  id?: string;
  compression?: Compression;
  off?: number;
  len?: number;
  xattrs?: Array<{ name: string; value: string }>;
  /** The extended attributes could not be read (the content was). */
  xattrError?: string;
  /** The resemblance sketch (size ≥ SKETCH_MIN and compressed only). */
  sf?: number[];
}

export type SmallFileRead =
  | { kind: 'error'; error: NodeJS.ErrnoException }
  | { kind: 'grew' }
  | { kind: 'ok'; size: number; blob?: { id: string; sealed: Buffer; compression: Compression; sf?: number[] }; xattrs?: SmallFileResult['xattrs']; xattrError?: string };

interface Queued {
  path: Buffer;
  size: number;
  resolve: (r: SmallFileRead) => void;
  reject: (e: Error) => void;
}

/** The worker ops of the reader (an extension of the repository's encode workers). */
export const SMALL_FILES_WORKER = new URL('./small-files-worker.js', import.meta.url);

export class SmallFileReader {
  private queue: Queued[] = [];
  private queuedBytes = 0;
  private inflight = 0;
  private scheduled = false;

  /**
   * `pool`: workers running repo/worker.ts with SMALL_FILES_WORKER; `owned`: closed with the reader.
   * `native`: the repository's C encoder instead (native/encode.c encFiles: the same reads, hash,
   * encode and sketch in libuv work items, no worker thread).
   */
  constructor(
    private readonly pool: WorkerPool | undefined,
    private readonly owned: boolean,
    private readonly native?: NativeEncodePool,
  ) {}

  /** Batches kept in flight (one per worker, or per job of the C encoder). */
  private get size(): number {
    return this.native ? this.native.size : this.pool!.size;
  }

  /**
   * A reader in the repository's C encoder when it has one, else in its encode workers, or in
   * workers of its own if those already run without its ops.
   */
  static forRepository(repo: Repository): SmallFileReader {
    const native = repo.nativeEncoder;
    if (native) return new SmallFileReader(undefined, false, native);
    const shared = repo.poolWith(SMALL_FILES_WORKER);
    if (shared) return new SmallFileReader(shared, false);
    const n = Number(process.env.LIFEBOAT_WORKERS) || Math.max(1, Math.min(4, availableParallelism() - 1));
    return new SmallFileReader(new WorkerPool(repo.key, repo.config.compressionLevel, n, 'worker.js', SMALL_FILES_WORKER), true);
  }

  /** Read, hash and encode one file of at most SMALL_FILE_MAX bytes (its lstat size). Rejects only if the worker failed. */
  read(path: Buffer, size: number): Promise<SmallFileRead> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path, size, resolve, reject });
      this.queuedBytes += size;
      if (this.queue.length >= BATCH_FILES || this.queuedBytes >= BATCH_BYTES) {
        // a full batch: sent now unless enough are on their way (the next answer sends it)
        if (this.inflight < this.size + EXTRA_BATCHES) this.send();
      }
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          // while every worker is busy the queue grows: the next message carries more files
          if (this.inflight < this.size) this.send();
        });
      }
    });
  }

  /** lstat each path (never following a symlink): its stat, or the error. */
  async lstatMany(paths: Buffer[]): Promise<Array<EntryStat | NodeJS.ErrnoException>> {
    if (!this.pool || this.pool.started === 0) return Promise.all(paths.map((p) => lstatBig(p).catch((err: NodeJS.ErrnoException) => err)));
    const r = await this.pool.call<{ fields: BigInt64Array; errors: Array<{ message: string; code?: string } | null> }>({ op: 'lstat', ...packPaths(paths) });
    if (!(r.fields instanceof BigInt64Array) || r.fields.length !== paths.length * STAT_FIELDS.length || !Array.isArray(r.errors) || r.errors.length !== paths.length) {
      throw new LifeboatError('the small-file worker returned a malformed lstat batch');
    }
    return paths.map((_, i) => (r.errors[i] ? toError(r.errors[i]!) : new PackedStat(r.fields, i)));
  }

  /** Send the first batch of the queue: at most BATCH_FILES files and BATCH_BYTES bytes (or one file). */
  private send(): void {
    if (!this.queue.length) return;
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && n < BATCH_FILES && (n === 0 || bytes + this.queue[n]!.size <= BATCH_BYTES)) bytes += this.queue[n++]!.size;
    const jobs = this.queue.splice(0, n);
    this.queuedBytes -= bytes;
    this.inflight++;
    const done = () => {
      this.inflight--;
      // what queued up meanwhile goes now, in batches of the usual bound (not one message of it all)
      while (this.queue.length && !this.scheduled && this.inflight < this.size + EXTRA_BATCHES) this.send();
    };
    if (this.native) {
      this.native
        .readFiles(
          jobs.map((j) => j.path),
          jobs.map((j) => j.size),
          SKETCH_MIN,
        )
        .then((rs) => Promise.all(rs.map((r, i) => fromNative(r, jobs[i]!.path))))
        .then(
          (rs) => rs.forEach((r, i) => (r instanceof Error ? jobs[i]!.reject(r) : jobs[i]!.resolve(r))),
          (err: Error) => {
            for (const j of jobs) j.reject(err);
          },
        )
        .finally(done);
      return;
    }
    this.pool!
      .call<{ results: SmallFileResult[]; sealed: Uint8Array }>({ op: 'read', ...packPaths(jobs.map((j) => j.path)), sizes: jobs.map((j) => j.size) })
      .then(
        (m) => {
          if (!Array.isArray(m.results) || m.results.length !== jobs.length) throw new LifeboatError('the small-file worker returned a malformed batch');
          const all = Buffer.from(m.sealed.buffer, m.sealed.byteOffset, m.sealed.byteLength);
          m.results.forEach((r, i) => jobs[i]!.resolve(toRead(r, all)));
        },
        (err: Error) => {
          for (const j of jobs) j.reject(err);
        },
      )
      .catch((err: Error) => {
        for (const j of jobs) j.reject(err);
      })
      .finally(done);
  }

  /** Stops the workers if they are the reader's own (the repository closes its pool itself). */
  async close(): Promise<void> {
    if (this.owned) await this.pool?.close();
  }
}

/** A failed call as node's fs reports it (code, errno, syscall; the path for open). */
function sysError(errno: number, syscall: string, path: Buffer): NodeJS.ErrnoException {
  let code = `Unknown system error ${errno}`;
  let desc = 'unknown error';
  try {
    code = getSystemErrorName(-errno);
    desc = getSystemErrorMap().get(-errno)?.[1] ?? desc;
  } catch {
    // (not an errno libuv knows)
  }
  const err = new Error(syscall === 'open' ? `${code}: ${desc}, ${syscall} '${path.toString()}'` : `${code}: ${desc}, ${syscall}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  if (syscall === 'open') err.path = path.toString();
  return err;
}

/**
 * A file the C encoder read: as toRead gives a worker's result. Its extended attributes, when
 * flistxattr found some, are read here (rare: most files have none), as the worker's readOne does.
 */
async function fromNative(r: NativeFileRead | Error, path: Buffer): Promise<SmallFileRead | Error> {
  if (r instanceof Error) return r;
  if (r.kind === 'error') return { kind: 'error', error: sysError(r.errno, r.syscall, path) };
  if (r.kind === 'grew') return { kind: 'grew' };
  const out: SmallFileRead = { kind: 'ok', size: r.size };
  if (r.blob) out.blob = r.blob;
  if (r.xattrs) {
    try {
      const fh = await openFile(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK); // (a FIFO put there since does not block)
      try {
        const xa = await readXattrs(fh.fd);
        if (xa) out.xattrs = xa;
      } finally {
        await fh.close();
      }
    } catch (err) {
      out.xattrError = (err as Error).message;
    }
  }
  return out;
}

function toRead(r: SmallFileResult, all: Buffer): SmallFileRead {
  if (r.error) return { kind: 'error', error: toError(r.error) };
  if (r.grew) return { kind: 'grew' };
  const size = r.size ?? 0;
  const out: SmallFileRead = { kind: 'ok', size };
  if (size > 0) {
    if (typeof r.id !== 'string' || r.off === undefined || r.len === undefined || r.off + r.len > all.length) throw new LifeboatError('the small-file worker returned a malformed result');
    out.blob = { id: r.id, sealed: all.subarray(r.off, r.off + r.len), compression: r.compression! };
    if (r.sf !== undefined) {
      if (!Array.isArray(r.sf) || !r.sf.every((x) => Number.isInteger(x))) throw new LifeboatError('the small-file worker returned a malformed sketch');
      out.blob.sf = r.sf;
    }
  }
  if (r.xattrs) out.xattrs = r.xattrs;
  if (r.xattrError) out.xattrError = r.xattrError;
  return out;
}
