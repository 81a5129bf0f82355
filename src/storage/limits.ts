import { ExitCode, LifeboatError } from '../errors.js';
import { Semaphore } from '../util/sync.js';
import { AppendOnlyError } from './retry.js';
import { type FileType, type ObjectInfo, type Storage, objectPath } from './types.js';

/**
 * The shared layer storage/open.ts puts around every backend:
 *  - append-only guard: remove() of anything but a lock and save() over an
 *    existing object (other than a lock) are refused with AppendOnlyError before
 *    they reach the backend (the backend or server enforces it too where it can:
 *    rclone/SFTP --append-only, an S3 policy without s3:DeleteObject);
 *  - bandwidth limits (KiB/s, token bucket: --limit-upload / --limit-download);
 *  - concurrency limits of uploads (save) and downloads (load);
 *  - byte counters (uploaded / downloaded), recorded per run in the catalog.
 */
export interface StorageLimits {
  /** Upload limit in KiB/s (0/undefined: none). */
  uploadKiBs?: number;
  /** Download limit in KiB/s (0/undefined: none). */
  downloadKiBs?: number;
  /** Concurrent save() calls (default: unlimited). */
  uploadConcurrency?: number;
  /** Concurrent load() calls (default: unlimited). */
  downloadConcurrency?: number;
  appendOnly?: boolean;
}

export interface TransferStats {
  bytesUploaded: number;
  bytesDownloaded: number;
  uploads: number;
  downloads: number;
}

/**
 * Token bucket: `rate` bytes per second, a burst of one second's worth. take(n)
 * reserves n bytes and waits until the bucket has paid for them; concurrent
 * callers queue in order, so the long-run rate is bounded whatever the sizes.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    readonly rate: number,
    private readonly now: () => number = () => performance.now(),
    private readonly sleep: (ms: number) => Promise<void> = (ms) => new Promise((r) => setTimeout(r, ms)),
  ) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new LifeboatError(`bandwidth limit must be a positive number, got ${rate}`, ExitCode.USAGE);
    this.tokens = rate;
    this.last = this.now();
  }

  take(n: number): Promise<void> {
    const run = this.chain.then(async () => {
      const t = this.now();
      this.tokens = Math.min(this.rate, this.tokens + ((t - this.last) / 1000) * this.rate);
      this.last = t;
      this.tokens -= n;
      if (this.tokens < 0) await this.sleep((-this.tokens / this.rate) * 1000);
    });
    this.chain = run.catch(() => {});
    return run;
  }
}

/** Pieces a bandwidth-limited transfer is paid in (so a 16 MiB pack does not wait in one lump). */
const SLICE = 256 * 1024;

export class LimitedStorage implements Storage {
  readonly kind: string;
  readonly location: string;
  readonly appendOnly: boolean;
  readonly serverTimes: boolean;
  private readonly up: TokenBucket | undefined;
  private readonly down: TokenBucket | undefined;
  private readonly upSem: Semaphore | undefined;
  private readonly downSem: Semaphore | undefined;
  private readonly counters: TransferStats = { bytesUploaded: 0, bytesDownloaded: 0, uploads: 0, downloads: 0 };

  constructor(
    readonly inner: Storage,
    limits: StorageLimits = {},
  ) {
    this.kind = inner.kind;
    this.location = inner.location;
    this.appendOnly = limits.appendOnly ?? false;
    this.serverTimes = inner.serverTimes ?? false;
    const pos = (v: number | undefined, what: string) => {
      if (v === undefined || v === 0) return undefined;
      if (!Number.isFinite(v) || v < 0) throw new LifeboatError(`${what} must be a positive number, got ${v}`, ExitCode.USAGE);
      return v;
    };
    const u = pos(limits.uploadKiBs, 'upload limit');
    const d = pos(limits.downloadKiBs, 'download limit');
    if (u) this.up = new TokenBucket(u * 1024);
    if (d) this.down = new TokenBucket(d * 1024);
    const uc = pos(limits.uploadConcurrency, 'upload concurrency');
    const dc = pos(limits.downloadConcurrency, 'download concurrency');
    if (uc) this.upSem = new Semaphore(Math.max(1, Math.floor(uc)));
    if (dc) this.downSem = new Semaphore(Math.max(1, Math.floor(dc)));
    if (inner.removeStaleTemp && !this.appendOnly) this.removeStaleTemp = (ms) => inner.removeStaleTemp!(ms);
    if (inner.tempDir && inner.saveFile) {
      this.tempDir = () => inner.tempDir!();
      this.saveFile = (type, name, file, size) => this.saveFileLimited(type, name, file, size);
    }
  }

  /** Bytes moved through this storage since it was opened. */
  transferred(): TransferStats {
    return { ...this.counters };
  }

  private async pay(bucket: TokenBucket | undefined, n: number): Promise<void> {
    if (!bucket) return;
    for (let left = n; left > 0; left -= SLICE) await bucket.take(Math.min(SLICE, left));
  }

  private refuse(verb: string, type: FileType, name: string): AppendOnlyError {
    return new AppendOnlyError(
      `refused to ${verb} ${objectPath(type, name)} in ${this.location}: the repository is append-only (appendOnly: true); run forget/prune from a trusted host with full credentials and without --append-only`,
    );
  }

  private async gate<T>(sem: Semaphore | undefined, fn: () => Promise<T>): Promise<T> {
    return sem ? sem.with(fn) : fn();
  }

  async save(type: FileType, name: string, data: Uint8Array): Promise<void> {
    if (this.appendOnly && type !== 'lock' && (await this.inner.exists(type, name))) throw this.refuse('overwrite', type, name);
    await this.gate(this.upSem, async () => {
      await this.pay(this.up, data.length);
      await this.inner.save(type, name, data);
    });
    this.counters.bytesUploaded += data.length;
    this.counters.uploads++;
  }

  /** The backend's clean-up of abandoned temporary files (absent when append-only: it deletes). */
  readonly removeStaleTemp?: (olderThanMs: number) => Promise<{ files: number; bytes: number }>;
  /** The backend's temporary directory for saveFile() (absent when the backend cannot publish files). */
  readonly tempDir?: () => Promise<string>;
  readonly saveFile?: (type: FileType, name: string, file: string, size: number) => Promise<void>;

  private async saveFileLimited(type: FileType, name: string, file: string, size: number): Promise<void> {
    if (this.appendOnly && type !== 'lock' && (await this.inner.exists(type, name))) throw this.refuse('overwrite', type, name);
    await this.gate(this.upSem, async () => {
      await this.pay(this.up, size);
      await this.inner.saveFile!(type, name, file, size);
    });
    this.counters.bytesUploaded += size;
    this.counters.uploads++;
  }

  async saveNew(type: FileType, name: string, data: Uint8Array): Promise<boolean> {
    const ok = await this.gate(this.upSem, async () => {
      await this.pay(this.up, data.length);
      return this.inner.saveNew(type, name, data);
    });
    if (ok) {
      this.counters.bytesUploaded += data.length;
      this.counters.uploads++;
    }
    return ok;
  }

  async load(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
    const buf = await this.gate(this.downSem, async () => {
      if (range) await this.pay(this.down, range.length);
      const b = await this.inner.load(type, name, range);
      if (!range) await this.pay(this.down, b.length);
      return b;
    });
    this.counters.bytesDownloaded += buf.length;
    this.counters.downloads++;
    return buf;
  }

  async loadInto(type: FileType, name: string, offset: number, target: Uint8Array): Promise<void> {
    await this.gate(this.downSem, async () => {
      await this.pay(this.down, target.length);
      if (this.inner.loadInto) await this.inner.loadInto(type, name, offset, target);
      else target.set(await this.inner.load(type, name, { offset, length: target.length }));
    });
    this.counters.bytesDownloaded += target.length;
    this.counters.downloads++;
  }

  stat(type: FileType, name: string): Promise<ObjectInfo> {
    return this.inner.stat(type, name);
  }

  exists(type: FileType, name: string): Promise<boolean> {
    return this.inner.exists(type, name);
  }

  async remove(type: FileType, name: string): Promise<void> {
    if (this.appendOnly && type !== 'lock') throw this.refuse('delete', type, name);
    await this.inner.remove(type, name);
  }

  list(type: FileType): Promise<ObjectInfo[]> {
    return this.inner.list(type);
  }

  create(): Promise<void> {
    return this.inner.create();
  }

  /** The backend's immutability check (S3 Object Lock); nothing to check elsewhere. */
  async checkImmutability(): Promise<string[]> {
    return this.inner.checkImmutability ? this.inner.checkImmutability() : [];
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
