import type { Readable } from 'node:stream';
import type { ResolvedSource } from '../config/resolve.js';
import { SOURCE_CAPABILITIES, type SourceConfig, type StreamSourceConfig } from '../config/sources.js';
import { LifeboatError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import type { StreamKind } from './kind.js';
import type { SourceContext } from './proc.js';
import type { DrillTargetContext, ScratchTarget } from './scratch.js';
import { backupStream, restoreStream } from './stream.js';
import type { DumpHandle, RestoreResult, ToolResult } from './types.js';

/**
 * A stream source kind (database or command) from its dump and restore tools:
 * start the dump tool, stream its stdout into the repository, and publish the
 * snapshot only if the tool exited successfully. And the way back: stream a
 * snapshot into the kind's restore tool.
 */

/** The snapshot `ref` of a stream source: 'latest' of the source, or an id that must belong to it. */
export async function findStreamSourceSnapshot(repo: Repository, name: string, ref: string): Promise<SnapshotWithId> {
  if (ref === 'latest') return repo.findSnapshot('latest', { source: name });
  const s = await repo.findSnapshot(ref);
  if (s.source?.name !== name) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} is not a snapshot of source ${name}`, 2);
  return s;
}

export function streamKind<C extends StreamSourceConfig>(
  kind: C['kind'],
  dump: (src: C, ctx: SourceContext) => Promise<DumpHandle>,
  restore: (src: C, input: Readable, target: Record<string, unknown>) => Promise<RestoreResult>,
  drill?: (ctx: DrillTargetContext) => ScratchTarget,
  copyExtras?: (src: C, from: Repository, to: Repository, name: string) => Promise<void>,
): StreamKind {
  const caps = SOURCE_CAPABILITIES[kind];
  const own = (src: SourceConfig): C => {
    if (src.kind !== kind) throw new LifeboatError(`a ${src.kind} source is not a ${kind} source`);
    return src as C;
  };
  return {
    ...caps,
    layout: 'stream',
    ...(drill ? { drill } : {}),
    ...(copyExtras ? { copyExtras: (source: ResolvedSource, from: Repository, to: Repository) => copyExtras(own(source.config), from, to, source.name) } : {}),
    dump: (src, ctx) => dump(own(src), ctx),
    restoreInput: (src, input, target) => restore(own(src), input, target),
    async backup(repo, source: ResolvedSource, opts) {
      const src = own(source.config);
      const handle = await dump(src, {
        name: source.name,
        ...(opts.signal ? { signal: opts.signal } : {}),
        ...(source.verifyQueries.length ? { verifyQueries: source.verifyQueries } : {}),
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
        const r = await backupStream(repo, handle.stream, {
          filename: handle.filename,
          source: { ...handle.meta, name: source.name },
          tags: [...(src.tags ?? []), ...(opts.tags ?? []), `source:${source.name}`],
          ...(opts.signal ? { signal: opts.signal } : {}),
          ...(opts.progress ? { progress: opts.progress } : {}),
          finalize: async () => {
            const t = (tool = await handle.done);
            return { exitCode: t.exitCode, durationMs: Date.now() - started, ...(t.extra ?? {}) };
          },
          producedBytes: () => tool?.streamBytes,
        });
        return { snapshotId: r.snapshotId, summary: r.summary, partial: false };
      } catch (err) {
        // If the tool had already failed on its own, its error (with its stderr tail) is the cause;
        // otherwise the repository side failed (e.g. disk full) and the tool is stopped.
        await new Promise((r) => setImmediate(r));
        const failed = toolError;
        handle.abort();
        throw failed instanceof Error ? failed : err;
      }
    },
    findSnapshot: (repo, source, ref) => findStreamSourceSnapshot(repo, source.name, ref),
    async restore(repo, source, snapshot, target) {
      const input = await restoreStream(repo, snapshot.id);
      return restore(own(source.config), input, target);
    },
  };
}
