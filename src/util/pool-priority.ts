import { availableParallelism } from 'node:os';
import { ConfigError } from '../errors.js';
import { nativeAddon } from './native.js';

/**
 * The priority of libuv's thread pool against the main thread.
 *
 * The main thread runs all of Lifeboat's JavaScript: it walks trees, plans
 * reads, queues the decode, encode, hash and file jobs and handles their
 * results. The pool threads do the heavy work of those jobs. Where the pool
 * has as many threads as there are cores (bin/lifeboat sizes it so on 2 and 3
 * cores; libuv's 4 on 4), the main thread shares the cores with them, and
 * every job it queues wakes a pool thread that could take its core. Then the
 * thread that feeds every job waited its turn: a full restore into tmpfs on 2
 * cores spent 0.25 s of its 3.7 s inside the call that queues a decode job
 * (1,350 calls), 0.02 s once the pool threads ran at nice 10 under SCHED_BATCH
 * (no wake-up preemption). The restore itself was no faster (both cores do
 * useful work whichever thread runs); a backup, whose main thread reads and
 * cuts the chunks, was: a first backup of 1.1 GB 5.75 -> 5.22 s, check
 * --read-data 4.20 -> 3.96 (docs/benchmarks.md, "The pool yields to the main
 * thread").
 *
 * So the entry point (src/cli/main.ts) raises each pool thread's nice value,
 * once, by LIFEBOAT_POOL_NICE (default 10 where the pool has at least as many
 * threads as the machine has cores, otherwise none: with a core to spare the
 * main thread is never crowded out; an increment, as `nice -n`, so a command
 * started under `nice` keeps its pool that much below its main thread) and
 * gives it the SCHED_BATCH policy. Only the pool
 * threads change: the main thread, V8's threads and every command Lifeboat
 * starts keep their priority. A side effect the operator may want to know: on
 * a host whose cores other programs keep busy, the pool's work gets less of
 * them than at nice 0, as with `nice lifeboat ...`; LIFEBOAT_POOL_NICE=0 turns
 * it off.
 */
export interface PoolPriority {
  /** Pool threads to reach (libuv's pool size). */
  threads: number;
  /** How much their nice value is raised (1..19; to at most 19): an increment over the process's own, as `nice -n`. */
  nice: number;
  /** SCHED_BATCH as well. */
  batch: boolean;
}

/** libuv's pool size for this process: UV_THREADPOOL_SIZE as libuv reads it (1..1024), else 4. */
export function poolThreads(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.UV_THREADPOOL_SIZE;
  if (raw === undefined || raw === '') return 4;
  const n = Number.parseInt(raw, 10);
  if (!Number.isFinite(n) || n < 1) return 1;
  return Math.min(n, 1024);
}

/** The setting for this process, or undefined for none (see the module's comment). */
export function poolPriority(env: NodeJS.ProcessEnv = process.env, cores = availableParallelism(), threads = poolThreads(env)): PoolPriority | undefined {
  const raw = env.LIFEBOAT_POOL_NICE;
  let nice: number;
  if (raw === undefined || raw === '') {
    if (threads < cores) return undefined;
    nice = 10;
  } else {
    nice = Number(raw);
    if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new ConfigError(`LIFEBOAT_POOL_NICE must be a whole number from 0 to 19 (0: off), not ${JSON.stringify(raw)}`);
    if (nice === 0) return undefined;
  }
  return { threads, nice, batch: true };
}

interface SchedAddon {
  tunePool(threads: number, nice: number, batch: boolean, waitMs: number): Promise<number>;
}

/**
 * Apply `p` to the pool's threads; resolves to how many took it (0 where the addon is not built or
 * this is not Linux). Call it before anything else uses the pool: its items wait for one another
 * (at most `waitMs`), so each lands on a thread of its own only while the pool is idle.
 */
export async function tunePool(p: PoolPriority | undefined, waitMs = 50): Promise<number> {
  if (!p || process.platform !== 'linux') return 0;
  const addon = nativeAddon<SchedAddon>('sched');
  if (!addon) return 0;
  try {
    return await addon.tunePool(p.threads, p.nice, p.batch, waitMs);
  } catch {
    return 0;
  }
}
