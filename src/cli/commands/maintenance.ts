import { Command } from 'commander';
import type { CliContext } from '../context.js';
import { registerCheck } from './check.js';
import { registerCopy } from './copy.js';
import { registerForget } from './forget.js';
import { registerInit } from './init.js';
import { registerKey } from './key.js';
import { registerPrune } from './prune.js';
import { registerRepair } from './repair.js';
import { registerUnlock } from './unlock.js';

/**
 * The repository maintenance commands, one file each (key and repair: one
 * file per command group). Registered here in the order `lifeboat --help`
 * lists them.
 */
export function registerMaintenance(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  registerInit(program, ctxOf);
  registerCheck(program, ctxOf);
  registerForget(program, ctxOf);
  registerPrune(program, ctxOf);
  registerCopy(program, ctxOf);
  registerUnlock(program, ctxOf);
  registerRepair(program, ctxOf);
  registerKey(program, ctxOf);
}
