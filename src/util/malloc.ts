import { requireAddon } from './native.js';

interface MemAddon {
  mmapThreshold(bytes: number): boolean;
  mmapped(): number;
}

/** The mmap threshold of the commands that move one stream of data, and of files backups: LIFEBOAT_MMAP_THRESHOLD (bytes; 0 leaves glibc's). */
export const STREAM_MMAP_THRESHOLD = 2 << 20;
/** The mmap threshold of a files restore (the same variable overrides it). */
export const RESTORE_MMAP_THRESHOLD = 1 << 20;

/**
 * glibc's malloc gives every allocation of at least `bytes` a mapping of its own, unmapped when
 * it is freed, from now on (native/mem.c, mallopt M_MMAP_THRESHOLD); and glibc no longer raises
 * the threshold by itself. Its default starts at 128 KiB and rises to the size of each large block
 * freed, so after the first few the stream's 0.5-8 MiB chunk, plaintext and sealed buffers were
 * all carved from the heap, which only shrinks from its top: its high-water mark, reached at a
 * random moment, was the peak RSS. With 2 MiB a second direct base backup of a 494 MB cluster
 * peaked at 176-192 MB instead of 188-272 (about +4% CPU: the kernel zeroes each new mapping), a
 * daily dump backup at 110 instead of 122 MB at the same CPU; 1 MiB saved a little more for
 * 3-7% more CPU (docs/benchmarks.md, "One mapping per large buffer").
 *
 * For the commands that move one stream (CliContext.openRepo `bulk`, a stream restore); files
 * backups take the same (backupMallocSettings), a files restore its own (restoreMallocSettings);
 * check and the light commands keep glibc's default.
 * `LIFEBOAT_MMAP_THRESHOLD` sets another threshold (bytes), 0 keeps glibc's own. True when it was set.
 */
export function streamMallocSettings(env: NodeJS.ProcessEnv = process.env): boolean {
  return setMmapThreshold(STREAM_MMAP_THRESHOLD, env);
}

/**
 * The same 2 MiB for a files backup: a re-backup after a 5% change delta-encodes its changed large
 * files' chunks through bases and plaintexts of 0.5-8 MiB, and peaked at 154-184 MB with glibc's
 * threshold against 146-163 with 2 MiB, at the same wall and CPU time (1 MiB: the same peak for 4%
 * more time); a first backup at 143-166 (median 151) against 152-164 (158). docs/benchmarks.md,
 * "Files backups' and restores' mmap threshold".
 */
export function backupMallocSettings(env: NodeJS.ProcessEnv = process.env): boolean {
  return setMmapThreshold(STREAM_MMAP_THRESHOLD, env);
}

/**
 * The same for a files restore, at 1 MiB: a snapshot whose changed files are stored as deltas
 * restores them through 0.5-8 MiB plaintexts, bases and chain levels that, once glibc had raised its
 * threshold, came from the heap and left ~20 MB free in it for the rest of the run (malloc_stats at
 * the plateau: 41.5 MB of heap, 18.4 MB in use). The bench's restore (1.2 GB after a 5% change,
 * into tmpfs, 9 runs each) peaked at 135-150 MB (median 138) instead of 142-169 (median 158), for
 * about 3% more wall and CPU time (the kernel zeroes each new mapping); 2 MiB left the outliers (the
 * deltas' ~1 MiB plaintexts still came from the heap), malloc_trim after each full collection saved
 * half as much. docs/benchmarks.md, "Files backups' and restores' mmap threshold".
 * LIFEBOAT_MMAP_THRESHOLD overrides it as above.
 */
export function restoreMallocSettings(env: NodeJS.ProcessEnv = process.env): boolean {
  return setMmapThreshold(RESTORE_MMAP_THRESHOLD, env);
}

function setMmapThreshold(byDefault: number, env: NodeJS.ProcessEnv): boolean {
  const v = env.LIFEBOAT_MMAP_THRESHOLD;
  const bytes = v === undefined || v === '' ? byDefault : Number(v);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return false;
  return requireAddon<MemAddon>('mem')?.mmapThreshold(bytes) ?? false;
}

/** Bytes malloc holds in mapped chunks now (-1 where unknown): tests. */
export function mmappedBytes(): number {
  return requireAddon<MemAddon>('mem')?.mmapped() ?? -1;
}
