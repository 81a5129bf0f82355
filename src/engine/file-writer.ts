import { closeSync, constants as fsc, fstatSync, ftruncateSync, open, readFileSync, realpath, renameSync, rmSync, statSync, unlink, write, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { nativeAddon } from '../util/native.js';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import { constants as osConstants } from 'node:os';
import { Semaphore } from '../util/sync.js';
import { joinBytes } from './archiver.js';

/**
 * A restored file under a temporary name in its directory: created with
 * O_CREAT | O_EXCL | O_NOFOLLOW (mode 0600), written at file offsets, then
 * either published (closed and renamed over its final name) or discarded
 * (closed and removed), so nothing half-written is ever left under a final name.
 *
 * The calls that allocate inodes (open with O_CREAT, unlink) and the
 * realpath check of a parent (where there is no DirHandle) go through the
 * libuv thread pool: on ext4 creating an inode costs far more than the call
 * (the allocator scans the inode table), and run on the main thread those
 * costs add up serially; in the pool several run at once, beside the
 * decoding. Writes of the data (which only copy into the page cache), the
 * close and the rename within the directory stay synchronous (a thread-pool
 * round trip costs more than the call).
 *
 * Where the native helper (native/files.c) is built, the restorer finishes
 * most files without a TempFile: finishFiles does the same steps (a temporary
 * name created O_EXCL|O_NOFOLLOW at the directory's descriptor, the data, the
 * metadata, close, rename) for a whole batch of files in one thread-pool work
 * item; mkdirOpen and setDirsMeta do the directories' steps.
 */

/** Temporary names: a random per-process prefix and a counter (one random draw per process, not per file). */
const tmpPrefix = `.lifeboat-restore-${randomBytes(6).toString('hex')}-`;
let tmpSeq = 0;
export const tmpName = (): Buffer => Buffer.from(`${tmpPrefix}${(++tmpSeq).toString(36)}.tmp`);

/**
 * A small file whose whole content is in memory and verified (passed beside it), finished in one
 * batch (finishFiles): created under a temporary name in its directory (the
 * descriptor of a DirHandle), written, given owner, mode and times through the
 * descriptor, closed and renamed to `name` in the same directory.
 */
export interface DirectFile {
  /** The directory's descriptor (a DirHandle the caller holds until the batch settles). */
  dirfd: number;
  /** One path component (the tree's raw name). */
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  /** fchown to uid/gid (best effort). */
  chown: boolean;
  /** Modification (and access) time, nanoseconds since the epoch (decimal, may be negative). */
  mtimeNs: string;
}

interface FilesNative {
  finishFiles(dirfds: Int32Array, names: Uint8Array[], datas: Uint8Array[], meta: Float64Array, tmpPrefix: Uint8Array, seq0: number): Promise<Int32Array>;
  mkdirOpen(dirfd: number, name: Uint8Array): Promise<Float64Array>;
  setDirsMeta(rootfd: number, rels: Uint8Array[], meta: Float64Array): Promise<Int32Array>;
}
const tmpPrefixBytes = Buffer.from(tmpPrefix);

/**
 * The native batch (native/files.c), or undefined: not built, not Linux, or
 * turned off (LIFEBOAT_NO_NATIVE=1 or LIFEBOAT_RESTORE_NATIVE=0, read on each
 * call: tests compare both paths in one process). Without it the restorer
 * creates each file through TempFile (the JavaScript path, same results).
 */
export function filesNative(): FilesNative | undefined {
  if (process.env.LIFEBOAT_RESTORE_NATIVE === '0' || process.platform !== 'linux') return undefined;
  return nativeAddon<FilesNative>('files');
}

/** The process's umask, read without changing it (/proc/self/status; process.umask() sets it twice, racing the thread pool); undefined if unknown. */
let umaskCache: number | null | undefined;
export function currentUmask(): number | undefined {
  if (umaskCache === undefined) {
    umaskCache = null;
    try {
      const m = /^Umask:\s*([0-7]+)$/m.exec(readFileSync('/proc/self/status', 'latin1'));
      if (m) umaskCache = parseInt(m[1]!, 8);
    } catch {
      /* unknown: always fchmod */
    }
  }
  return umaskCache ?? undefined;
}

const STEPS = ['', 'open', 'write', 'chmod', 'utimes', 'close', 'rename', 'name'];
const euid = process.geteuid?.();
const osErrno = osConstants.errno as Record<string, number>;

/** Files published by finishFiles (tests: which path a restore took). */
export const nativeFinished = { files: 0 };

/** A decimal nanosecond time as [seconds, nanoseconds 0..1e9) (no BigInt for the usual non-negative case). */
function splitNs(ns: string): [number, number] {
  if (ns.length > 9 && ns.length <= 24 && ns.charCodeAt(0) !== 45 /* - */) return [Number(ns.slice(0, -9)), Number(ns.slice(-9))];
  const v = BigInt(ns);
  let sec = v / 1_000_000_000n;
  let nsec = v - sec * 1_000_000_000n;
  if (nsec < 0n) {
    nsec += 1_000_000_000n;
    sec -= 1n;
  }
  return [Number(sec), Number(nsec)];
}

/**
 * Finish a batch of small files in one thread-pool work item (native/files.c);
 * per file undefined (published under its final name) or the error (nothing
 * left under either name). Requires filesNative().
 */
export async function finishFiles(files: readonly DirectFile[], datas: Buffer[], where: (i: number) => string): Promise<Array<NodeJS.ErrnoException | undefined>> {
  const lib = filesNative();
  if (!lib) throw new Error('finishFiles: the native helper is not loaded');
  const n = files.length;
  const dirfds = new Int32Array(n);
  if (datas.length !== n) throw new Error('finishFiles: one data buffer per file');
  const names: Buffer[] = new Array(n);
  const meta = new Float64Array(n * 6);
  const umask = currentUmask();
  for (let i = 0; i < n; i++) {
    const f = files[i]!;
    dirfds[i] = f.dirfd;
    names[i] = f.name;
    // created with the mode's permission bits less group/other write (nobody else writes the file before its
    // rename), then fchmod only when that under the umask is not the mode (setuid/setgid/sticky, g+w, o+w, umask)
    const created = f.mode & 0o755;
    const chmod = umask === undefined || (created & ~umask) !== f.mode;
    putMeta(meta, i, f, (f.chown ? 1 : 0) | (chmod ? 2 : 0));
  }
  const seq0 = tmpSeq + 1;
  tmpSeq += n;
  const res = await lib.finishFiles(dirfds, names, datas, meta, tmpPrefixBytes, seq0);
  const out = results(res, n, where);
  for (const e of out) if (!e) nativeFinished.files++;
  return out;
}

function putMeta(meta: Float64Array, i: number, f: { mode: number; uid: number; gid: number; mtimeNs: string }, flags: number): void {
  const [sec, nsec] = splitNs(f.mtimeNs);
  const o = i * 6;
  meta[o] = f.mode;
  meta[o + 1] = f.uid;
  meta[o + 2] = f.gid;
  meta[o + 3] = flags;
  meta[o + 4] = sec;
  meta[o + 5] = nsec;
}

/** A system error like Node's (code, errno, syscall; the message names the path). */
function sysError(errno: number, step: string, where: string): NodeJS.ErrnoException {
  let code = `E${errno}`;
  let text = `error ${errno}`;
  try {
    code = getSystemErrorName(-errno);
    text = getSystemErrorMap().get(-errno)?.[1] ?? text;
  } catch {
    /* unknown errno */
  }
  const e: NodeJS.ErrnoException = new Error(`${code}: ${text}, ${step} '${where}'`);
  e.code = code;
  e.errno = -errno;
  e.syscall = step;
  return e;
}

function results(res: Int32Array, n: number, where: (i: number) => string): Array<NodeJS.ErrnoException | undefined> {
  const out: Array<NodeJS.ErrnoException | undefined> = new Array(n);
  for (let i = 0; i < n; i++) {
    const errno = res[2 * i]!;
    if (errno !== 0) out[i] = sysError(errno, STEPS[res[2 * i + 1]!] ?? 'finish', where(i));
  }
  return out;
}

/**
 * Make the directory `name` in `parent` (mode 0700 until its metadata is set
 * last) and open it (O_DIRECTORY|O_NOFOLLOW) in one thread-pool hop (native);
 * 'exists' when something is already there (the caller looks at it). Requires filesNative().
 */
export async function mkdirOpen(parent: DirHandle, name: Buffer): Promise<DirHandle | 'exists'> {
  const r = await filesNative()!.mkdirOpen(parent.fd, name);
  const fd = r[0]!;
  if (fd === -(osErrno.EEXIST ?? 17)) return 'exists';
  if (fd < 0) throw sysError(-fd, 'mkdir', joinBytes(parent.real, name).toString());
  return DirHandle.made(fd, joinBytes(parent.real, name), r[1]!, r[2]!);
}

/** A directory's metadata, set last (setDirsMeta). */
export interface DirMeta {
  /** Its path below the root handle's directory (components separated by '/'). */
  rel: Buffer;
  mode: number;
  uid: number;
  gid: number;
  chown: boolean;
  mtimeNs: string;
}

/**
 * Owner, mode and times of directories, in the order given, in one thread-pool
 * work item (native): each opened below `root` without following any link
 * (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS, or component by component
 * with O_NOFOLLOW). Per directory undefined or the error. Requires filesNative().
 */
export async function setDirsMeta(root: DirHandle, dirs: readonly DirMeta[], where: (i: number) => string): Promise<Array<NodeJS.ErrnoException | undefined>> {
  const n = dirs.length;
  const meta = new Float64Array(n * 6);
  for (let i = 0; i < n; i++) putMeta(meta, i, dirs[i]!, (dirs[i]!.chown ? 1 : 0) | 2);
  const res = await filesNative()!.setDirsMeta(
    root.fd,
    dirs.map((d) => d.rel),
    meta,
  );
  return results(res, n, where);
}

const openAsync = (p: Buffer, flags: number, mode: number) =>
  new Promise<number>((resolve, reject) => open(p, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
const writeAsync = (fd: number, buf: Buffer, off: number, len: number, pos: number) =>
  new Promise<number>((resolve, reject) => write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n))));
const unlinkAsync = (p: Buffer) => new Promise<void>((resolve, reject) => unlink(p, (err) => (err ? reject(err) : resolve())));

/** realpath(3) in the thread pool, as raw bytes. */
export const realpathBytes = (p: Buffer): Promise<Buffer> =>
  new Promise((resolve, reject) => realpath.native(p, { encoding: 'buffer' }, (err, r) => (err ? reject(err) : resolve(r))));

const createSlots = new Semaphore(Number(process.env.LIFEBOAT_CREATE_SLOTS) || 1);

export class TempFile {
  private open = true;
  private settled = false;

  private constructor(
    readonly fd: number,
    /** The temporary path (in the final directory). */
    readonly path: Buffer,
  ) {}

  /** Create a new temporary file in `dir` (never an existing name, never through a link). */
  static async create(dir: Buffer): Promise<TempFile> {
    const p = joinBytes(dir, tmpName());
    await createSlots.acquire();
    let fd: number;
    try {
      fd = await openAsync(p, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    } finally {
      createSlots.release();
    }
    return new TempFile(fd, p);
  }

  /**
   * Write `buf` as the pieces ([file offset, length]) say, in order: the
   * content stream of a file with holes maps to several file regions.
   */
  writePieces(buf: Buffer, pieces: ReadonlyArray<readonly [number, number]>): void {
    let off = 0;
    for (const [pos, len] of pieces) {
      let w = 0;
      while (w < len) w += writeSync(this.fd, buf, off + w, len - w, pos + w);
      off += len;
    }
  }

  /** Set the file's length (a trailing hole). */
  truncate(size: number): void {
    ftruncateSync(this.fd, size);
  }

  /** Close and rename over `dst` (rename replaces a file or a link there, never follows it). */
  async publish(dst: Buffer, beforeRename?: () => Promise<void>): Promise<void> {
    if (this.settled) throw new Error('temporary file already published or discarded');
    await this.closeOnce();
    if (beforeRename) await beforeRename();
    // in place: within one directory, through its handle, a rename costs less than a thread-pool round trip (measured: docs/benchmarks.md)
    renameSync(this.path, dst);
    this.settled = true;
  }

  /** Close (if open) and remove the temporary file; never throws (the caller reports the original error). */
  async discard(): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    if (this.open) {
      this.open = false;
      try {
        closeSync(this.fd);
      } catch {
        /* already failing */
      }
    }
    await unlinkAsync(this.path).catch(() => {
      try {
        rmSync(this.path, { force: true });
      } catch {
        /* the original error is the one to report */
      }
    });
  }

  private async closeOnce(): Promise<void> {
    if (!this.open) return;
    this.open = false;
    // a regular file we only wrote: close(2) is a few microseconds, less than a thread-pool round trip
    closeSync(this.fd);
  }

  /** writePieces through the thread pool (large buffers: the copy is worth a round trip). */
  async writePiecesAsync(buf: Buffer, pieces: ReadonlyArray<readonly [number, number]>): Promise<void> {
    let off = 0;
    for (const [pos, len] of pieces) {
      let w = 0;
      while (w < len) w += await writeAsync(this.fd, buf, off + w, len - w, pos + w);
      off += len;
    }
  }
}

/**
 * A directory of the restore held open. Files are created, renamed and
 * removed in it through /proc/self/fd/<fd>/<name> (the kernel follows the
 * descriptor itself, as openat(2) would), never through the directory's
 * path: once the handle is open, no later change to the path's components
 * (a directory replaced by a symbolic link, moved, renamed) can make a write
 * land anywhere else, and no per-file realpath check is needed. A handle is
 * only ever opened through its parent's handle, from the target's, with
 * O_DIRECTORY | O_NOFOLLOW: a link in its place fails the open. Reference
 * counted: the walk of the directory and each file queued in it hold one.
 */
export class DirHandle {
  private refs = 1;
  /** /proc/self/fd/<fd>: the directory itself, for path-taking calls. */
  readonly base: Buffer;

  private constructor(
    readonly fd: number,
    /** The directory's path (for messages, and the steps that work by path). */
    readonly real: Buffer,
  ) {
    this.base = Buffer.from(`/proc/self/fd/${fd}`);
    DirHandle.opened.set(fd, this);
  }

  private static readonly opened = new Map<number, DirHandle>();

  /** A system error's message with each /proc/self/fd/N of an open handle shown as the directory's path. */
  static shown(message: string): string {
    return message.replace(/\/proc\/self\/fd\/(\d+)/g, (m, fd: string) => DirHandle.opened.get(Number(fd))?.real.toString() ?? m);
  }

  /**
   * Open the restore's target (a real path, no links in it) as the root
   * handle; undefined where /proc/self/fd does not lead to the same
   * directory (no /proc): the caller then checks each parent by realpath.
   */
  static async openRoot(real: Buffer): Promise<DirHandle | undefined> {
    if (process.platform !== 'linux' || process.env.LIFEBOAT_RESTORE_DIR_HANDLES === '0') return undefined;
    const fd = await openAsync(real, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW, 0);
    const h = new DirHandle(fd, real);
    try {
      const a = fstatSync(fd, { bigint: true });
      const b = statSync(h.base, { bigint: true });
      if (a.dev === b.dev && a.ino === b.ino && b.isDirectory()) return h;
    } catch {
      /* no /proc */
    }
    DirHandle.opened.delete(fd);
    closeSync(fd);
    return undefined;
  }

  /** A directory just made and opened by mkdirOpen (owner uid, group gid). */
  static made(fd: number, real: Buffer, uid: number, gid: number): DirHandle {
    const h = new DirHandle(fd, real);
    if (uid === euid) h.gid = gid;
    return h;
  }

  /**
   * Open the directory `name` inside this one (never through a link: O_NOFOLLOW).
   * `owned`: we just made it; its group is noted when its owner is us (`gid`).
   */
  async child(name: Buffer, owned = false): Promise<DirHandle> {
    const fd = await openAsync(this.at(name), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW, 0);
    const h = new DirHandle(fd, joinBytes(this.real, name));
    if (owned) {
      try {
        const st = fstatSync(fd);
        if (st.uid === process.geteuid?.()) h.gid = st.gid;
      } catch (err) {
        DirHandle.opened.delete(fd);
        closeSync(fd);
        throw err;
      }
    }
    return h;
  }

  /**
   * The group of a directory this restore made and owns: a file created in
   * it gets this group (the process's, the directory's with setgid or grpid:
   * the same when both are ours) and our user.
   */
  gid?: number;

  /** The path of `name` in this directory, through the handle. */
  at(name: Buffer): Buffer {
    return joinBytes(this.base, name);
  }

  ref(): this {
    if (this.refs <= 0) throw new Error('directory handle already closed');
    this.refs++;
    return this;
  }

  /** Drop a reference; the descriptor is closed with the last. */
  unref(): void {
    if (--this.refs === 0) {
      DirHandle.opened.delete(this.fd);
      closeSync(this.fd);
    }
  }
}
