import { configPath } from '../config/paths.js';
import type { LifeboatConfig } from '../config/load.js';
import { LifeboatError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { STREAM_KINDS, type SourceConfig, type StreamSourceConfig } from './registry.js';
import { backupStream, restoreStream, type StreamBackupResult } from './stream.js';
import type { RestoreResult, ToolResult } from './types.js';

/**
 * Running a configured stream source (database or command): start the dump
 * tool, stream its stdout into the repository, and publish the snapshot only
 * if the tool exited successfully. And the way back: stream a snapshot into
 * the source kind's restore.
 */

/** Paths in a source's config (password files, SQLite path, command cwd) are relative to the config file. */
export function resolveSourcePaths(src: StreamSourceConfig, cfg: { dir: string }): StreamSourceConfig {
  const s = { ...src } as Record<string, unknown>;
  if (typeof s.passwordFile === 'string') s.passwordFile = configPath(cfg, s.passwordFile);
  if (src.kind === 'sqlite') s.path = configPath(cfg, src.path);
  if (src.kind === 'command') s.cwd = configPath(cfg, src.cwd ?? '.');
  return s as StreamSourceConfig;
}

/**
 * The SQL of drill queries with `equalsBackup: true` of every job backing up
 * this source: run at backup time in the dump's own snapshot and recorded in
 * snapshot.source.verification, for the drill to compare with.
 */
export function backupVerificationQueries(cfg: LifeboatConfig, source: string): string[] {
  const out = new Set<string>();
  for (const job of Object.values(cfg.jobs)) {
    if (job.source !== source) continue;
    for (const q of job.drill?.queries ?? []) if (q.equalsBackup && q.sql) out.add(q.sql);
  }
  return [...out];
}

export async function runSourceBackup(
  repo: Repository,
  name: string,
  src: SourceConfig,
  cfg: LifeboatConfig,
  opts: { tags?: string[]; signal?: AbortSignal } = {},
): Promise<StreamBackupResult> {
  if (src.kind === 'files') throw new LifeboatError(`source ${name} is a files source, not a stream source`);
  const resolved = resolveSourcePaths(src, cfg);
  const verifyQueries = backupVerificationQueries(cfg, name);
  const handle = await STREAM_KINDS[src.kind].dump(resolved, {
    name,
    ...(opts.signal ? { signal: opts.signal } : {}),
    ...(verifyQueries.length ? { verifyQueries } : {}),
  });
  const started = Date.now();
  // The dump may fail before backupStream reads from it: its error reaches us
  // through handle.done / the errored stream, never as an unhandled event.
  handle.stream.on('error', () => {});
  let toolError: unknown;
  handle.done.catch((e: unknown) => {
    toolError = e;
  });
  let tool: ToolResult | undefined;
  try {
    return await backupStream(repo, handle.stream, {
      filename: handle.filename,
      source: { ...handle.meta, name },
      tags: [...(src.tags ?? []), ...(opts.tags ?? []), `source:${name}`],
      ...(opts.signal ? { signal: opts.signal } : {}),
      finalize: async () => {
        const r = (tool = await handle.done);
        return { exitCode: r.exitCode, durationMs: Date.now() - started, ...(r.extra ?? {}) };
      },
      producedBytes: () => tool?.streamBytes,
    });
  } catch (err) {
    // If the tool had already failed on its own, its error (with its stderr tail) is the cause;
    // otherwise the repository side failed (e.g. disk full) and the tool is stopped.
    await new Promise((r) => setImmediate(r));
    const own = toolError;
    handle.abort();
    throw own instanceof Error ? own : err;
  }
}

export async function findSourceSnapshot(repo: Repository, name: string, ref: string): Promise<SnapshotWithId> {
  if (ref === 'latest') return repo.findSnapshot('latest', { source: name });
  const s = await repo.findSnapshot(ref);
  if (s.source?.name !== name) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} is not a snapshot of source ${name}`, 2);
  return s;
}

export async function runSourceRestore(
  repo: Repository,
  name: string,
  src: SourceConfig,
  cfg: LifeboatConfig,
  ref: string,
  target: Record<string, unknown>,
): Promise<{ snapshot: SnapshotWithId; result: RestoreResult }> {
  if (src.kind === 'files') throw new LifeboatError(`source ${name} is a files source: use "restore --target DIR"`, 2);
  const snap = await findSourceSnapshot(repo, name, ref);
  const input = await restoreStream(repo, snap.id);
  const result = await STREAM_KINDS[src.kind].restore(resolveSourcePaths(src, cfg), input, target);
  return { snapshot: snap, result };
}
