import { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { repairIndex } from '../../repo/prune.js';
import type { CliContext } from '../context.js';

/** Registers the `repair` commands: `repair index`. */
export function registerRepair(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const repair = program.command('repair').description('repair repository metadata');
  repair
    .command('index')
    .description('rebuild the index from the pack files (after a lost or damaged index file)')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const r = await repairIndex(repo, (p, m) => ctx.out.warn(`pack ${p}: ${m}`));
        ctx.out.info(`rebuilt the index: ${r.blobs} blobs in ${r.packs} packs` + (r.badPacks ? `; ${r.badPacks} unreadable pack(s) left out` : ''));
        ctx.out.emit(r);
        if (r.badPacks) process.exitCode = ExitCode.INTEGRITY;
      });
    });
}
