import { LifeboatError } from '../errors.js';

/**
 * PostgreSQL WAL file names and archive names. Kept apart from wal.ts (which
 * loads the repository code) so the spool client of archive_command /
 * restore_command (wal-spool.ts) starts without it.
 */

export const DEFAULT_ARCHIVE = 'default';
const SEGMENT_RE = /^[0-9A-F]{24}$/;
const PARTIAL_RE = /^[0-9A-F]{24}\.partial$/;
const HISTORY_RE = /^[0-9A-F]{8}\.history$/;
const BACKUP_RE = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;
/** WAL archive names (wal-push --archive, the source's `archive`). */
export const ARCHIVE_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export type WalKind = 'segment' | 'partial' | 'history' | 'backup';

export function walKind(name: string): WalKind | undefined {
  if (SEGMENT_RE.test(name)) return 'segment';
  if (PARTIAL_RE.test(name)) return 'partial';
  if (HISTORY_RE.test(name)) return 'history';
  if (BACKUP_RE.test(name)) return 'backup';
  return undefined;
}

export function validateWalName(name: string): WalKind {
  const k = walKind(name);
  if (!k) {
    throw new LifeboatError(
      `"${name}" is not a PostgreSQL WAL file name (expected a 24-hex-digit segment, a .partial segment, TTTTTTTT.history or a .backup file)`,
      2,
    );
  }
  return k;
}

export function validateArchiveName(archive: string): string {
  if (!ARCHIVE_RE.test(archive)) throw new LifeboatError(`invalid WAL archive name "${archive}" (letters, digits, . _ -; at most 64)`, 2);
  return archive;
}

/** Timeline of a WAL file name (segments, partials, backups, history files). */
export function walTimeline(name: string): number {
  return parseInt(name.slice(0, 8), 16);
}

/** Position key of a segment-like name: compares like the segment number within a timeline. */
export function segmentKey(name: string): string {
  return name.slice(8, 24);
}

/** The segment after `name` (same timeline), for a segment size in bytes. */
export function nextSegment(name: string, segSize: number): string {
  const perId = 0x100000000 / segSize;
  let hi = parseInt(name.slice(8, 16), 16);
  let lo = parseInt(name.slice(16, 24), 16) + 1;
  if (lo >= perId) {
    lo = 0;
    hi++;
  }
  const h = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return name.slice(0, 8) + h(hi) + h(lo);
}

/** The segment before `name` (same timeline), or undefined for the first. */
export function prevSegment(name: string, segSize: number): string | undefined {
  const perId = 0x100000000 / segSize;
  let hi = parseInt(name.slice(8, 16), 16);
  let lo = parseInt(name.slice(16, 24), 16) - 1;
  if (lo < 0) {
    if (hi === 0) return undefined;
    hi--;
    lo = perId - 1;
  }
  const h = (n: number) => n.toString(16).toUpperCase().padStart(8, '0');
  return name.slice(0, 8) + h(hi) + h(lo);
}
