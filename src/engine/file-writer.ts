import { close, closeSync, constants as fsc, ftruncateSync, open, realpath, rename, rmSync, unlink, write, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Semaphore } from '../util/sync.js';
import { joinBytes } from './archiver.js';

/**
 * A restored file under a temporary name in its directory: created with
 * O_CREAT | O_EXCL | O_NOFOLLOW (mode 0600), written at file offsets, then
 * either published (closed and renamed over its final name) or discarded
 * (closed and removed), so nothing half-written is ever left under a final name.
 *
 * The calls that allocate or move inodes (open with O_CREAT, rename, unlink)
 * and the realpath check of the parent go through the libuv thread pool:
 * on ext4 creating an inode costs far more than the call (the allocator
 * scans the inode table), and run on the main thread those costs add up
 * serially; in the pool several run at once, beside the decoding. Writes
 * of the data, which only copy into the page cache, stay synchronous (a
 * thread-pool round trip would cost more than the copy).
 */

/** Temporary names: a random per-process prefix and a counter (one random draw per process, not per file). */
const tmpPrefix = `.lifeboat-restore-${randomBytes(6).toString('hex')}-`;
let tmpSeq = 0;
export const tmpName = (): Buffer => Buffer.from(`${tmpPrefix}${(++tmpSeq).toString(36)}.tmp`);

const openAsync = (p: Buffer, flags: number, mode: number) =>
  new Promise<number>((resolve, reject) => open(p, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd))));
const renameAsync = (from: Buffer, to: Buffer) => new Promise<void>((resolve, reject) => rename(from, to, (err) => (err ? reject(err) : resolve())));
const closeAsync = (fd: number) => new Promise<void>((resolve, reject) => close(fd, (err) => (err ? reject(err) : resolve())));
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
    await renameAsync(this.path, dst);
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
    await closeAsync(this.fd);
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
