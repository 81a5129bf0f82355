import type { ResolvedSource } from '../config/resolve.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import type { SourceBackupOptions } from './kind.js';
import { SOURCE_KINDS } from './registry.js';
import type { SourceBackupResult, SourceRestoreResult, SourceRestoreTarget } from './types.js';

/**
 * The one way to back up and to restore a configured source, whatever its
 * kind: the CLI (backup, restore --source, pg), the daemon's jobs, the
 * server's restores and runbook restore steps all call these. The kind's
 * module (registry.ts) does the work; callers open the repository
 * (source.repository, resolved in src/config/resolve.ts) and report.
 */

export function backupSource(repo: Repository, source: ResolvedSource, opts: SourceBackupOptions = {}): Promise<SourceBackupResult> {
  return SOURCE_KINDS[source.kind].backup(repo, source, opts);
}

/** The snapshot `ref` ('latest', an id or a unique prefix) of the source. */
export function findSourceSnapshot(repo: Repository, source: ResolvedSource, ref: string): Promise<SnapshotWithId> {
  return SOURCE_KINDS[source.kind].findSnapshot(repo, source, ref);
}

/** Restore snapshot `ref` of the source into `target` (see SourceRestoreTarget). */
export async function restoreSource(
  repo: Repository,
  source: ResolvedSource,
  ref: string | SnapshotWithId,
  target: SourceRestoreTarget,
): Promise<{ snapshot: SnapshotWithId; result: SourceRestoreResult }> {
  const kind = SOURCE_KINDS[source.kind];
  const snapshot = typeof ref === 'string' ? await kind.findSnapshot(repo, source, ref) : ref;
  const result = await kind.restore(repo, source, snapshot, target);
  return { snapshot, result };
}

/** After copying a snapshot of the source to another repository: what else its restore needs there (the kind decides; usually nothing). */
export async function copySourceExtras(source: ResolvedSource, from: Repository, to: Repository): Promise<void> {
  await SOURCE_KINDS[source.kind].copyExtras?.(source, from, to);
}
