import { Command, CommanderError } from 'commander';
import { ExitCode, knownFailure, redactUrlPasswords } from '../errors.js';
import { installSignalHandlers, isBrokenPipe } from './signals.js';
import type { CliContext, GlobalOptions } from './context.js';
import { PROGRAM } from '../repo/version.js';


type CtxOf = (cmd: Command) => CliContext;
type Register = (program: Command, ctxOf: CtxOf) => void;

/**
 * The command modules, in the order `lifeboat --help` lists them, with the
 * top-level commands each one registers. A command module is imported only
 * when one of its commands runs (or for the full help): loading all of them
 * costs more than a small command's work (config schema, engine, sources,
 * server). test/cli-commands.test.ts checks that these names are exactly
 * what each module registers.
 */
export const COMMAND_MODULES: readonly { readonly commands: readonly string[]; readonly load: () => Promise<Register> }[] = [
  { commands: ['init'], load: async () => (await import('./commands/init.js')).registerInit },
  { commands: ['check'], load: async () => (await import('./commands/check.js')).registerCheck },
  { commands: ['forget'], load: async () => (await import('./commands/forget.js')).registerForget },
  { commands: ['prune'], load: async () => (await import('./commands/prune.js')).registerPrune },
  { commands: ['copy'], load: async () => (await import('./commands/copy.js')).registerCopy },
  { commands: ['unlock', 'list'], load: async () => (await import('./commands/locks.js')).registerLocks },
  { commands: ['repair'], load: async () => (await import('./commands/repair.js')).registerRepair },
  { commands: ['key'], load: async () => (await import('./commands/key.js')).registerKey },
  { commands: ['backup'], load: async () => (await import('./commands/backup.js')).registerBackup },
  { commands: ['restore'], load: async () => (await import('./commands/restore.js')).registerRestore },
  { commands: ['snapshots', 'ls', 'diff', 'stats'], load: async () => (await import('./commands/inspect.js')).registerInspect },
  { commands: ['plan', 'run', 'daemon', 'slots', 'status'], load: async () => (await import('./commands/plan.js')).registerPlan },
  { commands: ['drill', 'drills', 'report'], load: async () => (await import('./commands/drill.js')).registerDrill },
  { commands: ['wal-push', 'wal-fetch', 'pg'], load: async () => (await import('./commands/pg.js')).registerPg },
  { commands: ['mysql'], load: async () => (await import('./commands/mysql.js')).registerMysql },
  { commands: ['runbook', 'incident'], load: async () => (await import('./commands/runbook.js')).registerRunbook },
  { commands: ['serve', 'user', 'token', 'status-page', 'maintenance-window'], load: async () => (await import('./commands/serve.js')).registerServe },
  { commands: ['api'], load: async () => (await import('./commands/api.js')).registerApi },
  { commands: ['fleet'], load: async () => (await import('./commands/fleet.js')).registerFleet },
];

/** The options every command accepts (before or after the command name). */
function globalOptions(program: Command): Command {
  return program
    .description('Backup and disaster recovery: deduplicated, compressed, encrypted snapshots of files and databases')
    .version(PROGRAM.split(' ')[1]!)
    .option('-r, --repo <location>', 'repository: a path, s3:https://host/bucket/prefix, s3://bucket/prefix, or a repository name from the config (env LIFEBOAT_REPOSITORY)')
    .option('-p, --password-file <file>', 'read the repository password from a file (or env LIFEBOAT_PASSWORD / LIFEBOAT_PASSWORD_FILE)')
    .option('--password-command <command>', 'shell command that prints the repository password')
    .option('-c, --config <file>', 'configuration file (env LIFEBOAT_CONFIG; default ./lifeboat.yaml if present)')
    .option('--json', 'machine-readable JSON output')
    .option('-q, --quiet', 'only print errors and warnings')
    .option('--retry-lock <duration>', 'wait this long for a locked repository (e.g. 30s, 5m)')
    .option('--no-lock', 'do not lock the repository (reading commands only: snapshots, ls, restore, check, drill; for read-only media)')
    .option('--limit-upload <KiB/s>', 'limit uploads to the repository to this many KiB/s (env LIFEBOAT_LIMIT_UPLOAD)')
    .option('--limit-download <KiB/s>', 'limit downloads from the repository to this many KiB/s (env LIFEBOAT_LIMIT_DOWNLOAD)')
    .option('--append-only', 'never delete or overwrite repository objects (except locks): forget/prune are refused (env LIFEBOAT_APPEND_ONLY=1)');
}

/**
 * The command module that owns the command named in argv, or undefined (no
 * command, `help`, an unknown name, a malformed global option: then every
 * module is loaded, so help and "did you mean" see all commands). The global
 * options are parsed by commander itself on a throwaway program, so an
 * option's value (`-r snapshots`) is never taken for the command.
 */
export function commandModuleOf(argv: readonly string[]): (typeof COMMAND_MODULES)[number] | undefined {
  const m = modulesFor(argv);
  return m.length === 1 ? m[0] : undefined;
}

/**
 * The command modules a run with this argv needs: the one that owns the named
 * command; none for `--version` / `-V` (commander prints the version while it
 * parses the global options, before any command is looked at: loading every
 * module for it cost 0.3 CPU s and 35 MB); all of them otherwise (see
 * commandModuleOf).
 */
export function modulesFor(argv: readonly string[]): readonly (typeof COMMAND_MODULES)[number][] {
  const probe = globalOptions(new Command())
    .exitOverride()
    .configureOutput({ writeOut: () => {}, writeErr: () => {} });
  let name: string | undefined;
  try {
    name = probe.parseOptions(argv.slice(2)).operands[0];
  } catch (err) {
    return err instanceof CommanderError && err.code === 'commander.version' ? [] : COMMAND_MODULES;
  }
  const one = name === undefined ? undefined : COMMAND_MODULES.find((m) => m.commands.includes(name));
  return one ? [one] : COMMAND_MODULES;
}

/**
 * The `lifeboat` command line (the entry point is main.ts): a thin layer over the library in src/.
 * Exit codes are defined in src/errors.ts and listed in README.md. With `argv`, only the module
 * of the command it names is loaded (all of them without argv, or when argv names none).
 */
export async function buildProgram(argv?: readonly string[]): Promise<Command> {
  const program = new Command();
  globalOptions(program)
    .name('lifeboat')
    // storage settings travel in the environment (storage/open.ts reads them), so every command and child sees them
    .hook('preAction', async (_this, action) => {
      const o = action.optsWithGlobals() as GlobalOptions & { limitUpload?: string; limitDownload?: string; appendOnly?: boolean };
      context = await import('./context.js');
      await context.prepareConfig(o);
      if (o.limitUpload !== undefined) process.env.LIFEBOAT_LIMIT_UPLOAD = o.limitUpload;
      if (o.limitDownload !== undefined) process.env.LIFEBOAT_LIMIT_DOWNLOAD = o.limitDownload;
      if (o.appendOnly) process.env.LIFEBOAT_APPEND_ONLY = '1';
    })
    // a usage error (mistyped command, missing argument) prints the error and the
    // suggestion ("Did you mean ...?"), then one hint line, not the whole help
    .showHelpAfterError('(run "lifeboat help" or "lifeboat COMMAND --help" for usage)')
    .exitOverride();
  // context.ts (config, repository opening) is loaded by the preAction hook, which runs before every action
  let context: typeof import('./context.js') | undefined;
  const ctxOf: CtxOf = (cmd) => {
    if (!context) throw new Error('internal error: a command context was asked for before the preAction hook');
    return new context.CliContext(cmd.optsWithGlobals() as GlobalOptions);
  };
  const registers = await Promise.all((argv ? modulesFor(argv) : COMMAND_MODULES).map((m) => m.load()));
  for (const register of registers) register(program, ctxOf);
  for (const c of program.commands) {
    c.exitOverride();
    for (const s of c.commands) s.exitOverride();
  }
  return program;
}

/** One line on stderr for a failure: URL passwords redacted, no stack trace (unless LIFEBOAT_DEBUG is set). */
export function reportError(err: unknown): number {
  if (isBrokenPipe(err)) return ExitCode.OK; // the reader of stdout went away (`lifeboat ls latest | head`)
  const known = knownFailure(err);
  if (known) {
    process.stderr.write(`lifeboat: ${redactUrlPasswords(known.message)}\n`);
    if (process.env.LIFEBOAT_DEBUG && known !== err) process.stderr.write(`${redactUrlPasswords(String((err as Error).stack))}\n`);
    return known.exitCode;
  }
  const msg = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  process.stderr.write(`lifeboat: unexpected error: ${redactUrlPasswords(msg.split('\n')[0]!)}\n`);
  if (process.env.LIFEBOAT_DEBUG) process.stderr.write(`${redactUrlPasswords(String((err as Error)?.stack ?? ''))}\n`);
  else process.stderr.write('lifeboat: (set LIFEBOAT_DEBUG=1 for the stack trace; please report this as a bug)\n');
  return ExitCode.FATAL;
}

export async function main(argv: string[]): Promise<number> {
  // Signal handlers first (the entry point installs them even earlier): everything after this,
  // config loading included, ends with 130 on SIGINT/SIGTERM.
  installSignalHandlers();
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    return reportError(err);
  } finally {
    // let the event loop run a few more turns: a signal that arrived during
    // synchronous work (a long config parse) is handled now, and the exit code
    // is 130 (one turn is not always enough for the signal to be dispatched)
    await new Promise((resolve) => setTimeout(resolve, 1));
    for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
  }
}

