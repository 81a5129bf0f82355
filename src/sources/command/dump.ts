import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { z } from 'zod';
import { ConfigError, LifeboatError } from '../../errors.js';
import { findExecutable, parseOptions, runWithInput, spawnTool, type SourceContext } from '../proc.js';
import type { DumpHandle, RestoreResult } from '../types.js';
import { commandSourceSchema } from '../../config/sources.js';

/**
 * Command source: any program whose stdout is the backup (e.g. a vendor dump
 * tool), and optionally a restore command that reads it back from stdin.
 *
 * `command` as a list runs the program directly (no shell); as a string it
 * runs with `/bin/sh -c`, so pipes and variables work. The process (and
 * everything it started: it runs in its own process group) is killed on
 * abort. A non-zero exit status or a signal fails the backup with the tail of
 * the command's stderr, and no snapshot is written.
 *
 * The command line is not recorded in the snapshot (it may contain secrets);
 * only the program name is. Put secrets in `env` referencing your own
 * environment, or let the command read them from a file.
 */

export type CommandSourceOptions = z.output<typeof commandSourceSchema>;
export type CommandSourceInput = z.input<typeof commandSourceSchema>;

/** [program, args] for a command given as a string (via sh -c) or a list. */
export function commandArgv(cmd: string | string[]): [string, string[]] {
  if (typeof cmd === 'string') return ['/bin/sh', ['-c', cmd]];
  return [cmd[0]!, cmd.slice(1)];
}

function resolveProgram(program: string, cwd: string | undefined, env: NodeJS.ProcessEnv): string {
  const p = program.includes('/') ? findExecutable(path.resolve(cwd ?? process.cwd(), program)) : findExecutable(program, env.PATH ?? '');
  if (!p) throw new LifeboatError(`${program} not found ${program.includes('/') ? '(or not executable)' : 'in PATH'}`);
  return p;
}

function programName(cmd: string | string[]): string {
  return typeof cmd === 'string' ? 'sh' : path.basename(cmd[0]!);
}

/** Start the command with its stdout as the dump stream. */
export async function dumpCommand(input: CommandSourceInput | CommandSourceOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const o = parseOptions(commandSourceSchema, input, `command source${ctx.name ? ` ${ctx.name}` : ''}`);
  const env = { ...process.env, ...o.env };
  const [program, args] = commandArgv(o.command);
  const exe = resolveProgram(program, o.cwd, env);
  const tool = typeof o.command === 'string' ? 'command' : path.basename(program);
  const run = spawnTool(exe, args, { tool, env, ...(o.cwd ? { cwd: o.cwd } : {}), signal: ctx.signal });
  return {
    stream: run.stream,
    done: run.done,
    meta: {
      kind: 'command',
      ...(ctx.name ? { name: ctx.name } : {}),
      tool: programName(o.command),
    },
    filename: o.filename ?? (ctx.name ? `${ctx.name}.out` : 'command.out'),
    abort: run.abort,
  };
}

export interface CommandRestoreTarget {
  /** Use this command instead of the source's restoreCommand. */
  command?: string | string[];
  cwd?: string;
  /** Extra environment variables (added to the source's env). */
  env?: Record<string, string>;
  signal?: AbortSignal;
}

/** Feed `stream` to the restore command's stdin. */
export async function restoreCommand(input: CommandSourceInput | CommandSourceOptions, stream: Readable, target: CommandRestoreTarget = {}): Promise<RestoreResult> {
  const started = Date.now();
  const o = parseOptions(commandSourceSchema, input, 'command source');
  const cmd = target.command ?? o.restoreCommand;
  if (!cmd) {
    stream.destroy();
    throw new ConfigError('this command source has no restoreCommand: give one in lifeboat.yaml, or restore the dump to a file or to stdout');
  }
  const env = { ...process.env, ...o.env, ...(target.env ?? {}) };
  const cwd = target.cwd ?? o.cwd;
  const [program, args] = commandArgv(cmd);
  const exe = resolveProgram(program, cwd, env);
  const tool = typeof cmd === 'string' ? 'restore command' : path.basename(program);
  const r = await runWithInput(exe, args, stream, { tool, env, ...(cwd ? { cwd } : {}), ...(target.signal ? { signal: target.signal } : {}) });
  return { durationMs: Date.now() - started, checks: { exitCode: 0, ...(r.stdoutTail ? { output: r.stdoutTail.slice(-1000) } : {}) } };
}
