import type { LifeboatConfig } from '../config/load.js';
import { LifeboatError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import type { SourceConfig } from './registry.js';
import { backupStream, type StreamBackupResult } from './stream.js';

/**
 * Run a configured stream source (database or command) into a repository:
 * start the dump tool, stream its stdout into the repository, and publish the
 * snapshot only if the tool exited successfully.
 */
export async function runSourceBackup(
  repo: Repository,
  name: string,
  src: SourceConfig,
  _cfg: LifeboatConfig,
  opts: { tags?: string[]; signal?: AbortSignal } = {},
): Promise<StreamBackupResult> {
  throw new LifeboatError(`source kind "${(src as { kind: string }).kind}" of ${name} is not supported yet (${repo.storage.location}, ${opts.tags?.length})`);
}

import type { CliContext } from '../cli/context.js';
export async function runSourceRestore(ctx: CliContext, source: string, ref: string, opts: { toDatabase?: string; force: boolean }): Promise<void> {
  throw new LifeboatError(`restore of source ${source} (${ref}, ${ctx.opts.repo}, ${opts.force}) is not supported yet`);
}
