import { constants as fsc } from 'node:fs';
import { nativeAddon } from '../util/native.js';
import { getSystemErrorMap } from 'node:util';
import type { EntryStat } from './small-files.js';

/**
 * A directory of the backup walk listed and lstat'ed in one thread-pool work
 * item (native/scandir.c): the names, sorted bytewise, each with its lstat or
 * the error of it. Without the addon (not built, or LIFEBOAT_NO_NATIVE=1) the
 * walk lists with readdir and lstats each entry (dir-prefetch.ts, small-files.ts).
 */
interface ScanAddon {
  FIELDS: number;
  scanDir(path: Buffer, cb: (errno: number, count: number, out?: Buffer) => void): void;
  /** flistxattr(fd, NULL, 0): 0 when the open file has no extended attributes, -errno on failure. */
  xattrListSize(fd: number): number;
  /** llistxattr(path, NULL, 0): the same by path, a final symlink not followed. */
  lxattrListSize(path: Buffer): number;
}

let mod: ScanAddon | null | undefined;
let off = false;

/** Tests: walk without the addon (true) or with it again (false), in this process. */
export function disableScanNative(disabled: boolean): void {
  off = disabled;
}

/** The addon, or undefined (not built, LIFEBOAT_NO_NATIVE=1, or disabled by a test). */
export function scanAddon(): ScanAddon | undefined {
  if (off) return undefined;
  if (mod === undefined) {
    mod = null;
    const m = nativeAddon<ScanAddon>('scandir');
    if (m && m.FIELDS === F && typeof m.scanDir === 'function' && typeof m.xattrListSize === 'function' && typeof m.lxattrListSize === 'function') mod = m;
  }
  return mod ?? undefined;
}

/** Fields per entry (native/scandir.c). */
const F = 14;

/** A Node-style error for an errno of the addon (same code and message form as fs's). */
export function errnoError(errno: number, syscall: string, p: Buffer): NodeJS.ErrnoException {
  const [code, desc] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, `error ${errno}`];
  const err = new Error(`${code}: ${desc}, ${syscall} '${p.toString()}'`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  return err;
}

/** Nanoseconds since the epoch as a decimal string, from seconds and nanoseconds (0 ≤ nsec < 1e9). */
export function nsString(sec: number, nsec: number): string {
  if (sec > 0) return `${sec}${nsec < 1e8 ? String(nsec).padStart(9, '0') : nsec}`;
  if (sec === 0) return String(nsec);
  return (BigInt(sec) * 1_000_000_000n + BigInt(nsec)).toString();
}

/**
 * An lstat as the archiver uses it, in plain numbers (no BigInt: building the
 * eleven BigInts of a BigIntStats cost more than the rest of an unchanged
 * entry's work). Times: `mtimeNs` exact (decimal nanoseconds), `mtimeMs` and
 * `ctimeMs` as Number(ns) / 1e6, the values a tree node holds. dev, ino, size,
 * blocks above 2^53 are rounded as Number(bigint) rounds them; `linkKey` (dev:ino,
 * for hard links) is set only with more than one link, and not then if dev or ino is
 * beyond 2^53 (such a file is not matched to other links).
 */
export class NumStat {
  constructor(
    readonly dev: number,
    readonly ino: number,
    readonly mode: number,
    readonly nlink: number,
    readonly uid: number,
    readonly gid: number,
    readonly rdev: number,
    readonly size: number,
    readonly blocks: number,
    readonly mtimeNs: string,
    readonly mtimeMs: number,
    readonly ctimeMs: number,
    readonly linkKey: string | undefined,
  ) {}

  /** From the addon's doubles at offset o (see scandir.c). */
  static fromFields(f: Float64Array, o: number): NumStat {
    const dev = f[o]!;
    const ino = f[o + 1]!;
    const ms = f[o + 9]!;
    const mn = f[o + 10]!;
    // sec * 1e9 is exact in a double (1e9 = 2^9 * 1953125), the sum rounded once: Number(BigInt(ns))
    return new NumStat(
      dev, ino, f[o + 2]!, f[o + 3]!, f[o + 4]!, f[o + 5]!, f[o + 6]!, f[o + 7]!, f[o + 8]!,
      nsString(ms, mn), (ms * 1e9 + mn) / 1e6, (f[o + 11]! * 1e9 + f[o + 12]!) / 1e6,
      f[o + 3]! > 1 && Number.isSafeInteger(dev) && Number.isSafeInteger(ino) ? `${dev}:${ino}` : undefined,
    );
  }

  /** From an lstat with BigInt fields (fs.lstat with bigint: true, or the small-file workers'). */
  static fromBig(st: EntryStat): NumStat {
    return new NumStat(
      Number(st.dev), Number(st.ino), Number(st.mode), Number(st.nlink), Number(st.uid), Number(st.gid), Number(st.rdev), Number(st.size), Number(st.blocks),
      st.mtimeNs.toString(), Number(st.mtimeNs) / 1e6, Number(st.ctimeNs) / 1e6, st.nlink > 1n ? `${st.dev}:${st.ino}` : undefined,
    );
  }

  private get fmt(): number {
    return this.mode & fsc.S_IFMT;
  }
  isFile(): boolean {
    return this.fmt === fsc.S_IFREG;
  }
  isDirectory(): boolean {
    return this.fmt === fsc.S_IFDIR;
  }
  isSymbolicLink(): boolean {
    return this.fmt === fsc.S_IFLNK;
  }
  isFIFO(): boolean {
    return this.fmt === fsc.S_IFIFO;
  }
  isCharacterDevice(): boolean {
    return this.fmt === fsc.S_IFCHR;
  }
  isBlockDevice(): boolean {
    return this.fmt === fsc.S_IFBLK;
  }
  isSocket(): boolean {
    return this.fmt === fsc.S_IFSOCK;
  }
}

/** One entry of a scanned directory: its name and its lstat (or the error of it). */
export interface ScannedEntry {
  name: Buffer;
  stat: NumStat | NodeJS.ErrnoException;
  isDirectory(): boolean;
}

/**
 * The stat is built from the listing's doubles when asked for, each time (the walk asks once per
 * entry): a listing read ahead or being walked holds its names and one buffer, not an object per
 * entry's lstat.
 */
class Entry implements ScannedEntry {
  constructor(
    readonly name: Buffer,
    private readonly dir: Buffer,
    private readonly f: Float64Array,
    private readonly o: number,
  ) {}
  get stat(): NumStat | NodeJS.ErrnoException {
    const errno = this.f[this.o + F - 1]!;
    return errno ? errnoError(errno, 'lstat', joinPath(this.dir, this.name)) : NumStat.fromFields(this.f, this.o);
  }
  isDirectory(): boolean {
    return !this.f[this.o + F - 1] && (this.f[this.o + 2]! & fsc.S_IFMT) === fsc.S_IFDIR;
  }
}

/**
 * List and lstat a directory with the addon (which must be loaded: scanAddon()).
 * Rejects with the error of opening or reading it (a symlink is not followed: ELOOP/ENOTDIR).
 * What the addon returns is checked before use (counts, offsets, name ends).
 */
export function scanDir(abs: Buffer): Promise<ScannedEntry[]> {
  const m = scanAddon();
  if (!m) return Promise.reject(new Error('scanDir: the native addon is not loaded'));
  return new Promise((resolve, reject) => {
    m.scanDir(abs, (errno, count, out) => {
      if (errno) return reject(errnoError(errno, 'scandir', abs));
      try {
        resolve(unpack(abs, count, out));
      } catch (err) {
        reject(err as Error);
      }
    });
  });
}

/** The entries of an addon result: count * F doubles, count uint32 name ends, the names. */
export function unpack(abs: Buffer, count: number, out: Buffer | undefined): ScannedEntry[] {
  if (!Number.isSafeInteger(count) || count < 0 || !(out instanceof Uint8Array)) throw new Error('scanDir: malformed result');
  if (count === 0) return [];
  const statBytes = count * F * 8;
  const head = statBytes + count * 4;
  if (out.length < head) throw new Error('scanDir: malformed result');
  // an aligned copy when the buffer is not 8-byte aligned (it is, from napi_create_buffer_copy)
  const buf = out.byteOffset % 8 === 0 ? out : Buffer.from(out);
  const f = new Float64Array(buf.buffer, buf.byteOffset, count * F);
  const ends = new Uint32Array(buf.buffer, buf.byteOffset + statBytes, count);
  const names = buf.subarray(head);
  const entries: ScannedEntry[] = new Array(count);
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = ends[i]!;
    if (end <= start || end > names.length || end - start > 4096) throw new Error('scanDir: malformed result');
    const name = names.subarray(start, end);
    start = end;
    entries[i] = new Entry(name, abs, f, i * F);
  }
  return entries;
}

function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}
