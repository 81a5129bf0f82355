import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, constants as fsc } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { z } from 'zod';
import { ConfigError, ExitCode, LifeboatError, errorMessage } from '../errors.js';
import { resolveSecret } from '../config/password.js';
import type { ToolResult } from './types.js';
import { giveStreamPieces } from './own-pieces.js';
import { commonSourceFields, passwordFields, refinePassword } from '../config/sources.js';

/**
 * Shared child-process plumbing for the stream sources (database dump tools and
 * arbitrary commands): spawn a tool, expose its stdout as the dump stream, keep
 * a bounded tail of its stderr for error messages, settle `done` from the exit
 * status, and kill it on abort.
 */

/** How many bytes of a tool's stderr we keep for error messages. */
export const STDERR_TAIL_BYTES = 4096;

/** Optional context a dump/restore call gets from the caller (CLI, daemon). */
export interface SourceContext {
  /** Source name in lifeboat.yaml, recorded in the snapshot metadata. */
  name?: string;
  /** Aborting kills the tool; `done` then rejects. */
  signal?: AbortSignal;
  /**
   * SQL queries to run in the dump's own snapshot (postgres: an exported
   * snapshot shared with pg_dump; sqlite: on the copy that is streamed). Their
   * first column of the first row is recorded in snapshot.source.verification,
   * so a restore drill can compare (drill query `equalsBackup: true`).
   */
  verifyQueries?: string[];
}

/** Resolve passwordEnv / passwordFile. `what` names the source in errors; the value is never part of a message. */
export function resolvePassword(o: { passwordEnv?: string; passwordFile?: string }, what: string): string | undefined {
  if (o.passwordEnv !== undefined) return resolveSecret({ env: o.passwordEnv }, `${what} (passwordEnv)`);
  if (o.passwordFile !== undefined) return resolveSecret({ file: o.passwordFile }, `${what} (passwordFile)`);
  return undefined;
}

/**
 * Validate source options with their schema (applying defaults). Callers may
 * pass already-parsed config or a plain object; errors name the offending key.
 */
export function parseOptions<S extends z.ZodType>(schema: S, opts: unknown, what: string): z.output<S> {
  const r = schema.safeParse(opts);
  if (!r.success) {
    const msg = r.error.issues.map((i) => `${i.path.length ? i.path.join('.') + ': ' : ''}${i.message}`).join('; ');
    throw new ConfigError(`${what}: ${msg}`);
  }
  return r.data;
}

/** Keeps the last `max` bytes written to it. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;
  constructor(private readonly max = STDERR_TAIL_BYTES) {}
  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > this.max && this.chunks.length > 0) {
      const first = this.chunks[0]!;
      const excess = this.size - this.max;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
      this.truncated = true;
    }
  }
  toString(): string {
    const s = Buffer.concat(this.chunks).toString('utf8').replace(/^\uFFFD+/, '').trim();
    return this.truncated ? `...${s}` : s;
  }
}

/** Full path of an executable found in PATH (or the given path if it contains "/"), or undefined. */
export function findExecutable(cmd: string, envPath = process.env.PATH ?? ''): string | undefined {
  const ok = (p: string): boolean => {
    try {
      accessSync(p, fsc.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  if (cmd.includes('/')) return ok(cmd) ? cmd : undefined;
  for (const dir of envPath.split(path.delimiter)) {
    if (!dir) continue;
    const p = path.join(dir, cmd);
    if (ok(p)) return p;
  }
  return undefined;
}

/** Resolve a tool: `binDir/cmd` when binDir is given, else PATH. Throws a clear error naming the tool and a hint. */
export function requireTool(cmd: string, hint: string, binDir?: string): string {
  const p = binDir ? findExecutable(path.join(binDir, cmd)) : findExecutable(cmd);
  if (!p) throw new LifeboatError(`${cmd} not found in ${binDir ? binDir : 'PATH'}; ${hint}`);
  return p;
}

/** First of several alternative tools that exists (e.g. mariadb-dump, mysqldump). */
export function requireOneOf(cmds: string[], hint: string, binDir?: string): string {
  for (const c of cmds) {
    const p = binDir ? findExecutable(path.join(binDir, c)) : findExecutable(c);
    if (p) return p;
  }
  throw new LifeboatError(`none of ${cmds.join(', ')} found in ${binDir ? binDir : 'PATH'}; ${hint}`);
}

const versionCache = new Map<string, Promise<string>>();

/** Version of a tool from `cmd --version` (e.g. "15.20"); falls back to the first output line. Cached per command. */
export function toolVersion(cmd: string, args: string[] = ['--version']): Promise<string> {
  const key = `${cmd}\0${args.join('\0')}`;
  let p = versionCache.get(key);
  if (!p) {
    p = runCapture(cmd, args, { timeoutMs: 15_000, tool: path.basename(cmd) }).then(({ stdout, stderr }) => parseVersion(stdout || stderr));
    p.catch(() => versionCache.delete(key));
    versionCache.set(key, p);
  }
  return p;
}

/** "pg_dump (PostgreSQL) 15.20 (Debian ...)" -> "15.20"; "mongodump version: 100.9.4" -> "100.9.4". */
export function parseVersion(out: string): string {
  const first = out.split('\n').find((l) => l.trim() !== '') ?? '';
  // "Distrib 10.11.19-MariaDB" is the server line of mariadb-dump; prefer it over "Ver 10.19".
  const distrib = /Distrib\s+(\d+\.\d+(?:\.\d+)?[^\s,]*)/.exec(first);
  if (distrib) return distrib[1]!.replace(/,$/, '');
  const m = /(\d+\.\d+(?:\.\d+)*)/.exec(first);
  return m ? m[1]! : first.trim();
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal) return `was killed by ${signal}`;
  return `failed with exit code ${code}`;
}

/** The error for a tool that failed: names the tool, the exit status and quotes the tail of stderr. */
export function toolError(tool: string, code: number | null, signal: NodeJS.Signals | null, stderrTail: string, context?: string): LifeboatError {
  const tail = stderrTail.trim();
  return new LifeboatError(`${tool}${context ? ` (${context})` : ''} ${describeExit(code, signal)}${tail ? `:\n${indent(tail)}` : ' (no error output)'}`);
}

function indent(s: string): string {
  return s
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

function spawnError(tool: string, err: NodeJS.ErrnoException): LifeboatError {
  if (err.code === 'ENOENT') return new LifeboatError(`${tool} not found in PATH (${err.message})`);
  if (err.code === 'EACCES') return new LifeboatError(`${tool} is not executable (${err.message})`);
  return new LifeboatError(`cannot start ${tool}: ${err.message}`);
}

export interface SpawnToolOptions {
  /** Name used in error messages (default: basename of cmd). */
  tool?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Feed this stream to the tool's stdin (otherwise stdin is /dev/null). */
  stdin?: Readable;
  /** Optional transform between the tool's stdout and `stream` (e.g. trimming a trailer). */
  transform?: Transform;
  /**
   * Sees each piece of the tool's stdout, in order, as it is read (e.g. to
   * parse headers on the side), without a stream stage of its own: prefer it
   * to a pass-through `transform`. Must not throw or keep the piece (copy what it keeps: the
   * stream's consumer frees each piece once done with it, own-pieces.ts).
   */
  observe?: (chunk: Buffer) => void;
  signal?: AbortSignal;
  /** Extra check run after a successful exit; may throw to fail `done`, may return `extra`. */
  onSuccess?: (stderrTail: string) => Promise<Record<string, unknown> | void> | Record<string, unknown> | void;
  /** Always run when the tool has exited (cleanup of temp files, ...). */
  onExit?: () => Promise<void> | void;
  /** Grace period between SIGTERM and SIGKILL on abort (ms). */
  killGraceMs?: number;
}

export interface RunningTool {
  child: ChildProcess;
  /** The tool's stdout. Ends only after the tool exited successfully; errors if it failed (so a pipe into a restore fails too). */
  stream: Readable;
  done: Promise<ToolResult>;
  abort(): void;
  stderrTail(): string;
}

/**
 * Spawn a dump tool with stdout as the stream. `done` resolves after the tool
 * exited 0 (and stdout was fully read by the consumer), and rejects with a
 * LifeboatError quoting the stderr tail otherwise. `stream` is held open until
 * the exit status is known, then ended (success) or destroyed with the same
 * error (failure), so consumers never mistake a failed dump for a complete one.
 */
export function spawnTool(cmd: string, args: string[], opts: SpawnToolOptions = {}): RunningTool {
  const tool = opts.tool ?? path.basename(cmd);
  const started = Date.now();
  const tail = new TailBuffer();
  const spawnOpts: SpawnOptions = {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
    // Own process group, so abort() also reaches grandchildren (sh -c "a | b").
    detached: true,
  };
  const child = spawn(cmd, args, spawnOpts);
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  // stdout as libuv read it (each read a buffer of its own; `observe` copies what it keeps): its consumer may free each piece
  if (!opts.transform) giveStreamPieces(out);
  const head: NodeJS.WritableStream = opts.transform ?? out;
  if (opts.transform) opts.transform.pipe(out, { end: false });
  let aborted = false;
  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (sig: NodeJS.Signals): void => {
    try {
      if (child.pid) process.kill(-child.pid, sig);
    } catch {
      try {
        child.kill(sig);
      } catch {
        /* already gone */
      }
    }
  };
  const abort = (): void => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    aborted = true;
    killGroup('SIGTERM');
    killTimer = setTimeout(() => killGroup('SIGKILL'), opts.killGraceMs ?? 5000);
    killTimer.unref();
  };
  const onAbortSignal = (): void => abort();
  opts.signal?.addEventListener('abort', onAbortSignal, { once: true });
  if (opts.signal?.aborted) abort();

  child.stderr!.on('data', (b: Buffer) => tail.push(b));
  if (opts.stdin && child.stdin) {
    // A tool that exits early closes its stdin: EPIPE is then expected, the exit status tells what happened.
    child.stdin.on('error', () => {});
    opts.stdin.on('error', () => abort());
    opts.stdin.pipe(child.stdin);
  }

  // Count what the tool delivers into `out`; attached now (as the pipe below),
  // before anything is awaited, so no byte is read by nobody.
  let streamBytes = 0;
  (opts.transform ?? child.stdout!).on('data', (b: Buffer) => {
    streamBytes += b.length;
  });
  const observe = opts.observe;
  if (observe) child.stdout!.on('data', (b: Buffer) => observe(b));
  // stdout -> (transform) -> out, without ending `out`: it ends once the exit status is known.
  const stdoutEnded = new Promise<void>((resolve) => {
    child.stdout!.on('end', resolve);
    child.stdout!.on('close', resolve);
    child.stdout!.on('error', resolve);
  });
  child.stdout!.pipe(head as NodeJS.WritableStream & PassThrough, { end: !!opts.transform });
  const transformDone = opts.transform
    ? new Promise<void>((resolve, reject) => {
        opts.transform!.on('end', resolve);
        opts.transform!.on('error', reject);
      })
    : Promise.resolve();
  // Awaited only after a successful exit; a transform error after a failed exit is superseded by the tool's error.
  transformDone.catch(() => {});
  // If the consumer destroys the stream (e.g. the repository failed), stop the tool.
  out.on('close', () => {
    if (!out.writableFinished) abort();
  });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnErr?: NodeJS.ErrnoException }>((resolve) => {
    let spawnErr: NodeJS.ErrnoException | undefined;
    child.on('error', (err: NodeJS.ErrnoException) => {
      spawnErr = err;
      // 'close' may not follow a spawn failure.
      if (!child.pid) resolve({ code: null, signal: null, spawnErr });
    });
    child.on('close', (code, signal) => resolve({ code, signal, spawnErr }));
  });

  const done = (async (): Promise<ToolResult> => {
    const { code, signal, spawnErr } = await exited;
    opts.signal?.removeEventListener('abort', onAbortSignal);
    if (killTimer) clearTimeout(killTimer);
    try {
      if (spawnErr) throw spawnError(tool, spawnErr);
      await stdoutEnded;
      if (aborted && code !== 0) throw new LifeboatError(`${tool} was aborted${signal ? ` (${signal})` : ''}`);
      if (code !== 0) throw toolError(tool, code, signal, tail.toString());
      await transformDone;
      const extra = (await opts.onSuccess?.(tail.toString())) ?? undefined;
      return { exitCode: code, signal, durationMs: Date.now() - started, streamBytes, ...(extra ? { extra } : {}) };
    } finally {
      await opts.onExit?.();
    }
  })();
  done.then(
    () => out.end(),
    (err: unknown) => out.destroy(err as Error),
  );
  // The consumer may only watch `stream`; the same error is delivered there.
  done.catch(() => {});
  // A tool can fail before anybody consumes `stream` (e.g. while the repository
  // is being locked): the error must not be an unhandled 'error' event. A
  // consumer that reads later still sees it (the stream is errored), and `done`
  // carries it too.
  out.on('error', () => {});
  return { child, stream: out, done, abort, stderrTail: () => tail.toString() };
}

export interface CaptureOptions {
  tool?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Text or stream written to stdin. */
  input?: string | Readable;
  timeoutMs?: number;
  /** Max stdout bytes kept (default 16 MiB). */
  maxStdout?: number;
  /** Context for the error message ("checking server version"). */
  context?: string;
  /** Do not throw on non-zero exit (the caller inspects code). */
  allowFailure?: boolean;
  /** Kills the command (SIGKILL) and rejects at once when aborted. */
  signal?: AbortSignal;
}

export interface CaptureResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  durationMs: number;
}

/** Run a short command (version query, SQL statement) and capture its output. */
export function runCapture(cmd: string, args: string[], opts: CaptureOptions = {}): Promise<CaptureResult> {
  const tool = opts.tool ?? path.basename(cmd);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: [opts.input !== undefined ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let outLen = 0;
    const max = opts.maxStdout ?? 16 * 1024 * 1024;
    const err = new TailBuffer(64 * 1024);
    let timedOut = false;
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill('SIGKILL');
        }, opts.timeoutMs)
      : undefined;
    const onAbort = () => {
      child.kill('SIGKILL');
      if (timer) clearTimeout(timer);
      reject(new LifeboatError(`${tool}${opts.context ? ` (${opts.context})` : ''} aborted: ${errorMessage(opts.signal!.reason)}`, ExitCode.INTERRUPTED));
    };
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('close', () => opts.signal?.removeEventListener('abort', onAbort));
    child.stdout!.on('data', (b: Buffer) => {
      if (outLen < max) {
        out.push(b);
        outLen += b.length;
      }
    });
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => {});
      if (typeof opts.input === 'string') child.stdin.end(opts.input);
      else opts.input.pipe(child.stdin);
    }
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      reject(spawnError(tool, e));
    });
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = err.toString();
      if (timedOut) {
        reject(new LifeboatError(`${tool}${opts.context ? ` (${opts.context})` : ''} did not finish within ${Math.round(opts.timeoutMs! / 1000)}s${stderr ? `:\n${indent(stderr)}` : ''}`));
        return;
      }
      if (code !== 0 && !opts.allowFailure) {
        reject(toolError(tool, code, signal, stderr, opts.context));
        return;
      }
      resolve({ code, signal, stdout, stderr, durationMs: Date.now() - started });
    });
  });
}

/**
 * Run a restore tool with `input` on its stdin. Resolves when the tool exited 0;
 * rejects with the stderr tail otherwise, or with the input's own error when
 * reading the backup failed (the tool is then killed, so a half-read backup is
 * never reported as restored).
 */
export function runWithInput(
  cmd: string,
  args: string[],
  input: Readable,
  opts: {
    tool?: string;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    context?: string;
    stdoutToStderr?: boolean;
    signal?: AbortSignal;
    /** Called for every complete stderr line (for tools whose exit status does not tell everything, e.g. psql). */
    onStderrLine?: (line: string) => void;
    /** Turns the stderr tail into a hint appended to the error message. */
    hint?: (stderrTail: string) => string | undefined;
  } = {},
): Promise<{ durationMs: number; stderrTail: string; stdoutTail: string }> {
  const tool = opts.tool ?? path.basename(cmd);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    const err = new TailBuffer();
    const out = new TailBuffer();
    let inputErr: unknown;
    const kill = (): void => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const onAbort = (): void => {
      inputErr ??= new LifeboatError(`${tool} was aborted`);
      kill();
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    let partial = '';
    child.stderr!.on('data', (b: Buffer) => {
      err.push(b);
      if (opts.onStderrLine) {
        const lines = (partial + b.toString('utf8')).split('\n');
        partial = lines.pop()!;
        for (const l of lines) opts.onStderrLine(l);
      }
    });
    child.stderr!.on('end', () => {
      if (opts.onStderrLine && partial) opts.onStderrLine(partial);
      partial = '';
    });
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stdin!.on('error', () => {});
    input.on('error', (e) => {
      inputErr ??= e;
      kill();
    });
    input.pipe(child.stdin!);
    child.on('error', (e: NodeJS.ErrnoException) => {
      opts.signal?.removeEventListener('abort', onAbort);
      input.unpipe(child.stdin!);
      input.destroy();
      reject(spawnError(tool, e));
    });
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      // Whatever the tool did not read is released (a repository stream holds its lock until closed).
      if (!input.readableEnded) {
        input.unpipe(child.stdin!);
        input.destroy();
      }
      if (inputErr) {
        reject(inputErr instanceof LifeboatError ? inputErr : new LifeboatError(`reading the backup for ${tool} failed: ${(inputErr as Error).message}`, 1, { cause: inputErr }));
        return;
      }
      if (code !== 0) {
        const tailText = [err.toString(), opts.stdoutToStderr ? out.toString() : ''].filter(Boolean).join('\n');
        const e = toolError(tool, code, signal, tailText, opts.context);
        const hint = opts.hint?.(tailText);
        if (hint) e.message += `\n${hint}`;
        reject(e);
        return;
      }
      resolve({ durationMs: Date.now() - started, stderrTail: err.toString(), stdoutTail: out.toString() });
    });
  });
}

/**
 * Check that host:port accepts TCP connections within `timeoutMs`, so an
 * unreachable server fails fast with a clear message instead of a hanging tool.
 * Unix socket paths (host starting with "/") are checked for existence of the socket directory only.
 */
export function probeTcp(host: string, port: number, what: string, timeoutMs = 5000): Promise<void> {
  if (host.startsWith('/')) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const fail = (why: string): void => {
      sock.destroy();
      reject(new LifeboatError(`cannot connect to ${what} at ${formatHostPort(host, port)}: ${why}`));
    };
    sock.setTimeout(timeoutMs, () => fail(`no answer within ${Math.round(timeoutMs / 1000)}s`));
    sock.once('connect', () => {
      sock.destroy();
      resolve();
    });
    sock.once('error', (e: NodeJS.ErrnoException) => fail(e.code === 'ECONNREFUSED' ? 'connection refused (is the server running?)' : e.code === 'ENOTFOUND' ? 'unknown host' : e.message));
  });
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** A file name safe for use inside a snapshot. */
export function safeFilename(name: string): string {
  const s = name.replace(/[/\0\\]/g, '_').replace(/^\.+/, '_');
  return s || 'dump';
}
