import { ExitCode, LifeboatError, errorMessage } from '../errors.js';

/**
 * Deadlines and retries shared by every storage backend.
 *
 * Every storage request runs through storageCall(): each attempt has a hard
 * deadline (an AbortSignal handed to the backend, and a race so that a call
 * that ignores its signal -- a file-system call on a hung NFS mount cannot be
 * cancelled -- is abandoned at the deadline instead of awaited), transient
 * failures are retried with exponential backoff and jitter, and an optional
 * owner signal (job timeout, daemon shutdown) ends every in-flight and future
 * call at once.
 */
export interface StorageTimeouts {
  /** TCP/TLS connect timeout of one attempt (network backends), ms. */
  connectMs: number;
  /** Deadline of one attempt of one request, body included, ms. */
  requestMs: number;
  /**
   * Retries after a transient failure (network error, 5xx, throttling, timeout).
   * A request that timed out is retried at most once: a server that accepted the
   * connection and went silent twice is not coming back within this call.
   */
  retries: number;
}

export const DEFAULT_TIMEOUTS: Readonly<StorageTimeouts> = { connectMs: 30_000, requestMs: 120_000, retries: 3 };

/** Timeouts of one call after which it is not retried again. */
const MAX_TIMEOUTS = 2;

/** A storage request did not finish within its deadline. */
export class StorageTimeoutError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.FATAL);
    this.name = 'StorageTimeoutError';
  }
}

/** The owner of the storage gave up (job timeout, shutdown): every call ends with this. */
export class StorageAbortedError extends LifeboatError {
  constructor(message: string) {
    super(message, ExitCode.FATAL);
    this.name = 'StorageAbortedError';
  }
}

/** The storage refused a write because it is read-only (read-only mount, write-protected medium, read-only credentials). */
export class ReadOnlyStorageError extends LifeboatError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.FATAL, options);
    this.name = 'ReadOnlyStorageError';
  }
}

/**
 * An append-only repository (or append-only credentials) refused a delete or an
 * overwrite: forget/prune must run from a trusted host with full credentials.
 */
export class AppendOnlyError extends LifeboatError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, ExitCode.FATAL, options);
    this.name = 'AppendOnlyError';
  }
}

export function isReadOnlyError(err: unknown): err is ReadOnlyStorageError {
  return err instanceof ReadOnlyStorageError;
}

/** "2m", "30s", "1.5s", "250ms": for messages. */
export function formatMs(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000) return `${Math.round(ms / 100) / 10}s`;
  return `${ms}ms`;
}

function abortedError(signal: AbortSignal, what: string): StorageAbortedError {
  const reason = signal.reason;
  if (reason instanceof StorageAbortedError) return reason;
  const why = reason === undefined ? 'aborted' : errorMessage(reason);
  return new StorageAbortedError(`storage access abandoned while ${what}: ${why}`);
}

let abandoned = 0;

/**
 * Calls given up at their deadline that have not settled since: a file-system
 * call blocked on a hung mount stays blocked in the operating system (and keeps
 * the process from exiting normally). The CLI checks this before it exits.
 */
export function abandonedCalls(): number {
  return abandoned;
}

/**
 * Run fn with a hard deadline: at `ms` (or when `outer` aborts) the signal given
 * to fn is aborted and the returned promise rejects at once, whether or not fn
 * honours its signal. A result or error fn produces after that is discarded.
 */
export function withDeadline<T>(
  fn: (signal: AbortSignal) => Promise<T>,
  ms: number,
  onTimeout: () => Error,
  outer?: AbortSignal,
  what = 'a storage request',
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const ac = new AbortController();
    let done = false;
    let settled = false;
    let counted = false;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = (e: Error) => {
      finish();
      if (!settled && !counted) {
        counted = true;
        abandoned++;
      }
      ac.abort(e);
      reject(e);
    };
    const onOuter = () => {
      if (done) return;
      giveUp(abortedError(outer!, what));
    };
    const finish = () => {
      done = true;
      if (timer) clearTimeout(timer);
      outer?.removeEventListener('abort', onOuter);
    };
    if (outer?.aborted) {
      onOuter();
      return;
    }
    outer?.addEventListener('abort', onOuter, { once: true });
    timer = setTimeout(() => {
      if (done) return;
      giveUp(onTimeout());
    }, Math.max(1, ms));
    let p: Promise<T>;
    try {
      p = fn(ac.signal);
    } catch (err) {
      finish();
      reject(err);
      return;
    }
    const settle = () => {
      settled = true;
      if (counted) {
        counted = false;
        abandoned--;
      }
    };
    p.then(
      (v) => {
        settle();
        if (done) return;
        finish();
        resolve(v);
      },
      (err: unknown) => {
        settle();
        if (done) return; // abandoned: the deadline already answered
        finish();
        reject(err);
      },
    );
  });
}

export interface CallOptions {
  /** What the request does, for messages: "reading data/ab/ab12..." */
  what: string;
  timeouts: StorageTimeouts;
  /** Ends this and every later call (job timeout, shutdown). */
  signal?: AbortSignal | undefined;
  /** Whether an error (a StorageTimeoutError included) may be retried. Default: none are. */
  retryable?: (err: unknown) => boolean;
  /** Whether an error (from the backend) is a timeout, for the at-most-one-retry rule. */
  isTimeout?: (err: unknown) => boolean;
  /** Message of the timeout error, e.g. "S3 endpoint X did not answer within 2m while reading config". */
  timeoutMessage: (ms: number, what: string) => string;
  /** Sleep between attempts (tests). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** Backoff before retry n (1-based): 0.5 s, 1 s, 2 s, ... capped at 10 s, with jitter (50..100 %). */
export function backoffMs(retry: number): number {
  const base = Math.min(10_000, 500 * 2 ** (retry - 1));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** One storage request with deadline, retries and backoff (see the module comment). */
export async function storageCall<T>(opts: CallOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const { timeouts, signal, what } = opts;
  const sleep = opts.sleep ?? abortableSleep;
  let timeouts_ = 0;
  for (let attempt = 1; ; attempt++) {
    if (signal?.aborted) throw abortedError(signal, what);
    try {
      return await withDeadline(
        fn,
        timeouts.requestMs,
        () => new StorageTimeoutError(opts.timeoutMessage(timeouts.requestMs, what)),
        signal,
        what,
      );
    } catch (err) {
      if (err instanceof StorageAbortedError || signal?.aborted) throw signal?.aborted ? abortedError(signal, what) : err;
      const timedOut = err instanceof StorageTimeoutError || (opts.isTimeout?.(err) ?? false);
      if (timedOut) timeouts_++;
      const retry =
        attempt <= timeouts.retries && (opts.retryable?.(err) ?? false) && !(timedOut && timeouts_ >= MAX_TIMEOUTS);
      if (!retry) {
        if (err instanceof StorageTimeoutError && attempt > 1) {
          throw new StorageTimeoutError(`${err.message} (${attempt} attempts)`);
        }
        throw err;
      }
      await sleep(backoffMs(attempt), signal);
    }
  }
}

/** Timeouts from a partial setting, with defaults and sanity bounds. */
export function resolveTimeouts(t: Partial<StorageTimeouts> | undefined, defaults: StorageTimeouts = DEFAULT_TIMEOUTS): StorageTimeouts {
  const pick = (v: number | undefined, d: number) => (v !== undefined && Number.isFinite(v) && v > 0 ? v : d);
  return {
    connectMs: pick(t?.connectMs, defaults.connectMs),
    requestMs: pick(t?.requestMs, defaults.requestMs),
    retries: t?.retries !== undefined && Number.isInteger(t.retries) && t.retries >= 0 ? Math.min(t.retries, 20) : defaults.retries,
  };
}
