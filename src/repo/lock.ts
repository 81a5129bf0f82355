import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { LifeboatError, LockError, LockLostError, NotFoundError, errorMessage } from '../errors.js';
import { isReadOnlyError } from '../storage/retry.js';
import type { Storage } from '../storage/types.js';
import { open, seal, sha256 } from './crypto.js';
import { judgeLock, LockObserver, leaseOf, type LockEntry, type LockInfo, type Verdict } from './lock-staleness.js';

/**
 * Repository locks (locks/<name>), leased (docs/format.md, "Locks"): shared
 * for backup/restore/check/forget, exclusive for prune, repair and log-archive
 * pruning. A holder refreshes its lock every lease/3 (`seq` + 1: the next
 * object is written, then the previous one deleted);
 * a lock not rewritten for longer than its lease is stale (lock-staleness.ts
 * says by whose clock) and is removed by the next process that wants the
 * repository, with a log line naming it. A holder that has not managed to
 * refresh for 5/6 of its lease has lost the lock: its signal aborts, check()
 * throws, and onLost is called (the CLI ends an exclusive operation there).
 */
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

/**
 * Default lease: 5 minutes. A crashed holder blocks others for at most about
 * this long (restic: 30 minutes), and a live holder survives a storage outage
 * of about 3 minutes (it refreshes every 100 s and gives up after 250 s without
 * a successful refresh) before it stops its operation. Shorter leases make a
 * long prune give up on an ordinary storage hiccup; longer ones keep everyone
 * waiting after a crash. LIFEBOAT_LOCK_LEASE overrides it (cli/context.ts).
 */
export const DEFAULT_LEASE_MS = 5 * 60 * 1000;
/** Shortest lease accepted (tests use a few seconds). */
export const MIN_LEASE_MS = 1000;
/** The holder gives the lock up when its last successful refresh started this fraction of the lease ago. */
const LOST_AFTER = 5 / 6;

/** The operation of the short-lived probe object `list locks` and `unlock` write to learn the storage's time. */
const PROBE_OPERATION = 'list locks (probe)';

/**
 * The object name of a lock at refresh `seq`. Each refresh writes the next
 * name and then deletes the previous one (never an overwrite: append-only
 * servers such as `rclone serve restic --append-only` refuse overwrites even
 * under locks/), so a lock may briefly have two objects; readers group them by id.
 */
export function lockObjectName(id: string, seq = 0): string {
  return sha256(Buffer.from(`lifeboat lock ${id} ${seq}`));
}

/**
 * Every lock object, read. An object listed but gone when read was either
 * released or replaced by its holder's refresh, which writes the next object
 * before it deletes the previous one: that next object may be missing from
 * this listing, so the listing is taken again, else a live lock could be
 * missed entirely between two of its objects. Objects already read are not
 * read again (an object's name is unique to its id and seq), so each new
 * listing is followed only by reads of the objects new in it: a short window
 * even when every storage call is slow (a loaded machine, a distant storage)
 * and the holder refreshes more often than one whole listing-and-read pass
 * takes. If objects keep vanishing anyway, it fails (LockError) rather than
 * answer without a lock that may be live. An object that does not decode is
 * read once more after the next listing (PARTIAL_WAIT_MS later: one being
 * written in place, as rclone's local remote does) before it counts as an
 * unreadable, stale lock.
 */
export const READ_LOCKS_ATTEMPTS = 30;
/** How long readLocks waits before reading again an object that did not decode (one being written, perhaps). */
const PARTIAL_WAIT_MS = 100;
export async function readLocks(storage: Storage, encKey: Buffer): Promise<LockEntry[]> {
  const read = new Map<string, LockEntry | 'unreadable'>();
  /** Objects that did not decode once: read again after the next listing before they are judged unreadable. */
  const suspect = new Set<string>();
  for (let attempt = 1; ; attempt++) {
    const out: LockEntry[] = [];
    let vanished = false;
    let partial = false;
    for (const f of await storage.list('lock')) {
      const mtime = f.mtime ? { mtime: f.mtime } : {};
      const known = read.get(f.name);
      if (known && known !== 'unreadable') {
        out.push({ ...known, ...mtime });
        continue;
      }
      try {
        if (known === 'unreadable') throw new Error('not a lock');
        const info = JSON.parse(open(encKey, await storage.load('lock', f.name), `lock ${f.name}`).toString()) as LockInfo;
        if (!info || typeof info !== 'object' || typeof info.exclusive !== 'boolean') throw new Error('not a lock');
        read.set(f.name, { name: f.name, info });
        out.push({ name: f.name, info, ...mtime });
      } catch (err) {
        if (err instanceof NotFoundError) {
          vanished = true; // released, or replaced by a refresh: list again
          continue;
        }
        // A backend that writes objects in place (rclone's local remote behind `serve restic`) lists a
        // refresh's object while it is being written: read it once more, a moment later, before judging it
        // (judged unreadable, it was a second, stale lock beside the live one, and `unlock` removed it).
        // (One already judged unreadable is in `suspect`: it passed here once.)
        if (!suspect.has(f.name)) {
          suspect.add(f.name);
          partial = true;
          continue;
        }
        // An unreadable lock object (damaged, or half-written by a very old version) is stale.
        read.set(f.name, 'unreadable');
        out.push({
          name: f.name,
          info: { time: new Date(0).toISOString(), exclusive: true, hostname: '?', pid: 0, operation: '?', nonce: '' },
          unreadable: true,
          ...mtime,
        });
      }
    }
    if (!vanished && !partial) return out;
    if (partial && !vanished) await new Promise((r) => setTimeout(r, PARTIAL_WAIT_MS));
    if (attempt >= READ_LOCKS_ATTEMPTS) {
      throw new LockError(
        `the lock objects of ${storage.location} kept changing while they were read (${attempt} listings): cannot tell which locks are held; try again`,
      );
    }
  }
}

/**
 * One entry per lock: a lock has one object, or briefly two while a refresh
 * replaces it (or more, if deleting the previous one failed). The entry is its
 * newest object (highest seq); `names` lists them all. Unreadable objects are
 * each their own lock.
 */
export function groupLocks(all: LockEntry[]): Array<{ entry: LockEntry; names: string[] }> {
  const byId = new Map<string, LockEntry[]>();
  for (const l of all) {
    const key = l.info.nonce && !l.unreadable ? `id ${l.info.nonce}` : `object ${l.name}`;
    byId.set(key, [...(byId.get(key) ?? []), l]);
  }
  return [...byId.values()].map((group) => ({
    entry: group.reduce((a, b) => ((b.info.seq ?? 0) > (a.info.seq ?? 0) ? b : a)),
    names: group.map((g) => g.name),
  }));
}

/** Run a storage call with a deadline of its own (the call itself may go on in the background). */
async function withDeadline<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new LifeboatError(`${what}: no answer from the storage within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

export interface LockOptions {
  exclusive: boolean;
  operation: string;
  retryMs?: number;
  leaseMs?: number;
  /** The holder's host name recorded in the lock (default: os.hostname()). */
  host?: string;
  /** The operation only reads: on a read-only repository go on without a lock (and call onReadOnly). */
  readOnlyOk?: boolean;
  onReadOnly?: (message: string) => void;
  /** A stale lock of another process was removed (one line naming it). */
  onNotice?: (message: string) => void;
  /** The lease ran out before a refresh succeeded, or the lock object was removed by someone else. */
  onLost?: (err: LockLostError, lock: Lock) => void;
}

export class Lock {
  /** The current lock object (changes with every refresh). */
  name: string;
  /** Objects of earlier refreshes whose removal failed: removed again on release. */
  private readonly leftovers = new Set<string>();
  private refreshTimer: NodeJS.Timeout | undefined;
  private lostTimer: NodeJS.Timeout | undefined;
  private released = false;
  private inflight: Promise<void> | undefined;
  /** Monotonic time (performance.now) at which the last successful write started. */
  private lastOk = 0;
  private lastError = '';
  private lostError: LockLostError | undefined;
  private readonly controller = new AbortController();
  /** True for the stand-in of a read-only repository or --no-lock: nothing was written, nothing is held. */
  held = true;
  /** Aborted (reason: the LockLostError) when the lock is lost. */
  readonly signal: AbortSignal = this.controller.signal;

  private constructor(
    private readonly storage: Storage,
    private readonly encKey: Buffer,
    readonly info: LockInfo,
    private readonly opts: Pick<LockOptions, 'onLost'> = {},
  ) {
    this.name = lockObjectName(info.nonce, info.seq ?? 0);
  }

  get exclusive(): boolean {
    return this.info.exclusive;
  }

  get leaseMs(): number {
    return leaseOf(this.info);
  }

  /** The lock was lost (lease ran out without a refresh, or its object was removed by another process). */
  get lost(): boolean {
    return this.lostError !== undefined;
  }

  static newInfo(exclusive: boolean, operation: string, leaseMs = DEFAULT_LEASE_MS, host = hostname()): LockInfo {
    const id = randomBytes(8).toString('hex');
    const now = new Date().toISOString();
    return { time: now, exclusive, hostname: host, pid: process.pid, operation, nonce: id, id, created: now, refreshed: now, leaseMs: Math.max(MIN_LEASE_MS, leaseMs), seq: 0 };
  }

  static async acquire(storage: Storage, encKey: Buffer, opts: LockOptions): Promise<Lock> {
    const info = Lock.newInfo(opts.exclusive, opts.operation, opts.leaseMs, opts.host);
    const lock = new Lock(storage, encKey, info, opts);
    const lease = lock.leaseMs;
    const deadline = Date.now() + (opts.retryMs ?? 0);
    const observer = new LockObserver();
    // Waiting between attempts: short enough that a stale lock is noticed soon after its lease ends.
    const maxDelay = Math.max(200, Math.min(5000, Math.floor(lease / 4)));
    let delay = 200;
    for (;;) {
      const started = performance.now();
      try {
        await lock.write();
      } catch (err) {
        if (!isReadOnlyError(err)) throw err;
        if (opts.readOnlyOk && !opts.exclusive) {
          opts.onReadOnly?.(READ_ONLY_NOTICE);
          return Lock.none(storage, encKey, info);
        }
        throw new LifeboatError(
          `the repository at ${storage.location} is read-only: "${opts.operation}" writes to it and cannot run (${errorMessage(err)})`,
          1,
          { cause: err },
        );
      }
      lock.lastOk = started;
      let conflict: { entry: LockEntry; verdict: Verdict } | undefined;
      let removedStale = false;
      try {
        const all = await readLocks(storage, encKey);
        const reference = all.find((l) => l.name === lock.name)?.mtime;
        for (const { entry: l, names } of groupLocks(all)) {
          if (l.info.nonce === info.nonce || names.includes(lock.name)) continue;
          const verdict = judgeLock(l, { serverTimes: !!storage.serverTimes, observer, ...(reference ? { reference } : {}) });
          if (verdict.stale) {
            for (const n of names) await storage.remove('lock', n).catch(() => {});
            opts.onNotice?.(`removed stale lock ${describeLock(l)}: ${verdict.reason}`);
            removedStale = true;
            continue;
          }
          if (l.info.operation === PROBE_OPERATION) continue; // protects nothing: a reader learning the storage's time
          if (opts.exclusive || l.info.exclusive) conflict ??= { entry: l, verdict };
        }
      } catch (err) {
        await lock.removeOwn();
        throw err;
      }
      if (!conflict) break;
      await lock.removeOwn();
      if (removedStale) continue; // look again at once: the conflict may have been judged before a removal
      if (Date.now() >= deadline) {
        const c = conflict.entry.info;
        throw new LockError(
          `repository is locked ${c.exclusive ? 'exclusively ' : ''}by "${c.operation}" (pid ${c.pid} on ${c.hostname}, since ${c.created ?? c.time}; ${conflict.verdict.reason}); ` +
            `wait for it to finish (--retry-lock), or if that process is gone run "lifeboat unlock" (a crashed holder's lock is stale after its lease)`,
        );
      }
      await new Promise((r) => setTimeout(r, Math.min(delay + Math.floor(Math.random() * delay), Math.max(0, deadline - Date.now()) + 50)));
      delay = Math.min(delay * 2, maxDelay);
    }
    lock.start();
    return lock;
  }

  /** A lock that holds nothing (read-only repository, --no-lock). */
  static none(storage: Storage, encKey: Buffer, info: LockInfo): Lock {
    const l = new Lock(storage, encKey, info);
    l.released = true;
    l.held = false;
    return l;
  }

  private start(): void {
    const lease = this.leaseMs;
    this.refreshTimer = setInterval(() => {
      if (!this.inflight && !this.released && !this.lost) {
        this.inflight = this.refresh()
          .catch((err) => {
            this.lastError = errorMessage(err);
          })
          .finally(() => {
            this.inflight = undefined;
          });
      }
    }, Math.max(100, Math.floor(lease / 3)));
    this.refreshTimer.unref();
    this.armLostTimer();
  }

  private armLostTimer(): void {
    if (this.lostTimer) clearTimeout(this.lostTimer);
    const due = this.lastOk + this.leaseMs * LOST_AFTER - performance.now();
    this.lostTimer = setTimeout(() => {
      if (this.released || this.lost) return;
      if (performance.now() - this.lastOk >= this.leaseMs * LOST_AFTER) {
        this.markLost(
          `could not refresh it for ${Math.round((performance.now() - this.lastOk) / 1000)} s of its ${Math.round(this.leaseMs / 1000)} s lease` +
            (this.lastError ? ` (last error: ${this.lastError})` : ''),
        );
      } else this.armLostTimer();
    }, Math.max(0, due));
    this.lostTimer.unref();
  }

  private markLost(why: string): void {
    if (this.lost || this.released) return;
    this.lostError = new LockLostError(
      `"${this.info.operation}" lost its ${this.info.exclusive ? 'exclusive ' : ''}repository lock ${this.info.nonce} on ${this.storage.location}: ${why}; ` +
        'another process may now take the repository, so the operation stops here (what it already wrote is consistent; run it again)',
    );
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.lostTimer) clearTimeout(this.lostTimer);
    this.controller.abort(this.lostError);
    this.opts.onLost?.(this.lostError, this);
  }

  /** Throw the LockLostError if the lock was lost (call before every step that must be protected). */
  check(): void {
    if (this.lostError) throw this.lostError;
  }

  /** The error to report for a failure of the protected operation: the lock loss if it happened (the root cause), else err. */
  cause(err: unknown): unknown {
    return this.lostError ?? err;
  }

  private serialize(): Buffer {
    return seal(this.encKey, Buffer.from(JSON.stringify(this.info)));
  }

  /** Write the lock object for the current seq; returns the name of the object it replaces (if the name changed). */
  private async write(): Promise<string | undefined> {
    const now = new Date().toISOString();
    this.info.time = now;
    this.info.refreshed = now;
    const name = lockObjectName(this.info.nonce, this.info.seq ?? 0);
    await this.storage.save('lock', name, this.serialize());
    const prev = this.name;
    this.name = name;
    if (prev === name) return undefined;
    // Recorded here, not by the caller: a write that outlived its deadline still gets its predecessor removed later.
    this.leftovers.add(prev);
    return prev;
  }

  private async removeOwn(): Promise<void> {
    await this.storage.remove('lock', this.name).catch(() => {});
  }

  private async removeLeftovers(): Promise<void> {
    for (const n of [...this.leftovers]) {
      try {
        await this.storage.remove('lock', n);
        this.leftovers.delete(n);
      } catch (err) {
        if (err instanceof NotFoundError) this.leftovers.delete(n);
      }
    }
  }

  /** Refresh: write the lock as seq + 1, then delete the previous object. Each storage call has a deadline of lease/6. */
  async refresh(): Promise<void> {
    if (this.released || this.lost) return;
    const started = performance.now();
    const callMs = Math.max(50, Math.floor(this.leaseMs / 6));
    try {
      await withDeadline(callMs, 'refreshing the repository lock', () => this.storage.stat('lock', this.name));
    } catch (err) {
      if (err instanceof NotFoundError) {
        this.markLost('its lock object was removed by another process ("lifeboat unlock --remove-all", or judged stale)');
        return;
      }
      throw err;
    }
    this.info.seq = (this.info.seq ?? 0) + 1;
    const prev = await withDeadline(callMs, 'refreshing the repository lock', () => this.write());
    if (this.released || this.lost) return;
    this.lastOk = started;
    this.lastError = '';
    this.armLostTimer();
    if (prev) {
      this.leftovers.delete(prev);
      try {
        await withDeadline(callMs, 'removing the previous lock object', () => this.storage.remove('lock', prev));
      } catch (err) {
        // Gone before we removed it: another process removed this lock (between our check and our write).
        if (err instanceof NotFoundError) {
          this.markLost('its lock object was removed by another process ("lifeboat unlock --remove-all", or judged stale)');
          return;
        }
        this.leftovers.add(prev);
      }
    }
    await withDeadline(callMs, 'removing earlier lock objects', () => this.removeLeftovers()).catch(() => {});
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    if (this.lostTimer) clearTimeout(this.lostTimer);
    // A refresh still in flight would put the object back after the removal: let it end first (it has a deadline).
    await this.inflight;
    await withDeadline(Math.max(1000, Math.floor(this.leaseMs / 6)), 'removing the repository lock', async () => {
      await this.removeOwn();
      await this.removeLeftovers();
    }).catch(() => {});
  }
}

/** "prune" (exclusive, pid 123 on db1, lock 0123abcd…): one line naming a lock. */
export function describeLock(l: LockEntry): string {
  if (l.unreadable) return `${l.name.slice(0, 12)} (unreadable)`;
  const i = l.info;
  return `${i.nonce || l.name.slice(0, 12)} of "${i.operation}" (${i.exclusive ? 'exclusive' : 'shared'}, pid ${i.pid} on ${i.hostname}, created ${i.created ?? i.time}, refreshed ${i.refreshed ?? i.time})`;
}

export interface LockStatus extends LockEntry {
  verdict: Verdict;
  /** Every object of this lock (the current one and any an interrupted refresh left behind). */
  names: string[];
}

/**
 * The locks of a repository and whether each is stale. On a writable
 * repository whose backend keeps storage times, a probe object is written and
 * removed to learn the storage's current time (rule 2 of lock-staleness.ts);
 * otherwise the holder's clock decides (rule 4).
 */
export async function lockStatus(storage: Storage, encKey: Buffer): Promise<LockStatus[]> {
  let probe: string | undefined;
  if (storage.serverTimes) {
    const info = Lock.newInfo(false, PROBE_OPERATION, MIN_LEASE_MS);
    probe = lockObjectName(info.nonce);
    try {
      await storage.save('lock', probe, seal(encKey, Buffer.from(JSON.stringify(info))));
    } catch (err) {
      if (!isReadOnlyError(err)) throw err;
      probe = undefined;
    }
  }
  try {
    const all = await readLocks(storage, encKey);
    const reference = probe ? all.find((l) => l.name === probe)?.mtime : undefined;
    return groupLocks(all.filter((l) => l.name !== probe)).map(({ entry, names }) => ({
      ...entry,
      names,
      verdict: judgeLock(entry, { serverTimes: !!storage.serverTimes, ...(reference ? { reference } : {}) }),
    }));
  } finally {
    if (probe) await storage.remove('lock', probe).catch(() => {});
  }
}

/** How many times removeLocks lists and removes before it gives up on a lock that keeps coming back. */
const REMOVE_PASSES = 10;

/** Remove stale locks (or all with `all`). Returns the locks removed, with the reason. */
export async function removeLocks(storage: Storage, encKey: Buffer, all: boolean): Promise<LockStatus[]> {
  const removed = new Map<string, LockStatus>();
  const key = (l: LockStatus): string => l.info.nonce || l.name;
  // A live holder's refresh (write seq + 1, then remove seq) may run between our listing and our
  // removal: its removal of the old object then succeeds before ours, the new object was never
  // listed, and the holder goes on unaware. So list again until none of the removed locks has an
  // object left: a holder whose object is gone at its next refresh, or whose removal of the
  // previous object finds it gone, stops (Lock.refresh). Bounded: a holder refreshing faster than
  // one pass would keep it going.
  for (let pass = 0; pass < REMOVE_PASSES; pass++) {
    const now = (await lockStatus(storage, encKey)).filter((l) => (pass === 0 || removed.has(key(l))) && (all || l.verdict.stale));
    if (now.length === 0) return [...removed.values()];
    for (const l of now) {
      for (const n of l.names) await storage.remove('lock', n).catch(() => {});
      if (!removed.has(key(l))) removed.set(key(l), l);
    }
  }
  const left = (await lockStatus(storage, encKey)).filter((l) => removed.has(key(l)));
  if (left.length > 0) throw new LifeboatError(`could not remove lock(s) ${left.map(describeLock).join(', ')}: each was written again after ${REMOVE_PASSES} removals (a holder refreshing faster than a listing)`);
  return [...removed.values()];
}

