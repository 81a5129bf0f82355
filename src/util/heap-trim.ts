import { ConfigError } from '../errors.js';
import { requireAddon } from './native.js';

/**
 * The C heap trimmed while a command works: native/mem.c trimEvery, a thread that calls
 * malloc_trim(0) every interval. (A module of its own, apart from util/malloc.ts: the entry point
 * checks the interval's setting at start-up, and this loads nothing more than the addon.)
 */
interface TrimAddon {
  trimEvery(ms: number): boolean;
  trimStats(): Float64Array;
}

/**
 * How often the heap is trimmed while a command moves data (heapTrim), in milliseconds:
 * LIFEBOAT_TRIM_MS (10-60000; 0: never), else the caller's default (100; a dump's restore: 0, trims
 * only when asked). Anything else is a ConfigError.
 */
export function heapTrimInterval(env: NodeJS.ProcessEnv = process.env, byDefault = 100): number {
  const v = env.LIFEBOAT_TRIM_MS;
  if (v === undefined || v === '') return byDefault;
  const ms = /^\d{1,5}$/.test(v) ? Number(v) : NaN;
  if (ms === 0 || (ms >= 10 && ms <= 60000)) return ms;
  throw new ConfigError(`LIFEBOAT_TRIM_MS must be 0 (no trims) or a whole number of milliseconds from 10 to 60000, not ${JSON.stringify(v)}`);
}

let trimUsers = 0;

/**
 * glibc's heap trimmed (malloc_trim) every heapTrimInterval() milliseconds on a thread of its own
 * (native/mem.c trimEvery) until the returned function is called (by every caller that started it:
 * the trims run while any of them wants them). With one malloc arena every small block of the thread
 * pool and every Buffer under the mmap threshold comes from that heap, which glibc gives back only
 * from its top: its free pages below a block still in use stayed resident, and the heap's high-water
 * mark became part of the peak. Used where that was measured (docs/benchmarks.md, "The heap trimmed
 * while a command works"; the bench's data, 5 interleaved runs each, trims every 100 ms against none):
 * check --read-data (its reads; the daemon's scheduled checks too) peaked at 102-107 MB instead of
 * 108-113, at the same CPU time; on a machine where a page fault costs ~20 us, 105 MiB instead of 113
 * for 15% more wall time (the pages given back fault in again: "check --read-data and a dump's
 * restore where a page fault is dear"). A dump's restore (cli/commands/restore.ts) starts them only
 * when LIFEBOAT_TRIM_MS is set: measured again there, 0-4 MiB off its peak for 16% more wall time.
 * A stream's backup (sources/stream.ts backupStream) starts them: a 20 GB stream's daily backup peaked
 * at 127-131 MiB instead of 140-143 at the same wall time ("A long stream's C heap"; the bench's 300 MB
 * dump moved no more than its spread, 3-6 MB, a long stream's free blocks pile up). A files backup and
 * a files restore moved no more than their run-to-run spread (3-6 MB): they do not start them.
 * Tests: util/malloc.test.ts, beside the C heap's other tests; sources/stream.test.ts for the stream.
 */
export function heapTrim(env: NodeJS.ProcessEnv = process.env, byDefault = 100): () => void {
  const ms = heapTrimInterval(env, byDefault);
  const addon = requireAddon<TrimAddon>('mem');
  if (ms === 0 || typeof addon?.trimEvery !== 'function') return () => {};
  if (trimUsers === 0 && !addon.trimEvery(ms)) return () => {};
  trimUsers++;
  let stopped = false;
  return () => {
    if (stopped) return;
    stopped = true;
    if (--trimUsers === 0) addon.trimEvery(0);
  };
}

/** The heap trims so far and their interval now (0: not running); undefined without the helper: tests. */
export function heapTrimStats(): { runs: number; intervalMs: number } | undefined {
  const s = requireAddon<TrimAddon>('mem')?.trimStats?.();
  return s ? { runs: s[0]!, intervalMs: s[1]! } : undefined;
}
