#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ExitCode, LifeboatError } from '../errors.js';
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
import { abandonedCalls } from '../storage/retry.js';

/**
 * The `lifeboat` command line: a thin layer over the library in src/.
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
  const program = buildProgram();
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) process.exit(ExitCode.INTERRUPTED);
    interrupted = true;
    process.stderr.write(`lifeboat: received ${sig}, stopping (no snapshot is written for an unfinished backup)\n`);
    process.exit(ExitCode.INTERRUPTED);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
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
      // A request abandoned at its deadline (a hung mount or server) may keep the
      // event loop alive: the command is over, so do not wait for it. A call still
      // blocked in the kernel (hung mount) would even block process.exit(), so
      // then the process ends itself with SIGTERM, saying which code it meant.
      setTimeout(() => {
        const n = abandonedCalls();
        if (n > 0) {
          process.stderr.write(`lifeboat: exit code ${code}, but ${n} abandoned file-system call(s) are still blocked (hung mount?); terminating\n`);
          process.removeAllListeners('SIGTERM');
          process.kill(process.pid, 'SIGTERM');
          return;
        }
        process.exit(code);
      }, 2000).unref();
    },
    (err) => {
      process.stderr.write(`lifeboat: ${String(err)}\n`);
      process.exitCode = ExitCode.FATAL;
    },
  );
}
