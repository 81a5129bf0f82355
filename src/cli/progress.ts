import { BackupProgress } from '../engine/progress.js';
import { formatBytes } from '../util/format.js';
import { setStatusLine, type Output } from './output.js';

/**
 * The progress display of a running backup: it reads the engine's counters
 * (engine/progress.ts) on its own clock and shows them
 *
 *   - on a terminal (stderr is a TTY): one status line, rewritten a few times
 *     per second: percent, files and bytes done of the scanned totals, rate,
 *     ETA and the file being read, cut to the terminal's width;
 *   - with --json: `{"message_type":"status",...}` lines on stdout (restic's shape);
 *   - not on a terminal: nothing, or with --verbose a plain line every 10 s
 *     (never a control character, so logs stay clean);
 *   - with --quiet: nothing.
 *
 * LIFEBOAT_PROGRESS_FPS sets how many updates per second (as restic's
 * RESTIC_PROGRESS_FPS; at most 60): default 4 on a terminal, 1 for --json,
 * 0.1 for --verbose lines.
 */
export type ProgressMode = 'tty' | 'json' | 'lines' | 'off';

export function progressMode(out: Pick<Output, 'json' | 'quiet'>, verbose: boolean, stderr: { isTTY?: boolean } = process.stderr): ProgressMode {
  if (out.quiet) return 'off';
  if (out.json) return 'json';
  if (stderr.isTTY) return 'tty';
  return verbose ? 'lines' : 'off';
}

function intervalMs(mode: ProgressMode): number {
  const fps = Number(process.env.LIFEBOAT_PROGRESS_FPS);
  if (Number.isFinite(fps) && fps > 0) return 1000 / Math.min(60, fps);
  return mode === 'tty' ? 250 : mode === 'json' ? 1000 : 10_000;
}

/** What a status shows, computed from the counters at one moment (pure; see statusLine and statusJson). */
export interface StatusFigures {
  secondsElapsed: number;
  filesDone: number;
  bytesDone: number;
  /** Totals: only for a files backup (from the scan); final when scanFinished. */
  totalFiles?: number;
  totalBytes?: number;
  scanFinished: boolean;
  /** 0..1, only when the scan finished. */
  percentDone?: number;
  /** Bytes per second over the last few seconds. */
  bytesPerSecond: number;
  /** Only once the scan finished and enough data passed (at least a second and some bytes). */
  secondsRemaining?: number;
  currentFiles: string[];
  errors: number;
}

/** Keeps the last few seconds of (time, bytes) samples for a current rate rather than an average since the start. */
export class RateWindow {
  private readonly samples: Array<[number, number]> = [];
  constructor(private readonly spanMs = 5000) {}
  add(t: number, bytes: number): number {
    this.samples.push([t, bytes]);
    while (this.samples.length > 2 && t - this.samples[1]![0] >= this.spanMs) this.samples.shift();
    const [t0, b0] = this.samples[0]!;
    return t > t0 ? ((bytes - b0) * 1000) / (t - t0) : 0;
  }
}

export function figures(p: BackupProgress, now: number, bytesPerSecond: number): StatusFigures {
  const elapsed = Math.max(0, now - p.startedAt) / 1000;
  const f: StatusFigures = {
    secondsElapsed: elapsed,
    filesDone: p.filesDone,
    bytesDone: p.bytesDone,
    scanFinished: p.scan === 'done',
    bytesPerSecond,
    currentFiles: p.currentFiles(2),
    errors: p.errors,
  };
  if (p.scan !== 'none') {
    f.totalFiles = p.totalFiles;
    f.totalBytes = p.totalBytes;
  }
  if (p.scan === 'done') {
    f.percentDone = p.totalBytes > 0 ? Math.min(1, p.bytesDone / p.totalBytes) : p.totalFiles > 0 ? Math.min(1, p.filesDone / p.totalFiles) : 1;
    // an estimate needs a measured pace: at least a second and some bytes since the start (restic's: the average so far)
    if (elapsed >= 1 && p.bytesDone > 0 && p.totalBytes > 0) f.secondsRemaining = Math.max(0, Math.round((elapsed * (p.totalBytes - p.bytesDone)) / p.bytesDone));
  }
  return f;
}

/** 75 -> '1:15', 3725 -> '1:02:05' (restic's clock). */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** Drop anything that could move the cursor or change colours (a file name is untrusted). */
function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, '?');
}

/** Keep the end of a path (the file name) and mark the cut: '…/dir/file.bin'; a name too long for `max` keeps its start and its end. */
export function shortenPath(p: string, max: number): string {
  if (p.length <= max) return p;
  if (max <= 1) return '';
  const base = p.slice(p.lastIndexOf('/') + 1);
  if (base.length + 2 <= max) return '…' + p.slice(p.length - (max - 1));
  if (base.length <= max) return base;
  const half = Math.floor((max - 1) / 2);
  return base.slice(0, half) + '…' + base.slice(base.length - (max - 1 - half));
}

/**
 * One status line, at most `width` characters (terminal columns; the last
 * column is left free so the line never wraps). `label` is the source's name.
 */
export function statusLine(f: StatusFigures, width: number, label?: string): string {
  const parts: string[] = [`[${clock(f.secondsElapsed)}]`];
  /** '20.0 MiB/48.0 MiB' as '20.0/48.0 MiB' (room for the file name on an 80-column terminal). */
  const ofTotal = (done: number, total: number): string => {
    const [d, t] = [formatBytes(done), formatBytes(total)];
    const du = d.split(' ')[1];
    return du === t.split(' ')[1] ? `${d.split(' ')[0]}/${t}` : `${d}/${t}`;
  };
  const rate = `${formatBytes(Math.round(f.bytesPerSecond))}/s`;
  if (f.totalBytes === undefined) {
    // a stream: its size is unknown; bytes and rate only
    parts.push(formatBytes(f.bytesDone), rate);
  } else if (f.scanFinished) {
    parts.push(
      `${((f.percentDone ?? 0) * 100).toFixed(1)}%`,
      `${f.filesDone}/${f.totalFiles} files`,
      ofTotal(f.bytesDone, f.totalBytes),
      rate,
      f.secondsRemaining !== undefined ? `ETA ${clock(f.secondsRemaining)}` : 'ETA …',
    );
  } else {
    parts.push(`${f.filesDone} files`, formatBytes(f.bytesDone), rate, `(scanning: ${f.totalFiles} files, ${formatBytes(f.totalBytes)} so far)`);
  }
  if (f.errors > 0) parts.push(`${f.errors} error${f.errors === 1 ? '' : 's'}`);
  let line = (label ? `${printable(label)}: ` : '') + parts.join(' ');
  const max = Math.max(10, width - 1);
  const file = f.currentFiles[0];
  if (file !== undefined) {
    const room = max - line.length - 2;
    if (room >= 8) line += '  ' + shortenPath(printable(file), room);
  }
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

/** The --json status message (restic's field names; totals and estimates only when known). */
export function statusJson(f: StatusFigures, label?: string): Record<string, unknown> {
  return {
    message_type: 'status',
    ...(label ? { source: label } : {}),
    ...(f.percentDone !== undefined ? { percent_done: Number(f.percentDone.toFixed(4)) } : {}),
    ...(f.totalFiles !== undefined ? { total_files: f.totalFiles, total_bytes: f.totalBytes } : {}),
    ...(f.totalBytes !== undefined ? { scan_finished: f.scanFinished } : {}),
    files_done: f.filesDone,
    bytes_done: f.bytesDone,
    bytes_per_second: Math.round(f.bytesPerSecond),
    seconds_elapsed: Math.round(f.secondsElapsed),
    ...(f.secondsRemaining !== undefined ? { seconds_remaining: f.secondsRemaining } : {}),
    current_files: f.currentFiles,
    error_count: f.errors,
  };
}

export interface ProgressDisplay {
  /** The counters to hand to the engine; undefined when nothing is shown (then no scan runs either). */
  progress: BackupProgress | undefined;
  /** Stop updating and clear the status line (the summary follows). */
  stop(): void;
}

/**
 * Show the progress of a backup until stop(). `label`: the source's name (for
 * `run` and `backup --config`), printed before each status.
 */
export function showProgress(out: Output, opts: { label?: string; verbose?: boolean } = {}): ProgressDisplay {
  const mode = progressMode(out, !!opts.verbose);
  if (mode === 'off') return { progress: undefined, stop() {} };
  const p = new BackupProgress();
  const win = new RateWindow();
  const now = () => figures(p, Date.now(), win.add(Date.now(), p.bytesDone));
  const stderr = process.stderr;
  let shown = false;
  const clear = () => {
    if (shown) stderr.write('\r\x1b[K');
    shown = false;
  };
  const tick = () => {
    if (!p.started) {
      // still opening or locking the repository (possibly waiting for another process's lock)
      if (mode === 'json') return;
      const line = `${opts.label ? `${printable(opts.label)}: ` : ''}[${clock((Date.now() - p.startedAt) / 1000)}] opening the repository`;
      if (mode === 'lines') stderr.write(line + '\n');
      else {
        stderr.write('\r' + line + '\x1b[K');
        shown = true;
      }
      return;
    }
    const f = now();
    if (mode === 'json') process.stdout.write(JSON.stringify(statusJson(f, opts.label)) + '\n');
    else if (mode === 'lines') stderr.write(statusLine(f, 200, opts.label) + '\n');
    else {
      stderr.write('\r' + statusLine(f, stderr.columns || 80, opts.label) + '\x1b[K');
      shown = true;
    }
  };
  if (mode === 'tty') setStatusLine({ clear });
  win.add(Date.now(), p.bytesDone);
  const timer = setInterval(tick, intervalMs(mode));
  timer.unref();
  return {
    progress: p,
    stop() {
      clearInterval(timer);
      if (mode === 'tty') {
        clear();
        setStatusLine(undefined);
      } else if (mode === 'json') {
        tick(); // the last status (the totals as they ended) before the summary
      }
    },
  };
}
