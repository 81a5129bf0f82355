import { createRequire } from 'node:module';
import { formatBytes, formatElapsed } from '../util/format.js';
import { snakeKeys } from './json-keys.js';


export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i]!)).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export interface Output {
  json: boolean;
  quiet: boolean;
  /** Human-readable line on stdout (suppressed with --json / --quiet). */
  info(msg: string): void;
  /** Warning on stderr (always shown unless --quiet... warnings are always shown). */
  warn(msg: string): void;
  /** Emit a JSON document on stdout (only in --json mode). */
  emit(obj: unknown): void;
  /**
   * A listing written as it is produced, never held whole: with --json one JSON array (the document
   * emit(items) would write), else `line(item)` per item (nothing with --quiet). Resolves to the
   * item count. If `items` throws, what was written stays written (the command then fails).
   */
  list<T>(items: AsyncIterable<T> | Iterable<T>, line: (item: T) => string): Promise<number>;
  /** A progress bar on stderr if it is a TTY and output is human. */
  progress(total: number | undefined, label: string): Progress;
}

export interface Progress {
  update(value: number, payload?: Record<string, unknown>): void;
  setTotal(total: number): void;
  stop(): void;
}

const noop: Progress = { update() {}, setTotal() {}, stop() {} };

/**
 * cli-progress, loaded the first time a bar is drawn: most runs (--quiet, --json, not a
 * terminal: cron, systemd, the daemon's jobs) never draw one, and loading it cost every command
 * ~12 ms and ~5 MB of RSS at start-up.
 */
export function progressBars(): typeof import('cli-progress') {
  return createRequire(import.meta.url)('cli-progress') as typeof import('cli-progress');
}

/** The status line being shown on the terminal (cli/progress.ts): cleared before any other output, redrawn on its next tick. */
let statusLine: { clear(): void } | undefined;
export function setStatusLine(s: { clear(): void } | undefined): void {
  statusLine = s;
}

/** Characters of a listing gathered before they are written (Output.list). */
const LIST_PIECE = 64 * 1024;

/** `write`: where list() writes (standard output; a parameter for tests). */
export function makeOutput(opts: { json?: boolean; quiet?: boolean; write?: (text: string) => void }): Output {
  const json = !!opts.json;
  const quiet = !!opts.quiet;
  const write = opts.write ?? ((text: string) => void process.stdout.write(text));
  return {
    json,
    quiet,
    info(msg) {
      if (json || quiet) return;
      statusLine?.clear();
      process.stdout.write(msg + '\n');
    },
    warn(msg) {
      statusLine?.clear();
      process.stderr.write(`warning: ${msg}\n`);
    },
    emit(obj) {
      if (json) process.stdout.write(JSON.stringify(snakeKeys(obj)) + '\n');
    },
    async list(items, line) {
      const lines = !json && !quiet;
      if (json || lines) statusLine?.clear();
      let buf = json ? '[' : '';
      let n = 0;
      for await (const item of items) {
        if (json) buf += (n > 0 ? ',' : '') + JSON.stringify(snakeKeys(item));
        else if (lines) buf += line(item) + '\n';
        n++;
        // written in pieces of ~64 KiB: one write per item was a system call each
        if (buf.length >= LIST_PIECE) {
          write(buf);
          buf = '';
        }
      }
      if (json) buf += ']\n';
      if (buf) write(buf);
      return n;
    },
    progress(total, label) {
      if (json || quiet || !process.stderr.isTTY || process.env.CI) return noop;
      const cliProgress = progressBars();
      const bar = new cliProgress.SingleBar(
        {
          format: `${label} [{bar}] {percentage}% | {done} / {all} | {rate}/s | ETA {eta_formatted} {extra}`,
          stream: process.stderr,
          hideCursor: true,
          clearOnComplete: true,
          etaBuffer: 50,
        },
        cliProgress.Presets.shades_classic,
      );
      const started = Date.now();
      bar.start(total ?? 0, 0, { done: '0 B', all: total ? formatBytes(total) : '?', rate: '0 B', extra: '' });
      return {
        update(value, payload) {
          const secs = Math.max(0.001, (Date.now() - started) / 1000);
          bar.update(value, { done: formatBytes(value), rate: formatBytes(Math.round(value / secs)), extra: '', ...payload });
        },
        setTotal(t) {
          bar.setTotal(t);
          bar.update({ all: formatBytes(t) });
        },
        stop() {
          bar.stop();
        },
      };
    },
  };
}

/** Commander helper for repeatable options: `--tag a --tag b,c` -> ['a', 'b', 'c']. */
export function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

/** Repeatable option without comma splitting (globs and paths may contain commas). */
export function collectRaw(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}
