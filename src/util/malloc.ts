import { requireAddon } from './native.js';

interface MemAddon {
  mmapThreshold(bytes: number): boolean;
  mmapped(): number;
}

/** The mmap threshold of the commands that move one stream of data: LIFEBOAT_MMAP_THRESHOLD (bytes; 0 leaves glibc's). */
export const STREAM_MMAP_THRESHOLD = 2 << 20;

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
 * For the commands that move one stream (CliContext.openRepo `bulk`, a stream restore); file
 * backups and restores allocate many small blocks and keep glibc's default. `LIFEBOAT_MMAP_THRESHOLD`
 * sets another threshold (bytes), 0 keeps glibc's own. True when it was set.
 */
export function streamMallocSettings(env: NodeJS.ProcessEnv = process.env): boolean {
  const v = env.LIFEBOAT_MMAP_THRESHOLD;
  const bytes = v === undefined || v === '' ? STREAM_MMAP_THRESHOLD : Number(v);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) return false;
  return requireAddon<MemAddon>('mem')?.mmapThreshold(bytes) ?? false;
}

/** Bytes malloc holds in mapped chunks now (-1 where unknown): tests. */
export function mmappedBytes(): number {
  return requireAddon<MemAddon>('mem')?.mmapped() ?? -1;
}
