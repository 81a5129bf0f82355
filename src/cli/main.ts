#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ExitCode, LifeboatError } from '../errors.js';
import type { GlobalOptions } from './context.js';
import { PROGRAM } from '../repo/repository.js';

/**
 * The `lifeboat` command line: a thin layer over the library in src/.
 * Exit codes are defined in src/errors.ts and listed in README.md.
 * The commands are loaded on demand, so wal-push / wal-fetch (one process per
 * WAL file, see wal-fast.ts) start without loading all of them.
 */
export async function buildProgram(): Promise<Command> {
  const [
    { CliContext },
    { registerBackup },
    { registerRestore },
    { registerInspect },
    { registerMaintenance },
    { registerPlan },
    { registerDrill },
    { registerPg },
    { registerRunbook },
    { registerServe },
    { registerApi },
  ] = await Promise.all([
    import('./context.js'),
    import('./commands/backup.js'),
    import('./commands/restore.js'),
    import('./commands/inspect.js'),
    import('./commands/maintenance.js'),
    import('./commands/plan.js'),
    import('./commands/drill.js'),
    import('./commands/pg.js'),
    import('./commands/runbook.js'),
    import('./commands/serve.js'),
    import('./commands/api.js'),
  ]);
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
    .showHelpAfterError()
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

export async function main(argv: string[]): Promise<number> {
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) process.exit(ExitCode.INTERRUPTED);
    interrupted = true;
    process.stderr.write(`lifeboat: received ${sig}, stopping (no snapshot is written for an unfinished backup)\n`);
    process.exit(ExitCode.INTERRUPTED);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (argv[2] === 'wal-push' || argv[2] === 'wal-fetch') {
    const code = await (await import('./wal-fast.js')).runWalFast(argv);
    if (code !== undefined) return code;
  }
  try {
    const program = await buildProgram();
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return ExitCode.OK;
      return ExitCode.USAGE;
    }
    if (err instanceof LifeboatError) {
      process.stderr.write(`lifeboat: ${err.message}\n`);
      return err.exitCode;
    }
    process.stderr.write(`lifeboat: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`);
    return ExitCode.FATAL;
  }
}

function isEntryPoint(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(`lifeboat: ${String(err)}\n`);
      process.exitCode = ExitCode.FATAL;
    },
  );
}
