import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { LifeboatError, LockError, NotFoundError } from '../errors.js';
import { isReadOnlyError } from '../storage/retry.js';
import type { Storage } from '../storage/types.js';
import { open, seal, sha256 } from './crypto.js';

/**
 * Repository locks (locks/<sha256>): shared for backup/restore/check, exclusive
 * for prune and key removal. A lock is refreshed every REFRESH_MS; a lock whose
 * time is older than STALE_MS, or whose process on this same host is gone, is stale.
 */
export interface LockInfo {
  time: string;
  exclusive: boolean;
  hostname: string;
  pid: number;
  operation: string;
  nonce: string;
}

/**
 * Operations that only read the repository. On a repository that cannot be
 * written (read-only mount, write-protected medium, read-only S3 credentials)
 * they go on without a lock, and with --no-lock they take none; every other
 * operation needs its lock and fails on a read-only repository.
 */
export const READ_ONLY_OPERATIONS: ReadonlySet<string> = new Set([
  'restore',
  'check',
  'ls',
  'snapshots',
  'drill',
  'wal-fetch',
  'copy (source)',
  'copy WAL (source)',
]);

export const READ_ONLY_NOTICE = 'repository is read-only; continuing without a lock';

export const REFRESH_MS = 5 * 60 * 1000;
export const STALE_MS = 30 * 60 * 1000;

export function isStale(l: LockInfo, now = Date.now()): boolean {
  if (now - Date.parse(l.time) > STALE_MS) return true;
  if (l.hostname === hostname()) {
    try {
      process.kill(l.pid, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true;
    }
  }
  return false;
}

export async function readLocks(storage: Storage, encKey: Buffer): Promise<Array<{ name: string; info: LockInfo }>> {
  const out: Array<{ name: string; info: LockInfo }> = [];
  for (const f of await storage.list('lock')) {
    try {
      const info = JSON.parse(open(encKey, await storage.load('lock', f.name), `lock ${f.name}`).toString()) as LockInfo;
      out.push({ name: f.name, info });
    } catch (err) {
      if (err instanceof NotFoundError) continue; // removed while we listed
      // An unreadable lock file (e.g. half-written by an old version) is treated as stale.
      out.push({ name: f.name, info: { time: new Date(0).toISOString(), exclusive: true, hostname: '?', pid: 0, operation: '?', nonce: '' } });
    }
  }
  return out;
}

export class Lock {
  private name = '';
  private timer: NodeJS.Timeout | undefined;
  private released = false;
  /** True for the stand-in of a read-only repository or --no-lock: nothing was written, nothing is held. */
  held = true;

  private constructor(
    private readonly storage: Storage,
    private readonly encKey: Buffer,
    private readonly info: LockInfo,
  ) {}

  static async acquire(
    storage: Storage,
    encKey: Buffer,
    opts: {
      exclusive: boolean;
      operation: string;
      retryMs?: number;
      /** The operation only reads: on a read-only repository go on without a lock (and call onReadOnly). */
      readOnlyOk?: boolean;
      onReadOnly?: (message: string) => void;
    },
  ): Promise<Lock> {
    const info: LockInfo = {
      time: new Date().toISOString(),
      exclusive: opts.exclusive,
      hostname: hostname(),
      pid: process.pid,
      operation: opts.operation,
      nonce: randomBytes(8).toString('hex'),
    };
    const lock = new Lock(storage, encKey, info);
    const deadline = Date.now() + (opts.retryMs ?? 0);
    let delay = 200;
    for (;;) {
      try {
        await lock.write();
      } catch (err) {
        if (!isReadOnlyError(err)) throw err;
        if (opts.readOnlyOk && !opts.exclusive) {
          opts.onReadOnly?.(READ_ONLY_NOTICE);
          return Lock.none(storage, encKey, info);
        }
        throw new LifeboatError(
          `the repository at ${storage.location} is read-only: "${opts.operation}" writes to it and cannot run (${(err as Error).message})`,
          1,
          { cause: err },
        );
      }
      const conflict = await lock.findConflict();
      if (!conflict) break;
      await lock.removeOwn();
      if (Date.now() >= deadline) {
        const c = conflict.info;
        throw new LockError(
          `repository is locked ${c.exclusive ? 'exclusively' : ''} by "${c.operation}" (pid ${c.pid} on ${c.hostname}, since ${c.time}); ` +
            `wait for it to finish, or if that process is gone run "lifeboat unlock"`.replace('  ', ' '),
        );
      }
      await new Promise((r) => setTimeout(r, delay + Math.floor(Math.random() * delay)));
      delay = Math.min(delay * 2, 5000);
    }
    lock.timer = setInterval(() => void lock.refresh().catch(() => {}), REFRESH_MS);
    lock.timer.unref();
    return lock;
  }

  /** A lock that holds nothing (read-only repository, --no-lock). */
  static none(storage: Storage, encKey: Buffer, info: LockInfo): Lock {
    const l = new Lock(storage, encKey, info);
    l.released = true;
    l.held = false;
    return l;
  }

  private async write(): Promise<void> {
    this.info.time = new Date().toISOString();
    const bytes = seal(this.encKey, Buffer.from(JSON.stringify(this.info)));
    const name = sha256(bytes);
    await this.storage.save('lock', name, bytes);
    this.name = name;
  }

  private async removeOwn(): Promise<void> {
    if (!this.name) return;
    await this.storage.remove('lock', this.name).catch(() => {});
    this.name = '';
  }

  private async findConflict(): Promise<{ name: string; info: LockInfo } | undefined> {
    for (const l of await readLocks(this.storage, this.encKey)) {
      if (l.name === this.name || l.info.nonce === this.info.nonce) continue;
      if (isStale(l.info)) continue;
      if (this.info.exclusive || l.info.exclusive) return l;
    }
    return undefined;
  }

  async refresh(): Promise<void> {
    if (this.released) return;
    const old = this.name;
    await this.write();
    if (old && old !== this.name) await this.storage.remove('lock', old).catch(() => {});
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.timer) clearInterval(this.timer);
    await this.removeOwn();
  }
}

/** Remove stale locks (or all with `all`). Returns the names removed. */
export async function removeLocks(storage: Storage, encKey: Buffer, all: boolean): Promise<string[]> {
  const removed: string[] = [];
  for (const l of await readLocks(storage, encKey)) {
    if (all || isStale(l.info)) {
      await storage.remove('lock', l.name).catch(() => {});
      removed.push(l.name);
    }
  }
  return removed;
}
