import { Transform, type TransformCallback } from 'node:stream';
import { LifeboatError } from '../../errors.js';

/**
 * The binary log coordinates of a dump (point-in-time recovery, docs/pitr.md).
 *
 * `mariadb-dump --single-transaction --master-data=2` writes, near the top of
 * the dump, the binary log position of its consistent snapshot as a comment:
 *   -- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000042', MASTER_LOG_POS=1234;
 * (MySQL 8.0.23+: CHANGE REPLICATION SOURCE TO SOURCE_LOG_FILE=…, SOURCE_LOG_POS=…).
 * BinlogCoordinateTap passes the dump through unchanged and parses that line
 * from the first MAX_SCAN bytes (bounded). The result is recorded in the
 * snapshot's source metadata as `binlog: { file, pos, archive, time }`, where
 * `time` is when the line was seen: the snapshot is at or before it.
 */

const MAX_SCAN = 1 << 20;
const LINE_RE = /^-- CHANGE (?:MASTER|REPLICATION SOURCE) TO (?:MASTER|SOURCE)_LOG_FILE='([^'\n]{1,200})', (?:MASTER|SOURCE)_LOG_POS=(\d{1,19});/m;
const GTID_RE = /^-- SET GLOBAL gtid_slave_pos='([0-9,-]{1,1000})';/m;

export interface BinlogCoordinates {
  file: string;
  pos: number;
  /** The binlog archive (repository) that holds this server's binary logs. */
  archive: string;
  /** An upper bound of the dump's snapshot time (ISO-8601). */
  time: string;
  gtid?: string;
}

/** Parse the coordinates comment out of (the head of) a dump. */
export function parseBinlogCoordinates(text: string): { file: string; pos: number; gtid?: string } | undefined {
  const m = LINE_RE.exec(text);
  if (!m) return undefined;
  const pos = Number(m[2]);
  if (!Number.isSafeInteger(pos) || pos < 4) return undefined;
  const g = GTID_RE.exec(text);
  return { file: m[1]!, pos, ...(g ? { gtid: g[1]! } : {}) };
}

/** The binlog archive name of a source: binlog.name, else the source name, else "default". */
export function binlogArchiveName(o: { binlog?: { name?: string | undefined } | undefined }, sourceName?: string): string {
  const n = o.binlog?.name ?? sourceName ?? 'default';
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(n) ? n : 'default';
}

export class BinlogCoordinateTap extends Transform {
  private head: Buffer[] = [];
  private seen = 0;
  private coords: BinlogCoordinates | undefined;

  constructor(private readonly archive: string) {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    if (!this.coords && this.seen < MAX_SCAN) {
      const part = chunk.subarray(0, MAX_SCAN - this.seen);
      this.head.push(part);
      this.seen += part.length;
      const found = parseBinlogCoordinates(Buffer.concat(this.head).toString('latin1'));
      if (found) {
        this.coords = { ...found, archive: this.archive, time: new Date().toISOString() };
        this.head = [];
      } else if (this.seen >= MAX_SCAN) this.head = [];
    }
    cb(null, chunk);
  }

  /** The coordinates; throws when the dump did not contain them (binary logging off on the server?). */
  result(): BinlogCoordinates {
    if (!this.coords) {
      throw new LifeboatError(
        'the dump holds no binary log coordinates (no "CHANGE MASTER TO MASTER_LOG_FILE" line): is binary logging (log_bin) on, and may the user run SHOW MASTER STATUS? ' +
          'Without coordinates this dump cannot be the start of a point-in-time recovery',
      );
    }
    return this.coords;
  }
}
