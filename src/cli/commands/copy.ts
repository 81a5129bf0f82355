import { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { filterSnapshots } from '../../repo/repository.js';
import { copySnapshots } from '../../repo/copy.js';
import { copyWal } from '../../repo/wal.js';
import { copyBinlogs } from '../../repo/binlog.js';
import type { CliContext } from '../context.js';
import { collect } from '../output.js';
import { formatBytes } from '../../util/format.js';

/** Registers the `copy` command: copy snapshots (and archived WAL) from another repository. */
export function registerCopy(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('copy')
    .description('copy snapshots from another repository into this one (3-2-1 copies), deduplicated, without re-reading the source')
    .argument('[snapshots...]', 'snapshot ids to copy (default: all)')
    .requiredOption('--from-repo <location>', 'source repository (location or config name)')
    .option('--from-password-file <file>', 'password file of the source repository (or env LIFEBOAT_FROM_PASSWORD)')
    .option('--host <host>', 'only snapshots from this host')
    .option('--tag <tag>', 'only snapshots with these tags (repeatable, comma-separated)', collect)
    .option('--no-wal', 'do not copy the archived PostgreSQL WAL and MySQL binary logs (copied by default, so PITR works from the copy)')
    .action(async (ids: string[], o: { fromRepo: string; fromPasswordFile?: string; host?: string; tag?: string[]; wal: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const src = await ctx.openOtherRepo(o.fromRepo, o.fromPasswordFile);
      try {
        const dst = await ctx.openRepo();
        try {
          let snaps = ids.length ? await Promise.all(ids.map((id) => src.findSnapshot(id))) : await src.listSnapshots();
          snaps = filterSnapshots(snaps, { ...(o.host ? { host: o.host } : {}), ...(o.tag ? { tags: o.tag } : {}) });
          const r = await copySnapshots(src, dst, snaps, (m) => ctx.out.info(m));
          ctx.out.info(`copied ${r.copied.length} snapshot(s), ${r.skipped.length} already present; added ${formatBytes(r.dataAdded)} (${r.blobsNew} new blobs)`);
          const wal = o.wal ? await copyWal(src, dst) : undefined;
          if (wal && wal.copied + wal.present + wal.conflicts.length > 0) {
            ctx.out.info(`copied ${wal.copied} archived WAL file(s), ${wal.present} already present; added ${formatBytes(wal.dataAdded)}`);
            for (const c of wal.conflicts) ctx.out.warn(`WAL ${c} exists in the destination with different content; left as it is`);
          }
          // archived MySQL binary logs: likewise (with --no-wal, neither is copied)
          const binlogs = o.wal ? await copyBinlogs(src, dst) : undefined;
          if (binlogs && binlogs.copied + binlogs.present + binlogs.conflicts.length > 0) {
            ctx.out.info(`copied ${binlogs.copied} archived binary log(s), ${binlogs.present} already present; added ${formatBytes(binlogs.dataAdded)}`);
            for (const c of binlogs.conflicts) ctx.out.warn(`binary log ${c} exists in the destination with different content; left as it is`);
          }
          ctx.out.emit({ message_type: 'copy', ...r, ...(wal ? { wal } : {}), ...(binlogs ? { binlogs } : {}) });
          if (wal?.conflicts.length || binlogs?.conflicts.length) process.exitCode = ExitCode.PARTIAL;
        } finally {
          await dst.close();
        }
      } finally {
        await src.close();
      }
    });
}
