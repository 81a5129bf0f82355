import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { BlobCodec, SKETCH_MIN } from '../repo/codec.js';
import { blobId } from '../repo/crypto.js';
import { superFeatures } from '../repo/sketch.js';
import { BufferReclaimer } from '../util/reclaim.js';
import type { WorkerInit, WorkerOp } from '../repo/worker.js';
import { readXattrsSync, xattrSync } from './fsmeta.js';
import { scanAddon } from './scan-native.js';
import { SMALL_FILE_MAX, STAT_FIELDS, type SmallFileResult, unpackPaths } from './small-files.js';

/**
 * The ops of the small-file reader (small-files.ts) in the repository's worker
 * threads (an extension of repo/worker.ts): for each file of a
 * batch it opens (never following a symlink), reads the extended attributes
 * and the content with plain synchronous calls — one thread-pool round trip
 * per batch instead of five per file on the main thread — then hashes,
 * compresses, seals and (from SKETCH_MIN bytes) sketches the content. The sealed blobs of a batch travel back
 * in one buffer. The plaintext is never sent back: it lives in one scratch
 * buffer here, so a batch costs its sealed bytes and nothing per file.
 */
let codec: BlobCodec;
let idKey: Buffer;
let xlib: Awaited<ReturnType<typeof xattrSync>>;
const NOATIME = fsc.O_NOATIME ?? 0;
/** One more byte than the largest file: a read that fills it shows the file grew. */
const scratch = Buffer.allocUnsafeSlow(SMALL_FILE_MAX + 1);
/** zstd's and the cipher's outputs and the sealed parts joined into one buffer are dropped after every batch (see reclaim.ts). */
const reclaimer = new BufferReclaimer();

/** O_NONBLOCK: a FIFO (or device) put in the file's place since the scan does not block the open (readOne then sees it). */
function openNoFollow(p: Buffer): number {
  try {
    return openSync(p, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | NOATIME);
  } catch (err) {
    // O_NOATIME is refused (EPERM) on files of other users
    if (!NOATIME) throw err;
    return openSync(p, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  }
}

function readOne(p: Buffer, size: number, sealedParts: Buffer[], offset: number): SmallFileResult {
  if (!(Number.isSafeInteger(size) && size >= 0 && size <= SMALL_FILE_MAX)) return { error: { message: `size ${size} is not a small file` } };
  let fd: number;
  try {
    fd = openNoFollow(p);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { error: { message: e.message, ...(e.code ? { code: e.code } : {}) } };
  }
  try {
    if (!fstatSync(fd).isFile()) return { grew: true }; // no regular file any more: the main thread's path says so
    const r: SmallFileResult = { size: 0 };
    try {
      // most files have no extended attributes: flistxattr on the open file says so without the
      // listing by path (fs-xattr through /proc/self/fd); any other answer takes that listing
      const xa = xattrListSize?.(fd) === 0 ? undefined : readXattrsSync(xlib, fd);
      if (xa) r.xattrs = xa;
    } catch (err) {
      r.xattrError = (err as Error).message;
    }
    // up to size + 1 bytes: the read that returns 0 (end of file) or the extra byte (grew)
    let got = 0;
    for (;;) {
      const n = readSync(fd, scratch, got, size + 1 - got, got);
      if (n === 0) break;
      got += n;
      if (got > size) return { grew: true }; // read again whole by the main thread's path
    }
    r.size = got;
    if (got > 0) {
      const data = scratch.subarray(0, got);
      r.id = blobId(idKey, data);
      const enc = codec.encode(data);
      r.compression = enc.compression;
      // as every encoder does (repository.ts saveBlob): no sketch for data zstd could not shrink
      if (got >= SKETCH_MIN && enc.compression !== 0) r.sf = superFeatures(data);
      r.off = offset;
      r.len = enc.sealed.length;
      sealedParts.push(enc.sealed);
    }
    return r;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { error: { message: e.message, ...(e.code ? { code: e.code } : {}) } };
  } finally {
    closeSync(fd);
  }
}

/** lstat of many paths: their fields in one array (see STAT_FIELDS), or an error per path. */
function lstatMany(paths: Buffer[]): { fields: BigInt64Array; errors: Array<{ message: string; code?: string } | null> } {
  const fields = new BigInt64Array(paths.length * STAT_FIELDS.length);
  const errors: Array<{ message: string; code?: string } | null> = [];
  paths.forEach((u, i) => {
    try {
      const st = lstatSync(u, { bigint: true });
      STAT_FIELDS.forEach((f, j) => (fields[i * STAT_FIELDS.length + j] = BigInt.asIntN(64, st[f])));
      errors.push(null);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      errors.push({ message: e.message, ...(e.code ? { code: e.code } : {}) });
    }
  });
  return { fields, errors };
}

/** The native flistxattr size (scan-native.ts), or undefined without the addon. */
const xattrListSize = scanAddon()?.xattrListSize;

export async function workerOps(init: WorkerInit): Promise<Record<string, WorkerOp>> {
  codec = new BlobCodec(Buffer.from(init.encKey), init.level);
  idKey = Buffer.from(init.idKey);
  xlib = await xattrSync();
  return {
    lstat: (msg) => {
      const paths = unpackPaths(msg);
      if (!paths) throw new Error('malformed lstat request');
      const r = lstatMany(paths);
      return { reply: r, transfer: [r.fields.buffer as ArrayBuffer] };
    },
    read: (msg) => {
      const paths = unpackPaths(msg);
      const sizes = msg.sizes;
      if (!paths || !Array.isArray(sizes) || paths.length !== sizes.length) throw new Error('malformed read request');
      const parts: Buffer[] = [];
      let offset = 0;
      const results = paths.map((p, i) => {
        const r = readOne(p, sizes[i] as number, parts, offset);
        if (r.len !== undefined) offset += r.len;
        return r;
      });
      const sealed = Buffer.concat(parts, offset);
      reclaimer.dropped(3 * offset);
      const own = sealed.byteOffset === 0 && sealed.byteLength === sealed.buffer.byteLength;
      return { reply: { results, sealed }, transfer: own ? [sealed.buffer as ArrayBuffer] : [] };
    },
  };
}
