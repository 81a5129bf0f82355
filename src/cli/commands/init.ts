import { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { Repository } from '../../repo/repository.js';
import { parseSize } from '../../config/size.js';
import type { CliContext } from '../context.js';

/** Registers the `init` command: create a new repository. */
export function registerInit(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('init')
    .description('create a new repository')
    .option('--chunk-min <size>', 'minimum chunk size (default 512KiB)')
    .option('--chunk-avg <size>', 'average chunk size, a power of two (default 1MiB)')
    .option('--chunk-max <size>', 'maximum chunk size (default 8MiB)')
    .option('--pack-size <size>', 'target pack file size (default 16MiB)')
    .option('--compression-level <n>', 'zstd level 1..19 (default 3)')
    .action(async (o: { chunkMin?: string; chunkAvg?: string; chunkMax?: string; packSize?: string; compressionLevel?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const t = ctx.repositoryTarget();
      const sz = (v: string | undefined, what: string) => {
        if (v === undefined) return undefined;
        if (!/^\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB)?$/i.test(v)) throw new ConfigError(`${what}: invalid size "${v}"`);
        return parseSize(v);
      };
      const chunker = {
        ...(o.chunkMin ? { min: sz(o.chunkMin, '--chunk-min')! } : {}),
        ...(o.chunkAvg ? { avg: sz(o.chunkAvg, '--chunk-avg')! } : {}),
        ...(o.chunkMax ? { max: sz(o.chunkMax, '--chunk-max')! } : {}),
      };
      const repo = await Repository.init(ctx.storageFor(t.location, t.conf), ctx.password(t.conf, { confirm: true }), {
        chunker,
        ...(o.packSize ? { packSize: sz(o.packSize, '--pack-size')! } : {}),
        ...(o.compressionLevel ? { compressionLevel: Number(o.compressionLevel) } : {}),
      });
      ctx.out.info(`created Lifeboat repository ${repo.config.id.slice(0, 10)} at ${repo.storage.location}\n\nPlease note that knowledge of your password is required to access\nthe repository. Losing your password means that your data is irrecoverably lost.`);
      ctx.out.emit({ message_type: 'initialized', id: repo.config.id, repository: repo.storage.location });
      await repo.close();
    });
}
