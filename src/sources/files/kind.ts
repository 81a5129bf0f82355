import type { ResolvedSource } from '../../config/resolve.js';
import { SOURCE_CAPABILITIES, type SourceConfig } from '../../config/sources.js';
import { LifeboatError } from '../../errors.js';
import { backupPaths } from '../../engine/archiver.js';
import { restoreSnapshot } from '../../engine/restorer.js';
import type { Repository } from '../../repo/repository.js';
import type { SnapshotWithId } from '../../repo/snapshot.js';
import type { SourceKind } from '../kind.js';
import { filesTarget } from './drill.js';

/**
 * The files source: directories backed up by the engine's archiver into a
 * tree snapshot (tagged source:NAME), restored by the engine's restorer into
 * a target directory (`{ dir, overwrite }`). The only module that knows a
 * files source by its kind.
 */

type FilesConfig = Extract<SourceConfig, { kind: 'files' }>;

const filesOf = (s: ResolvedSource): FilesConfig => {
  if (s.config.kind !== 'files') throw new LifeboatError(`source ${s.name} is not a files source`);
  return s.config;
};

/** Snapshots that belong to a source: tagged source:NAME (files) or source.name (streams). */
export function isSourceSnapshot(s: SnapshotWithId, source: string): boolean {
  return s.source?.name === source || s.tags.includes(`source:${source}`);
}

/** 'files' for a tree snapshot (directories), 'stream' for a stream snapshot (a dump, stdin, a command's output). */
export function snapshotLayout(s: SnapshotWithId): 'files' | 'stream' {
  return s.source && s.source.kind !== 'files' ? 'stream' : 'files';
}

export const filesKind: SourceKind = {
  ...SOURCE_CAPABILITIES.files,
  drill: filesTarget,
  async backup(repo, source, opts) {
    const src = filesOf(source);
    const r = await backupPaths(repo, {
      paths: src.paths,
      excludes: [...src.excludes, ...(opts.excludes ?? [])],
      oneFileSystem: src.oneFileSystem,
      tags: [...src.tags, ...(opts.tags ?? []), `source:${source.name}`],
      ...(opts.force ? { force: true } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
      ...(opts.onWarning ? { onWarning: opts.onWarning } : {}),
      ...(opts.progress ? { progress: opts.progress } : {}),
    });
    return { snapshotId: r.snapshotId, summary: r.summary, partial: r.summary.errors > 0 };
  },
  async findSnapshot(repo: Repository, source, ref) {
    if (ref === 'latest') return repo.findSnapshot('latest', { tags: [`source:${source.name}`] });
    const s = await repo.findSnapshot(ref);
    if (!isSourceSnapshot(s, source.name)) throw new LifeboatError(`snapshot ${s.id.slice(0, 8)} is not a snapshot of source ${source.name}`, 2);
    return s;
  },
  async restore(repo, source, snapshot, target) {
    const dir = target.dir;
    if (typeof dir !== 'string' || !dir) throw new LifeboatError(`restoring files source ${source.name} needs a target directory`, 2);
    const files = await restoreSnapshot(repo, snapshot, { target: dir, overwrite: !!target.overwrite });
    return { durationMs: files.durationMs, files };
  },
};
