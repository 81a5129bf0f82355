import { fileURLToPath } from 'node:url';
import type { ResolvedSource } from '../../config/resolve.js';
import type { Repository } from '../../repo/repository.js';
import { DEFAULT_ARCHIVE } from '../../repo/wal-names.js';
import type { PointInTimeRestoreOptions, PointInTimeRestoreResult } from '../kind.js';
import { pgRestore, shQuote, type PgPhysicalInput } from './dump.js';

/**
 * Point-in-time restore of a PostgreSQL physical source (runbook restore
 * steps): the base backup into a directory, with recovery settings whose
 * restore_command is `lifeboat wal-fetch` reading this repository's WAL
 * archive. The repository password reaches wal-fetch through the server's
 * environment (LIFEBOAT_PASSWORD), never through its command line.
 */
export async function pgPointInTimeRestore(repo: Repository, source: ResolvedSource, opts: PointInTimeRestoreOptions): Promise<PointInTimeRestoreResult> {
  const src = source.config as PgPhysicalInput & { archive?: string };
  const cli = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
  const archive = src.archive ?? DEFAULT_ARCHIVE;
  const restoreCommand = [process.execPath, cli, 'wal-fetch', '%f', '%p', '--config', opts.configFile, '--repo', opts.repository, ...(archive !== DEFAULT_ARCHIVE ? ['--archive', archive] : [])]
    .map((p) => (p === '%f' || p === '%p' ? p : shQuote(p)))
    .join(' ');
  const r = await pgRestore(repo, {
    ...(opts.snapshot && opts.snapshot !== 'latest' ? { snapshot: opts.snapshot } : {}),
    source: source.name,
    to: opts.to,
    target: opts.targetTime ? { time: opts.targetTime } : {},
    restoreCommand,
    archiveMode: opts.archiveMode,
    ...(opts.log ? { log: opts.log } : {}),
  });
  return { snapshot: r.snapshot, to: r.to, bytes: r.bytes, durationMs: r.durationMs, settings: Object.keys(r.settings) };
}
