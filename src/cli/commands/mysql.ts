import * as path from 'node:path';
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { applyBinlogRetention, listBinlogs, validateBinlogArchive } from '../../repo/binlog.js';
import { parseDuration } from '../../util/duration.js';
import type { LifeboatConfig } from '../../config/config.js';
import { configPath } from '../../config/paths.js';
import { archiveBinlogsOnce, mysqlPitrRestore, parseBinlogPosition, streamBinlogs, type MysqlPitrTarget } from '../../sources/mysql/binlog.js';
import type { MysqlSourceOptions } from '../../sources/mysql/dump.js';
import { restoreTarget } from '../../sources/restore-target.js';
import { resolveSourcePaths } from '../../config/resolve.js';
import type { CliContext } from '../context.js';
import { registerLogArchiveCommands } from '../log-archive-commands.js';
import { formatBytes, formatElapsed as formatDuration } from '../../util/format.js';

/**
 * MySQL/MariaDB point-in-time recovery (docs/pitr.md, "MySQL / MariaDB"):
 *   lifeboat mysql binlog-archive SOURCE [--once]   archive binary logs
 *   lifeboat mysql restore SOURCE --target-time T | --target-position FILE:POS
 *   lifeboat mysql binlog-list | binlog-prune
 */

function mysqlSource(ctx: CliContext, name: string): { cfg: LifeboatConfig; src: MysqlSourceOptions } {
  const cfg = ctx.config(true)!;
  const src = cfg.sources[name];
  if (!src) throw new ConfigError(`unknown source "${name}" (defined in ${cfg.file}: ${Object.keys(cfg.sources).join(', ')})`);
  if (src.kind !== 'mysql') throw new ConfigError(`source ${name} is a ${src.kind} source; this command needs a mysql source`);
  const resolved = resolveSourcePaths(src, cfg) as MysqlSourceOptions;
  if (resolved.binlog?.spoolDir) resolved.binlog = { ...resolved.binlog, spoolDir: configPath(cfg, resolved.binlog.spoolDir) };
  return { cfg, src: resolved };
}

export function parseTargetTime(s: string): Date {
  let v = s.trim().replace(/^(\d{4}-\d\d-\d\d) /, '$1T');
  v = v.replace(/([+-]\d\d)$/, '$1:00').replace(/([+-]\d\d)(\d\d)$/, '$1:$2');
  if (!/(Z|[+-]\d\d:\d\d)$/i.test(v)) throw new ConfigError(`--target-time "${s}": give an explicit time zone, e.g. "2026-11-22 14:30:00+00"`);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new ConfigError(`--target-time "${s}": not a valid time (expected e.g. "2026-11-22 14:30:00+00")`);
  return new Date(t);
}

export function registerMysql(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const my = program.command('mysql').description('MySQL/MariaDB binary log archive and point-in-time recovery (docs/pitr.md)');

  my.command('binlog-archive')
    .description('archive the binary logs of a mysql source into the repository: streaming (runs until SIGTERM), or --once (cron)')
    .argument('<source>', 'a mysql source from the config')
    .option('--once', 'FLUSH BINARY LOGS, archive every closed binary log not archived yet, and exit')
    .option('--no-flush', 'with --once: do not FLUSH BINARY LOGS first (archive only files the server closed itself)')
    .option('--spool-dir <dir>', 'streaming: directory for the binary log being received (default: binlog.spoolDir, else under the temp dir)')
    .option('--flush-interval <duration>', 'streaming: FLUSH BINARY LOGS this often (e.g. 1m) so the current file is closed and archived (default: binlog.flushInterval)')
    .action(async (name: string, o: { once?: boolean; flush: boolean; spoolDir?: string; flushInterval?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const { src } = mysqlSource(ctx, name);
      if (!src.binlog) ctx.out.info(`note: source ${name} has no binlog: section, so its dumps do not record binary log coordinates (they cannot start a point-in-time recovery)`);
      if (o.once) {
        const r = await ctx.withRepo((repo) => archiveBinlogsOnce(repo, src, { sourceName: name, flush: o.flush, ...(o.spoolDir ? { spoolDir: o.spoolDir } : {}), log: (m) => ctx.out.info(m) }), { nameHint: src.repository });
        ctx.out.emit({ message_type: 'mysql-binlog-archive', ...r });
        ctx.out.info(`archive "${r.archive}": ${r.archived.length} binary log(s) archived, ${r.alreadyArchived} already there; ${r.current} is being written`);
        return;
      }
      const every = o.flushInterval ?? src.binlog?.flushInterval;
      const flushIntervalMs = every ? parseDuration(every) : undefined;
      const ac = new AbortController();
      process.removeAllListeners('SIGTERM');
      process.removeAllListeners('SIGINT');
      const stop = (sig: string) => {
        ctx.out.info(`received ${sig}: archiving what is complete, then stopping`);
        ac.abort();
      };
      process.once('SIGTERM', () => stop('SIGTERM'));
      process.once('SIGINT', () => stop('SIGINT'));
      const spoolDir = o.spoolDir ? path.resolve(o.spoolDir) : src.binlog?.spoolDir;
      await ctx.withRepo(
        (repo) =>
          streamBinlogs(repo, src, {
            sourceName: name,
            signal: ac.signal,
            ...(spoolDir ? { spoolDir } : {}),
            ...(flushIntervalMs ? { flushIntervalMs } : {}),
            log: (m) => ctx.out.info(m),
            onArchived: (file, size) => ctx.out.emit({ message_type: 'mysql-binlog-archived', file, size }),
          }),
        { nameHint: src.repository },
      );
    });

  my.command('restore')
    .description('restore the newest dump before the target, then replay archived binary logs up to the target')
    .argument('<source>', 'a mysql source from the config (with a binlog: section)')
    .option('--target-time <time>', 'replay up to this time (exclusive, second resolution), e.g. "2026-11-22 14:30:00+00"')
    .option('--target-position <file:pos>', 'replay up to this binary log position (exclusive), e.g. mysql-bin.000042:1234')
    .option('--snapshot <id>', 'start from this dump (default: the newest whose coordinates precede the target)')
    .option('--to-database <db|url>', 'restore into this database (name or mysql://user@host:port/db; default: the source\'s database on the source\'s server)')
    .option('--clean', 'drop and recreate the target database first')
    .option('--force', 'restore on top of a non-empty target database')
    .action(async (name: string, o: { targetTime?: string; targetPosition?: string; snapshot?: string; toDatabase?: string; clean?: boolean; force?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      if (!o.targetTime === !o.targetPosition) throw new ConfigError('give exactly one of --target-time or --target-position');
      const { src } = mysqlSource(ctx, name);
      const target: MysqlPitrTarget = o.targetTime ? { time: parseTargetTime(o.targetTime) } : { position: parseBinlogPosition(o.targetPosition!) };
      const to = { ...restoreTarget('mysql', o.toDatabase), ...(o.clean ? { clean: true } : {}), ...(o.force ? { force: true } : {}) };
      try {
        const r = await ctx.withRepo(
          (repo) => mysqlPitrRestore(repo, name, src, { target, ...(o.snapshot ? { snapshot: o.snapshot } : {}), to, log: (m) => ctx.out.info(m) }),
          { nameHint: src.repository },
        );
        ctx.out.emit({
          message_type: 'mysql-restore',
          snapshot: r.snapshot.id,
          coordinates: r.coords,
          binlogs: r.files,
          bytes: r.bytes,
          ...(r.database ? { database: r.database } : {}),
          durationMs: r.durationMs,
          replayMs: r.replayMs,
        });
        ctx.out.info(
          `restored source ${name} from dump ${r.snapshot.id.slice(0, 8)} and replayed ${r.files.length} binary log(s) (${formatBytes(r.bytes)}) ` +
            `${target.time ? `up to ${target.time.toISOString()}` : `up to ${o.targetPosition}`} in ${formatDuration(r.durationMs)}`,
        );
      } catch (err) {
        process.stderr.write(`lifeboat: POINT-IN-TIME RESTORE FAILED for source ${name}\n`);
        throw err;
      }
    });

  registerLogArchiveCommands(my, ctxOf, {
    prefix: 'binlog',
    listDescription: 'list archived binary logs',
    pruneDescription: 'remove archived binary logs older than the oldest dump\'s coordinates (run "prune" afterwards to free the space; prune also does this)',
    files: 'binary log(s)',
    list: listBinlogs,
    validateArchive: validateBinlogArchive,
    applyRetention: applyBinlogRetention,
    cutoffLine: (a, c) => (c === undefined ? `archive ${a}: no dump with coordinates, keeping every binary log` : `archive ${a}: keeping binary logs from ${c}`),
  });
}
