import { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import type { Repository } from '../../repo/repository.js';
import { prune } from '../../repo/prune.js';
import { type CliContext, WITHOUT_INDEX } from '../context.js';
import { formatBytes } from '../../util/format.js';

/** Registers the `prune` command: free unreferenced data (also run by `forget --prune`). */
export function registerPrune(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('prune')
    .description('remove data no snapshot references; repack partly used packs')
    .option('-n, --dry-run', 'only show what would be done')
    .option('--max-unused <percent>', 'repack packs with at least this share of unused data', '10')
    .action(async (o: { dryRun?: boolean; maxUnused: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      // prune reads the index itself once it holds its lock (repo/prune.ts): not twice
      await ctx.withRepo(async (repo) => {
        await runPrune(ctx, repo, o);
      }, WITHOUT_INDEX);
    });
}

export async function runPrune(ctx: CliContext, repo: Repository, o: { dryRun?: boolean; maxUnused?: string }): Promise<void> {
  const pct = o.maxUnused !== undefined ? Number(o.maxUnused) : 10;
  if (!(pct >= 0 && pct <= 100)) throw new ConfigError('--max-unused must be a percentage 0..100');
  const r = await prune(repo, {
    maxUnusedFraction: pct / 100,
    dryRun: !!o.dryRun,
    retryLockMs: ctx.retryLockMs(),
    onProgress: (m) => ctx.out.info(m),
  });
  ctx.out.emit({ message_type: 'prune', ...r });
  ctx.out.info(
    `${r.dryRun ? 'would delete' : 'deleted'} ${r.packsDeleted} of ${r.packsBefore} pack(s) (${r.packsRepacked} repacked into ${r.packsWritten}), ` +
      `${r.blobsRemoved} unused blob(s); ${r.dryRun ? 'would free' : 'freed'} ${formatBytes(r.bytesFreed)} of ${formatBytes(r.bytesBefore)}` +
      (r.walRemoved ? `; ${r.dryRun ? 'would remove' : 'removed'} ${r.walRemoved} archived WAL file(s) older than every kept base backup` : '') +
      (r.tempRemoved ? `; removed ${r.tempRemoved} abandoned temporary file(s) (${formatBytes(r.tempBytesRemoved ?? 0)}) left by an interrupted writer` : ''),
  );
}
