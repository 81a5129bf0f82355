import { existsSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { Repository } from '../../repo/repository.js';
import { applyWalRetention, listWal } from '../../repo/wal.js';
import { DEFAULT_ARCHIVE, validateArchiveName } from '../../repo/wal-names.js';
import { walArchiveOpt, walFetchCommand, walPushCommand } from '../wal-fast.js';
import { releaseStartupText } from '../../util/startup-text.js';
import { PG_ARCHIVE_MODES, chooseBaseBackup, dumpPgPhysical, pgRestore, shQuote, type PgArchiveMode, type PgPhysicalInput, type PitrTarget } from '../../sources/pg-physical/dump.js';
import { backupSource } from '../../sources/pipeline.js';
import { resolveSource } from '../../config/resolve.js';
import { backupStream } from '../../sources/stream.js';
import type { CliContext } from '../context.js';
import { formatBytes, formatElapsed as formatDuration } from '../../util/format.js';
import { registerLogArchiveCommands } from '../log-archive-commands.js';

/**
 * PostgreSQL point-in-time recovery (docs/pitr.md):
 *   lifeboat wal-push <path>            archive_command (one process per WAL file)
 *   lifeboat wal-fetch <name> <dest>    restore_command
 *   lifeboat pg base-backup | restore | wal-list | wal-prune
 */

const archiveOpt = walArchiveOpt;

/** Open the repository without loading the index: wal-push/wal-fetch start-up stays cheap. */
async function openLight(ctx: CliContext, loadIndex: boolean): Promise<Repository> {
  const t = ctx.repositoryTarget();
  const repo = await Repository.open(ctx.storageFor(t.location, t.conf), ctx.password(t.conf), { loadIndex });
  repo.lockRetryMs = ctx.opts.retryLock ? ctx.retryLockMs() : 10_000;
  // start-up is over (repo/wal.ts, the push's and fetch's code, is imported above): the
  // executable's pages only it used are given back, as cli/wal-fast.ts does
  releaseStartupText();
  return repo;
}

function parseTargetTime(s: string): Date {
  let v = s.trim().replace(/^(\d{4}-\d\d-\d\d) /, '$1T');
  v = v.replace(/([+-]\d\d)$/, '$1:00').replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  if (!/(Z|[+-]\d\d:\d\d)$/i.test(v)) throw new ConfigError(`--target-time "${s}": give an explicit time zone, e.g. "2026-11-22 14:30:00+00"`);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ConfigError(`--target-time "${s}": not a valid time (expected e.g. "2026-11-22 14:30:00+00")`);
  return new Date(t);
}

/** The shell command PostgreSQL runs as restore_command: this same lifeboat, with a password FILE. */
function restoreCommandFor(ctx: CliContext, archive: string, walSpool?: string): string {
  const cli = realpathSync(process.argv[1]!);
  // with a spool, the shell fast path (bin/lifeboat-wal) hands prefetched files over without starting Node
  const fast = path.resolve(path.dirname(cli), '../../../bin/lifeboat-wal');
  const parts = walSpool && existsSync(fast) ? ['env', `LIFEBOAT_NODE=${process.execPath}`, fast, 'wal-fetch', '%f', '%p'] : [process.execPath, cli, 'wal-fetch', '%f', '%p'];
  const t = ctx.repositoryTarget();
  if (walSpool && (ctx.opts.config || t.name)) {
    throw new ConfigError('--wal-spool: the prefetching restore_command runs without a config file: give the repository with --repo PATH and --password-file FILE');
  }
  if (ctx.opts.config) parts.push('--config', path.resolve(ctx.opts.config));
  parts.push('--repo', t.name ?? (/^[a-z0-9]+:/i.test(t.location) ? t.location : path.resolve(t.location)));
  if (ctx.opts.passwordFile) parts.push('--password-file', path.resolve(ctx.opts.passwordFile));
  else if (!(t.conf?.password && ctx.opts.config)) {
    throw new ConfigError(
      'pg restore writes a restore_command that must read the repository password from a FILE: pass --password-file FILE ' +
        '(readable by the postgres user), or use --config with a repository whose password is configured',
    );
  }
  if (archive !== DEFAULT_ARCHIVE) parts.push('--archive', archive);
  if (walSpool) parts.push('--spool', path.resolve(walSpool));
  return parts.map((p) => (p === '%f' || p === '%p' ? p : shQuote(p))).join(' ');
}

const ARCHIVE_MODE_TEXT: Record<PgArchiveMode, string> = {
  off: 'WAL archiving: off (archive_mode = off): the restored server does not archive its new timeline into the repository.',
  preserve:
    'WAL archiving: PRESERVED: the restored server keeps the original archive_command and, once promoted, archives its new timeline into the same archive. ' +
    'Right only if it becomes the new primary and the old one is gone.',
};

/**
 * The archiving choice of `pg restore` is explicit: --archive-mode off|preserve
 * (--disable-archiving = off), else asked on a terminal, else a usage error.
 */
async function chooseArchiveMode(o: { archiveMode?: string; disableArchiving?: boolean }): Promise<PgArchiveMode> {
  if (o.archiveMode !== undefined && !(PG_ARCHIVE_MODES as readonly string[]).includes(o.archiveMode)) {
    throw new ConfigError(`--archive-mode must be off or preserve (got "${o.archiveMode}")`);
  }
  if (o.disableArchiving && o.archiveMode === 'preserve') throw new ConfigError('--disable-archiving contradicts --archive-mode preserve');
  if (o.disableArchiving) return 'off';
  if (o.archiveMode) return o.archiveMode as PgArchiveMode;
  if (!process.stdin.isTTY || !process.stderr.isTTY) {
    throw new ConfigError(
      'pg restore needs --archive-mode off|preserve: "off" for a copy made to test, inspect or recover data from (it must not archive its new timeline ' +
        'into the production archive); "preserve" only when the restored cluster is promoted to be the new primary (docs/pitr.md)',
    );
  }
  const { createInterface } = await import('node:readline/promises');
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    for (;;) {
      const a = (
        await rl.question(
          'WAL archiving of the restored server: "off" (a copy to test or inspect; it must not archive into the production archive) or ' +
            '"preserve" (it is promoted to be the new primary)? [off/preserve] ',
        )
      )
        .trim()
        .toLowerCase();
      if (a === 'off' || a === 'preserve') return a;
      process.stderr.write('please answer off or preserve\n');
    }
  } finally {
    rl.close();
  }
}

export function registerPg(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('wal-push')
    .description("archive one PostgreSQL WAL file (archive_command = 'lifeboat wal-push %p --repo … --password-file …')")
    .argument('<path>', 'the WAL file (%p)')
    .option('--archive <name>', `WAL archive name, one per cluster (env LIFEBOAT_WAL_ARCHIVE; default "${DEFAULT_ARCHIVE}")`)
    .action(async (file: string, o: { archive?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const archive = archiveOpt(o.archive);
      const repo = await openLight(ctx, false);
      try {
        await walPushCommand(repo, file, archive, ctx.out);
      } finally {
        await repo.close();
      }
    });

  program
    .command('wal-fetch')
    .description("restore one archived WAL file (restore_command = 'lifeboat wal-fetch %f %p …'); exit 1 when it is not archived")
    .argument('<name>', 'WAL file name (%f)')
    .argument('<dest>', 'where to write it (%p)')
    .option('--archive <name>', `WAL archive name (env LIFEBOAT_WAL_ARCHIVE; default "${DEFAULT_ARCHIVE}")`)
    .action(async (name: string, dest: string, o: { archive?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const repo = await openLight(ctx, true);
      try {
        await walFetchCommand(repo, name, dest, archiveOpt(o.archive), ctx.out);
      } finally {
        await repo.close();
      }
    });

  const pg = program.command('pg').description('PostgreSQL physical backups and point-in-time recovery (docs/pitr.md)');

  pg.command('base-backup')
    .description('stream a physical base backup (pg_basebackup -Ft -X none, or with --data-dir read directly) into the repository')
    .option('--source <name>', 'a postgres-physical source from the config')
    .option('--host <host>', 'server host (without --source)', '127.0.0.1')
    .option('--port <port>', 'server port', (v) => Number(v), 5432)
    .option('--user <user>', 'replication user', 'postgres')
    .option('--archive <name>', 'WAL archive name this cluster pushes to')
    .option('--data-dir <dir>', "the cluster's data directory on this host: read it directly between pg_backup_start and pg_backup_stop instead of through pg_basebackup")
    .option('--tag <tag...>', 'extra snapshot tags')
    .action(async (o: { source?: string; host: string; port: number; user: string; archive?: string; dataDir?: string; tag?: string[] }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const started = Date.now();
      const r = await ctx.withRepo(async (repo) => {
        if (o.source) {
          const cfg = ctx.config(true)!;
          const source = resolveSource(cfg, o.source);
          if (!source) throw new ConfigError(`unknown source "${o.source}"`);
          if (source.kind !== 'postgres-physical') throw new ConfigError(`source ${o.source} is a ${source.kind} source; pg base-backup needs kind postgres-physical`);
          if (o.dataDir) throw new ConfigError('--data-dir: with --source, set dataDir in the source instead');
          return backupSource(repo, source, { tags: o.tag ?? [] });
        }
        const input: PgPhysicalInput = { kind: 'postgres-physical', host: o.host, port: o.port, user: o.user, archive: archiveOpt(o.archive), ...(o.dataDir ? { dataDir: o.dataDir } : {}) };
        if (process.env.PGPASSWORD) input.passwordEnv = 'PGPASSWORD';
        const h = await dumpPgPhysical(input);
        h.stream.on('error', () => {}); // reported through h.done
        let toolErr: unknown;
        h.done.catch((e: unknown) => (toolErr = e));
        let streamBytes: number | undefined;
        try {
          return await backupStream(repo, h.stream, {
            filename: h.filename,
            source: h.meta,
            tags: ['pg-basebackup', ...(o.tag ?? [])],
            finalize: async () => {
              const d = await h.done;
              streamBytes = d.streamBytes;
              return { exitCode: d.exitCode, durationMs: d.durationMs, ...(d.extra ?? {}) };
            },
            producedBytes: () => streamBytes,
          });
        } catch (err) {
          await new Promise((res) => setImmediate(res));
          h.abort();
          throw toolErr instanceof Error ? toolErr : err;
        }
      }, { allowInit: false, bulk: true });
      const ms = Date.now() - started;
      const s = r.summary;
      ctx.out.emit({ message_type: 'pg-base-backup', snapshot: r.snapshotId, ...s, throughputBytesPerSec: Math.round((s.totalBytes * 1000) / Math.max(1, ms)) });
      ctx.out.info(
        `base backup snapshot ${r.snapshotId.slice(0, 8)}: ${formatBytes(s.totalBytes)} in ${formatDuration(ms)} ` +
          `(${formatBytes((s.totalBytes * 1000) / Math.max(1, ms))}/s), ${formatBytes(s.dataAdded)} added`,
      );
    });

  pg.command('restore')
    .description('restore a base backup into a new data directory, set up to recover to a point in time')
    .argument('[snapshot]', 'base backup snapshot id (default: newest that finished before the target)')
    .requiredOption('--to <dir>', 'new (or empty) data directory')
    .option('--target-time <time>', 'recover up to this time, e.g. "2026-11-22 14:30:00+00"')
    .option('--target-lsn <lsn>', 'recover up to this LSN, e.g. 0/3000000')
    .option('--target-action <action>', 'what the server does at the target: promote, pause, shutdown', 'promote')
    .option('--target-timeline <tl>', 'recovery_target_timeline (default PostgreSQL\'s: latest)')
    .option('--source <name>', 'only base backups of this source')
    .option('--archive-mode <mode>', 'WAL archiving of the restored server (required): "off" (archive_mode = off: a copy to test or inspect) or "preserve" (keep archive_command: only when the restored cluster is promoted to the new primary)')
    .option('--disable-archiving', 'same as --archive-mode off')
    .option('--wal-spool <dir>', 'restore_command prefetches WAL into this directory (wal-fetch --spool; docs/pitr.md)')
    .action(
      async (
        snapshot: string | undefined,
        o: { to: string; targetTime?: string; targetLsn?: string; targetAction: string; targetTimeline?: string; source?: string; archiveMode?: string; disableArchiving?: boolean; walSpool?: string },
        cmd: Command,
      ) => {
        const ctx = ctxOf(cmd);
        if (o.targetTime && o.targetLsn) throw new ConfigError('give --target-time or --target-lsn, not both');
        const archiveMode = await chooseArchiveMode(o);
        if (!['promote', 'pause', 'shutdown'].includes(o.targetAction)) throw new ConfigError('--target-action must be promote, pause or shutdown');
        const target: PitrTarget = {
          ...(o.targetTime && o.targetTime !== 'latest' ? { time: parseTargetTime(o.targetTime) } : {}),
          ...(o.targetLsn ? { lsn: o.targetLsn } : {}),
          action: o.targetAction as PitrTarget['action'] & string,
          ...(o.targetTimeline ? { timeline: o.targetTimeline } : {}),
        };
        const r = await ctx.withRepo(async (repo) => {
          const probe = await chooseBaseBackup(repo, { ...(snapshot ? { snapshot } : {}), ...(o.source ? { source: o.source } : {}), target });
          const archive = String(probe.source?.archive ?? DEFAULT_ARCHIVE);
          return pgRestore(repo, {
            snapshot: probe.id,
            to: o.to,
            target,
            restoreCommand: restoreCommandFor(ctx, archive, o.walSpool),
            archiveMode,
            log: (m) => ctx.out.info(m),
          });
        }, { allowInit: false, bulk: true });
        ctx.out.emit({ message_type: 'pg-restore', snapshot: r.snapshot.id, to: r.to, bytes: r.bytes, durationMs: r.durationMs, archiveMode, settings: r.settings });
        ctx.out.info(
          `restored ${formatBytes(r.bytes)} in ${formatDuration(r.durationMs)}; recovery settings written to ${path.join(r.to, 'postgresql.auto.conf')}:\n` +
            Object.entries(r.settings)
              .map(([k, v]) => `  ${k} = '${v}'`)
              .join('\n') +
            `\nNext step: make sure ${r.to} is owned by the postgres user and the password file is readable by it, then start PostgreSQL:\n` +
            `  pg_ctl -D ${shQuote(r.to)} start    (as the postgres user)\n` +
            `${ARCHIVE_MODE_TEXT[archiveMode]}\n` +
            `It replays archived WAL ${target.time ? `up to ${target.time.toISOString()}` : target.lsn ? `up to ${target.lsn}` : 'to the end of the archive'} and then ${target.time || target.lsn ? target.action : 'promotes'}.`,
        );
      },
    );

  registerLogArchiveCommands(pg, ctxOf, {
    prefix: 'wal',
    listDescription: 'list archived WAL files',
    pruneDescription: 'remove archived WAL older than the oldest base backup (run "prune" afterwards to free the space; prune also does this)',
    files: 'WAL file(s)',
    list: listWal,
    validateArchive: validateArchiveName,
    applyRetention: applyWalRetention,
    cutoffLine: (a, c) => (c === undefined ? `archive ${a}: no base backup, keeping all WAL` : `archive ${a}: keeping WAL from segment position ${c}`),
    pruneHint: '; run "lifeboat prune" to free their data',
  });
}

