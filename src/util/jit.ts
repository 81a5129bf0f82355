import { setFlagsFromString } from 'node:v8';

/**
 * Turn off V8's optimizing compiler (TurboFan) for the rest of the process
 * (`--no-opt`, set at run time: code already optimized stays so; nothing is
 * optimized from now on). For a command whose main thread is not what it waits
 * on: a files restore spends its time in the thread pool (file creation,
 * decode), and the optimizing compiles (a helper thread), their code and the
 * garbage of their deoptimizations cost more CPU and memory than the faster
 * JavaScript saves (docs/benchmarks.md, restore8). The same for check
 * --read-data once its walk of the trees is over (its decodes and the packs' SHA-256 run in
 * the pool; the walk, every tree decoded and validated on the main thread, is worth
 * optimizing: docs/benchmarks.md, "check's walk optimized"). Interpreted and baseline
 * (Sparkplug) code give the same results: only speed differs.
 *
 * `LIFEBOAT_RESTORE_OPT=1` keeps the optimizer. True when the flag was set.
 */
export function withoutOptimizer(): boolean {
  return setFlagUnless('LIFEBOAT_RESTORE_OPT', '--no-opt');
}

/** Set a V8 flag at run time unless the variable `keep` is "1"; true when it was set. */
function setFlagUnless(keep: string, flag: string): boolean {
  if (process.env[keep] === '1') return false;
  try {
    setFlagsFromString(flag);
    return true;
  } catch {
    return false; // a runtime without the flag: nothing changes
  }
}

/**
 * Turn off V8's incremental marking for the rest of the process
 * (`--no-incremental-marking`, set at run time; the flag only decides whether
 * a new marking may start, one already running still finishes): a full
 * collection then runs only when the old generation (plus the ArrayBuffer
 * memory allocated since the last one) reaches its limit, as one pause,
 * instead of being started early from a task whenever the room left under
 * that limit is small.
 *
 * Why: V8 counts every ArrayBuffer allocated since the last full collection
 * towards the old generation's limit, and a command moving hundreds of MB of
 * one stream through Buffers (read pieces, chunks) with a small JavaScript
 * heap got a limit a few MB above its live heap: a `pg base-backup` of a 494 MB
 * cluster ran 30-48 full collections (1-4 without), their concurrent marking
 * ~12% of its CPU (docs/benchmarks.md, "Incremental marking off"). Called by
 * the commands that move one stream (CliContext.openRepo `bulk`), after the
 * index is loaded: metadata-heavy work (an index load, check, a backup of many
 * small files) held 40-100 MB more without it.
 *
 * `LIFEBOAT_INCREMENTAL_MARKING=1` keeps V8's default. True when the flag was set.
 */
export function withoutIncrementalMarking(): boolean {
  return setFlagUnless('LIFEBOAT_INCREMENTAL_MARKING', '--no-incremental-marking');
}

/**
 * V8's old generation kept close to what is live for the rest of the process (`--optimize-for-size`,
 * set at run time: from then on V8's heap "optimizes for memory usage", so after each full
 * collection the old generation may grow by ~1.1x plus a few MB before the next, instead of by up
 * to 4x its live size; V8's sizes of the new generation were fixed at start-up and stay). With
 * incremental marking off (withoutIncrementalMarking), a stream command's old generation filled
 * with garbage up to that limit: a 4 GB stream's daily backup ran 2 full collections, at the
 * second 34 MB of old generation of which 10 MB were live. A 20 GB one's heap reached ~60 MB;
 * with this, ~22 full collections of 5-23 ms kept it under ~37 MB (live: 11 MB growing to 18),
 * and the backup's peak RSS fell from 173-182 MB to 157-164 in three interleaved pairs. The
 * bench's 268 MB dump and its restore never grow the heap that far: no change there
 * (docs/benchmarks.md, "A stream's heap kept near its live size").
 *
 * `LIFEBOAT_HEAP_GROWTH=1` keeps V8's default. True when the flag was set.
 */
export function heapNearLiveSize(): boolean {
  return setFlagUnless('LIFEBOAT_HEAP_GROWTH', '--optimize-for-size');
}
