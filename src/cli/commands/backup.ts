import { Command } from 'commander';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import { configPath } from '../../config/paths.js';
import { backupPaths, type FileBackupResult } from '../../engine/archiver.js';
import { backupStream, stdinInput, type StreamBackupResult } from '../../sources/stream.js';
import type { backupSource } from '../../sources/pipeline.js';
import { spawnTool } from '../../sources/proc.js';
import type { ToolResult } from '../../sources/types.js';
import type { Repository } from '../../repo/repository.js';
import type { BackupSummary } from '../../repo/snapshot.js';
import { collect, collectRaw } from '../output.js';
import { showProgress } from '../progress.js';
import { type CliContext, type GlobalOptions, sourceBackupSettings } from '../context.js';
import { formatBytes, formatElapsed as formatDuration } from '../../util/format.js';

interface BackupOpts {
  stdin?: boolean;
  stdinFilename?: string;
  stdinFromCommand?: string;
  source?: string[];
  exclude?: string[];
  oneFileSystem?: boolean;
  tag?: string[];
  parent?: string;
  force?: boolean;
  verbose?: boolean;
}

export function printSummary(ctx: CliContext, label: string, id: string, s: BackupSummary): void {
  const out = ctx.out;
  out.info(
    `${label}: snapshot ${id.slice(0, 8)} saved\n` +
      (s.dirs || s.filesNew + s.filesChanged + s.filesUnmodified > 1
        ? `  files: ${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnmodified} unmodified; dirs: ${s.dirs}\n`
        : '') +
      `  processed ${formatBytes(s.totalBytes)} (read ${formatBytes(s.bytesRead)}) in ${formatDuration(s.durationMs)}\n` +
      `  added to the repository: ${formatBytes(s.dataAdded)} (${formatBytes(s.dataAddedRaw)} before compression; ${s.blobsNew} new blobs, ${s.blobsDelta} as deltas)`,
  );
}

export function registerBackup(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('backup')
    .description('create a snapshot of files/directories, of stdin, of a command\'s output, or of configured sources')
    .argument('[paths...]', 'files or directories to back up')
    .option('--stdin', 'read the data to back up from standard input')
    .option('--stdin-filename <name>', 'file name for data read from stdin', 'stdin')
    .option('--stdin-from-command <command>', 'run a command (via sh -c) and back up its stdout; a non-zero exit aborts the snapshot')
    .option('-s, --source <name>', 'back up sources defined in the config (default with --config and no paths: all sources) (repeatable, comma-separated)', collect)
    .option('-e, --exclude <pattern>', 'exclude paths matching a glob (matched against absolute path and base name) (repeatable)', collectRaw)
    .option('-x, --one-file-system', 'do not cross filesystem boundaries')
    .option('--tag <tag>', 'add tags to the snapshot (repeatable, comma-separated)', collect)
    .option('--parent <snapshot>', 'parent snapshot for change detection (default: latest with the same paths)')
    .option('--force', 're-read all files even if unchanged since the parent')
    .option('-v, --verbose', 'progress as a plain line every 10 s when stderr is not a terminal (logs); on a terminal a status line is always shown')
    .action(async (paths: string[], o: BackupOpts, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const modes = [paths.length > 0, !!o.stdin, !!o.stdinFromCommand, !!o.source?.length].filter(Boolean).length;
      if (modes > 1) throw new ConfigError('give only one of: paths, --stdin, --stdin-from-command, --source');
      if (modes === 0) {
        const cfg = ctx.config();
        if (!cfg) throw new ConfigError('nothing to back up: give paths, --stdin, --stdin-from-command, or --config with sources');
        o.source = Object.keys(cfg.sources);
        if (o.source.length === 0) throw new ConfigError(`${cfg.file}: no sources defined`);
      }
      if (o.source?.length) {
        await backupSources(ctx, o.source, o);
        return;
      }
      // a stream moves data through Buffers; a files backup walks metadata as much (100k small files: the
      // unchanged re-backup held +38 MB without incremental marking): see CliContext.openRepo
      const stream = !!(o.stdin || o.stdinFromCommand);
      const repo = await ctx.openRepo();
      // a stream's settings, or a files backup's (its large buffers, chunks and delta bases, get mappings of their
      // own, as a stream's do: util/malloc.ts), as for a configured source
      sourceBackupSettings(stream ? 'stream' : 'tree');
      try {
        if (stream) {
          const r = o.stdin ? await backupFromStdin(ctx, repo, o) : await backupFromCommand(ctx, repo, o.stdinFromCommand!, o);
          report(ctx, 'backup', r);
          return;
        }
        const shown = showProgress(ctx.out, { verbose: !!o.verbose });
        let r: FileBackupResult;
        try {
          r = await backupPaths(repo, {
            paths,
            excludes: o.exclude ?? [],
            oneFileSystem: !!o.oneFileSystem,
            tags: o.tag ?? [],
            ...(o.parent ? { parent: o.parent } : {}),
            force: !!o.force,
            ...(shown.progress ? { progress: shown.progress } : {}),
            onWarning: (p, m) => ctx.out.warn(`${p}: ${m}`),
          });
        } finally {
          shown.stop();
        }
        report(ctx, 'backup', r);
        if (r.summary.errors > 0) {
          ctx.out.warn(`${r.summary.errors} file(s) could not be read; snapshot ${r.snapshotId.slice(0, 8)} is incomplete`);
          process.exitCode = ExitCode.PARTIAL;
        }
      } finally {
        await repo.close();
      }
    });
}

function report(ctx: CliContext, label: string, r: StreamBackupResult | FileBackupResult): void {
  printSummary(ctx, label, r.snapshotId, r.summary);
  const stream = 'stream' in r ? r.stream : undefined;
  if (stream) ctx.out.info(`  stream: ${stream.bytes} bytes, SHA-256 ${stream.sha256}`);
  ctx.out.emit({
    message_type: 'summary',
    snapshot_id: r.snapshotId,
    parent: r.parent ?? null,
    ...r.summary,
    ...(stream ? { stream } : {}),
    warnings: (r as FileBackupResult).warnings ?? [],
  });
}

async function backupFromStdin(ctx: CliContext, repo: Repository, o: BackupOpts): Promise<StreamBackupResult> {
  const shown = showProgress(ctx.out, { verbose: !!o.verbose });
  try {
    return await backupStream(repo, stdinInput(), {
      filename: o.stdinFilename ?? 'stdin',
      tags: o.tag ?? [],
      ...(o.parent ? { parent: o.parent } : {}),
      source: { kind: 'stdin' },
      ...(shown.progress ? { progress: shown.progress } : {}),
    });
  } finally {
    shown.stop();
  }
}

async function backupFromCommand(ctx: CliContext, repo: Repository, command: string, o: BackupOpts): Promise<StreamBackupResult> {
  // spawnTool attaches the reader to the command's stdout at once: a command
  // that finishes while the repository is still being locked loses nothing.
  const run = spawnTool('/bin/sh', ['-c', command], { tool: 'command' });
  let toolError: unknown;
  run.done.catch((e: unknown) => (toolError = e));
  // Interrupted (Ctrl-C, SIGTERM): the command runs in its own process group; stop it too.
  const onExit = (): void => run.abort();
  process.once('exit', onExit);
  let tool: ToolResult | undefined;
  const started = Date.now();
  const shown = showProgress(ctx.out, { verbose: !!o.verbose });
  try {
    return await backupStream(repo, run.stream, {
      filename: o.stdinFilename && o.stdinFilename !== 'stdin' ? o.stdinFilename : 'stdout',
      tags: o.tag ?? [],
      ...(o.parent ? { parent: o.parent } : {}),
      // The command line itself is never recorded (it may contain secrets).
      source: { kind: 'command', tool: 'sh' },
      ...(shown.progress ? { progress: shown.progress } : {}),
      finalize: async () => {
        tool = await run.done;
        return { exitCode: 0, durationMs: Date.now() - started };
      },
      producedBytes: () => tool?.streamBytes,
    });
  } catch (err) {
    await new Promise((r) => setImmediate(r));
    run.abort();
    const own = toolError;
    if (own instanceof LifeboatError) throw new LifeboatError(`${own.message}\nno snapshot was created`, own.exitCode);
    throw err;
  } finally {
    process.removeListener('exit', onExit);
    shown.stop();
  }
}

async function backupSources(ctx: CliContext, names: string[], o: BackupOpts): Promise<void> {
  // the source kinds, the catalog and the notifiers are loaded only here: a backup of paths does not need them
  const { backupSource } = await import('../../sources/pipeline.js');
  const { openConfigCatalog } = await import('../../ops/service.js');
  const { CommandRunReporter, jobsOfSource, reportsRuns } = await import('../../ops/run-hooks.js');
  const cfg = ctx.config(true)!;
  const { SOURCE_CAPABILITIES } = await import('../../config/sources.js'); // loaded with the config already
  const sources = names.map((name) => ctx.source(name)); // every name checked before the first backup
  let failed = 0;
  const results: unknown[] = [];
  // a source's run counts as its job's (catalog, pings, alerts as from the daemon) when notifiers or pings are configured
  const reporter = reportsRuns(cfg) ? new CommandRunReporter(cfg, () => openConfigCatalog(cfg), (m) => process.stderr.write(`lifeboat: ${m}\n`)) : undefined;
  try {
    for (const source of sources) {
      const name = source.name;
      const end = await reporter?.begin(jobsOfSource(cfg, name)[0] ?? name, 'backup', { source: name, repository: source.repository });
      try {
        const repo = await ctx.openRepo({ nameHint: source.repository });
        sourceBackupSettings(SOURCE_CAPABILITIES[source.config.kind].layout);
        let r: Awaited<ReturnType<typeof backupSource>>;
        const shown = showProgress(ctx.out, { label: name, verbose: !!o.verbose });
        try {
          r = await backupSource(repo, source, {
            tags: o.tag ?? [],
            excludes: o.exclude ?? [],
            force: !!o.force,
            ...(shown.progress ? { progress: shown.progress } : {}),
            onWarning: (p, m) => ctx.out.warn(`${p}: ${m}`),
          });
        } finally {
          shown.stop();
          await repo.close();
        }
        printSummary(ctx, name, r.snapshotId, r.summary);
        results.push({ source: name, snapshot_id: r.snapshotId, ...r.summary });
        if (r.partial) process.exitCode = ExitCode.PARTIAL;
        const s = r.summary;
        await end?.({
          status: s.errors > 0 ? 'partial' : 'success',
          exitCode: s.errors > 0 ? ExitCode.PARTIAL : ExitCode.OK,
          snapshotId: r.snapshotId,
          summary: `snapshot ${r.snapshotId.slice(0, 8)}, ${s.totalBytes} bytes`,
          totalSize: s.totalBytes,
          bytesAdded: s.dataAdded,
          bytesRead: s.bytesRead,
          files: s.filesNew + s.filesChanged + s.filesUnmodified,
          errors: s.errors,
          ...(s.errors > 0 ? { error: `${s.errors} item(s) could not be read` } : {}),
        });
      } catch (err) {
        await end?.({ status: 'failed', exitCode: err instanceof LifeboatError ? err.exitCode : ExitCode.FATAL, error: (err as Error).message });
        failed++;
        if (names.length === 1) throw err;
        process.stderr.write(`lifeboat: source ${name} failed: ${(err as Error).message}\n`);
        results.push({ source: name, error: (err as Error).message });
      }
    }
  } finally {
    await reporter?.close();
  }
  ctx.out.emit({ message_type: 'summary', sources: results });
  if (failed) throw new LifeboatError(`${failed} of ${names.length} source(s) failed`);
}

