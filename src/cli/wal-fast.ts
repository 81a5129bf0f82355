import { appendFileSync, existsSync, mkdirSync, openSync, closeSync, realpathSync, statSync, truncateSync } from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { ConfigError, ExitCode, LifeboatError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import { DEFAULT_ARCHIVE, validateArchiveName } from '../repo/wal-names.js';
import { queueWal, setWant, spoolPaths, takePrefetched, tryLock } from '../repo/wal-spool.js';
import { formatBytes, formatElapsed as formatDuration } from '../util/format.js';
import { releaseStartupText } from '../util/startup-text.js';
import { walFastCommand } from './wal-command.js';

/**
 * `wal-push` / `wal-fetch` are PostgreSQL's archive_command and
 * restore_command: one process per WAL file, all the time. Loading the whole
 * CLI (config schema, every source kind, server, runbooks) cost about as much
 * CPU as archiving a segment, and on a busy machine the archiver fell behind.
 * Without a config file (the documented archive_command passes --repo and
 * --password-file), they run from here with only the repository code loaded;
 * with a config, or anything this parser does not know, main() falls back to
 * the full CLI. Both paths share the command bodies below.
 */

export interface WalOut {
  emit(o: unknown): void;
  info(m: string): void;
}

export function walArchiveOpt(v: string | undefined): string {
  return validateArchiveName(v ?? process.env.LIFEBOAT_WAL_ARCHIVE ?? DEFAULT_ARCHIVE);
}

/**
 * One WAL file per process: encoded (or decoded) on the main thread, no worker
 * thread. A worker's start-up and the copies to and from it cost more than it
 * saves on one 16 MiB segment (docs/benchmarks.md, "wal-push / wal-fetch per
 * segment"); larger files (wal_segment_size up to 1 GiB) start workers past this.
 */
export const WAL_INLINE_BYTES = 64 * 1024 * 1024;

export async function walPushCommand(repo: Repository, file: string, archive: string, out: WalOut): Promise<void> {
  const { pushWal } = await import('../repo/wal.js');
  repo.inlineUpTo(WAL_INLINE_BYTES);
  const started = Date.now();
  const r = await pushWal(repo, file, { archive });
  // processMs: since the process started (node start-up and module loading included), what PostgreSQL waits for.
  const processMs = Math.round(process.uptime() * 1000);
  out.emit({ message_type: 'wal-push', status: r.status, name: r.entry.name, size: r.entry.size, data_added: r.dataAdded, duration_ms: Date.now() - started, process_ms: processMs });
  out.info(
    r.status === 'stored'
      ? `archived ${r.entry.name} (${formatBytes(r.entry.size)} → ${formatBytes(r.dataAdded)} stored) in ${formatDuration(Date.now() - started)} (process ${formatDuration(processMs)})`
      : `${r.entry.name} is already archived with identical content`,
  );
}

export async function walFetchCommand(repo: Repository, name: string, dest: string, archive: string, out: WalOut): Promise<void> {
  const { fetchWal } = await import('../repo/wal.js');
  repo.inlineUpTo(WAL_INLINE_BYTES);
  const e = await fetchWal(repo, name, dest, { archive });
  out.emit({ message_type: 'wal-fetch', name: e.name, size: e.size });
}

interface FastOpts {
  repo?: string;
  passwordFile?: string;
  passwordCommand?: string;
  json?: boolean;
  quiet?: boolean;
  retryLock?: string;
  archive?: string;
  spool?: string;
  prefetch?: string;
  idle?: string;
}

function retryMs(v: string | undefined): number {
  if (!v) return 10_000;
  const m = /^(\d+)(ms|s|m|h)?$/.exec(v);
  if (!m) throw new ConfigError(`--retry-lock ${v}: expected a duration like 30s, 5m`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? 's') as 'ms'];
}

/** A password source is given (the spool client does not read it: only the worker it starts does). */
function hasPasswordSource(o: FastOpts): boolean {
  return !!(o.passwordFile || o.passwordCommand || process.env.LIFEBOAT_PASSWORD || process.env.LIFEBOAT_PASSWORD_FILE);
}

/** Password without a config file, in the order of CliContext.password; undefined: let the full CLI decide (prompt, error). */
async function password(o: FastOpts): Promise<string | undefined> {
  const { resolveSecret } = await import('../config/password.js');
  if (o.passwordFile) return resolveSecret({ file: o.passwordFile }, 'repository password (--password-file)');
  if (o.passwordCommand) return resolveSecret({ command: o.passwordCommand }, 'repository password (--password-command)');
  if (process.env.LIFEBOAT_PASSWORD) return process.env.LIFEBOAT_PASSWORD;
  if (process.env.LIFEBOAT_PASSWORD_FILE) return resolveSecret({ file: process.env.LIFEBOAT_PASSWORD_FILE }, 'repository password (LIFEBOAT_PASSWORD_FILE)');
  return undefined;
}

function intOpt(v: string | undefined, what: string, def: number, min: number, max: number): number {
  if (v === undefined) return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${what} ${v}: expected a whole number from ${min} to ${max}`);
  return n;
}

type Call =
  | { kind: 'push'; file: string }
  | { kind: 'fetch'; name: string; dest: string }
  | { kind: 'worker'; dir: 'push' | 'fetch'; spool: string };

/**
 * Start the spool's worker (wal-spool-worker) unless one holds its lock: a
 * detached process with this call's repository options (the password travels
 * as a file name or in the environment, never in argv), output to worker.log.
 */
async function ensureWorker(dir: 'push' | 'fetch', spool: string, location: string, o: FastOpts, archive: string): Promise<void> {
  const p = spoolPaths(spool);
  const held = tryLock(dir === 'push' ? p.pushLock : p.fetchLock);
  if (!held) return; // running
  held.release();
  const args = [realpathSync(process.argv[1]!), 'wal-spool-worker', dir, path.resolve(spool), '--repo', location, '--archive', archive];
  if (o.passwordFile) args.push('--password-file', path.resolve(o.passwordFile));
  else if (o.passwordCommand) args.push('--password-command', o.passwordCommand);
  if (o.prefetch) args.push('--prefetch', o.prefetch);
  if (o.idle) args.push('--idle', o.idle);
  if (o.retryLock) args.push('--retry-lock', o.retryLock);
  // keep the log bounded: start over past 16 MiB
  if ((statSync(p.log, { throwIfNoEntry: false })?.size ?? 0) > 16 << 20) truncateSync(p.log, 0);
  const { spawn } = await import('node:child_process'); // only when a worker is started
  const fd = openSync(p.log, 'a', 0o600);
  try {
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', fd, fd], env: process.env });
    child.unref();
  } finally {
    closeSync(fd);
  }
}

/**
 * Run `wal-push` / `wal-fetch` without loading the full CLI. Returns the exit
 * code, or undefined when the full CLI must handle the call (config file, help,
 * an option or form this parser does not take, no password source).
 */
export async function runWalFast(argv: string[]): Promise<number | undefined> {
  const args = argv.slice(2);
  const command = walFastCommand(argv);
  if (!command) return undefined;
  const spoolUse = args.some((a) => a === '--spool' || a.startsWith('--spool='));
  const fallback = (): number | undefined => {
    if (!spoolUse && command !== 'wal-spool-worker') return undefined;
    process.stderr.write('lifeboat: wal-push/wal-fetch --spool (and wal-spool-worker) run without a config file: give --repo and --password-file (or LIFEBOAT_PASSWORD)\n');
    return ExitCode.USAGE;
  };
  if (process.env.LIFEBOAT_CONFIG || existsSync('lifeboat.yaml')) return fallback();
  if (args.some((a) => a === '-c' || a === '--config' || a.startsWith('--config=') || a === '-h' || a === '--help')) return fallback();
  let call: Call | undefined;
  let opts: FastOpts = {};
  const program = new Command()
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} })
    .option('-r, --repo <location>')
    .option('-p, --password-file <file>')
    .option('--password-command <command>')
    .option('--json')
    .option('-q, --quiet')
    .option('--retry-lock <duration>');
  program
    .command('wal-push')
    .exitOverride()
    .argument('<path>')
    .option('--archive <name>')
    .option('--spool <dir>')
    .option('--idle <seconds>')
    .action((file: string, _o: unknown, cmd: Command) => {
      opts = cmd.optsWithGlobals();
      call = { kind: 'push', file };
    });
  program
    .command('wal-fetch')
    .exitOverride()
    .argument('<name>')
    .argument('<dest>')
    .option('--archive <name>')
    .option('--spool <dir>')
    .option('--prefetch <n>')
    .option('--idle <seconds>')
    .action((name: string, dest: string, _o: unknown, cmd: Command) => {
      opts = cmd.optsWithGlobals();
      call = { kind: 'fetch', name, dest };
    });
  program
    .command('wal-spool-worker')
    .exitOverride()
    .argument('<dir>')
    .argument('<spool>')
    .option('--archive <name>')
    .option('--prefetch <n>')
    .option('--idle <seconds>')
    .action((dir: string, spool: string, _o: unknown, cmd: Command) => {
      opts = cmd.optsWithGlobals();
      if (dir === 'push' || dir === 'fetch') call = { kind: 'worker', dir, spool };
    });
  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return fallback();
    throw err;
  }
  if (!call) return fallback();
  const location = opts.repo ?? process.env.LIFEBOAT_REPOSITORY;
  if (!location) return fallback();
  // output.js (progress bars) is not loaded: it costs more start-up than a queued push takes
  const json = !!opts.json;
  const quiet = !!opts.quiet;
  const out: WalOut = {
    emit: (o) => void (json && process.stdout.write(JSON.stringify(o) + '\n')),
    info: (m) => void (!json && !quiet && process.stdout.write(m + '\n')),
  };
  try {
    const archive = walArchiveOpt(opts.archive);
    const idleMs = intOpt(opts.idle, '--idle', 30, 0, 86400) * 1000;
    const depth = intOpt(opts.prefetch, '--prefetch', 8, 1, 256);
    if (call.kind === 'push' && opts.spool) {
      // archive_command, asynchronous: queue durably, make sure a worker runs, return
      const spool = opts.spool;
      mkdirSync(spool, { recursive: true, mode: 0o700 });
      let queuedErr: unknown;
      try {
        const r = await queueWal(spool, call.file);
        const processMs = Math.round(process.uptime() * 1000);
        out.emit({ message_type: 'wal-push', status: r.status, name: r.name, size: r.size, queued: r.queued, spool, process_ms: processMs });
        out.info(`queued ${r.name} in ${spool} (${r.queued} waiting) (process ${formatDuration(processMs)})`);
      } catch (err) {
        queuedErr = err;
      }
      if (!hasPasswordSource(opts)) throw new ConfigError('wal-push --spool: no repository password for the worker (--password-file, --password-command or LIFEBOAT_PASSWORD)');
      await ensureWorker('push', spool, location, opts, archive);
      if (queuedErr) throw queuedErr;
      return ExitCode.OK;
    }
    if (call.kind === 'fetch' && opts.spool) {
      const spool = opts.spool;
      mkdirSync(spool, { recursive: true, mode: 0o700 });
      // want first: the worker keeps the wanted file and stops fetching it again while it is handed over
      await setWant(spool, call.name);
      const taken = await takePrefetched(spool, call.name, call.dest, (m) => process.stderr.write(m + '\n'));
      if (taken === 'missing') {
        await ensureWorker('fetch', spool, location, opts, archive);
        throw new LifeboatError(`wal-fetch: ${call.name} is not in the archive${archive === DEFAULT_ARCHIVE ? '' : ` "${archive}"`} (checked moments ago by the prefetch worker)`, 1);
      }
      if (taken) {
        out.emit({ message_type: 'wal-fetch', name: call.name, prefetched: true, process_ms: Math.round(process.uptime() * 1000) });
        await ensureWorker('fetch', spool, location, opts, archive);
        return ExitCode.OK;
      }
      if (hasPasswordSource(opts)) await ensureWorker('fetch', spool, location, opts, archive);
    }
    const pw = await password(opts);
    if (pw === undefined) return fallback();
    const { Repository } = await import('../repo/repository.js');
    const { openStorage } = await import('../storage/open.js');
    // No index: a push needs none (its entry is written after its own packs), and a fetch reads
    // the blobs where the entry's hints say; the index is loaded only if a hint is stale.
    const repo = await Repository.open(openStorage(location), pw, { loadIndex: false });
    repo.lockRetryMs = opts.retryLock ? retryMs(opts.retryLock) : 10_000;
    try {
      // the command's own modules loaded first: compiled after the release, they would map back
      // much of what it gave back (a push's peak RSS kept 26 of the executable's 38 MB)
      const w = call.kind === 'worker' ? await import('../repo/wal-spool-worker.js') : await import('../repo/wal.js').then(() => undefined);
      // start-up is over: the executable's pages only it used are given back (util/startup-text.ts)
      releaseStartupText();
      if (call.kind === 'push') await walPushCommand(repo, call.file, archive, out);
      else if (call.kind === 'fetch') await walFetchCommand(repo, call.name, call.dest, archive, out);
      else if (w) {
        const logFile = spoolPaths(call.spool).log;
        const log = (m: string) => appendFileSync(logFile, `${new Date().toISOString()} [${process.pid}] ${m}\n`);
        const o = { archive, idleMs, depth, log };
        const r = call.dir === 'push' ? await w.drainSpool(repo, call.spool, o) : await w.prefetchSpool(repo, call.spool, o);
        if (r.ran) log(`${call.dir} worker exits after ${r.files} file(s)`);
      }
    } finally {
      await repo.close();
    }
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof LifeboatError) {
      process.stderr.write(`lifeboat: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`lifeboat: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.FATAL;
  }
}
