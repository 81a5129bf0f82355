import { execFile } from 'node:child_process';
import { futimesSync, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import { requireAddon } from '../util/native.js';

/**
 * File system calls Node does not have, for the archiver and the restorer:
 * extended attributes (fs-xattr), SEEK_DATA/SEEK_HOLE (fs-ext), mkfifo/mknod
 * (the coreutils binaries), and nanosecond timestamps (native/timens.c: futimens and
 * utimensat; without it, Node's utimes keeps microseconds).
 */

/** open(2) flag: a handle that only names the file (no read, no blocking on FIFOs). Linux only. */
export const O_PATH = process.platform === 'linux' ? 0o10000000 : 0;

/** A path that refers to an open descriptor's file (Linux: through /proc, never through a symlink). */
export function fdPath(fd: number): string | undefined {
  return process.platform === 'linux' ? `/proc/self/fd/${fd}` : undefined;
}

interface XattrLib {
  getAttribute(path: string, attr: string): Promise<Buffer>;
  setAttribute(path: string, attr: string, value: Buffer): Promise<void>;
  listAttributes(path: string): Promise<string[]>;
}
let xattrLib: Promise<XattrLib | undefined> | undefined;
function xattr(): Promise<XattrLib | undefined> {
  xattrLib ??= import('fs-xattr').then(
    (m) => m as unknown as XattrLib,
    () => undefined,
  );
  return xattrLib;
}

const NOT_SUPPORTED = new Set(['ENOTSUP', 'EOPNOTSUPP', 'ENODATA', 'ENOSYS']);

type Xattrs = Array<{ name: string; value: string }>;

/**
 * The rules both readers share: a file system without xattrs lists nothing
 * (undefined), an attribute removed between the listing and its read is
 * skipped, the names are read in sorted order, values are kept as base64.
 */
function listFailed(err: unknown): undefined {
  if (NOT_SUPPORTED.has((err as NodeJS.ErrnoException).code ?? '')) return undefined;
  throw err;
}
function valueFailed(err: unknown): void {
  if ((err as NodeJS.ErrnoException).code === 'ENODATA') return; // removed meanwhile
  throw err;
}

/** Read all extended attributes of an open file (undefined if none or not supported). */
export async function readXattrs(fd: number): Promise<Xattrs | undefined> {
  const lib = await xattr();
  const p = fdPath(fd);
  if (!lib || !p) return undefined;
  const names = await lib.listAttributes(p).catch(listFailed);
  if (!names) return undefined;
  const out: Xattrs = [];
  for (const name of names.sort()) {
    const v = await lib.getAttribute(p, name).catch(valueFailed);
    if (v) out.push({ name, value: v.toString('base64') });
  }
  return out.length ? out : undefined;
}

interface XattrSyncLib {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, attr: string): Buffer;
}
/** The synchronous calls of fs-xattr, for a worker thread (small-files-worker.ts); undefined where unavailable. */
export async function xattrSync(): Promise<XattrSyncLib | undefined> {
  return (await xattr()) as unknown as XattrSyncLib | undefined;
}

/** readXattrs, synchronously (a worker thread that reads small files: no thread-pool round trip per call). */
export function readXattrsSync(lib: XattrSyncLib | undefined, fd: number): Xattrs | undefined {
  const p = fdPath(fd);
  if (!lib || !p) return undefined;
  let names: string[] | undefined;
  try {
    names = lib.listAttributesSync(p);
  } catch (err) {
    names = listFailed(err);
  }
  if (!names) return undefined;
  const out: Xattrs = [];
  for (const name of names.sort()) {
    try {
      out.push({ name, value: lib.getAttributeSync(p, name).toString('base64') });
    } catch (err) {
      valueFailed(err);
    }
  }
  return out.length ? out : undefined;
}

/** Set extended attributes on an open file; returns one message per attribute the file system refused. */
export async function writeXattrs(fd: number, xattrs: Array<{ name: string; value: string }>): Promise<string[]> {
  const lib = await xattr();
  const p = fdPath(fd);
  if (!lib || !p) return [`extended attributes are not supported on this platform; not restored: ${xattrs.map((x) => x.name).join(', ')}`];
  const failed: string[] = [];
  for (const x of xattrs) {
    try {
      await lib.setAttribute(p, x.name, Buffer.from(x.value, 'base64'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      failed.push(`extended attribute ${x.name} not restored: ${e.code ? `${e.code}: ` : ''}${e.message}`);
    }
  }
  return failed;
}

interface FsExt {
  seek(fd: number, offset: number, whence: number, cb: (err: NodeJS.ErrnoException | null, pos: number) => void): void;
}
let fsExt: FsExt | undefined | null = null;
function ext(): FsExt | undefined {
  if (fsExt === null) {
    try {
      fsExt = createRequire(import.meta.url)('fs-ext') as FsExt;
    } catch {
      fsExt = undefined;
    }
  }
  return fsExt;
}

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** lseek(2) with SEEK_DATA / SEEK_HOLE; undefined when past the last data (ENXIO) or not available. */
function seek(fd: number, off: number, whence: number): Promise<number | undefined> {
  const lib = ext();
  if (!lib || process.platform !== 'linux') return Promise.resolve(undefined);
  return new Promise((resolve, reject) =>
    lib.seek(fd, off, whence, (err, pos) => {
      if (err) {
        if (err.code === 'ENXIO') resolve(undefined);
        else reject(err);
      } else resolve(pos);
    }),
  );
}

export const canSeekHoles = (): boolean => process.platform === 'linux' && ext() !== undefined;

/** The data regions of [0, size) of a sparse file, as [offset, length] pairs (SEEK_DATA / SEEK_HOLE). */
export async function dataRegions(fd: number, size: number): Promise<Array<[number, number]>> {
  const out: Array<[number, number]> = [];
  let pos = 0;
  while (pos < size) {
    const start = await seek(fd, pos, SEEK_DATA);
    if (start === undefined || start >= size) break;
    const end = Math.min(size, (await seek(fd, start, SEEK_HOLE)) ?? size);
    if (end <= start) break;
    out.push([start, end - start]);
    pos = end;
  }
  return out;
}

/** Nanoseconds since the epoch (decimal string, may be negative) as a seconds string for fs.utimes (which treats negative numbers as "now" but parses numeric strings as given). */
export function nsToSeconds(ns: string): string {
  let v = BigInt(ns);
  const neg = v < 0n;
  if (neg) v = -v;
  const s = v / 1_000_000_000n;
  const frac = (v % 1_000_000_000n).toString().padStart(9, '0');
  return `${neg ? '-' : ''}${s}.${frac}`;
}

interface TimeNs {
  futimens(fd: number, atimeNs: bigint, mtimeNs: bigint): void;
  lutimens(path: Buffer, atimeNs: bigint, mtimeNs: bigint): void;
}
/** The native time helper, built by `npm install` (package.json "install"); undefined when it did not build. */
function nativeTimes(): TimeNs | undefined {
  return requireAddon<TimeNs>('timens');
}

/** True when restored times keep their nanoseconds (else microseconds). */
export const nanosecondTimes = (): boolean => nativeTimes() !== undefined;

/** Set access and modification time (nanoseconds since the epoch, may be negative) through an open handle. */
export async function setTimesFd(fh: fsp.FileHandle, ns: string): Promise<void> {
  const t = nativeTimes();
  if (t) t.futimens(fh.fd, BigInt(ns), BigInt(ns));
  else await fh.utimes(nsToSeconds(ns), nsToSeconds(ns));
}

/** setTimesFd for a plain descriptor, synchronously (the restorer's small-file path). */
export function setTimesFdSync(fd: number, ns: string): void {
  const t = nativeTimes();
  if (t) t.futimens(fd, BigInt(ns), BigInt(ns));
  else futimesSync(fd, nsToSeconds(ns), nsToSeconds(ns));
}

/** The same by path, never following a final symbolic link (links, FIFOs, devices, directories). */
export async function setTimesPath(p: Buffer, ns: string): Promise<void> {
  const t = nativeTimes();
  if (t) t.lutimens(p, BigInt(ns), BigInt(ns));
  else await fsp.lutimes(p, nsToSeconds(ns), nsToSeconds(ns));
}

/** Milliseconds (old trees) as nanoseconds. */
export function msToNs(ms: number): string {
  return BigInt(Math.round(ms * 1e6)).toString();
}

/** Linux dev_t encoding. */
export function majorMinor(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = Number(((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn));
  const minor = Number((d & 0xffn) | ((d >> 12n) & ~0xffn));
  return { major, minor };
}

/** Run mkfifo / mknod (Node has neither call), with a deadline. */
export function makeSpecial(p: string, type: 'fifo' | 'chardev' | 'blockdev', rdev: number): Promise<void> {
  const args = type === 'fifo' ? ['mkfifo', ['-m', '600', '--', p]] : (['mknod', ['-m', '600', '--', p, type === 'chardev' ? 'c' : 'b', ...Object.values(majorMinor(rdev)).map(String)]] as const);
  return new Promise((resolve, reject) =>
    execFile(args[0] as string, args[1] as string[], { timeout: 10_000 }, (err, _out, stderr) => {
      if (err) reject(new Error(`${args[0]} failed: ${String(stderr).trim() || err.message}`));
      else resolve();
    }),
  );
}
