import { constants as fsc } from 'node:fs';
import { createRequire } from 'node:module';
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
    if (process.env.LIFEBOAT_NO_NATIVE !== '1') {
      try {
        const m = createRequire(import.meta.url)(new URL('../../../native/build/Release/scandir.node', import.meta.url).pathname) as ScanAddon;
        if (m.FIELDS === F && typeof m.scanDir === 'function') mod = m;
      } catch {
        mod = null;
      }
    }
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

const NS = 1_000_000_000n;

/** An lstat from the addon (the fields as doubles: see scandir.c). */
export class ScannedStat implements EntryStat {
  readonly dev: bigint;
  readonly ino: bigint;
  readonly mode: bigint;
  readonly nlink: bigint;
  readonly uid: bigint;
  readonly gid: bigint;
  readonly rdev: bigint;
  readonly size: bigint;
  readonly blocks: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
  private readonly fmt: number;
  constructor(f: Float64Array, o: number) {
    this.dev = BigInt(f[o]!);
    this.ino = BigInt(f[o + 1]!);
    const mode = f[o + 2]!;
    this.fmt = mode & fsc.S_IFMT;
    this.mode = BigInt(mode);
    this.nlink = BigInt(f[o + 3]!);
    this.uid = BigInt(f[o + 4]!);
    this.gid = BigInt(f[o + 5]!);
    this.rdev = BigInt(f[o + 6]!);
    this.size = BigInt(f[o + 7]!);
    this.blocks = BigInt(f[o + 8]!);
    this.mtimeNs = BigInt(f[o + 9]!) * NS + BigInt(f[o + 10]!);
    this.ctimeNs = BigInt(f[o + 11]!) * NS + BigInt(f[o + 12]!);
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
  stat: EntryStat | NodeJS.ErrnoException;
  isDirectory(): boolean;
}

class Entry implements ScannedEntry {
  constructor(
    readonly name: Buffer,
    readonly stat: EntryStat | NodeJS.ErrnoException,
  ) {}
  isDirectory(): boolean {
    return !(this.stat instanceof Error) && this.stat.isDirectory();
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
    const o = i * F;
    const errno = f[o + F - 1]!;
    entries[i] = new Entry(name, errno ? errnoError(errno, 'lstat', joinPath(abs, name)) : new ScannedStat(f, o));
  }
  return entries;
}

function joinPath(dir: Buffer, name: Buffer): Buffer {
  return dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, Buffer.from('/'), name]);
}
