import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { largeBuffer } from '../util/huge-buffer.js';
import { ExitCode, NotFoundError, LifeboatError } from '../errors.js';
import { type FileType, type ObjectInfo, type Storage, objectPath, typeDir } from './types.js';
import { ReadOnlyStorageError, type StorageTimeouts, formatMs, resolveTimeouts, storageCall } from './retry.js';

export interface LocalOptions {
  /**
   * Deadline of every file-system call (timeouts.request; connect and retries do
   * not apply). A call on a hung mount cannot be cancelled: at the deadline it is
   * abandoned (it may still finish later) and the request fails.
   */
  timeouts?: Partial<StorageTimeouts>;
  /** Aborting it ends every in-flight and later call at once (job timeout, shutdown). */
  signal?: AbortSignal;
}

/**
 * Local directory backend. Writes are crash-safe: data goes to a temporary file
 * in the target directory, is fsync'ed, renamed into place, and the directory is
 * fsync'ed, so after a crash an object is either absent or complete.
 *
 * Every public method runs under a deadline (storageCall, no retries): a hung
 * network file system makes the request fail instead of blocking forever. A
 * write refused by a read-only file system (EROFS, or EACCES/EPERM) raises
 * ReadOnlyStorageError.
 */
export class LocalStorage implements Storage {
  readonly kind = 'local';
  /** Directory mtimes are set by the kernel (or NFS server) storing the file at write time. */
  readonly serverTimes = true;
  readonly location: string;
  private readonly root: string;
  private readonly knownDirs = new Set<string>();
  /** Open read handles for ranged loads (packs are immutable; restore reads many blobs per pack). */
  private readonly handles = new Map<string, { fh: Promise<fsp.FileHandle>; users: number }>();

  readonly timeouts: StorageTimeouts;
  private readonly signal: AbortSignal | undefined;

  constructor(root: string, opts: LocalOptions = {}) {
    this.root = path.resolve(root);
    this.location = this.root;
    this.timeouts = resolveTimeouts({ ...opts.timeouts, retries: 0 });
    this.signal = opts.signal;
  }

  /** One file-system request under the deadline. */
  private io<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return storageCall(
      {
        what,
        timeouts: this.timeouts,
        signal: this.signal,
        timeoutMessage: (ms, w) =>
          `the file system of ${this.root} did not answer within ${formatMs(ms)} while ${w} (a hung network mount?); set timeouts.request / LIFEBOAT_REQUEST_TIMEOUT to change the deadline`,
      },
      () => fn(),
    );
  }

  private file(type: FileType, name: string): string {
    return path.join(this.root, objectPath(type, name));
  }

  create(): Promise<void> {
    return this.io(`creating ${this.root}`, () => this.createImpl());
  }

  private async createImpl(): Promise<void> {
    try {
      await this.createDirs();
    } catch (err) {
      throw storageError(err, `creating the repository directories in ${this.root}`, true);
    }
  }

  private async createDirs(): Promise<void> {
    const st = await fsp.stat(this.root).catch(() => undefined);
    if (st && !st.isDirectory()) throw new LifeboatError(`cannot create a repository at ${this.root}: it exists and is not a directory`, ExitCode.USAGE);
    await fsp.mkdir(this.root, { recursive: true, mode: 0o700 });
    for (const d of ['keys', 'snapshots', 'index', 'locks', 'data']) {
      await fsp.mkdir(path.join(this.root, d), { recursive: true, mode: 0o700 });
    }
    for (let i = 0; i < 256; i++) {
      await fsp.mkdir(path.join(this.root, 'data', i.toString(16).padStart(2, '0')), { recursive: true, mode: 0o700 });
    }
  }

  private async ensureDir(dir: string): Promise<void> {
    if (this.knownDirs.has(dir)) return;
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw storageError(err, `creating directory ${dir}`, true);
    }
    this.knownDirs.add(dir);
  }

  save(type: FileType, name: string, data: Uint8Array): Promise<void> {
    return this.io(`saving ${objectPath(type, name)}`, () => this.saveImpl(type, name, data));
  }

  private async saveImpl(type: FileType, name: string, data: Uint8Array): Promise<void> {
    const target = this.file(type, name);
    const dir = path.dirname(target);
    await this.ensureDir(dir);
    const tmp = path.join(dir, `.tmp-${name || 'config'}-${randomBytes(6).toString('hex')}`);
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      let off = 0;
      while (off < data.length) {
        const { bytesWritten } = await fh.write(data, off, data.length - off);
        off += bytesWritten;
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fsp.rename(tmp, target);
      await fsyncDir(dir);
    } catch (err) {
      if (fh) await fh.close().catch(() => {});
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw storageError(err, `saving ${objectPath(type, name)} in ${this.root}`, true);
    }
  }

  /** Temporary objects (packs being written) live in data/, on the objects' file system: saveFile() renames them into place. */
  tempDir(): Promise<string> {
    const dir = path.join(this.root, typeDir('data'));
    return this.io(`creating ${dir}`, () => this.ensureDir(dir).then(() => dir));
  }

  saveFile(type: FileType, name: string, file: string, size: number): Promise<void> {
    return this.io(`saving ${objectPath(type, name)}`, () => this.saveFileImpl(type, name, file, size));
  }

  private async saveFileImpl(type: FileType, name: string, file: string, size: number): Promise<void> {
    const target = this.file(type, name);
    const dir = path.dirname(target);
    try {
      await this.ensureDir(dir);
      const fh = await fsp.open(file, 'r');
      try {
        const st = await fh.stat();
        if (st.size !== size) throw new LifeboatError(`temporary file ${file} holds ${st.size} bytes, expected ${size}`);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await fsp.rename(file, target);
      await fsyncDir(dir);
    } catch (err) {
      throw storageError(err, `saving ${objectPath(type, name)} in ${this.root}`, true);
    }
  }

  saveNew(type: FileType, name: string, data: Uint8Array): Promise<boolean> {
    return this.io(`creating ${objectPath(type, name)}`, () => this.saveNewImpl(type, name, data));
  }

  private async saveNewImpl(type: FileType, name: string, data: Uint8Array): Promise<boolean> {
    const target = this.file(type, name);
    const dir = path.dirname(target);
    await this.ensureDir(dir);
    const tmp = path.join(dir, `.tmp-new-${randomBytes(6).toString('hex')}`);
    try {
      const fh = await fsp.open(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL, 0o600);
      try {
        await fh.write(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await fsp.link(tmp, target); // fails with EEXIST if another writer won
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
        throw err;
      }
      await fsyncDir(dir);
      return true;
    } catch (err) {
      throw storageError(err, `creating ${objectPath(type, name)} in ${this.root}`, true);
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => {});
    }
  }

  load(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    return this.io(`reading ${objectPath(type, name)}`, () => this.loadImpl(type, name, range));
  }

  private async loadImpl(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const file = this.file(type, name);
    try {
      if (!range) return await fsp.readFile(file);
      const buf = largeBuffer(range.length) ?? Buffer.allocUnsafe(range.length);
      await this.readRange(file, type, name, range.offset, buf);
      return buf;
    } catch (err) {
      throw storageError(err, `reading ${objectPath(type, name)}`);
    }
  }

  loadInto(type: FileType, name: string, offset: number, target: Uint8Array): Promise<void> {
    return this.io(`reading ${objectPath(type, name)}`, async () => {
      try {
        await this.readRange(this.file(type, name), type, name, offset, target);
      } catch (err) {
        throw storageError(err, `reading ${objectPath(type, name)}`);
      }
    });
  }

  /** Fill `buf` from `offset` of the file through its shared read handle. */
  private async readRange(file: string, type: FileType, name: string, offset: number, buf: Uint8Array): Promise<void> {
    const entry = this.readHandle(file);
    entry.users++;
    try {
      const fh = await entry.fh;
      let got = 0;
      while (got < buf.length) {
        const { bytesRead } = await fh.read(buf, got, buf.length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      if (got !== buf.length) {
        throw new LifeboatError(`short read of ${objectPath(type, name)}: wanted ${buf.length} bytes at offset ${offset}, file ended after ${got}`);
      }
    } finally {
      entry.users--;
    }
  }

  /** A shared read handle; idle handles beyond 64 are closed (never one with a read in flight). */
  private readHandle(file: string): { fh: Promise<fsp.FileHandle>; users: number } {
    let h = this.handles.get(file);
    if (!h) {
      for (const [name, e] of this.handles) {
        if (this.handles.size < 64) break;
        if (e.users > 0) continue;
        this.handles.delete(name);
        void e.fh.then((x) => x.close()).catch(() => {});
      }
      const entry = { fh: fsp.open(file, 'r'), users: 0 };
      entry.fh.catch(() => {
        if (this.handles.get(file) === entry) this.handles.delete(file);
      });
      this.handles.set(file, entry);
      h = entry;
    }
    return h;
  }

  private async dropHandle(file: string): Promise<void> {
    const h = this.handles.get(file);
    if (!h) return;
    this.handles.delete(file);
    await h.fh.then((x) => x.close()).catch(() => {});
  }

  stat(type: FileType, name: string): Promise<ObjectInfo> {
    return this.io(`stat ${objectPath(type, name)}`, () => this.statImpl(type, name));
  }

  private async statImpl(type: FileType, name: string): Promise<ObjectInfo> {
    try {
      const st = await fsp.stat(this.file(type, name));
      return { name, size: st.size };
    } catch (err) {
      throw storageError(err, `stat ${objectPath(type, name)}`);
    }
  }

  exists(type: FileType, name: string): Promise<boolean> {
    return this.io(`checking ${objectPath(type, name)}`, () => this.existsImpl(type, name));
  }

  private async existsImpl(type: FileType, name: string): Promise<boolean> {
    try {
      await fsp.access(this.file(type, name));
      return true;
    } catch {
      return false;
    }
  }

  remove(type: FileType, name: string): Promise<void> {
    return this.io(`removing ${objectPath(type, name)}`, () => this.removeImpl(type, name));
  }

  private async removeImpl(type: FileType, name: string): Promise<void> {
    await this.dropHandle(this.file(type, name));
    try {
      await fsp.unlink(this.file(type, name));
    } catch (err) {
      throw storageError(err, `removing ${objectPath(type, name)} in ${this.root}`, true);
    }
  }

  removeStaleTemp(olderThanMs: number): Promise<{ files: number; bytes: number }> {
    return this.io('removing abandoned temporary files', () => this.removeStaleTempImpl(olderThanMs));
  }

  /** `.tmp-*` files in the repository root, the object directories and data/XX/, older than the cut-off. */
  private async removeStaleTempImpl(olderThanMs: number): Promise<{ files: number; bytes: number }> {
    const cutoff = Date.now() - olderThanMs;
    const dataDir = path.join(this.root, typeDir('data'));
    const dirs = [this.root, dataDir, ...(await listDirNames(dataDir)).map((d) => path.join(dataDir, d))];
    for (const type of ['index', 'snapshot', 'key', 'lock', 'wal'] as const) dirs.push(path.join(this.root, typeDir(type)));
    let files = 0;
    let bytes = 0;
    for (const dir of [...new Set(dirs)]) {
      const entries = await readDirEntries(dir);
      for (const e of entries) {
        if (!e.isFile() || !e.name.startsWith('.tmp-')) continue;
        const file = path.join(dir, e.name);
        const st = await fsp.lstat(file).catch(() => undefined);
        if (!st || st.mtimeMs > cutoff) continue;
        try {
          await fsp.unlink(file);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          throw storageError(err, `removing ${file}`);
        }
        files++;
        bytes += st.size;
      }
    }
    return { files, bytes };
  }

  list(type: FileType): Promise<ObjectInfo[]> {
    return this.io(`listing ${typeDir(type) || 'the repository'}`, () => this.listImpl(type));
  }

  private async listImpl(type: FileType): Promise<ObjectInfo[]> {
    if (type === 'config') {
      return (await this.existsImpl('config', '')) ? [await this.statImpl('config', '')] : [];
    }
    const base = path.join(this.root, typeDir(type));
    const out: ObjectInfo[] = [];
    const dirs = type === 'data' ? await listDirNames(base).then((ds) => ds.map((d) => path.join(base, d))) : [base];
    for (const dir of dirs) {
      const entries = await readDirEntries(dir);
      for (const e of entries) {
        if (!e.isFile() || e.name.startsWith('.tmp-')) continue;
        const st = await fsp.stat(path.join(dir, e.name)).catch(() => undefined);
        if (st) out.push({ name: e.name, size: st.size, mtime: st.mtime });
      }
    }
    return out;
  }

  async close(): Promise<void> {
    const all = [...this.handles.values()];
    this.handles.clear();
    await Promise.all(all.map((h) => h.fh.then((x) => x.close()).catch(() => {})));
  }
}

/** The entries of a directory; none when it does not exist. */
async function readDirEntries(dir: string): Promise<import('node:fs').Dirent[]> {
  try {
    return await fsp.readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw storageError(err, `listing ${dir}`);
  }
}

async function listDirNames(dir: string): Promise<string[]> {
  try {
    const entries = await fsp.readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

async function fsyncDir(dir: string): Promise<void> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(dir, 'r');
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  } finally {
    await fh?.close().catch(() => {});
  }
}

function storageError(err: unknown, what: string, write = false): Error {
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') return new NotFoundError(what);
  if (err instanceof LifeboatError) return err;
  if (write && e && (e.code === 'EROFS' || e.code === 'EACCES' || e.code === 'EPERM')) {
    const why = e.code === 'EROFS' ? 'read-only file system' : 'permission denied';
    return new ReadOnlyStorageError(`cannot write to the repository (${why}, ${e.code}) while ${what}`, { cause: err });
  }
  if (e && e.code === 'ENOSPC') return new LifeboatError(`no space left on device while ${what}`, 1, { cause: err });
  if (e && (e.code === 'EACCES' || e.code === 'EPERM')) {
    return new LifeboatError(`permission denied while ${what}`, 1, { cause: err });
  }
  return new LifeboatError(`${what}: ${e?.message ?? String(err)}`, 1, { cause: err });
}
