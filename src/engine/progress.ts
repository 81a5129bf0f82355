import { escapeBytes } from '../repo/tree.js';

/**
 * The live counters of one running backup. The engine (archiver, scanner,
 * stream backup) only increments them; whoever shows progress (src/cli/progress.ts)
 * reads them on its own clock. No terminal code here.
 *
 * Totals come from the scan that runs beside a files backup (scanner.ts); a
 * stream (a dump, stdin, a command's output) has no total: `scan` stays 'none'.
 */
export class BackupProgress {
  /** Regular files finished (new, changed or unmodified). */
  filesDone = 0;
  /** Bytes of file content processed: read, or unchanged since the parent, or a hole skipped. */
  bytesDone = 0;
  /** Entries that could not be read so far. */
  errors = 0;
  /** What the scan has found so far (regular files and their sizes); final once `scan` is 'done'. */
  totalFiles = 0;
  totalBytes = 0;
  /** False until the engine has the repository locked and starts reading (before: opening, locking, waiting for a lock). */
  started = false;
  /** 'none': no scan (the total is unknown), 'running', 'done' (totals final). */
  scan: 'none' | 'running' | 'done' = 'none';
  readonly startedAt: number;
  /** Files being read now, in the order they were started. */
  private readonly current = new Set<Buffer | string>();

  constructor(now = Date.now()) {
    this.startedAt = now;
  }

  fileStarted(p: Buffer | string): void {
    this.current.add(p);
  }

  fileEnded(p: Buffer | string): void {
    this.current.delete(p);
  }

  /** The (at most n) files being read now, oldest first, as printable paths. */
  currentFiles(n = 2): string[] {
    const out: string[] = [];
    for (const p of this.current) {
      if (out.length >= n) break;
      out.push(typeof p === 'string' ? p : escapeBytes(p));
    }
    return out;
  }
}
