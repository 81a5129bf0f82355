import { ExitCode } from '../errors.js';

/**
 * Process-level behaviour of the CLI, installed first thing when it starts
 * (before the command modules load and before any config is read), so a
 * signal or a closed pipe at any moment ends the process the documented way.
 * No heavy imports here: this module loads in milliseconds.
 */

let signalsInstalled = false;

/** SIGINT/SIGTERM end the process with exit code 130 (a second signal too). */
export function installSignalHandlers(): void {
  if (signalsInstalled) return;
  signalsInstalled = true;
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (!interrupted) {
      interrupted = true;
      // on a terminal, first erase a progress status line (cli/progress.ts) the message would otherwise continue
      process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}lifeboat: received ${sig}, stopping (no snapshot is written for an unfinished backup)\n`);
    }
    process.exit(ExitCode.INTERRUPTED);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/**
 * `lifeboat ls latest | head`: when the reader of stdout goes away, writing
 * fails with EPIPE. That is not a failure of the command: end quietly with
 * exit 0 (what a shell pipeline expects), never with a stack trace. An error
 * on stderr itself cannot be reported anywhere and is ignored.
 */
export function installStdioGuards(exit: (code: number) => void = (c) => process.exit(c)): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (isBrokenPipe(err)) return exit(0);
    process.stderr.write(`lifeboat: cannot write to standard output: ${err.code ?? err.message}\n`);
    exit(1);
  });
  process.stderr.on('error', () => {});
}

/** True for the error a write to a closed pipe ends with. */
export function isBrokenPipe(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED';
}
