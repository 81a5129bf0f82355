#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ExitCode } from '../errors.js';
import { installSignalHandlers, installStdioGuards } from './signals.js';
import { poolPriority, tunePool } from '../util/pool-priority.js';
import { heapTrimInterval } from '../util/heap-trim.js';

/**
 * Entry point of the `lifeboat` command. It installs the signal and pipe
 * handling first and only then loads the commands (src/cli/program.ts), so a
 * SIGTERM even during start-up or config loading ends with exit code 130.
 */

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

/**
 * bin/lifeboat sets glibc's malloc tunables for this process (GLIBC_TUNABLES: one arena, and
 * transparent huge pages for `restore`; read by glibc when the process starts) and keeps what the caller
 * had in LIFEBOAT_GLIBC_TUNABLES; on fewer than 4 cores it sizes libuv's thread pool to them
 * (UV_THREADPOOL_SIZE, read when node starts the pool; LIFEBOAT_UV_THREADPOOL_SIZE is empty then).
 * The commands Lifeboat runs (pg_dump, hooks, drills) get the caller's values back, unchanged or unset.
 */
export function restoreLauncherEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const [name, kept] of [
    ['GLIBC_TUNABLES', 'LIFEBOAT_GLIBC_TUNABLES'],
    ['UV_THREADPOOL_SIZE', 'LIFEBOAT_UV_THREADPOOL_SIZE'],
  ] as const) {
    const was = env[kept];
    if (was === undefined) continue;
    if (was === '') delete env[name];
    else env[name] = was;
    delete env[kept];
  }
}

if (isEntryPoint()) {
  // the pool's threads yield to this one (src/util/pool-priority.ts): first, while the pool is idle,
  // and from the pool size the launcher set (restoreLauncherEnv gives the commands the caller's back)
  let startSetting: Error | undefined;
  try {
    void tunePool(poolPriority());
    // (the heap trims' interval, read when a command starts them: a bad value is a usage error now, not mid-command)
    heapTrimInterval();
  } catch (err) {
    startSetting = err as Error;
  }
  restoreLauncherEnv();
  installSignalHandlers();
  installStdioGuards();
  let report: (err: unknown) => number = (err) => {
    process.stderr.write(`lifeboat: ${String(err)}\n`);
    return ExitCode.FATAL;
  };
  // a failure outside the command's own promise chain (an 'error' event nobody handles) still ends in one line
  process.on('uncaughtException', (err) => process.exit(report(err)));
  process.on('unhandledRejection', (err) => process.exit(report(err)));
  // If the event loop ever drains while the command is still pending (an
  // awaited operation nobody will complete), the process would end quietly with
  // exit code 0 and a result it never reached: say so and fail instead.
  let finished = false;
  process.on('beforeExit', () => {
    if (finished) return;
    finished = true;
    process.stderr.write('lifeboat: internal error: the command stopped before it finished (an operation never completed); its result is unknown, treat it as failed\n');
    process.exitCode = ExitCode.FATAL;
  });
  const run = async (): Promise<void> => {
    if (startSetting) {
      process.stderr.write(`lifeboat: ${startSetting.message}\n`);
      process.exitCode = ExitCode.USAGE;
      return;
    }
    // the repository key's scrypt started before the command's modules load (cli/key-prewarm.ts);
    // only a head start: whatever goes wrong here is the command's to find and report
    try {
      const { prewarmTarget, startKeyPrewarm } = await import('./key-prewarm.js');
      const target = prewarmTarget(process.argv);
      if (target) await startKeyPrewarm(target);
    } catch {
      /* the command opens the repository as always */
    }
    // wal-push / wal-fetch run once per WAL file: without a config they start
    // from wal-fast.ts with only the repository code loaded (see there).
    if ((await import('./wal-command.js')).walFastCommand(process.argv)) {
      const code = await (await import('./wal-fast.js')).runWalFast(process.argv);
      if (code !== undefined) {
        process.exitCode = code;
        return;
      }
    }
    const { main, reportError } = await import('./program.js');
    const { abandonedCalls } = await import('../storage/retry.js');
    report = reportError;
    const code = await main(process.argv);
    process.exitCode = code;
    // A request abandoned at its deadline (a hung mount or server) may keep the
    // event loop alive: the command is over, so do not wait for it. A call still
    // blocked in the kernel (hung mount) would even block process.exit(), so
    // then the process ends itself with SIGTERM, saying which code it meant.
    setTimeout(() => {
      const n = abandonedCalls();
      if (n > 0) {
        process.stderr.write(`lifeboat: exit code ${code}, but ${n} abandoned file-system call(s) are still blocked (hung mount?); terminating\n`);
        process.removeAllListeners('SIGTERM');
        process.kill(process.pid, 'SIGTERM');
        return;
      }
      process.exit(code);
    }, 2000).unref();
  };
  run()
    .catch((err: unknown) => {
      process.exitCode = report(err);
    })
    .finally(() => {
      finished = true;
    });
}
