import { requireAddon } from './native.js';
import { collector } from './reclaim.js';

interface MemAddon {
  mmapThreshold(bytes: number): boolean;
  mmapped(): number;
  trim(): boolean;
}

/**
 * The mmap threshold (bytes) for each kind of work that sets one; `LIFEBOAT_MMAP_THRESHOLD` (bytes)
 * overrides it for all of them, 0 keeps glibc's own. Check and the light commands set none.
 */
export const MMAP_THRESHOLDS = {
  /**
   * A command that moves one stream (CliContext.openRepo `bulk`, a stream snapshot's restore).
   * With 2 MiB a second direct base backup of a 494 MB cluster peaked at 176-192 MB instead of
   * 188-272 (about +4% CPU: the kernel zeroes each new mapping), a daily dump backup at 110 instead
   * of 122 MB at the same CPU; 1 MiB saved a little more for 3-7% more CPU (docs/benchmarks.md,
   * "One mapping per large buffer").
   */
  stream: 2 << 20,
  /**
   * A files backup (cli/commands/backup.ts): a re-backup after a 5% change delta-encodes its changed
   * large files' chunks through bases and plaintexts of 0.5-8 MiB, and peaked at 154-184 MB with
   * glibc's threshold against 146-163 with 2 MiB, at the same wall and CPU time (1 MiB: the same
   * peak for 4% more time); a first backup at 143-166 (median 151) against 152-164 (158).
   */
  filesBackup: 2 << 20,
  /**
   * A files restore (cli/commands/restore.ts): a snapshot whose changed files are stored as deltas
   * restores them through 0.5-8 MiB plaintexts, bases and chain levels that, once glibc had raised
   * its threshold, came from the heap and left ~20 MB free in it for the rest of the run
   * (malloc_stats at the plateau: 41.5 MB of heap, 18.4 MB in use). The bench's restore (1.2 GB after
   * a 5% change, into tmpfs, 9 runs each) peaked at 135-150 MB (median 138) instead of 142-169
   * (median 158), for about 3% more wall and CPU time; 2 MiB left the outliers (the deltas' ~1 MiB
   * plaintexts still came from the heap), malloc_trim after each full collection saved half as much.
   */
  filesRestore: 1 << 20,
  /**
   * The long-lived processes, `lifeboat daemon` and `lifeboat serve`: one process runs every job
   * (files and stream backups, copies, drills, maintenance; serve's API-started runs, restores and
   * drills), so one threshold for all of them, set when it starts: the backups' 2 MiB. A daemon
   * running a files job and a dump job in turn (about 10 jobs in 150 s) peaked at 229-260 MB
   * instead of 282-288 (docs/benchmarks.md, "Configured jobs and the daemon").
   */
  service: 2 << 20,
} as const;

/**
 * glibc's malloc gives every allocation of at least the threshold for `work` a mapping of its own,
 * unmapped when it is freed, from now on (native/mem.c, mallopt M_MMAP_THRESHOLD); and glibc no
 * longer raises the threshold by itself. Its default starts at 128 KiB and rises to the size of
 * each large block freed, so after the first few the 0.5-8 MiB chunk, plaintext and sealed buffers
 * were all carved from the heap, which only shrinks from its top: its high-water mark, reached at
 * a random moment, was the peak RSS (docs/benchmarks.md, "One mapping per large buffer", "Files
 * backups' and restores' mmap threshold"). True when it was set.
 */
export function mallocSettings(work: keyof typeof MMAP_THRESHOLDS, env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.LIFEBOAT_MMAP_THRESHOLD;
  const bytes = v === undefined || v === '' ? MMAP_THRESHOLDS[work] : Number(v);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return false;
  return requireAddon<MemAddon>('mem')?.mmapThreshold(bytes) ?? false;
}

/** Bytes malloc holds in mapped chunks now (-1 where unknown): tests. */
export function mmappedBytes(): number {
  return requireAddon<MemAddon>('mem')?.mmapped() ?? -1;
}

/**
 * A long-lived process with nothing to do for a while (the daemon once its last job, drill or
 * maintenance run has ended, `lifeboat serve` once its last API-started task has) gives back what its work left: a full collection (V8 frees the
 * garbage of the job and shrinks its heap), then malloc_trim(0) (the C heap's free pages, which
 * glibc otherwise keeps for the next allocations). The daemon of that measurement sat at a median of
 * 143-147 MB between its jobs instead of 196-206 (docs/benchmarks.md, "Configured jobs and the daemon").
 * True when malloc gave memory back.
 */
export function releaseIdleMemory(): boolean {
  collector()?.();
  return requireAddon<MemAddon>('mem')?.trim() ?? false;
}
