import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import { seal } from './crypto.js';
import { packBlob, type PackBlob } from './pack.js';
import { readFully } from '../util/read-fully.js';

/**
 * A pack being written to a temporary file as it fills (as restic does),
 * instead of in memory: a backup's pack memory no longer grows with the pack
 * size or with the packs waiting for upload. Same bytes as PackWriter
 * (docs/format.md, "Packs"): blobs, sealed header, u32 LE header length.
 *
 * Each sealed blob gets its offset (and enters the running SHA-256) when it is
 * added, and is written at that offset (positional write), so concurrent adds
 * never interleave. Writes are coalesced: at most one write per pack is in
 * flight, and the blobs added meanwhile (or in the same turn of the event
 * loop) go together in the next one, a single positional writev (a backup of
 * many small files added thousands of blobs, each its own thread-pool round
 * trip). finalize() waits for the writes, appends the header and returns the
 * pack id and size; the file is then the complete pack.
 *
 * `unlinked`: the file is removed from its directory as soon as it is opened
 * (the handle keeps it): a killed process leaves nothing behind. Used when the
 * storage uploads from the handle; a local repository needs the name (it
 * publishes the file by rename), so its temp files live in the repository's own
 * data directory under a `.tmp-` name, which listings ignore.
 */
/** At most this many blobs, and (beyond the first) this many bytes, per write. */
const WRITEV_MAX_BUFFERS = 512;
const WRITEV_MAX_BYTES = 8 * 1024 * 1024;

export class PackFileWriter {
  readonly blobs: PackBlob[] = [];
  private readonly hash = createHash('sha256');
  private fh: Promise<fsp.FileHandle> | undefined;
  private writes: Promise<unknown>[] = [];
  private failed: Error | undefined;
  private done = false;
  readonly path: string;
  size = 0;

  constructor(
    dir: string,
    private readonly unlinked: boolean,
  ) {
    this.path = path.join(dir, `.tmp-pack-${randomBytes(8).toString('hex')}`);
  }

  get count(): number {
    return this.blobs.length;
  }

  private opened = false;

  private handle(): Promise<fsp.FileHandle> {
    if (!this.fh && this.opened) return Promise.reject(new Error('pack file already closed'));
    this.opened = true;
    this.fh ??= (async () => {
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(this.path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        throw new LifeboatError(`cannot create a temporary pack file in ${path.dirname(this.path)}: ${e.code ?? e.message} (set LIFEBOAT_TMPDIR to a writable directory)`, 1, { cause: err });
      }
      if (this.unlinked) await fsp.unlink(this.path).catch(() => {});
      return fh;
    })();
    return this.fh;
  }

  /** Byte ranges added and not yet written: contiguous, in file order, starting at queue[0].pos. */
  private queue: Array<{ data: Uint8Array; pos: number; resolve: () => void; reject: (e: Error) => void }> = [];
  /** A write (or its scheduling) is under way: later adds queue up for the next one. */
  private writing = false;

  /** Queue `data` for writing at `pos` (right after the bytes queued before it). */
  private writeAt(data: Uint8Array, pos: number): Promise<void> {
    const p = new Promise<void>((resolve, reject) => this.queue.push({ data, pos, resolve, reject }));
    if (!this.writing) {
      this.writing = true;
      // the blobs added in this turn of the event loop (a batch of small files) go in one write
      setImmediate(() => void this.drain());
    }
    return p;
  }

  /** Write what is queued, one positional writev at a time, until the queue is empty. */
  private async drain(): Promise<void> {
    while (this.queue.length) {
      let bytes = 0;
      let n = 0;
      while (n < this.queue.length && n < WRITEV_MAX_BUFFERS && (n === 0 || bytes + this.queue[n]!.data.length <= WRITEV_MAX_BYTES)) bytes += this.queue[n++]!.data.length;
      const items = this.queue.splice(0, n);
      try {
        const fh = await this.handle();
        let bufs = items.map((it) => it.data);
        let pos = items[0]!.pos;
        while (bufs.length) {
          const { bytesWritten } = await fh.writev(bufs, pos);
          if (!(bytesWritten > 0)) throw new Error('write returned no progress');
          pos += bytesWritten;
          // drop what was written (a short write continues inside the buffer it stopped in)
          let left = bytesWritten;
          while (bufs.length && left >= bufs[0]!.length) left -= bufs.shift()!.length;
          if (left > 0) bufs[0] = bufs[0]!.subarray(left);
        }
        for (const it of items) it.resolve();
      } catch (err) {
        for (const it of items) it.reject(err as Error);
      }
    }
    this.writing = false;
  }

  /** Add a sealed blob; resolves once its bytes are in the file (the caller may then drop `sealed`). */
  async add(entry: Omit<PackBlob, 'offset' | 'length'>, sealed: Uint8Array): Promise<void> {
    if (this.done) throw new Error('pack already finalized');
    this.blobs.push(packBlob(entry, this.size, sealed.length));
    this.hash.update(sealed);
    const w = this.writeAt(sealed, this.size);
    this.size += sealed.length;
    this.writes.push(w.catch((err) => void (this.failed ??= err)));
    await w;
  }

  /**
   * Append the header and wait for every write; returns the pack id (SHA-256 of
   * the whole file) and its size. The file is then the complete pack: publish it
   * by name (path) or read() it back, then discard() the writer.
   */
  async finalize(encKey: Buffer): Promise<{ id: string; size: number; blobs: PackBlob[] }> {
    this.done = true;
    const header = seal(encKey, Buffer.from(JSON.stringify({ v: 1, blobs: this.blobs })));
    const tail = Buffer.allocUnsafe(header.length + 4);
    header.copy(tail, 0);
    tail.writeUInt32LE(header.length, header.length);
    this.hash.update(tail);
    const w = this.writeAt(tail, this.size);
    this.writes.push(w.catch((err) => void (this.failed ??= err)));
    await Promise.all(this.writes);
    this.writes = [];
    if (this.failed) throw new LifeboatError(`writing a temporary pack file ${this.path}: ${this.failed.message}`, 1, { cause: this.failed });
    this.size += tail.length;
    if (!this.unlinked) {
      // Published by name: the writer's handle is not needed any more.
      const fh = this.fh;
      this.fh = undefined;
      await fh!.then((h) => h.close());
    }
    return { id: this.hash.digest('hex'), size: this.size, blobs: this.blobs };
  }

  /** The whole finalized pack, read back from the (unlinked) file: for storages that cannot publish a file. */
  async read(): Promise<Buffer> {
    if (!this.fh) throw new Error('pack file is not open');
    const fh = await this.fh;
    const size = this.size;
    const buf = Buffer.allocUnsafeSlow(size);
    const got = await readFully(fh, buf, size);
    if (got !== size) throw new LifeboatError(`temporary pack file ended after ${got} of ${size} bytes (truncated by another process?)`);
    return buf;
  }

  /** Close the handle and remove the file if it is still there (idempotent; never throws). */
  async discard(): Promise<void> {
    this.done = true;
    await Promise.allSettled(this.writes);
    const fh = this.fh;
    this.fh = undefined;
    if (fh) await fh.then((h) => h.close()).catch(() => {});
    if (!this.unlinked && this.opened) await fsp.rm(this.path, { force: true }).catch(() => {});
  }
}
