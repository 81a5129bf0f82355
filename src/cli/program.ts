import { Command, CommanderError } from 'commander';
import { ExitCode, knownFailure, redactUrlPasswords } from '../errors.js';
import { installSignalHandlers, isBrokenPipe } from './signals.js';
import { CliContext, type GlobalOptions } from './context.js';
import { registerBackup } from './commands/backup.js';
import { registerRestore } from './commands/restore.js';
import { registerInspect } from './commands/inspect.js';
import { registerMaintenance } from './commands/maintenance.js';
import { registerPlan } from './commands/plan.js';
import { registerDrill } from './commands/drill.js';
import { registerPg } from './commands/pg.js';
import { registerRunbook } from './commands/runbook.js';
import { registerServe } from './commands/serve.js';
import { registerApi } from './commands/api.js';
import { PROGRAM } from '../repo/repository.js';

export { abandonedCalls } from '../storage/retry.js';

/**
 * The `lifeboat` command line (the entry point is main.ts): a thin layer over the library in src/.
 * Exit codes are defined in src/errors.ts and listed in README.md.
 */
export function buildProgram(): Command {
  const program = new Command();
  program
    .name('lifeboat')
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
    // a usage error (mistyped command, missing argument) prints the error and the
    // suggestion ("Did you mean ...?"), then one hint line, not the whole help
    .showHelpAfterError('(run "lifeboat help" or "lifeboat COMMAND --help" for usage)')
    .exitOverride();
  const ctxOf = (cmd: Command) => new CliContext(cmd.optsWithGlobals() as GlobalOptions);
  registerMaintenance(program, ctxOf);
  registerBackup(program, ctxOf);
  registerRestore(program, ctxOf);
  registerInspect(program, ctxOf);
  registerPlan(program, ctxOf);
  registerDrill(program, ctxOf);
  registerPg(program, ctxOf);
  registerRunbook(program, ctxOf);
  registerServe(program, ctxOf);
  registerApi(program, ctxOf);
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
  const program = buildProgram();
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

