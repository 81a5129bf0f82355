import { existsSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { resolveSecret } from '../config/password.js';
import { ConfigError, ExitCode, LifeboatError } from '../errors.js';
import { Repository } from '../repo/repository.js';
import { DEFAULT_ARCHIVE, fetchWal, pushWal, validateArchiveName } from '../repo/wal.js';
import { openStorage } from '../storage/open.js';
import { formatBytes, formatDuration, makeOutput, type Output } from './output.js';

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

export async function walPushCommand(repo: Repository, file: string, archive: string, out: WalOut): Promise<void> {
  const started = Date.now();
  const r = await pushWal(repo, file, { archive });
  // processMs: since the process started (node start-up and module loading included), what PostgreSQL waits for.
  const processMs = Math.round(process.uptime() * 1000);
  out.emit({ message_type: 'wal-push', status: r.status, name: r.entry.name, size: r.entry.size, dataAdded: r.dataAdded, durationMs: Date.now() - started, processMs });
  out.info(
    r.status === 'stored'
      ? `archived ${r.entry.name} (${formatBytes(r.entry.size)} → ${formatBytes(r.dataAdded)} stored) in ${formatDuration(Date.now() - started)} (process ${formatDuration(processMs)})`
      : `${r.entry.name} is already archived with identical content`,
  );
}

export async function walFetchCommand(repo: Repository, name: string, dest: string, archive: string, out: WalOut): Promise<void> {
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
}

function retryMs(v: string | undefined): number {
  if (!v) return 10_000;
  const m = /^(\d+)(ms|s|m|h)?$/.exec(v);
  if (!m) throw new ConfigError(`--retry-lock ${v}: expected a duration like 30s, 5m`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[(m[2] ?? 's') as 'ms'];
}

/** Password without a config file, in the order of CliContext.password; undefined: let the full CLI decide (prompt, error). */
function password(o: FastOpts): string | undefined {
  if (o.passwordFile) return resolveSecret({ file: o.passwordFile }, 'repository password (--password-file)');
  if (o.passwordCommand) return resolveSecret({ command: o.passwordCommand }, 'repository password (--password-command)');
  if (process.env.LIFEBOAT_PASSWORD) return process.env.LIFEBOAT_PASSWORD;
  if (process.env.LIFEBOAT_PASSWORD_FILE) return resolveSecret({ file: process.env.LIFEBOAT_PASSWORD_FILE }, 'repository password (LIFEBOAT_PASSWORD_FILE)');
  return undefined;
}

/**
 * Run `wal-push` / `wal-fetch` without loading the full CLI. Returns the exit
 * code, or undefined when the full CLI must handle the call (config file, help,
 * an option or form this parser does not take, no password source).
 */
export async function runWalFast(argv: string[]): Promise<number | undefined> {
  const args = argv.slice(2);
  if (args[0] !== 'wal-push' && args[0] !== 'wal-fetch') return undefined;
  if (process.env.LIFEBOAT_CONFIG || existsSync('lifeboat.yaml')) return undefined;
  if (args.some((a) => a === '-c' || a === '--config' || a.startsWith('--config=') || a === '-h' || a === '--help')) return undefined;
  let call: { kind: 'push'; file: string } | { kind: 'fetch'; name: string; dest: string } | undefined;
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
    .action((name: string, dest: string, _o: unknown, cmd: Command) => {
      opts = cmd.optsWithGlobals();
      call = { kind: 'fetch', name, dest };
    });
  try {
    program.parse(argv);
  } catch (err) {
    if (err instanceof CommanderError) return undefined;
    throw err;
  }
  if (!call) return undefined;
  const location = opts.repo ?? process.env.LIFEBOAT_REPOSITORY;
  if (!location) return undefined;
  const out: Output = makeOutput({ ...(opts.json ? { json: true } : {}), ...(opts.quiet ? { quiet: true } : {}) });
  try {
    const pw = password(opts);
    if (pw === undefined) return undefined;
    const archive = walArchiveOpt(opts.archive);
    const repo = await Repository.open(openStorage(location), pw, { loadIndex: call.kind === 'fetch' });
    repo.lockRetryMs = opts.retryLock ? retryMs(opts.retryLock) : 10_000;
    try {
      if (call.kind === 'push') await walPushCommand(repo, call.file, archive, out);
      else await walFetchCommand(repo, call.name, call.dest, archive, out);
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
