/**
 * POSIX tar (ustar) headers, written the way `tar -x` and the base backup's
 * own reader (TarPeek in backup-facts.ts) read them. Used by the direct base backup
 * (direct.ts), which streams the data directory as the same tar
 * pg_basebackup -Ft would send, so the snapshot format and its restore stay
 * one (docs/format.md, docs/pitr.md).
 *
 * Names and link targets are bytes; one longer than its ustar field goes into
 * a pax extended header ('x') before the member. Numbers too large for their
 * octal field (sizes of 8 GiB and more, large uids) are written in base-256,
 * as GNU tar does.
 */

export const TAR_BLOCK = 512;

/** Two zero blocks: the end of the archive. */
export const TAR_END: Buffer = Buffer.alloc(2 * TAR_BLOCK);

export type TarType = 'file' | 'dir' | 'symlink';

export interface TarEntry {
  /** Path inside the archive, relative, without a leading "./"; directories without a trailing "/". */
  name: Buffer;
  type: TarType;
  /** Body length (files only). */
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  linkname?: Buffer;
}

const TYPEFLAG: Record<TarType, number> = { file: 0x30, dir: 0x35, symlink: 0x32 };

function writeNumber(h: Buffer, off: number, len: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`tar: ${v} is not a non-negative integer`);
  const octal = v.toString(8);
  if (octal.length <= len - 1) {
    h.write(octal.padStart(len - 1, '0'), off, 'ascii');
    h[off + len - 1] = 0;
    return;
  }
  // base-256: the first byte's high bit set, the number big-endian in the rest
  let x = BigInt(v);
  for (let i = off + len - 1; i > off; i--) {
    h[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  h[off] = 0x80;
}

function paxRecord(key: string, value: Buffer): Buffer {
  // "<len> <key>=<value>\n", where len counts the whole record, its own digits included
  const rest = Buffer.byteLength(` ${key}=`) + value.length + 1;
  let len = rest + 1;
  while (String(len).length + rest !== len) len = String(len).length + rest;
  return Buffer.concat([Buffer.from(`${len} ${key}=`), value, Buffer.from('\n')]);
}

function block(e: { name: Buffer; typeflag: number; size: number; mode: number; uid: number; gid: number; mtime: number; linkname?: Buffer }): Buffer {
  const h = Buffer.alloc(TAR_BLOCK);
  e.name.copy(h, 0, 0, Math.min(e.name.length, 100));
  writeNumber(h, 100, 8, e.mode & 0o7777);
  writeNumber(h, 108, 8, e.uid);
  writeNumber(h, 116, 8, e.gid);
  writeNumber(h, 124, 12, e.size);
  writeNumber(h, 136, 12, Math.max(0, Math.floor(e.mtime)));
  h[156] = e.typeflag;
  if (e.linkname) e.linkname.copy(h, 157, 0, Math.min(e.linkname.length, 100));
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += h[i]!;
  h.write(sum.toString(8).padStart(6, '0'), 148, 'ascii');
  h[154] = 0;
  h[155] = 0x20;
  return h;
}

/** The header block(s) of one member: a pax header first when the name or link target does not fit. */
export function tarHeader(e: TarEntry): Buffer {
  const name = e.type === 'dir' ? Buffer.concat([e.name, Buffer.from('/')]) : e.name;
  if (name.length === 0 || name.includes(0)) throw new RangeError('tar: an empty name or one with a NUL byte');
  if (e.linkname?.includes(0)) throw new RangeError('tar: a link target with a NUL byte');
  const size = e.type === 'file' ? e.size : 0;
  const main = block({ name, typeflag: TYPEFLAG[e.type], size, mode: e.mode, uid: e.uid, gid: e.gid, mtime: e.mtime, ...(e.linkname ? { linkname: e.linkname } : {}) });
  const records: Buffer[] = [];
  if (name.length > 100) records.push(paxRecord('path', name));
  if (e.linkname && e.linkname.length > 100) records.push(paxRecord('linkpath', e.linkname));
  if (records.length === 0) return main;
  const body = Buffer.concat(records);
  const pax = block({ name: Buffer.from('././@PaxHeader'), typeflag: 0x78, size: body.length, mode: 0o644, uid: 0, gid: 0, mtime: e.mtime });
  return Buffer.concat([pax, body, tarPadding(body.length), main]);
}

/** Zero bytes that fill the last block of a body of `size` bytes. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK);
}

/** A whole small member (header, body, padding), e.g. backup_label. */
export function tarMember(e: Omit<TarEntry, 'size' | 'type'>, body: Buffer): Buffer {
  return Buffer.concat([tarHeader({ ...e, type: 'file', size: body.length }), body, tarPadding(body.length)]);
}
