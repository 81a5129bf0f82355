import { promises as fsp, constants as fsc, type BigIntStats } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { LifeboatError, IntegrityError } from '../errors.js';
import { ContentWriter } from '../repo/content.js';
import type { Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId } from '../repo/snapshot.js';
import { escapeBytes, nameKey, withName, type Tree, type TreeNode } from '../repo/tree.js';
import { O_PATH, canSeekHoles, dataRegions, readXattrs } from './fsmeta.js';
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

/**
 * A glob for picomatch. Names that are not valid UTF-8 are shown and matched
 * in their escaped form (`caf\xe9.txt`), so `\xNN` in a pattern stands for
 * itself, not for an escaped `x`.
 */
export function globMatcher(pattern: string): (p: string) => boolean {
  return picomatch(pattern.replace(/\\x([0-9a-fA-F]{2})/g, '\\\\x$1'), { dot: true });
}

export function matcher(patterns: string[] | undefined): (abs: string) => boolean {
  if (!patterns || patterns.length === 0) return () => false;
  const ms = patterns.map((p) => globMatcher(p));
  return (abs) => {
    const base = path.basename(abs);
    return ms.some((m) => m(abs) || m(base));
  };
}

function statNode(name: Buffer, st: BigIntStats): Omit<TreeNode, 'type'> {
  const node = withName(
    {
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: Number(st.mtimeNs) / 1e6,
      ctime: Number(st.ctimeNs) / 1e6,
      mtimeNs: st.mtimeNs.toString(),
      size: Number(st.size),
      inode: Number(st.ino),
      dev: Number(st.dev),
    } as Omit<TreeNode, 'type' | 'name'>,
    name,
  );
  return node;
}

const SLASH = Buffer.from('/');
/** Join a directory path and an entry name, both raw bytes. */
export function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, SLASH, name]);
}

/** Holes shorter than this are read as data (keeps hole lists short). */
const MIN_HOLE = 64 * 1024;
/** At most this many holes per file; the rest is read as data. */
const MAX_HOLES = 65536;

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
  /** First node of each hard-link group (dev:inode) in this snapshot: later links reuse its content. */
  private readonly hardlinks = new Map<string, Promise<TreeNode | undefined>>();

  constructor(
    private readonly repo: Repository,
    private readonly opts: FileBackupOptions,
  ) {
    this.excluded = matcher(opts.excludes);
  }

  warn(p: string | Buffer, err: unknown): void {
    const message = (err as NodeJS.ErrnoException)?.code
      ? `${(err as NodeJS.ErrnoException).code}: ${(err as Error).message}`
      : String((err as Error)?.message ?? err);
    const shown = typeof p === 'string' ? p : escapeBytes(p);
    this.summary.errors++;
    this.warnings.push({ path: shown, message: message.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?') });
    this.opts.onWarning?.(shown, message);
  }

  /** A notice: reported like a warning, but not an error (exit code unaffected). */
  notice(p: Buffer, message: string): void {
    this.warn(p, new Error(message));
    this.summary.errors--;
  }

  private progress(current?: Buffer): void {
    if (!this.opts.onProgress) return;
    const now = Date.now();
    if (now - this.lastProgress < 100) return;
    this.lastProgress = now;
    this.opts.onProgress({
      files: this.summary.filesNew + this.summary.filesChanged + this.summary.filesUnmodified,
      dirs: this.summary.dirs,
      bytesRead: this.summary.bytesRead,
      bytesTotal: this.summary.totalBytes,
      ...(current ? { currentPath: escapeBytes(current) } : {}),
    });
  }

  /** Extended attributes of a path that is not a symlink (opened without following, O_PATH). */
  private async xattrsOf(abs: Buffer, fd?: number): Promise<TreeNode['xattrs']> {
    let fh: fsp.FileHandle | undefined;
    try {
      if (fd === undefined) {
        if (!O_PATH) return undefined;
        fh = await fsp.open(abs, O_PATH | fsc.O_NOFOLLOW);
        fd = fh.fd;
      }
      return await readXattrs(fd);
    } catch (err) {
      this.warn(abs, new Error(`extended attributes not saved: ${(err as Error).message}`));
      return undefined;
    } finally {
      await fh?.close().catch(() => {});
    }
  }

  /** Back up one filesystem entry; returns its node or undefined if skipped. */
  async saveEntry(abs: Buffer, name: Buffer, parentNode: TreeNode | undefined, rootDev: bigint): Promise<TreeNode | undefined> {
    checkAborted(this.opts.signal);
    let st: BigIntStats;
    try {
      st = await fsp.lstat(abs, { bigint: true });
    } catch (err) {
      this.warn(abs, err);
      return undefined;
    }
    if (st.isDirectory()) {
      const node: TreeNode = { ...statNode(name, st), type: 'dir', size: 0 };
      const xa = await this.xattrsOf(abs);
      if (xa) node.xattrs = xa;
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
        const target = (await fsp.readlink(abs, { encoding: 'buffer' })) as Buffer;
        const node: TreeNode = { ...statNode(name, st), type: 'symlink', size: 0, linktarget: escapeBytes(target) };
        if (!isUtf8(target)) node.linktargetBytes = target.toString('base64');
        return node;
      } catch (err) {
        this.warn(abs, err);
        return undefined;
      }
    }
    if (st.isFile()) {
      if (st.nlink > 1n) {
        const key = `${st.dev}:${st.ino}`;
        const first = this.hardlinks.get(key);
        if (first) {
          // a later link of a file already saved in this snapshot: same content, not read again
          const f = await first;
          if (f && f.type === 'file' && f.size === Number(st.size) && f.mtimeNs === st.mtimeNs.toString()) {
            const node: TreeNode = { ...statNode(name, st), type: 'file', nlink: Number(st.nlink) };
            for (const k of ['content', 'sizes', 'holes', 'xattrs'] as const) if (f[k]) (node as unknown as Record<string, unknown>)[k] = f[k];
            this.summary.totalBytes += node.size;
            this.summary.filesUnmodified++;
            return node;
          }
          return this.saveFile(abs, name, st, parentNode);
        }
        const p = this.saveFile(abs, name, st, parentNode);
        this.hardlinks.set(key, p);
        return p;
      }
      return this.saveFile(abs, name, st, parentNode);
    }
    const special: TreeNode['type'] | undefined = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'blockdev' : st.isSocket() ? 'socket' : undefined;
    if (!special) {
      this.notice(abs, 'unsupported file type skipped');
      return undefined;
    }
    const node: TreeNode = { ...statNode(name, st), type: special, size: 0 };
    if (special === 'chardev' || special === 'blockdev') node.rdev = Number(st.rdev);
    if (special !== 'socket') {
      const xa = await this.xattrsOf(abs);
      if (xa) node.xattrs = xa;
    }
    return node;
  }

  private async loadParentTree(id: string): Promise<Tree | undefined> {
    try {
      return await this.repo.loadTree(id);
    } catch {
      return undefined; // unreadable parent: just re-read everything below
    }
  }

  async saveDir(abs: Buffer, parentTree: Tree | undefined, rootDev: bigint): Promise<string> {
    this.summary.dirs++;
    let names: Buffer[];
    try {
      names = ((await fsp.readdir(abs, { encoding: 'buffer' })) as Buffer[]).sort(Buffer.compare);
    } catch (err) {
      this.warn(abs, err);
      return this.repo.saveTree({ nodes: [] });
    }
    const byName = new Map((parentTree?.nodes ?? []).map((n) => [nameKey(n), n]));
    const nodes = await Promise.all(
      names.map(async (name) => {
        const child = joinBytes(abs, name);
        if (this.excluded(escapeBytes(child))) return undefined;
        return this.saveEntry(child, name, byName.get(name.toString('latin1')), rootDev);
      }),
    );
    return this.repo.saveTree({ nodes: nodes.filter((n): n is TreeNode => n !== undefined) });
  }

  private unchanged(st: BigIntStats, p: TreeNode | undefined): p is TreeNode & { content: string[] } {
    if (this.opts.force || !p || p.type !== 'file' || !p.content) return false;
    if (p.size !== Number(st.size) || p.inode !== Number(st.ino)) return false;
    // trees written before nanosecond times (version 1) compare in milliseconds
    if (p.mtimeNs !== undefined ? p.mtimeNs !== st.mtimeNs.toString() : Math.abs(p.mtime - Number(st.mtimeNs) / 1e6) > 1e-3) return false;
    if (p.ctime === undefined || Math.abs(p.ctime - Number(st.ctimeNs) / 1e6) > (p.mtimeNs !== undefined ? 0 : 1e-3)) return false;
    return p.content.every((id) => this.repo.hasBlob(id));
  }

  private async saveFile(abs: Buffer, name: Buffer, st: BigIntStats, parentNode: TreeNode | undefined): Promise<TreeNode | undefined> {
    const node: TreeNode = { ...statNode(name, st), type: 'file' };
    if (st.nlink > 1n) node.nlink = Number(st.nlink);
    const stSize = Number(st.size);
    this.summary.totalBytes += stSize;
    if (this.unchanged(st, parentNode)) {
      // same ctime: content, holes and extended attributes are unchanged too
      node.content = parentNode.content;
      if (parentNode.sizes) node.sizes = parentNode.sizes;
      if (parentNode.holes) node.holes = parentNode.holes;
      if (parentNode.xattrs) node.xattrs = parentNode.xattrs;
      this.summary.filesUnmodified++;
      this.progress(abs);
      return node;
    }
    const slots = stSize < this.repo.config.chunker.min ? this.smallFileSlots : this.largeFileSlots;
    await slots.acquire();
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW | (fsc.O_NOATIME ?? 0)).catch(() => fsp.open(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW));
      const xa = await this.xattrsOf(abs, fh.fd);
      if (xa) node.xattrs = xa;
      const parent = parentNode?.type === 'file' && parentNode.content && parentNode.sizes ? { content: parentNode.content, sizes: parentNode.sizes } : undefined;
      let size = 0;
      // A sparse file (fewer blocks allocated than its size): only its data regions are read.
      const sparse = stSize >= 2 * MIN_HOLE && Number(st.blocks) * 512 < stSize && canSeekHoles();
      if (stSize < this.repo.config.chunker.min && !sparse) {
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
        let regions: Array<[number, number]> | undefined;
        if (sparse) {
          regions = [];
          for (const [off, len] of await dataRegions(fh.fd, stSize)) {
            const last = regions[regions.length - 1];
            // small holes and holes beyond the limit are read as data
            if (last && (off - (last[0] + last[1]) < MIN_HOLE || regions.length >= MAX_HOLES)) last[1] = off + len - last[0];
            else regions.push([off, len]);
          }
          const holes: Array<[number, number]> = [];
          let pos = 0;
          for (const [off, len] of regions) {
            if (off > pos) holes.push([pos, off - pos]);
            pos = off + len;
          }
          if (pos < stSize) holes.push([pos, stSize - pos]);
          if (holes.length) node.holes = holes;
        }
        let pos = 0;
        let regionIdx = 0;
        for (;;) {
          let want = bufSize;
          if (regions) {
            // next data region (a file that grew since lstat: what lies beyond its size is read as data)
            while (regionIdx < regions.length && pos >= regions[regionIdx]![0] + regions[regionIdx]![1]) regionIdx++;
            if (regionIdx < regions.length) {
              const [off, len] = regions[regionIdx]!;
              if (pos < off) {
                size += off - pos;
                pos = off;
              }
              want = Math.min(bufSize, off + len - pos);
            } else if (pos < stSize) {
              size += stSize - pos;
              pos = stSize;
            }
          }
          const { bytesRead } = await fh.read(buf, 0, want, pos);
          if (bytesRead === 0) break;
          checkAborted(this.opts.signal);
          await w.write(buf.subarray(0, bytesRead));
          size += bytesRead;
          pos += bytesRead;
          this.summary.bytesRead += bytesRead;
          this.progress(abs);
          if (regions && bytesRead < want) break; // shrank while being read
        }
        const c = await w.finish();
        node.content = c.content;
        node.sizes = c.sizes;
        if (node.holes && size < stSize) {
          // the file shrank while being read: keep only the holes inside what was read
          node.holes = node.holes.filter(([o, l]) => o + l <= size);
          if (!node.holes.length) delete node.holes;
        }
      }
      if (size !== stSize) {
        this.warn(abs, new Error(`file changed while being read (size ${stSize} -> ${size}); stored what was read`));
        this.summary.errors--; // stored consistently, not a read error
      }
      node.size = size;
      this.summary.totalBytes += size - stSize;
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
      const st = await fsp.lstat(v.abs, { bigint: true });
      if (v.leaf) return arch.saveEntry(Buffer.from(v.abs), Buffer.from(name), pnode, st.dev);
      const ptree = pnode?.type === 'dir' && pnode.subtree ? await repo.loadTree(pnode.subtree).catch(() => undefined) : undefined;
      const nodes = await saveChildren(v, ptree);
      arch.summary.dirs++;
      return { ...statNode(Buffer.from(name), st), type: 'dir', size: 0, subtree: await repo.saveTree({ nodes }) };
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
      rootTree = await arch.saveDir(Buffer.from('/'), parentRoot, (await fsp.lstat('/', { bigint: true })).dev);
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
