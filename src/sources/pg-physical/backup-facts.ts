import { LifeboatError } from '../../errors.js';
import { parseLsn, segmentName } from '../../repo/wal.js';

/**
 * What a base backup records about itself, whichever way it is taken (the
 * pg_basebackup path in dump.ts, the direct one in direct.ts): what its tar
 * says, read on the side as it streams (TarPeek); the backup_label format
 * (parseBackupLabel); and the snapshot's `source` (baseBackupMeta before it
 * starts, baseBackupFacts once it ended).
 */

export interface TarFacts {
  backupLabel?: string;
  systemIdentifier?: string;
  pgVersion?: string;
  tablespaceMap?: boolean;
  /** The last bytes of backup_manifest (holds "WAL-Ranges" with the end LSN). */
  manifestTail?: string;
}

const WANTED = new Set(['backup_label', 'global/pg_control', 'PG_VERSION', 'tablespace_map', 'backup_manifest']);
const MANIFEST_TAIL = 16 * 1024;

/**
 * Reads the tar headers of the stream on the side (each piece as it is read
 * from pg_basebackup, `observe`) and keeps a few small members. Not a stage
 * of the stream: as a Transform between pg_basebackup's stdout and the
 * repository it added one more buffer the pieces waited in, so more of them
 * outlived a young-generation collection: a second base backup (deltas)
 * spent ~1.2 CPU s more than the same pg_basebackup piped into
 * `backup --stdin-from-command` (branch pitrbase, docs/benchmarks.md).
 */
export class TarPeek {
  readonly facts: TarFacts = {};
  private hdr = Buffer.alloc(0);
  private remaining = 0; // body bytes left in the current member
  private pad = 0;
  private capture: { name: string; parts: Buffer[]; left: number; tail?: boolean } | undefined;
  private done = false;
  private longName: string | undefined;
  private longNameParts: Buffer[] | undefined;

  /** The next piece of the stream, in order. */
  observe(chunk: Buffer): void {
    if (this.done) return;
    try {
      this.scan(chunk);
    } catch {
      this.done = true; // not a tar we understand: the facts stay incomplete, the data passes through
    }
  }

  private scan(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length && !this.done) {
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - off);
        const piece = chunk.subarray(off, off + n);
        if (this.capture?.tail) {
          this.capture.parts.push(Buffer.from(piece));
          let total = this.capture.parts.reduce((a, b) => a + b.length, 0);
          while (total - this.capture.parts[0]!.length >= MANIFEST_TAIL) total -= this.capture.parts.shift()!.length;
        } else if (this.capture && this.capture.left > 0) {
          const take = piece.subarray(0, Math.min(piece.length, this.capture.left));
          this.capture.parts.push(Buffer.from(take));
          this.capture.left -= take.length;
        }
        this.longNameParts?.push(Buffer.from(piece));
        this.remaining -= n;
        off += n;
        if (this.remaining === 0) this.endMember();
        continue;
      }
      if (this.pad > 0) {
        const n = Math.min(this.pad, chunk.length - off);
        this.pad -= n;
        off += n;
        continue;
      }
      const need = 512 - this.hdr.length;
      const take = chunk.subarray(off, off + need);
      this.hdr = Buffer.concat([this.hdr, take]);
      off += take.length;
      if (this.hdr.length === 512) {
        const h = this.hdr;
        this.hdr = Buffer.alloc(0);
        this.header(h);
      }
    }
  }

  private header(h: Buffer): void {
    if (h.every((b) => b === 0)) {
      this.done = true;
      return;
    }
    const str = (a: number, b: number) => {
      const s = h.subarray(a, b);
      const z = s.indexOf(0);
      return (z >= 0 ? s.subarray(0, z) : s).toString('utf8');
    };
    let size: number;
    if (h[124]! & 0x80) {
      size = 0;
      for (let i = 125; i < 136; i++) size = size * 256 + h[i]!;
    } else size = parseInt(str(124, 136).trim() || '0', 8);
    if (!Number.isFinite(size) || size < 0) throw new Error('bad tar header');
    const type = String.fromCharCode(h[156]!);
    const prefix = h.subarray(257, 262).toString() === 'ustar' ? str(345, 500) : '';
    let name = this.longName ?? (prefix ? `${prefix}/${str(0, 100)}` : str(0, 100));
    this.longName = undefined;
    name = name.replace(/^\.\//, '');
    this.remaining = size;
    this.pad = (512 - (size % 512)) % 512;
    if (type === 'L') this.longNameParts = [];
    else if ((type === '0' || type === '\0') && WANTED.has(name)) {
      this.capture = { name, parts: [], left: Math.min(size, 64 * 1024), ...(name === 'backup_manifest' ? { tail: true } : {}) };
    }
    if (size === 0) this.endMember();
  }

  private endMember(): void {
    if (this.longNameParts) {
      this.longName = Buffer.concat(this.longNameParts).toString('utf8').replace(/\0+$/, '');
      this.longNameParts = undefined;
    }
    const c = this.capture;
    this.capture = undefined;
    if (!c) return;
    const data = Buffer.concat(c.parts);
    if (c.name === 'backup_label') this.facts.backupLabel = data.toString('utf8');
    else if (c.name === 'PG_VERSION') this.facts.pgVersion = data.toString('utf8').trim();
    else if (c.name === 'tablespace_map') this.facts.tablespaceMap = data.length > 0;
    else if (c.name === 'backup_manifest') this.facts.manifestTail = data.subarray(Math.max(0, data.length - MANIFEST_TAIL)).toString('utf8');
    else if (c.name === 'global/pg_control' && data.length >= 8) this.facts.systemIdentifier = data.readBigUInt64LE(0).toString();
  }
}

export interface BackupLabel {
  startLsn: string;
  startSegment: string;
  checkpointLsn?: string;
  startTime?: string;
  timeline: number;
  label?: string;
}

export function parseBackupLabel(text: string): BackupLabel {
  const get = (k: string) => new RegExp(`^${k}: (.*)$`, 'm').exec(text)?.[1]?.trim();
  const start = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) \(file ([0-9A-F]{24})\)$/m.exec(text);
  if (!start) throw new LifeboatError('backup_label has no START WAL LOCATION; is this a PostgreSQL base backup?');
  const tl = Number(get('START TIMELINE') ?? parseInt(start[2]!.slice(0, 8), 16));
  return {
    startLsn: start[1]!,
    startSegment: start[2]!,
    ...(get('CHECKPOINT LOCATION') ? { checkpointLsn: get('CHECKPOINT LOCATION')! } : {}),
    ...(get('START TIME') ? { startTime: get('START TIME')! } : {}),
    timeline: tl,
    ...(get('LABEL') !== undefined ? { label: get('LABEL')! } : {}),
  };
}

/**
 * What a base backup snapshot records in `source` (docs/format.md): the WAL range
 * it needs, from its backup_label and end LSN, whichever way it was taken.
 */
export function baseBackupFacts(f: {
  archive: string;
  systemIdentifier: string | undefined;
  backupLabel: string;
  endLsn: string;
  walSegmentSize: number;
  started: number;
  pgVersion?: string | undefined;
  tablespaceMap?: boolean | undefined;
}): Record<string, unknown> {
  const bl = parseBackupLabel(f.backupLabel);
  return {
    archive: f.archive,
    systemIdentifier: f.systemIdentifier,
    timeline: bl.timeline,
    startLsn: bl.startLsn,
    startSegment: bl.startSegment,
    endLsn: f.endLsn,
    endSegment: segmentName(bl.timeline, parseLsn(f.endLsn), f.walSegmentSize),
    walSegmentSize: f.walSegmentSize,
    startTime: new Date(f.started).toISOString(),
    stopTime: new Date().toISOString(),
    backupLabel: f.backupLabel,
    ...(f.pgVersion ? { pgVersion: f.pgVersion } : {}),
    ...(f.tablespaceMap ? { tablespaceMap: true } : {}),
  };
}

/** The part of a base backup snapshot's `source` known before it starts, whichever way it is taken. */
export function baseBackupMeta(o: { host: string; port: number; archive: string }, name: string | undefined): { kind: 'pg-basebackup'; [k: string]: unknown } {
  return { kind: 'pg-basebackup', ...(name ? { name } : {}), host: o.host, port: o.port, archive: o.archive };
}
