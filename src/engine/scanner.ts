import { promises as fsp, type BigIntStats } from 'node:fs';
import { escapeBytes } from '../repo/tree.js';
import type { BackupProgress } from './progress.js';
import { type ScannedEntry, scanAddon, scanDir } from './scan-native.js';

/**
 * The quick scan that runs beside a files backup (as restic's): it walks the
 * same paths with the same excludes and one-file-system rule as the archiver,
 * counting regular files and their sizes into `progress.totalFiles` /
 * `totalBytes`, so a progress display can show a percentage and an ETA. It
 * only lstats and lists directories (a few calls in flight at a time, so it
 * leaves the thread pool to the backup), and stops as soon as `signal` is
 * aborted (the backup ended). Errors are ignored: the backup reports them.
 */
export interface ScanOptions {
  matchExcluded: (abs: string) => boolean;
  oneFileSystem: boolean;
  signal: AbortSignal;
}

/** lstat calls in flight at once per directory. */
const SCAN_BATCH = 4;

export async function scanPaths(paths: string[], progress: BackupProgress, opts: ScanOptions): Promise<void> {
  progress.scan = 'running';
  const stat = (p: Buffer): Promise<BigIntStats | undefined> => fsp.lstat(p, { bigint: true }).catch(() => undefined);
  const count = (st: BigIntStats | undefined): boolean => {
    if (!st?.isFile()) return false;
    progress.totalFiles++;
    progress.totalBytes += Number(st.size);
    return true;
  };
  const walk = async (dir: Buffer, rootDev: bigint): Promise<void> => {
    if (opts.signal.aborted) return;
    if (scanAddon()) return walkNative(dir, Number(rootDev));
    let names: Buffer[];
    try {
      names = (await fsp.readdir(dir, { encoding: 'buffer' })) as Buffer[];
    } catch {
      return;
    }
    names.sort(Buffer.compare);
    const children = names.map((n) => (dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, n]) : Buffer.concat([dir, SLASH, n]))).filter((c) => !opts.matchExcluded(escapeBytes(c)));
    for (let i = 0; i < children.length; i += SCAN_BATCH) {
      if (opts.signal.aborted) return;
      const batch = children.slice(i, i + SCAN_BATCH);
      const stats = await Promise.all(batch.map(stat));
      for (let j = 0; j < batch.length; j++) {
        const st = stats[j];
        if (count(st) || !st?.isDirectory()) continue;
        if (opts.oneFileSystem && st.dev !== rootDev) continue;
        await walk(batch[j]!, rootDev);
      }
    }
  };
  /** The same with the native listing (scan-native.ts): one thread-pool round trip per directory, lstats included. */
  const walkNative = async (dir: Buffer, rootDev: number): Promise<void> => {
    let entries: ScannedEntry[];
    try {
      entries = await scanDir(dir);
    } catch {
      return;
    }
    const subdirs: Buffer[] = [];
    for (const e of entries) {
      const st = e.stat;
      if (st instanceof Error) continue;
      const child = dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, e.name]) : Buffer.concat([dir, SLASH, e.name]);
      if (opts.matchExcluded(escapeBytes(child))) continue;
      if (st.isFile()) {
        progress.totalFiles++;
        progress.totalBytes += st.size;
      } else if (st.isDirectory() && !(opts.oneFileSystem && st.dev !== rootDev)) subdirs.push(child);
    }
    entries = [];
    for (const d of subdirs) {
      if (opts.signal.aborted) return;
      await walkNative(d, rootDev);
    }
  };
  try {
    for (const p of paths) {
      if (opts.signal.aborted) return;
      const top = Buffer.from(p);
      const st = await stat(top);
      if (count(st) || !st?.isDirectory()) continue;
      await walk(top, st.dev);
    }
    if (!opts.signal.aborted) progress.scan = 'done';
  } catch {
    // never fails the backup; the totals just stay unknown
  }
}

const SLASH = Buffer.from('/');
