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
 * releaseStartupText() drops them now and once more SETTLE_MS later (the command's own first
 * compilations, after its repository is open, touch more of them again). cli/context.ts openRepo
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

/** The second release, this long after the first. */
export const SETTLE_MS = 500;

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

/** Drop them now and once more SETTLE_MS later (a timer that keeps no process alive); see above. */
export function releaseStartupText(env: NodeJS.ProcessEnv = process.env): void {
  // one underway (a command that opened its repository and then set its source's settings): its second drop will do
  if (pending || dropExecutableText(env) < 0) return;
  pending = setTimeout(() => {
    pending = undefined;
    dropExecutableText(env);
  }, SETTLE_MS);
  pending.unref();
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
