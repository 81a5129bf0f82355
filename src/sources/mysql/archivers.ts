import { configPath } from '../../config/paths.js';
import type { ResolvedPlan } from '../../config/resolve.js';
import { parseDuration } from '../../util/duration.js';
import { errorMessage } from '../../errors.js';
import { streamBinlogs } from './binlog.js';
import type { MysqlSourceOptions } from './dump.js';

/**
 * The daemon's continuous binary log archivers: one streaming archiver
 * (src/sources/mysql/binlog.ts streamBinlogs) per mysql source with
 * `binlog: { archive: true }`, for as long as the daemon runs. An archiver
 * that fails (repository unreachable, ...) is restarted after a back-off.
 */

export interface BinlogArchivers {
  readonly sources: string[];
  /** Stop streaming, archive what is complete, wait (at most waitMs). */
  stop(waitMs?: number): Promise<void>;
}

export function startBinlogArchivers(plan: ResolvedPlan, log: (m: string) => void): BinlogArchivers {
  const ac = new AbortController();
  const runs: Array<Promise<void>> = [];
  const names: string[] = [];
  for (const [name, source] of Object.entries(plan.sources)) {
    const raw = source.config;
    if (raw.kind !== 'mysql' || !raw.binlog?.archive) continue;
    const src = raw as MysqlSourceOptions; // paths already absolute (resolved plan)
    const binlog = src.binlog!;
    const spoolDir = binlog.spoolDir ? configPath(plan, binlog.spoolDir) : undefined;
    const flushIntervalMs = binlog.flushInterval ? parseDuration(binlog.flushInterval) : undefined;
    names.push(name);
    runs.push(
      (async () => {
        let backoff = 1000;
        while (!ac.signal.aborted) {
          try {
            const repo = await plan.openRepository(source.repository, { retryLockMs: 60_000, allowInit: false });
            try {
              await streamBinlogs(repo, src, {
                sourceName: name,
                signal: ac.signal,
                ...(spoolDir ? { spoolDir } : {}),
                ...(flushIntervalMs ? { flushIntervalMs } : {}),
                log: (m) => log(`binlog ${name}: ${m}`),
              });
            } finally {
              await repo.close();
            }
          } catch (err) {
            log(`binlog ${name}: archiver failed: ${errorMessage(err)}; retrying in ${backoff / 1000}s`);
            await new Promise<void>((resolve) => {
              const t = setTimeout(resolve, backoff);
              ac.signal.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
            });
            backoff = Math.min(backoff * 2, 300_000);
          }
        }
      })(),
    );
  }
  return {
    sources: names,
    async stop(waitMs = 30_000) {
      ac.abort();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.allSettled(runs), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
      clearTimeout(timer);
    },
  };
}
