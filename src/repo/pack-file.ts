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
 * never interleave. finalize() waits for the writes, appends the header and
 * returns the pack id and size; the file is then the complete pack.
 *
 * `unlinked`: the file is removed from its directory as soon as it is opened
 * (the handle keeps it): a killed process leaves nothing behind. Used when the
 * storage uploads from the handle; a local repository needs the name (it
 * publishes the file by rename), so its temp files live in the repository's own
 * data directory under a `.tmp-` name, which listings ignore.
 */
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

  private async writeAt(data: Uint8Array, pos: number): Promise<void> {
    const fh = await this.handle();
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await fh.write(data, off, data.length - off, pos + off);
      off += bytesWritten;
    }
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
