import { Command } from 'commander';
import { removeLocks } from '../../repo/lock.js';
import type { CliContext } from '../context.js';

/** Registers the `unlock` command: remove stale locks. */
export function registerUnlock(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('unlock')
    .description('remove stale locks (of crashed processes)')
    .option('--remove-all', 'remove all locks, even live ones (dangerous)')
    .action(async (o: { removeAll?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      await ctx.withRepo(async (repo) => {
        const removed = await removeLocks(repo.storage, repo.key.encKey, !!o.removeAll);
        ctx.out.info(`removed ${removed.length} lock(s)`);
        ctx.out.emit({ removed });
      });
    });
}
