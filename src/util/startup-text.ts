import { requireAddon } from './native.js';

/**
 * The node executable's start-up pages given back (native/mem.c dropExecutableText).
 *
 * A command's peak RSS counts the pages of the node executable it has touched: ~38 MB once the
 * command's modules and the repository's index are loaded (20 MB of code, 18 MB of read-only
 * data: the parser and compilers, the startup snapshot, module loading), of which the work that
 * follows uses ~13 MB (docs/benchmarks.md, "The executable's start-up pages"). These are clean
 * file pages: unmapped from this process they stay in the page cache, and a page still in use is
 * mapped again on its next touch (a minor fault). Only the executable's segments that cannot be
 * written are dropped (the loader's relocations go to the writable one), so nothing is lost. It
 * costs ~4-5 ms of the main thread a drop and the faults of the pages mapped again.
 *
 * releaseStartupText() drops them now and again SETTLE_AT_MS later (the command's own first
 * compilations, after its repository is open, touch more of them again: the drop at 150 ms gives
 * back what the first of them touched before a short command's peak, the one at 500 ms what the
 * rest did; docs/benchmarks.md, "The start-up pages dropped twice after the open"). cli/context.ts openRepo
 * also drops them (dropExecutableText) once the key is open and before the index is read: reading a
 * large index on top of them was the peak (an unchanged re-backup of 100,000 files, 97-98 MB, now
 * 79-82; docs/benchmarks.md, "The start-up pages dropped before the index"). Called once a command's
 * repository is open (cli/context.ts openRepo and sourceBackupSettings, cli/wal-fast.ts, and
 * cli/commands/pg.ts openLight for the full CLI's wal-push and wal-fetch), and by the
 * daemon and `serve` once no job runs (serviceSettings' idle hook). LIFEBOAT_RELEASE_TEXT=0 keeps them.
 *
 * releaseStartupTextEvery(): drops them every EVERY_MS until it is stopped, for a long piece of work
 * that goes through phases (check --read-data: the walk of the trees, the start of the pack reads
 * and its compilations touched ~9 MB more of them after the second drop, which stayed resident to
 * the end; its peak comes late: docs/benchmarks.md, "check --read-data: the executable's pages
 * dropped each second").
 */
interface MemAddon {
  dropExecutableText?(): number;
}

/**
 * The releases after the first, at these milliseconds after it. With one at 500 ms only, a dump's
 * restore (the bench's day 3, ~1 s) peaked at ~0.5 s with the pages its first compilations touched
 * still resident: 93.7 MiB (median of 12) against 83.0 with the drop at 150 ms added, at the same
 * wall and CPU time; the other steps of the bench moved within their spread.
 */
export const SETTLE_AT_MS: readonly number[] = [150, 500];

let pending: NodeJS.Timeout | undefined;
const done = { releases: 0, kB: 0, ms: 0 };

/** Releases so far, the kB of address range they gave back and the milliseconds they took (tests, docs/benchmarks.md). */
export function startupTextReleases(): { releases: number; kB: number; ms: number } {
  return { ...done };
}

/** Drop the executable's read-only pages now: the kB of address range given back, or -1 (off, no addon, not Linux with glibc). */
export function dropExecutableText(env: NodeJS.ProcessEnv = process.env): number {
  if (env.LIFEBOAT_RELEASE_TEXT === '0') return -1;
  const t = performance.now();
  const kB = requireAddon<MemAddon>('mem')?.dropExecutableText?.() ?? -1;
  if (kB >= 0) {
    done.releases++;
    done.kB += kB;
    done.ms += performance.now() - t;
  }
  return kB;
}

/** Drop them now and again at each of SETTLE_AT_MS (timers that keep no process alive); see above. */
export function releaseStartupText(env: NodeJS.ProcessEnv = process.env, at: readonly number[] = SETTLE_AT_MS): void {
  // one underway (a command that opened its repository and then set its source's settings): its later drops will do
  if (pending || dropExecutableText(env) < 0) return;
  const next = (k: number) => {
    if (k >= at.length) return;
    pending = setTimeout(
      () => {
        pending = undefined;
        dropExecutableText(env);
        next(k + 1);
      },
      Math.max(0, at[k]! - (k > 0 ? at[k - 1]! : 0)),
    );
    pending.unref();
  };
  next(0);
}

/** How often releaseStartupTextEvery drops them (LIFEBOAT_RELEASE_TEXT_EVERY_MS, at least 10, overrides). */
export const EVERY_MS = 1000;

/**
 * Drop them now and every EVERY_MS (a timer that keeps no process alive) until the returned
 * function is called; see above. Long-lived processes call it around one piece of work and stop it.
 */
export function releaseStartupTextEvery(env: NodeJS.ProcessEnv = process.env): () => void {
  if (dropExecutableText(env) < 0) return () => {};
  // (each drop costs ~4 ms of this thread: nothing below 10 ms)
  const asked = Number(env.LIFEBOAT_RELEASE_TEXT_EVERY_MS);
  const every = Number.isFinite(asked) && asked >= 10 ? asked : EVERY_MS;
  const timer = setInterval(() => dropExecutableText(env), every);
  timer.unref();
  return () => clearInterval(timer);
}
