/**
 * The storage backend interface: a flat namespace of immutable named objects,
 * grouped by type. Modelled on restic's backend interface: small, no knowledge
 * of the repository format. Every backend (local directory, S3, ...) implements it.
 *
 * Contract:
 *  - save() publishes the object atomically: a reader sees either nothing or the
 *    whole object, never a prefix (local: write temp + fsync + rename; S3: PUT).
 *    Saving a name that already exists replaces it only for type 'lock'; for other
 *    types objects are content-addressed, so a second save writes identical bytes.
 *  - load() with a range returns exactly `length` bytes or throws.
 *  - Missing objects raise NotFoundError (from src/errors.ts).
 */
export type FileType = 'config' | 'key' | 'snapshot' | 'index' | 'data' | 'lock' | 'wal' | 'binlog';

export const FILE_TYPES: readonly FileType[] = ['config', 'key', 'snapshot', 'index', 'data', 'lock', 'wal', 'binlog'];

export interface ObjectInfo {
  name: string;
  size: number;
  /** Last modification time, where the backend reports it in listings (freshness checks only; never trusted for data). */
  mtime?: Date;
}

export interface Storage {
  /** Human-readable location, e.g. "/srv/backup" or "s3:https://host/bucket/prefix". Never contains secrets. */
  readonly location: string;
  /** Storage kind, used by the 3-2-1 rule checks ('local' | 's3'). */
  readonly kind: string;

  save(type: FileType, name: string, data: Uint8Array): Promise<void>;
  /**
   * Create an object only if it does not exist yet, atomically: exactly one of
   * several concurrent callers succeeds; the others get `false`. Used for the
   * repository config, so two concurrent `init`s cannot both win.
   */
  saveNew(type: FileType, name: string, data: Uint8Array): Promise<boolean>;
  /**
   * Optional, with saveFile(): a directory where a writer may build an object
   * as a file (local: the repository's own data directory, on the objects' file
   * system, so saveFile() publishes by rename). Files there are named `.tmp-*`
   * and are never listed. Storages without it get their objects through save();
   * the repository then builds them in LIFEBOAT_TMPDIR or os.tmpdir().
   */
  tempDir?(): Promise<string>;
  /**
   * Optional: publish the complete file `file` (of `size` bytes, written and
   * closed for writing by the caller, in tempDir()) as the object, atomically
   * as save() does. The storage may move the file (local: fsync + rename); the
   * caller removes it afterwards if it is still there.
   */
  saveFile?(type: FileType, name: string, file: string, size: number): Promise<void>;
  /**
   * Optional: remove `.tmp-*` files (objects a writer was building when it was
   * killed) last modified more than `olderThanMs` ago. Only prune calls it,
   * under the exclusive lock, so no writer of this repository is running.
   */
  removeStaleTemp?(olderThanMs: number): Promise<{ files: number; bytes: number }>;
  load(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer>;
  /**
   * Optional: load() of the range [offset, offset + target.length) into the
   * caller's buffer (exactly that many bytes, or throws as load() does), so a
   * reader that streams many ranges (check --read-data) reuses its buffers
   * instead of allocating one per range. Callers fall back to load().
   */
  loadInto?(type: FileType, name: string, offset: number, target: Uint8Array): Promise<void>;
  stat(type: FileType, name: string): Promise<ObjectInfo>;
  exists(type: FileType, name: string): Promise<boolean>;
  remove(type: FileType, name: string): Promise<void>;
  list(type: FileType): Promise<ObjectInfo[]>;
  /**
   * True when the mtime of listed objects is set by the storage's own clock when
   * an object is written (S3 LastModified; a directory's mtime, set by the
   * kernel or NFS server that stores it), never by the writer: two mtimes from
   * one listing can be compared without trusting any host's clock (repository
   * locks, src/repo/lock-staleness.ts).
   */
  readonly serverTimes?: boolean;
  /** True when deletes and overwrites (except locks) are refused (storage/limits.ts). */
  readonly appendOnly?: boolean;
  /** Bytes moved since the storage was opened (storage/limits.ts counts them for every backend). */
  transferred?(): { bytesUploaded: number; bytesDownloaded: number; uploads: number; downloads: number };
  /**
   * Check that the storage enforces what the repository settings promise (S3
   * object lock: the bucket's default retention). Throws a LifeboatError naming
   * the mismatch; returns lines describing what was verified.
   */
  checkImmutability?(): Promise<string[]>;
  /** Create the container (directory / check bucket). Called by `init`. */
  create(): Promise<void>;
  /** True if a repository config object exists. */
  close(): Promise<void>;
}

/** Map (type, name) to a relative object path. Shared by every backend so layouts are identical. */
export function objectPath(type: FileType, name: string): string {
  switch (type) {
    case 'config':
      return 'config';
    case 'key':
      return `keys/${name}`;
    case 'snapshot':
      return `snapshots/${name}`;
    case 'index':
      return `index/${name}`;
    case 'lock':
      return `locks/${name}`;
    case 'data':
      return `data/${name.slice(0, 2)}/${name}`;
    case 'wal':
      return `wal/${name}`; // archived PostgreSQL WAL entries (src/repo/wal.ts)
    case 'binlog':
      return `binlog/${name}`; // archived MySQL/MariaDB binary logs (src/repo/binlog.ts)
  }
}

export function typeDir(type: FileType): string {
  switch (type) {
    case 'config':
      return '';
    case 'key':
      return 'keys';
    case 'snapshot':
      return 'snapshots';
    case 'index':
      return 'index';
    case 'lock':
      return 'locks';
    case 'data':
      return 'data';
    case 'wal':
      return 'wal';
    case 'binlog':
      return 'binlog';
  }
}

const NAME_RE = /^[0-9a-f]{64}$/;
/** Object names are lowercase hex SHA-256 (config is the only exception). */
export function isValidName(type: FileType, name: string): boolean {
  if (type === 'config') return name === 'config' || name === '';
  return NAME_RE.test(name);
}
