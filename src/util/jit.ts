import { setFlagsFromString } from 'node:v8';

/**
 * Turn off V8's optimizing compiler (TurboFan) for the rest of the process
 * (`--no-opt`, set at run time: code already optimized stays so; nothing is
 * optimized from now on). For a command whose main thread is not what it waits
 * on: a files restore spends its time in the thread pool (file creation,
 * decode), and the optimizing compiles (a helper thread), their code and the
 * garbage of their deoptimizations cost more CPU and memory than the faster
 * JavaScript saves (docs/benchmarks.md, restore8). The same for check
 * --read-data (its decodes and the packs' SHA-256 run in the pool). Interpreted and baseline
 * (Sparkplug) code give the same results: only speed differs.
 *
 * `LIFEBOAT_RESTORE_OPT=1` keeps the optimizer. True when the flag was set.
 */
export function withoutOptimizer(): boolean {
  if (process.env.LIFEBOAT_RESTORE_OPT === '1') return false;
  try {
    setFlagsFromString('--no-opt');
    return true;
  } catch {
    return false; // a runtime without the flag: nothing changes
  }
}
