import { hostname } from 'node:os';

/**
 * When is another process's repository lock stale? (docs/format.md, "Locks".)
 *
 * A lock is a lease: its holder rewrites it (same object name, `seq` + 1,
 * new `refreshed`) every lease/3, and a lock not rewritten for longer than its
 * lease is stale. The question is whose clock measures "longer than". Hosts'
 * clocks may disagree, so evidence is taken in this order:
 *
 *  1. Same host, process gone: the lock names this host and its pid does not
 *     exist. Immediate.
 *  2. The storage's clock: on backends whose listings carry modification times
 *     set by the storage itself (S3 LastModified, a local or NFS directory's
 *     mtime), the age of a lock is `reference - mtime`, where `reference` is
 *     the mtime of an object this process wrote just before listing (its own
 *     lock, or a probe). Both times come from the same clock, so host clock
 *     skew does not matter. When this evidence exists it decides alone: a lock
 *     the storage saw rewritten within lease + MTIME_GRANULARITY_MS is live,
 *     whatever the holder's or our clock says.
 *  3. Observation: a lock whose name, `seq` and `refreshed` this process has
 *     seen unchanged for longer than its lease, measured on this process's
 *     monotonic clock, is stale. Needs no clock agreement at all, only time.
 *  4. The holder's clock (backends without storage times, e.g. rclone's REST
 *     protocol): `refreshed` older than lease + CLOCK_SKEW_ALLOWANCE_MS by this
 *     host's clock. The allowance is what a wrong clock may be off by before a
 *     live lock is misjudged.
 */

/** Listings of S3 carry whole seconds; a lock is live until lease + this. */
export const MTIME_GRANULARITY_MS = 1000;
/** Rule 4 only: how far two hosts' clocks may disagree without a live lock being misjudged. */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60 * 1000;
/** The lease of a lock written without one (format before addition 1.4: refreshed every 5 min, stale after 30). */
export const LEGACY_LEASE_MS = 30 * 60 * 1000;

export interface LockInfo {
  /** Holder's clock at the last write (= `refreshed`; kept for readers before addition 1.4). */
  time: string;
  exclusive: boolean;
  hostname: string;
  pid: number;
  operation: string;
  /** The lock id (random, 16 hex digits); `id` repeats it. */
  nonce: string;
  /** Addition 1.4: */
  id?: string;
  created?: string;
  refreshed?: string;
  leaseMs?: number;
  /** Refresh counter: 0 when written first, +1 per refresh. */
  seq?: number;
}

/** A lock object as listed: its name, content and the storage's modification time (where the backend reports one). */
export interface LockEntry {
  name: string;
  info: LockInfo;
  mtime?: Date;
  /** The object could not be decrypted or parsed. */
  unreadable?: boolean;
}

export interface Verdict {
  stale: boolean;
  /** Why (for log lines and `list locks`). */
  reason: string;
  /** Age of the lock by the evidence used, ms (undefined when unknown). */
  ageMs?: number;
}

export function leaseOf(info: LockInfo): number {
  const l = info.leaseMs;
  return typeof l === 'number' && Number.isFinite(l) && l > 0 ? l : LEGACY_LEASE_MS;
}

/**
 * Remembers when this process first saw each lock in its current state
 * (name + seq + refreshed), on the monotonic clock: rule 3.
 */
export class LockObserver {
  private readonly seen = new Map<string, { key: string; since: number }>();
  constructor(private readonly now: () => number = () => performance.now()) {}

  /** How long (ms) the lock has been seen unchanged by this observer (0 on first sight or after a change). */
  unchangedFor(e: LockEntry): number {
    const key = `${e.info.seq ?? ''}|${e.info.refreshed ?? e.info.time}|${e.mtime?.getTime() ?? ''}`;
    const t = this.now();
    const prev = this.seen.get(e.name);
    if (!prev || prev.key !== key) {
      this.seen.set(e.name, { key, since: t });
      return 0;
    }
    return t - prev.since;
  }
}

export interface JudgeContext {
  /** The storage's time: mtime of an object this process wrote just before the listing. */
  reference?: Date;
  /** The backend's listing mtimes are set by the storage (storage.serverTimes). */
  serverTimes: boolean;
  observer?: LockObserver;
  /** This host's wall clock, ms (Date.now()). */
  now?: number;
  host?: string;
  /** Is process `pid` alive on this host? */
  alive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

const secs = (ms: number) => `${Math.round(ms / 100) / 10}s`;

export function judgeLock(e: LockEntry, ctx: JudgeContext): Verdict {
  if (e.unreadable) return { stale: true, reason: 'unreadable lock object' };
  const lease = leaseOf(e.info);
  const host = ctx.host ?? hostname();
  if (e.info.hostname === host && Number.isInteger(e.info.pid) && e.info.pid > 0 && !(ctx.alive ?? processAlive)(e.info.pid)) {
    return { stale: true, reason: `process ${e.info.pid} on this host (${host}) is gone` };
  }
  // Rule 3 is fed on every look, whichever rule decides.
  const unchanged = ctx.observer?.unchangedFor(e);
  if (ctx.serverTimes && ctx.reference && e.mtime) {
    const age = ctx.reference.getTime() - e.mtime.getTime();
    if (age > lease + MTIME_GRANULARITY_MS) {
      return { stale: true, reason: `not refreshed for ${secs(age)} by the storage's clock (lease ${secs(lease)})`, ageMs: age };
    }
    return { stale: false, reason: `refreshed ${secs(Math.max(0, age))} ago by the storage's clock (lease ${secs(lease)})`, ageMs: Math.max(0, age) };
  }
  if (unchanged !== undefined && unchanged > lease) {
    return { stale: true, reason: `seen unchanged for ${secs(unchanged)} (lease ${secs(lease)})`, ageMs: unchanged };
  }
  const refreshed = Date.parse(e.info.refreshed ?? e.info.time);
  const now = ctx.now ?? Date.now();
  if (Number.isFinite(refreshed)) {
    const age = now - refreshed;
    if (age > lease + CLOCK_SKEW_ALLOWANCE_MS) {
      return { stale: true, reason: `not refreshed for ${secs(age)} by its holder's clock (lease ${secs(lease)} + ${secs(CLOCK_SKEW_ALLOWANCE_MS)} clock allowance)`, ageMs: age };
    }
    return { stale: false, reason: `refreshed ${secs(Math.max(0, age))} ago by its holder's clock (lease ${secs(lease)})`, ageMs: Math.max(0, age) };
  }
  return { stale: true, reason: 'no valid refresh time' };
}
