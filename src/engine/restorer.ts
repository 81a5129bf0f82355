import { promises as fsp, constants as fsc } from 'node:fs';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { LifeboatError, IntegrityError } from '../errors.js';
import { readContent } from '../repo/content.js';
import { blobId } from '../repo/crypto.js';
import type { Repository } from '../repo/repository.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import type { TreeNode } from '../repo/tree.js';
import { Semaphore } from '../util/sync.js';
import { matcher } from './archiver.js';

/**
 * The restorer: writes a snapshot's tree (or a sub-path of it) into a target
 * directory and verifies every restored file against its chunk ids.
 */
export interface RestoreOptions {
  target: string;
  /** Path inside the snapshot to restore (default: "/"). Its contents land in target. */
  subpath?: string;
  includes?: string[];
  excludes?: string[];
  /** Re-read every restored file and check it against the snapshot's chunk ids (default true). */
  verify?: boolean;
  /** Allow restoring into a non-empty target (existing files are overwritten). */
  overwrite?: boolean;
  onProgress?: (p: { files: number; bytes: number; bytesTotal?: number }) => void;
}

export interface RestoreSummary {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  verified: number;
  errors: Array<{ path: string; message: string }>;
  durationMs: number;
}

/** Find the node for a path inside a snapshot ("/" = root). */
export async function lookupPath(repo: Repository, treeId: string, p: string): Promise<{ node: TreeNode | undefined; tree: string }> {
  const parts = p.split('/').filter(Boolean);
  let tree = treeId;
  let node: TreeNode | undefined;
  for (let i = 0; i < parts.length; i++) {
    const t = await repo.loadTree(tree);
    node = t.nodes.find((n) => n.name === parts[i]);
    if (!node) throw new LifeboatError(`path ${p} not found in snapshot`, 1);
    if (i < parts.length - 1) {
      if (node.type !== 'dir') throw new LifeboatError(`path ${p}: ${parts.slice(0, i + 1).join('/')} is not a directory`, 1);
      tree = node.subtree!;
    }
  }
  return { node, tree };
}

export async function restoreSnapshot(repo: Repository, snap: SnapshotWithId, opts: RestoreOptions): Promise<RestoreSummary> {
  const started = Date.now();
  const target = path.resolve(opts.target);
  const verify = opts.verify !== false;
  const inc = opts.includes?.length ? opts.includes.map((p) => picomatch(p, { dot: true })) : undefined;
  const exc = matcher(opts.excludes);
  const summary: RestoreSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, verified: 0, errors: [], durationMs: 0 };
  await fsp.mkdir(target, { recursive: true });
  if (!opts.overwrite) {
    const existing = await fsp.readdir(target);
    if (existing.length > 0) {
      throw new LifeboatError(`restore target ${target} is not empty; choose an empty directory or pass --overwrite`, 2);
    }
  }
  const lock = await repo.lock(false, 'restore');
  const isRoot = process.getuid?.() === 0;
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
    const setMeta = async (dst: string, n: TreeNode) => {
      try {
        if (isRoot) await fsp.lchown(dst, n.uid, n.gid).catch(() => {});
        if (n.type !== 'symlink') await fsp.chmod(dst, n.mode);
        const t = n.mtime / 1000;
        await fsp.lutimes(dst, t, t);
      } catch (err) {
        summary.errors.push({ path: dst, message: `metadata: ${(err as Error).message}` });
      }
    };
    const restoreFile = async (dst: string, n: TreeNode, snapPath: string) => {
      // Never write through an existing symlink (it could point outside the target).
      if (opts.overwrite) await fsp.rm(dst, { force: true, recursive: true });
      const fh = await fsp.open(dst, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
      let written = 0;
      try {
        for await (const buf of readContent(repo, n.content ?? [])) {
          let off = 0;
          while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
          written += buf.length;
          summary.bytes += buf.length;
        }
        if (written !== n.size) throw new IntegrityError(`${snapPath}: restored ${written} bytes but the snapshot records ${n.size}`);
        if (verify) {
          // read back through the same handle what was written
          await verifyFile(repo, fh, n, snapPath);
          summary.verified++;
        }
      } finally {
        await fh.close();
      }
      summary.files++;
      opts.onProgress?.({ files: summary.files, bytes: summary.bytes });
    };
    const dirsToFix: Array<[string, TreeNode]> = [];
    // Files are restored several at a time (small files are dominated by per-file latency).
    const fileSlots = new Semaphore(8);
    const walk = async (treeId: string, dstDir: string, snapDir: string): Promise<void> => {
      const t = await repo.loadTree(treeId);
      const pending: Array<Promise<void>> = [];
      const handle = async (n: TreeNode, dst: string, sp: string, fn: () => Promise<void>) => {
        try {
          await fn();
        } catch (err) {
          if (err instanceof IntegrityError) {
            summary.errors.push({ path: sp, message: err.message });
            await fsp.rm(dst, { force: true }).catch(() => {});
            return;
          }
          if (err instanceof LifeboatError) throw err;
          summary.errors.push({ path: sp, message: (err as Error).message });
        }
      };
      for (const n of t.nodes) {
        const dst = path.join(dstDir, n.name);
        const sp = snapDir === '/' ? `/${n.name}` : `${snapDir}/${n.name}`;
        if (!wanted(sp, n.type === 'dir')) continue;
        if (n.type === 'dir') {
          await handle(n, dst, sp, async () => {
            const existing = await fsp.lstat(dst).catch(() => undefined);
            if (existing && !existing.isDirectory()) await fsp.rm(dst, { force: true });
            await fsp.mkdir(dst, { recursive: true, mode: 0o700 });
            summary.dirs++;
            await walk(n.subtree!, dst, sp);
            dirsToFix.push([dst, n]);
          });
          continue;
        }
        await fileSlots.acquire();
        const task = handle(n, dst, sp, async () => {
          if (n.type === 'symlink') {
            await fsp.rm(dst, { force: true });
            await fsp.symlink(n.linktarget!, dst);
            summary.symlinks++;
          } else await restoreFile(dst, n, sp);
          await setMeta(dst, n);
        }).finally(() => fileSlots.release());
        task.catch(() => {}); // observed below
        pending.push(task);
      }
      await Promise.all(pending);
    };
    if (start && start.type !== 'dir') {
      const dst = path.join(target, start.name);
      if (start.type === 'symlink') await fsp.symlink(start.linktarget!, dst);
      else await restoreFile(dst, start, opts.subpath!);
      await setMeta(dst, start);
    } else {
      if (start) startTree = start.subtree!;
      await walk(startTree, target, opts.subpath && opts.subpath !== '/' ? opts.subpath : '/');
      for (const [dst, n] of dirsToFix.reverse()) await setMeta(dst, n);
    }
    summary.durationMs = Date.now() - started;
    return summary;
  } finally {
    await lock.release();
  }
}

/** Re-read a restored file and check every chunk against its keyed id. */
async function verifyFile(repo: Repository, fh: fsp.FileHandle, n: TreeNode, snapPath: string): Promise<void> {
  const content = n.content ?? [];
  if (!n.sizes || n.sizes.length !== content.length) {
    // Older trees without sizes: fall back to the index's raw lengths.
    n = { ...n, sizes: content.map((id) => repo.indexEntry(id)?.rawLength ?? -1) };
  }
  let pos = 0;
  for (let i = 0; i < content.length; i++) {
    const len = n.sizes![i]!;
    const buf = Buffer.allocUnsafe(len);
    const { bytesRead } = await fh.read(buf, 0, len, pos);
    if (bytesRead !== len || blobId(repo.key.idKey, buf) !== content[i]) {
      throw new IntegrityError(`${snapPath}: verification after restore failed at byte ${pos} (chunk ${i})`);
    }
    pos += len;
  }
}
