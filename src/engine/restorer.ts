import { constants as fsc, fchmodSync, fchownSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { LifeboatError, IntegrityError } from '../errors.js';
import { readContent } from '../repo/content.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { escapeBytes, linkBytes, nameBytes, type TreeNode } from '../repo/tree.js';
import { BufferReclaimer, envMiB } from '../util/reclaim.js';
import { Semaphore } from '../util/sync.js';
import { globMatcher, joinBytes, matcher } from './archiver.js';
import { type DirMeta, DirHandle, TempFile, filesNative, mkdirOpen, realpathBytes, setDirsMeta, tmpName } from './file-writer.js';
import { type BatchFile, RestoreBatcher } from './restore-batch.js';
import { TreePrefetch, type TreePos, treesAhead } from './tree-prefetch.js';
import { O_PATH, makeSpecial, msToNs, setTimesFd, setTimesFdSync, setTimesPath, writeXattrs } from './fsmeta.js';

/**
 * The restorer: writes a snapshot's tree (or a sub-path of it) into a target
 * directory and verifies every restored file against its chunk ids while it
 * writes it: each chunk's plaintext is checked against its keyed id as it is
 * decoded (in batches, pack by pack: restore-batch.ts; or repository.loadBlob), its length against the tree's recorded chunk
 * size, and the file's byte count against its recorded size, before the file
 * is renamed to its final name. Nothing is read back a second time.
 *
 * It never writes outside the target: directories and files are created
 * first, symbolic links, hard links and special files last (so no link the
 * snapshot contains exists while anything is written below it); the parent
 * directory of every entry is checked (realpath) right before it is written;
 * final components are never followed (O_NOFOLLOW, rename over the final
 * name); and every file is written under a temporary name in its directory
 * and renamed once it is complete and verified, so nothing half-written is
 * ever left under a final name.
 */
export interface RestoreOptions {
  target: string;
  /** Path inside the snapshot to restore (default: "/"). Its contents land in target. */
  subpath?: string;
  includes?: string[];
  excludes?: string[];
  /**
   * Report files as verified (default true). Every chunk is checked against its
   * keyed id as it is decoded and written, whatever this says: there is no
   * unverified restore.
   */
  verify?: boolean;
  /** Allow restoring into a non-empty target (existing files are overwritten). */
  overwrite?: boolean;
  onProgress?: (p: { files: number; bytes: number; bytesTotal?: number }) => void;
}

export interface RestoreSummary {
  files: number;
  dirs: number;
  symlinks: number;
  /** Hard links restored as links to an earlier restored file. */
  hardlinks: number;
  /** FIFOs and device nodes. */
  special: number;
  bytes: number;
  verified: number;
  /** What could not be restored; `integrity` marks damage or refused (hostile) entries (exit code 5). */
  errors: Array<{ path: string; message: string; integrity?: boolean }>;
  /** Things not restored that are not failures (sockets, refused extended attributes, devices as non-root). */
  warnings: Array<{ path: string; message: string }>;
  durationMs: number;
}

/** Find the node for a path inside a snapshot ("/" = root). Names are matched in their display form (`\xNN` for bytes that are not UTF-8). */
export async function lookupPath(repo: Repository, treeId: string, p: string): Promise<{ node: TreeNode | undefined; tree: string }> {
  const parts = p.split('/').filter(Boolean);
  let tree = treeId;
  let node: TreeNode | undefined;
  for (let i = 0; i < parts.length; i++) {
    const t = await repo.loadTree(tree);
    node = t.nodes.find((n) => n.name === parts[i] && n.nameBytes === undefined) ?? t.nodes.find((n) => n.name === parts[i]);
    if (!node) throw new LifeboatError(`path ${p} not found in snapshot`, 1);
    if (i < parts.length - 1) {
      if (node.type !== 'dir') throw new LifeboatError(`path ${p}: ${parts.slice(0, i + 1).join('/')} is not a directory`, 1);
      tree = node.subtree!;
    }
  }
  return { node, tree };
}

/** Data regions of a file node ([offset, length] in the file), the complement of its holes. */
function dataSegments(n: TreeNode): Array<[number, number]> {
  const segs: Array<[number, number]> = [];
  let pos = 0;
  for (const [off, len] of n.holes ?? []) {
    if (off > pos) segs.push([pos, off - pos]);
    pos = off + len;
  }
  if (pos < n.size) segs.push([pos, n.size - pos]);
  return segs;
}

/** Maps the position in a file's content stream (data without holes) to positions in the file. */
class SegmentCursor {
  private i = 0;
  private inSeg = 0;
  constructor(private readonly segs: Array<[number, number]>) {}
  /** Split the next `len` content bytes into (file offset, length) pieces; undefined if they run past the data. */
  take(len: number): Array<[number, number]> | undefined {
    const out: Array<[number, number]> = [];
    while (len > 0) {
      const seg = this.segs[this.i];
      if (!seg) return undefined;
      const n = Math.min(len, seg[1] - this.inSeg);
      out.push([seg[0] + this.inSeg, n]);
      this.inSeg += n;
      len -= n;
      if (this.inSeg === seg[1]) {
        this.i++;
        this.inSeg = 0;
      }
    }
    return out;
  }
}

/** The directory part of a raw path (latin1 maps each byte to one character and back). */
const dirOf = (p: Buffer) => Buffer.from(path.dirname(p.toString('latin1')), 'latin1');

/** Files up to this size (one chunk) are loaded whole, then written with synchronous writes. */
const SMALL_FILE = 256 * 1024;

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e?.code === 'ENOSPC') return `no space left on device (ENOSPC); nothing was left under this name`;
  if (e?.code === 'EDQUOT') return `disk quota exceeded (EDQUOT); nothing was left under this name`;
  return DirHandle.shown(e?.message ?? String(err));
}

export async function restoreSnapshot(repo: Repository, snap: SnapshotWithId, opts: RestoreOptions): Promise<RestoreSummary> {
  const started = Date.now();
  const verify = opts.verify !== false;
  const inc = opts.includes?.length ? opts.includes.map((p) => globMatcher(p)) : undefined;
  const exc = matcher(opts.excludes);
  const summary: RestoreSummary = { files: 0, dirs: 0, symlinks: 0, hardlinks: 0, special: 0, bytes: 0, verified: 0, errors: [], warnings: [], durationMs: 0 };
  await fsp.mkdir(path.resolve(opts.target), { recursive: true });
  // Every path is built from the target's real path, so a parent whose realpath differs went through a link.
  const target = Buffer.from(await fsp.realpath(path.resolve(opts.target)));
  if (!opts.overwrite) {
    const existing = await fsp.readdir(target);
    if (existing.length > 0) {
      throw new LifeboatError(`restore target ${opts.target} is not empty; choose an empty directory or pass --overwrite`, 2);
    }
  }
  const lock = await repo.lock(false, 'restore');
  const isRoot = process.getuid?.() === 0;
  const euid = process.geteuid?.();
  const egid = process.getegid?.();
  const show = (p: Buffer) => escapeBytes(p);
  /** Every chunk is dropped once written: collect them promptly (see reclaim.ts). */
  // and a full collection every 64 MiB (LIFEBOAT_RESTORE_FULL_GC_MB, 0: none): the old generation's dropped
  // buffers (delta bases of a dump's chunks: ~50 MB more peak RSS without it, docs/benchmarks.md dumprss7)
  // and one whenever the JavaScript heap grew by 8 MiB past its lowest since the last (LIFEBOAT_RESTORE_HEAP_GC_MB, 0: none): small
  // files' promoted per-file state, else left to V8 until its old space is 30+ MB (restore8: peak RSS -10..-15 MB)
  const reclaimer = new BufferReclaimer(16 * 1024 * 1024, envMiB('LIFEBOAT_RESTORE_FULL_GC_MB', 64), envMiB('LIFEBOAT_RESTORE_HEAP_GC_MB', 8));

  /** The parent directory must be exactly the path we expect: no component is a symbolic link. */
  const checkDir = async (dir: Buffer): Promise<void> => {
    // realpath(3) in the thread pool: it waits on the same directory locks as the file creations around it
    const real = await realpathBytes(dir);
    if (!real.equals(dir)) throw new LifeboatError(`restore refused: ${show(dir)} leads to ${show(real)} (a symbolic link inside the target); nothing is written outside the target`, 5);
    // (a parent that is not a directory makes the following open/mkdir/rename fail with ENOTDIR)
  };

  /**
   * Where a file or directory goes: its directory's path and, where the
   * platform allows, the directory's open handle (DirHandle): then every
   * call goes through the handle and needs no realpath check.
   */
  type Loc = { real: Buffer; h?: DirHandle };
  /** The parent must still be the directory we made: through a handle it is by construction. */
  const checkLoc = async (loc: Loc): Promise<void> => {
    if (!loc.h) await checkDir(loc.real);
  };
  /** The path to give the system for `name` in `loc` (through the handle when there is one). */
  const sysPath = (loc: Loc, name: Buffer): Buffer => (loc.h ? loc.h.at(name) : joinBytes(loc.real, name));

  /** Make room for a final name (only with --overwrite; a directory is removed only when a non-directory replaces it). */
  const clearFinal = async (dst: Buffer, forDir: boolean, shown: Buffer = dst): Promise<boolean> => {
    const st = await fsp.lstat(dst).catch(() => undefined);
    if (!st) return false;
    if (forDir && st.isDirectory()) return true;
    if (!opts.overwrite) throw new LifeboatError(`restore refused: ${show(shown)} exists`, 5);
    if (st.isDirectory()) await fsp.rm(dst, { recursive: true, force: true });
    else if (forDir) await fsp.unlink(dst); // a file or a link where a directory goes (never followed)
    return false;
  };

  /** Owner, mode, extended attributes and times through an open handle (never through a path that could be a link). */
  const metaByHandle = async (fh: fsp.FileHandle, n: TreeNode, shown: string) => {
    if (isRoot) await fh.chown(n.uid, n.gid).catch(() => {});
    await fh.chmod(n.mode);
    if (n.xattrs?.length) for (const m of await writeXattrs(fh.fd, n.xattrs)) summary.warnings.push({ path: shown, message: m });
    await setTimesFd(fh, n.mtimeNs ?? msToNs(n.mtime));
  };

  /** The same for a restored file's descriptor (synchronous calls: each is cheaper than a thread-pool round trip). */
  const metaByFd = async (fd: number, n: TreeNode, shown: string, loc?: Loc) => {
    // a file created in a directory owned by us (as root, with our group) already has the owner the snapshot records when it is us
    if (isRoot && !(loc?.h?.gid !== undefined && n.uid === euid && n.gid === loc.h.gid && loc.h.gid === egid)) {
      try {
        fchownSync(fd, n.uid, n.gid);
      } catch {
        /* as in metaByHandle: ownership is best effort */
      }
    }
    fchmodSync(fd, n.mode);
    if (n.xattrs?.length) for (const m of await writeXattrs(fd, n.xattrs)) summary.warnings.push({ path: shown, message: m });
    setTimesFdSync(fd, n.mtimeNs ?? msToNs(n.mtime));
  };

  /** Right before a complete file is renamed: its directory is still the one checked; an existing directory needs --overwrite. */
  const beforeRename = async (loc: Loc, dst: Buffer, name: Buffer) => {
    await checkLoc(loc);
    if (opts.overwrite) await clearFinal(dst, false, joinBytes(loc.real, name));
  };

  /**
   * Small files (most files of a system): every chunk is loaded and checked
   * first, then the file is created (thread pool: see TempFile), written and
   * given its metadata with direct system calls (a thread-pool round trip per
   * call costs more than the call itself) and renamed. The same steps and
   * checks as the streaming path below.
   */
  const restoreSmallFile = async (loc: Loc, n: TreeNode, snapPath: string): Promise<Buffer> => {
    const name = nameBytes(n);
    const dst = sysPath(loc, name);
    const segs = dataSegments(n);
    const dataLen = segs.reduce((a, s) => a + s[1], 0);
    const content = n.content ?? [];
    const sizes = n.sizes && n.sizes.length === content.length ? n.sizes : undefined;
    const bufs: Buffer[] = [];
    let total = 0;
    let ci = 0;
    for await (const buf of readContent(repo, content)) {
      // (each chunk's plaintext was checked against its keyed id when it was decoded)
      if (sizes && buf.length !== sizes[ci]) throw new IntegrityError(`${snapPath}: chunk ${ci} has ${buf.length} bytes but the snapshot records ${sizes[ci]}`);
      ci++;
      total += buf.length;
      if (total > dataLen) throw new IntegrityError(`${snapPath}: the snapshot's content is longer than the recorded size ${n.size}`);
      bufs.push(buf);
    }
    if (total !== dataLen) throw new IntegrityError(`${snapPath}: restored ${total} bytes but the snapshot records ${dataLen}`);
    await checkLoc(loc);
    const tf = await TempFile.create(loc.h?.base ?? loc.real);
    try {
      const cur = new SegmentCursor(segs);
      for (const buf of bufs) tf.writePieces(buf, cur.take(buf.length)!);
      reclaimer.dropped(total);
      if (n.holes?.length) tf.truncate(n.size); // a trailing hole
      summary.bytes += total;
      if (verify) summary.verified++;
      await metaByFd(tf.fd, n, snapPath, loc);
      await tf.publish(dst, () => beforeRename(loc, dst, name));
    } catch (err) {
      await tf.discard();
      throw err;
    }
    summary.files++;
    opts.onProgress?.({ files: summary.files, bytes: summary.bytes });
    return joinBytes(loc.real, name);
  };

  /**
   * Most files are restored in batches (restore-batch.ts): each pack read
   * once, blobs decoded in a worker and written wherever they are needed.
   * That needs each chunk's size (recorded in the tree) to know where it goes
   * before it is read: files without them take restoreFile's path.
   */
  const batcher = new RestoreBatcher(repo, {
    written: (bytes) => {
      summary.bytes += bytes;
      opts.onProgress?.({ files: summary.files, bytes: summary.bytes });
    },
    dropped: (bytes) => reclaimer.dropped(bytes),
  });
  /**
   * Files of one chunk with no holes and no extended attributes, in a directory
   * held open (DirHandle), are finished in native batches (file-writer.ts
   * finishFiles) when the helper is built and the restore does not overwrite
   * (--overwrite may have to remove a directory in the way: the TempFile path).
   */
  const native = filesNative() !== undefined && !opts.overwrite;
  const batchFile = (loc: Loc, n: TreeNode, snapPath: string): BatchFile | IntegrityError | undefined => {
    const content = n.content ?? [];
    const sizes = n.sizes;
    if (content.length === 0 || !sizes || sizes.length !== content.length) return undefined;
    const segs = dataSegments(n);
    const dataLen = segs.reduce((a, s) => a + s[1], 0);
    const cur = new SegmentCursor(segs);
    const pieces: Array<Array<[number, number]>> = [];
    let total = 0;
    for (const sz of sizes) {
      if (!(Number.isSafeInteger(sz) && sz >= 0)) return new IntegrityError(`${snapPath}: the snapshot records an impossible chunk size ${sz}`);
      total += sz;
      const p = cur.take(sz);
      if (!p) return new IntegrityError(`${snapPath}: the snapshot's content is longer than the recorded size ${n.size}`);
      pieces.push(p);
    }
    if (total !== dataLen) return new IntegrityError(`${snapPath}: the snapshot's chunks hold ${total} bytes but it records ${dataLen}`);
    const name = nameBytes(n);
    const h = loc.h;
    const direct: BatchFile['direct'] =
      native && h && content.length === 1 && !n.holes?.length && !n.xattrs?.length
        ? {
            dirfd: h.fd,
            name,
            mode: n.mode,
            uid: n.uid,
            gid: n.gid,
            // as metaByFd: as root, unless the file already has the owner the snapshot records
            chown: isRoot && !(h.gid !== undefined && n.uid === euid && n.gid === h.gid && h.gid === egid),
            mtimeNs: n.mtimeNs ?? msToNs(n.mtime),
            shown: () => joinBytes(loc.real, name).toString(),
            published: () => {
              // (the batcher reports the bytes next, with the progress)
              if (verify) summary.verified++;
              summary.files++;
            },
          }
        : undefined;
    const file: BatchFile = {
      what: snapPath,
      content,
      sizes,
      pieces,
      direct,
      open: async () => {
        await checkLoc(loc);
        return TempFile.create(loc.h?.base ?? loc.real);
      },
      finish: async (tf) => {
        const dst = sysPath(loc, name);
        try {
          if (n.holes?.length) tf.truncate(n.size); // a trailing hole
          // every chunk matched its id and its recorded size, and every byte was written: the file is verified
          await metaByFd(tf.fd, n, snapPath, loc);
          await tf.publish(dst, () => beforeRename(loc, dst, name));
        } catch (err) {
          await tf.discard();
          throw err;
        }
        if (verify) summary.verified++;
        summary.files++;
        opts.onProgress?.({ files: summary.files, bytes: summary.bytes });
      },
    };
    return file;
  };

  const restoreFile = async (loc: Loc, n: TreeNode, snapPath: string): Promise<Buffer> => {
    if (n.size <= SMALL_FILE && (n.content ?? []).length <= 1) return restoreSmallFile(loc, n, snapPath);
    const name = nameBytes(n);
    const dst = sysPath(loc, name);
    await checkLoc(loc);
    const tf = await TempFile.create(loc.h?.base ?? loc.real);
    try {
      const segs = dataSegments(n);
      const dataLen = segs.reduce((a, s) => a + s[1], 0);
      const cur = new SegmentCursor(segs);
      let written = 0;
      const sizes = n.sizes && n.sizes.length === (n.content ?? []).length ? n.sizes : undefined;
      let ci = 0;
      for await (const buf of readContent(repo, n.content ?? [])) {
        // (each chunk's plaintext was checked against its keyed id when it was decoded)
        if (sizes && buf.length !== sizes[ci]) {
          throw new IntegrityError(`${snapPath}: chunk ${ci} has ${buf.length} bytes but the snapshot records ${sizes[ci]}`);
        }
        ci++;
        const pieces = cur.take(buf.length);
        if (!pieces) throw new IntegrityError(`${snapPath}: the snapshot's content is longer than the recorded size ${n.size}`);
        await tf.writePiecesAsync(buf, pieces);
        reclaimer.dropped(buf.length);
        written += buf.length;
        summary.bytes += buf.length;
        opts.onProgress?.({ files: summary.files, bytes: summary.bytes });
      }
      if (written !== dataLen) throw new IntegrityError(`${snapPath}: restored ${written} bytes but the snapshot records ${dataLen}`);
      if (n.holes?.length) tf.truncate(n.size); // a trailing hole
      // every chunk matched its id and every byte was written: the file is verified
      if (verify) summary.verified++;
      await metaByFd(tf.fd, n, snapPath, loc);
      await tf.publish(dst, () => beforeRename(loc, dst, name));
    } catch (err) {
      await tf.discard();
      throw err;
    }
    summary.files++;
    opts.onProgress?.({ files: summary.files, bytes: summary.bytes });
    return joinBytes(loc.real, name);
  };

  /** Create something at a temporary name in dir, then rename it over the final name. */
  const placeLast = async (dir: Buffer, n: TreeNode, create: (tmp: Buffer) => Promise<void>, meta: (tmp: Buffer) => Promise<void>): Promise<void> => {
    await checkDir(dir);
    const tmp = joinBytes(dir, tmpName());
    const dst = joinBytes(dir, nameBytes(n));
    try {
      await create(tmp);
      await meta(tmp);
      await checkDir(dir);
      await clearFinal(dst, false);
      await fsp.rename(tmp, dst);
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw err;
    }
  };

  /** Entries created after all files: links and special files. */
  const deferred: Array<{ dir: Buffer; n: TreeNode; sp: string }> = [];
  /** First restored path of each hard-link group. */
  const linkFirst = new Map<string, { path?: Buffer; node: TreeNode; done: Promise<void> }>();
  const dirsToFix: Array<[Buffer, TreeNode, string]> = [];
  /** The target's handle, held to the end of phase 3. */
  let rootH: DirHandle | undefined;

  try {
    let start: TreeNode | undefined;
    let startTree = snap.tree;
    if (opts.subpath && opts.subpath !== '/') {
      const { node } = await lookupPath(repo, snap.tree, opts.subpath);
      start = node;
    }
    const wanted = (snapPath: string, isDir: boolean): boolean => {
      if (exc(snapPath)) return false;
      if (!inc || isDir) return true;
      return inc.some((m) => m(snapPath));
    };
    const recordError = (sp: string, err: unknown) => {
      if (err instanceof LifeboatError && !(err instanceof IntegrityError) && err.exitCode !== 5) throw err;
      const integrity = err instanceof IntegrityError || (err instanceof LifeboatError && err.exitCode === 5);
      summary.errors.push({ path: sp, message: errText(err), ...(integrity ? { integrity } : {}) });
    };
    const fileSlots = new Semaphore(8);
    /** Files handed to the batcher and not yet settled; the first error that ends the restore. */
    const batchTasks: { count: number; idle?: () => void } = { count: 0 };
    let fatal: unknown;
    const linkKey = (n: TreeNode) => (n.type === 'file' && (n.nlink ?? 0) > 1 && n.inode !== undefined ? `${n.dev ?? 0}:${n.inode}` : undefined);
    const sameContent = (a: TreeNode, b: TreeNode) =>
      a.size === b.size && (a.content ?? []).join() === (b.content ?? []).join() && JSON.stringify(a.holes ?? []) === JSON.stringify(b.holes ?? []);

    /** Phase 1 for one entry: directories (recursively) and files now, everything else later. */
    const visit = async (loc: Loc, n: TreeNode, sp: string, pending: Array<Promise<void>>, parent: TreePos, index: number): Promise<void> => {
      if (n.type === 'dir') {
        let child: DirHandle | undefined;
        try {
          await checkLoc(loc);
          const name = nameBytes(n);
          const dst = joinBytes(loc.real, name);
          const at = sysPath(loc, name);
          // made and opened in one native call where there is a handle; else (or when the name exists) as below
          const r = loc.h && native ? await mkdirOpen(loc.h, name) : 'exists';
          if (r !== 'exists') child = r;
          else {
            // mkdir first: an existing name is looked at only when it is there (--overwrite, or a damaged tree)
            const made = await fsp.mkdir(at, { mode: 0o700 }).then(
              () => true,
              (err: NodeJS.ErrnoException) => {
                if (err.code !== 'EEXIST') throw err;
                return false;
              },
            );
            if (!made && !(await clearFinal(at, true, dst))) await fsp.mkdir(at, { mode: 0o700 });
            // the new directory's handle, opened through its parent's (O_NOFOLLOW): its files are created through it
            if (loc.h) child = await loc.h.child(name, made);
          }
          summary.dirs++;
          await walk(n.subtree!, { real: dst, h: child }, sp, [...parent, index]);
          dirsToFix.push([dst, n, sp]);
        } catch (err) {
          recordError(sp, err);
        } finally {
          child?.unref();
        }
        return;
      }
      if (n.type !== 'file') {
        deferred.push({ dir: loc.real, n, sp });
        return;
      }
      const key = linkKey(n);
      if (key) {
        const first = linkFirst.get(key);
        if (first && sameContent(first.node, n)) {
          deferred.push({ dir: loc.real, n, sp });
          return;
        }
      }
      let resolveDone!: () => void;
      const entry = key && !linkFirst.has(key) ? { node: n, done: new Promise<void>((r) => (resolveDone = r)) } : undefined;
      if (entry) linkFirst.set(key!, entry as { path?: Buffer; node: TreeNode; done: Promise<void> });
      const planned = batchFile(loc, n, sp);
      if (planned) {
        if (fatal !== undefined) throw fatal;
        let done: Promise<void>;
        // the file holds its directory's handle until it is published or discarded
        const h = loc.h?.ref();
        try {
          if (planned instanceof IntegrityError) done = Promise.reject(planned);
          else done = (await batcher.add(planned)).done;
        } catch (err) {
          h?.unref();
          throw err;
        }
        batchTasks.count++;
        void (async () => {
          try {
            try {
              await done;
              if (entry) (entry as { path?: Buffer }).path = joinBytes(loc.real, nameBytes(n));
            } catch (err) {
              recordError(sp, err);
            }
          } catch (err) {
            fatal ??= err;
          } finally {
            if (entry) resolveDone();
            h?.unref(); // after the error was recorded (its message names the directory through the handle)
            if (--batchTasks.count === 0) batchTasks.idle?.();
          }
        })();
        return;
      }
      await fileSlots.acquire();
      const h = loc.h?.ref();
      const task = (async () => {
        try {
          const p = await restoreFile(loc, n, sp);
          if (entry) (entry as { path?: Buffer }).path = p;
        } catch (err) {
          recordError(sp, err);
        } finally {
          h?.unref();
          if (entry) resolveDone();
          fileSlots.release();
        }
      })();
      pending.push(task);
    };
    const childPath = (snapDir: string, n: TreeNode) => (snapDir === '/' ? `/${n.name}` : `${snapDir}/${n.name}`);
    // the subtrees the walk will enter, read ahead in its order (tree-prefetch.ts); each tree is
    // visited once: not kept in the blob cache (up to 32 MiB of plaintext otherwise)
    const trees = new TreePrefetch<string>(
      (id) => repo.loadTree(id, { cache: false }),
      (t, snapDir) => {
        const out: Array<{ index: number; id: string; ctx: string }> = [];
        t.nodes.forEach((n, index) => {
          if (n.type !== 'dir' || !n.subtree) return;
          const sp = childPath(snapDir, n);
          if (wanted(sp, true)) out.push({ index, id: n.subtree, ctx: sp });
        });
        return out;
      },
      (id) => repo.indexEntry(id)?.rawLength ?? 0,
      treesAhead(process.env, repo.storage.kind),
    );
    const walk = async (treeId: string, dstDir: Loc, snapDir: string, pos: TreePos): Promise<void> => {
      const t = await trees.take(treeId, pos, snapDir);
      const pending: Array<Promise<void>> = [];
      try {
        for (let i = 0; i < t.nodes.length; i++) {
          const n = t.nodes[i]!;
          const sp = childPath(snapDir, n);
          if (!wanted(sp, n.type === 'dir')) continue;
          await visit(dstDir, n, sp, pending, pos, i);
        }
      } finally {
        await Promise.all(pending);
      }
    };

    const root: Loc = { real: target, h: await DirHandle.openRoot(target) };
    // kept for phase 3 (directory metadata below it, native)
    rootH = root.h?.ref();
    try {
      if (start && start.type !== 'dir') {
        const pending: Array<Promise<void>> = [];
        await visit(root, start, opts.subpath!, pending, [], 0);
        await Promise.all(pending);
      } else {
        if (start) startTree = start.subtree!;
        await walk(startTree, root, opts.subpath && opts.subpath !== '/' ? opts.subpath : '/', []);
      }
    } finally {
      // every queued file is published or discarded before the restore goes on (or ends with an error)
      await batcher.drain();
      if (batchTasks.count > 0) await new Promise<void>((r) => (batchTasks.idle = r));
      root.h?.unref();
    }
    if (fatal !== undefined) throw fatal;

    // Phase 2: hard links, symbolic links, FIFOs, devices. Nothing is written below any of them.
    let scratch: Buffer | undefined;
    try {
      for (const { dir, n, sp } of deferred) {
        try {
          if (n.type === 'file') {
            const first = linkFirst.get(linkKey(n)!)!;
            await first.done;
            if (first.path) {
              await checkDir(dirOf(first.path));
              await placeLast(dir, n, (tmp) => fsp.link(first.path!, tmp), async () => {});
              summary.hardlinks++;
            } else await restoreFile({ real: dir }, n, sp); // the first link failed or was not selected
          } else if (n.type === 'symlink') {
            await placeLast(
              dir,
              n,
              (tmp) => fsp.symlink(linkBytes(n), tmp),
              async (tmp) => {
                if (isRoot) await fsp.lchown(tmp, n.uid, n.gid).catch(() => {});
                await setTimesPath(tmp, n.mtimeNs ?? msToNs(n.mtime));
              },
            );
            summary.symlinks++;
          } else if (n.type === 'socket') {
            summary.warnings.push({ path: sp, message: 'socket not restored (a socket is created by the program that listens on it)' });
          } else if ((n.type === 'chardev' || n.type === 'blockdev') && !isRoot) {
            summary.warnings.push({ path: sp, message: `${n.type === 'chardev' ? 'character' : 'block'} device not restored: needs root` });
          } else {
            // mkfifo/mknod take a path argument: create under an ASCII name in a private directory, then move it
            if (!scratch) {
              scratch = Buffer.from(await fsp.mkdtemp(path.join(target.toString(), '.lifeboat-special-')));
            }
            const type = n.type as 'fifo' | 'chardev' | 'blockdev';
            const made = joinBytes(scratch, tmpName());
            await makeSpecial(made.toString(), type, n.rdev ?? 0);
            await placeLast(
              dir,
              n,
              (tmp) => fsp.rename(made, tmp),
              async (tmp) => {
                const fh = await fsp.open(tmp, O_PATH ? O_PATH | fsc.O_NOFOLLOW : fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOFOLLOW);
                try {
                  if (n.xattrs?.length) for (const m of await writeXattrs(fh.fd, n.xattrs)) summary.warnings.push({ path: sp, message: m });
                } finally {
                  await fh.close();
                }
                // a FIFO or device we just created in a directory we checked: chmod/utimes by path (O_PATH handles refuse them)
                if (isRoot) await fsp.lchown(tmp, n.uid, n.gid).catch(() => {});
                await fsp.chmod(tmp, n.mode);
                await setTimesPath(tmp, n.mtimeNs ?? msToNs(n.mtime));
              },
            ).finally(() => fsp.rm(made, { force: true }).catch(() => {}));
            summary.special++;
          }
        } catch (err) {
          recordError(sp, err);
        }
      }
    } finally {
      if (scratch) await fsp.rm(scratch, { recursive: true, force: true }).catch(() => {});
    }

    // Phase 3: directory metadata, deepest first (dirsToFix is in post-order); last, because writing into a directory changes its time.
    // Natively (one thread-pool work item, each directory opened below the root handle without following links),
    // except directories with extended attributes; else one by one, each parent checked by realpath.
    let slow = dirsToFix;
    if (rootH && native) {
      slow = [];
      const batch: DirMeta[] = [];
      const names: string[] = [];
      const prefix = target[target.length - 1] === 0x2f ? target.length : target.length + 1;
      for (const e of dirsToFix) {
        const [dst, n, sp] = e;
        if (n.xattrs?.length || dst.length <= prefix || !dst.subarray(0, target.length).equals(target)) slow.push(e);
        else {
          batch.push({ rel: dst.subarray(prefix), mode: n.mode, uid: n.uid, gid: n.gid, chown: isRoot, mtimeNs: n.mtimeNs ?? msToNs(n.mtime) });
          names.push(sp);
        }
      }
      const errs = await setDirsMeta(rootH, batch, (i) => batch[i]!.rel.toString());
      errs.forEach((e, i) => {
        if (e) summary.errors.push({ path: names[i]!, message: `metadata: ${errText(e)}` });
      });
    }
    for (const [dst, n, sp] of slow) {
      try {
        await checkDir(dirOf(dst));
        const fh = await fsp.open(dst, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
        try {
          await metaByHandle(fh, n, sp);
        } finally {
          await fh.close();
        }
      } catch (err) {
        summary.errors.push({ path: sp, message: `metadata: ${errText(err)}` });
      }
    }
    summary.durationMs = Date.now() - started;
    return summary;
  } finally {
    rootH?.unref();
    await lock.release();
  }
}
