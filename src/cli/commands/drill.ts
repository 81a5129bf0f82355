import type { Command } from 'commander';
import type { CliContext } from '../context.js';

export function registerDrill(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  void program;
  void ctxOf;
}
