import { promises as fsp, constants as fsc, type Stats } from 'node:fs';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { LifeboatError, IntegrityError } from '../errors.js';
import { ContentWriter } from '../repo/content.js';
import type { Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId } from '../repo/snapshot.js';
import type { Tree, TreeNode } from '../repo/tree.js';
import { Semaphore } from '../util/sync.js';

/**
 * The archiver: backup of paths into a tree of blobs. Unchanged files (same
 * size, mtime, ctime and inode as in the parent snapshot) are not re-read.
 * The restorer is its counterpart (restorer.ts).
 */
export interface FileBackupOptions {
  paths: string[];
  /** Glob patterns (picomatch) matched against absolute paths and base names. */
  excludes?: string[];
  oneFileSystem?: boolean;
  tags?: string[];
  /** Parent snapshot id, 'auto' (default: latest with the same paths on this host) or 'none'. */
  parent?: string;
  /** Re-read every file even if unchanged since the parent. */
  force?: boolean;
  onProgress?: (p: BackupProgress) => void;
  onWarning?: (path: string, message: string) => void;
  /** Abort the backup (timeout, shutdown): no snapshot is written. */
  signal?: AbortSignal;
}

export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason = signal.reason instanceof Error ? signal.reason.message : String(signal.reason ?? 'aborted');
    throw new LifeboatError(`backup aborted: ${reason}; no snapshot was written`, 130);
  }
}

export interface BackupProgress {
  files: number;
  dirs: number;
  bytesRead: number;
  bytesTotal: number;
  currentPath?: string;
}

export interface FileBackupResult {
  snapshotId: string;
  summary: BackupSummary;
  parent?: string;
  warnings: Array<{ path: string; message: string }>;
}

export function matcher(patterns: string[] | undefined): (abs: string) => boolean {
  if (!patterns || patterns.length === 0) return () => false;
  const ms = patterns.map((p) => picomatch(p, { dot: true }));
  return (abs) => {
    const base = path.basename(abs);
    return ms.some((m) => m(abs) || m(base));
  };
}

function statNode(name: string, st: Stats): Omit<TreeNode, 'type'> {
  return {
    name,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    mtime: st.mtimeMs,
    ctime: st.ctimeMs,
    size: st.size,
    inode: st.ino,
    dev: st.dev,
  };
}

class Archiver {
  readonly summary: BackupSummary = {
    filesNew: 0,
    filesChanged: 0,
    filesUnmodified: 0,
    dirs: 0,
    totalBytes: 0,
    bytesRead: 0,
    blobsNew: 0,
    blobsDelta: 0,
    dataAddedRaw: 0,
    dataAdded: 0,
    errors: 0,
    durationMs: 0,
  };
  readonly warnings: Array<{ path: string; message: string }> = [];
  private readonly excluded: (abs: string) => boolean;
  private readonly smallFileSlots = new Semaphore(8);
  private readonly largeFileSlots = new Semaphore(2);
  private lastProgress = 0;

  constructor(
    private readonly repo: Repository,
    private readonly opts: FileBackupOptions,
  ) {
    this.excluded = matcher(opts.excludes);
  }

  warn(p: string, err: unknown): void {
    const message = (err as NodeJS.ErrnoException)?.code
      ? `${(err as NodeJS.ErrnoException).code}: ${(err as Error).message}`
      : String((err as Error)?.message ?? err);
    this.summary.errors++;
    this.warnings.push({ path: p, message });
    this.opts.onWarning?.(p, message);
  }

  private progress(current?: string): void {
    if (!this.opts.onProgress) return;
    const now = Date.now();
    if (now - this.lastProgress < 100) return;
    this.lastProgress = now;
    this.opts.onProgress({
      files: this.summary.filesNew + this.summary.filesChanged + this.summary.filesUnmodified,
      dirs: this.summary.dirs,
      bytesRead: this.summary.bytesRead,
      bytesTotal: this.summary.totalBytes,
      currentPath: current,
    });
  }

  /** Back up one filesystem entry; returns its node or undefined if skipped. */
  async saveEntry(abs: string, name: string, parentNode: TreeNode | undefined, rootDev: number): Promise<TreeNode | undefined> {
    checkAborted(this.opts.signal);
    let st: Stats;
    try {
      st = await fsp.lstat(abs);
    } catch (err) {
      this.warn(abs, err);
      return undefined;
    }
    if (st.isDirectory()) {
      const node: TreeNode = { ...statNode(name, st), type: 'dir', size: 0 };
      if (this.opts.oneFileSystem && st.dev !== rootDev) {
        node.subtree = await this.repo.saveTree({ nodes: [] });
        return node;
      }
      const parentTree = parentNode?.type === 'dir' && parentNode.subtree ? await this.loadParentTree(parentNode.subtree) : undefined;
      node.subtree = await this.saveDir(abs, parentTree, rootDev);
      return node;
    }
    if (st.isSymbolicLink()) {
      try {
        return { ...statNode(name, st), type: 'symlink', size: 0, linktarget: await fsp.readlink(abs) };
      } catch (err) {
        this.warn(abs, err);
        return undefined;
      }
    }
    if (st.isFile()) return this.saveFile(abs, name, st, parentNode);
    this.warn(abs, new Error('unsupported file type (device, fifo or socket) skipped'));
    this.summary.errors--; // not an error: a notice
    return undefined;
  }

  private async loadParentTree(id: string): Promise<Tree | undefined> {
    try {
      return await this.repo.loadTree(id);
    } catch {
      return undefined; // unreadable parent: just re-read everything below
    }
  }

  async saveDir(abs: string, parentTree: Tree | undefined, rootDev: number): Promise<string> {
    this.summary.dirs++;
    let names: string[];
    try {
      names = (await fsp.readdir(abs)).sort();
    } catch (err) {
      this.warn(abs, err);
      return this.repo.saveTree({ nodes: [] });
    }
    const byName = new Map((parentTree?.nodes ?? []).map((n) => [n.name, n]));
    const nodes = await Promise.all(
      names.map(async (name) => {
        const child = path.join(abs, name);
        if (this.excluded(child)) return undefined;
        return this.saveEntry(child, name, byName.get(name), rootDev);
      }),
    );
    return this.repo.saveTree({ nodes: nodes.filter((n): n is TreeNode => n !== undefined) });
  }

  private unchanged(st: Stats, p: TreeNode | undefined): p is TreeNode & { content: string[] } {
    if (this.opts.force || !p || p.type !== 'file' || !p.content) return false;
    if (p.size !== st.size || p.mtime !== st.mtimeMs || p.ctime !== st.ctimeMs || p.inode !== st.ino) return false;
    return p.content.every((id) => this.repo.hasBlob(id));
  }

  private async saveFile(abs: string, name: string, st: Stats, parentNode: TreeNode | undefined): Promise<TreeNode | undefined> {
    const node: TreeNode = { ...statNode(name, st), type: 'file' };
    this.summary.totalBytes += st.size;
    if (this.unchanged(st, parentNode)) {
      node.content = parentNode.content;
      if (parentNode.sizes) node.sizes = parentNode.sizes;
      this.summary.filesUnmodified++;
      this.progress(abs);
      return node;
    }
    const slots = st.size < this.repo.config.chunker.min ? this.smallFileSlots : this.largeFileSlots;
    await slots.acquire();
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(abs, fsc.O_RDONLY | (fsc.O_NOATIME ?? 0)).catch(() => fsp.open(abs, 'r'));
      const parent = parentNode?.type === 'file' && parentNode.content && parentNode.sizes ? { content: parentNode.content, sizes: parentNode.sizes } : undefined;
      let size = 0;
      if (st.size < this.repo.config.chunker.min) {
        // Small file: one chunk, no chunker buffer needed.
        const data = await fh.readFile();
        size = data.length;
        node.content = [];
        node.sizes = [];
        if (size > 0) {
          const { id } = await this.repo.saveBlob('data', data, parent?.content[0] ? { deltaBases: [parent.content[0]] } : {});
          node.content.push(id);
          node.sizes.push(size);
        }
        this.summary.bytesRead += size;
      } else {
        const w = new ContentWriter(this.repo, parent);
        const bufSize = 1024 * 1024;
        const buf = Buffer.allocUnsafe(bufSize); // reused: the chunker copies what it keeps
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, bufSize, null);
          if (bytesRead === 0) break;
          checkAborted(this.opts.signal);
          await w.write(buf.subarray(0, bytesRead));
          size += bytesRead;
          this.summary.bytesRead += bytesRead;
          this.progress(abs);
        }
        const c = await w.finish();
        node.content = c.content;
        node.sizes = c.sizes;
      }
      if (size !== st.size) {
        this.warn(abs, new Error(`file changed while being read (size ${st.size} -> ${size}); stored what was read`));
        this.summary.errors--; // stored consistently, not a read error
      }
      node.size = size;
      this.summary.totalBytes += size - st.size;
      if (parentNode?.type === 'file') this.summary.filesChanged++;
      else this.summary.filesNew++;
      this.progress(abs);
      return node;
    } catch (err) {
      if (err instanceof LifeboatError) throw err; // repository failure: abort the backup
      this.warn(abs, err);
      return undefined;
    } finally {
      await fh?.close().catch(() => {});
      slots.release();
    }
  }
}

interface VDir {
  abs: string;
  children: Map<string, VDir>;
  /** A path given on the command line: backed up recursively. */
  leaf: boolean;
}

/** Build the virtual root: every absolute path becomes a chain of directories under the root. */
function buildRoots(paths: string[]): VDir {
  const root: VDir = { abs: '/', children: new Map(), leaf: false };
  for (const p of paths) {
    const parts = p.split('/').filter(Boolean);
    let cur = root;
    if (parts.length === 0) cur.leaf = true;
    for (let i = 0; i < parts.length; i++) {
      const abs = '/' + parts.slice(0, i + 1).join('/');
      let next = cur.children.get(parts[i]!);
      if (!next) {
        next = { abs, children: new Map(), leaf: false };
        cur.children.set(parts[i]!, next);
      }
      cur = next;
    }
    cur.leaf = true;
  }
  return root;
}

export async function findFileParent(repo: Repository, paths: string[]): Promise<SnapshotWithId | undefined> {
  const key = [...paths].sort().join('\0');
  const snaps = (await repo.listSnapshots()).filter((s) => !s.source && [...s.paths].sort().join('\0') === key && s.hostname === (process.env.LIFEBOAT_HOST || s.hostname));
  return snaps[snaps.length - 1];
}

export async function backupPaths(repo: Repository, opts: FileBackupOptions): Promise<FileBackupResult> {
  if (opts.paths.length === 0) throw new LifeboatError('nothing to back up: no paths given', 2);
  const started = Date.now();
  const paths = [...new Set(opts.paths.map((p) => path.resolve(p)))];
  for (const p of paths) {
    try {
      await fsp.lstat(p);
    } catch (err) {
      throw new LifeboatError(`cannot back up ${p}: ${(err as Error).message}`, 1);
    }
  }
  const lock = await repo.lock(false, 'backup');
  const before = { ...repo.stats };
  try {
    let parent: SnapshotWithId | undefined;
    if (opts.parent && opts.parent !== 'auto' && opts.parent !== 'none') parent = await repo.findSnapshot(opts.parent);
    else if (opts.parent !== 'none') parent = await findFileParent(repo, paths);
    const parentRoot = parent ? await repo.loadTree(parent.tree) : undefined;
    const arch = new Archiver(repo, opts);

    const saveV = async (v: VDir, name: string, pnode: TreeNode | undefined): Promise<TreeNode | undefined> => {
      const st = await fsp.lstat(v.abs);
      if (v.leaf) return arch.saveEntry(v.abs, name, pnode, st.dev);
      const ptree = pnode?.type === 'dir' && pnode.subtree ? await repo.loadTree(pnode.subtree).catch(() => undefined) : undefined;
      const nodes = await saveChildren(v, ptree);
      arch.summary.dirs++;
      return { ...statNode(name, st), type: 'dir', size: 0, subtree: await repo.saveTree({ nodes }) };
    };
    const saveChildren = async (v: VDir, ptree: Tree | undefined): Promise<TreeNode[]> => {
      const byName = new Map((ptree?.nodes ?? []).map((n) => [n.name, n]));
      const out: TreeNode[] = [];
      for (const [name, child] of [...v.children].sort(([a], [b]) => (a < b ? -1 : 1))) {
        const n = await saveV(child, name, byName.get(name));
        if (n) out.push(n);
      }
      return out;
    };
    const vroot = buildRoots(paths);
    let rootTree: string;
    if (vroot.leaf) {
      rootTree = await arch.saveDir('/', parentRoot, (await fsp.lstat('/')).dev);
    } else {
      rootTree = await repo.saveTree({ nodes: await saveChildren(vroot, parentRoot) });
    }
    await repo.flush();
    const summary = arch.summary;
    summary.blobsNew = repo.stats.blobsNew - before.blobsNew;
    summary.blobsDelta = repo.stats.blobsDelta - before.blobsDelta;
    summary.dataAddedRaw = repo.stats.dataAddedRaw - before.dataAddedRaw;
    summary.dataAdded = repo.stats.dataAdded - before.dataAdded;
    summary.durationMs = Date.now() - started;
    const snapshotId = await repo.saveSnapshot({
      time: new Date(started).toISOString(),
      tree: rootTree,
      paths,
      tags: opts.tags ?? [],
      ...(parent ? { parent: parent.id } : {}),
      summary,
    });
    return { snapshotId, summary, ...(parent ? { parent: parent.id } : {}), warnings: arch.warnings };
  } catch (err) {
    await repo.abandon();
    throw err;
  } finally {
    await lock.release();
  }
}
