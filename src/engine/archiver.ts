import { promises as fsp, constants as fsc } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import * as path from 'node:path';
import picomatch from 'picomatch';
import { LifeboatError, IntegrityError } from '../errors.js';
import { ContentWriter } from '../repo/content.js';
import { DELTA_MIN, type Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId } from '../repo/snapshot.js';
import { escapeBytes, nameKey, withName, type Tree, type TreeNode } from '../repo/tree.js';
import { O_PATH, canSeekHoles, dataRegions, readXattrs } from './fsmeta.js';
import { Semaphore } from '../util/sync.js';
import type { BackupProgress } from './progress.js';
import { scanPaths } from './scanner.js';
import { type EntryStat, SMALL_FILE_MAX, SmallFileReader, lstatBig } from './small-files.js';
import { readFully } from '../util/read-fully.js';
import { BufferReclaimer, envMiB } from '../util/reclaim.js';
import { DirPrefetch, type DirListing } from './dir-prefetch.js';
import { NumStat, scanAddon } from './scan-native.js';

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
  /** Live counters for a progress display (progress.ts); given, a scan for totals runs beside the backup (scanner.ts). */
  progress?: BackupProgress;
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

function statNode(name: Buffer, st: NumStat): Omit<TreeNode, 'type'> {
  const node = withName(
    {
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: st.mtimeMs,
      ctime: st.ctimeMs,
      mtimeNs: st.mtimeNs,
      size: st.size,
      inode: st.ino,
      dev: st.dev,
    } as Omit<TreeNode, 'type' | 'name'>,
    name,
  );
  return node;
}

const SLASH = Buffer.from('/');

/** The fields the archiver writes in a node of each type (sameNode: a parent node with any other is not used as is). */
const COMMON_KEYS = ['name', 'nameBytes', 'type', 'mode', 'uid', 'gid', 'mtime', 'ctime', 'mtimeNs', 'size', 'inode', 'dev', 'xattrs'];
const NODE_KEYS: Record<TreeNode['type'], ReadonlySet<string>> = {
  file: new Set([...COMMON_KEYS, 'nlink', 'content', 'sizes', 'holes']),
  dir: new Set([...COMMON_KEYS, 'subtree']),
  symlink: new Set([...COMMON_KEYS, 'linktarget', 'linktargetBytes']),
  fifo: new Set(COMMON_KEYS),
  socket: new Set(COMMON_KEYS.filter((k) => k !== 'xattrs')), // a socket's attributes are not read
  chardev: new Set([...COMMON_KEYS, 'rdev']),
  blockdev: new Set([...COMMON_KEYS, 'rdev']),
};
/** Join a directory path and an entry name, both raw bytes. */
export function joinBytes(dir: Buffer, name: Buffer): Buffer {
  return dir.length && dir[dir.length - 1] === 0x2f ? Buffer.concat([dir, name]) : Buffer.concat([dir, SLASH, name]);
}

/**
 * Read a small file whose size lstat gave: into a buffer of exactly that size
 * (it owns its memory, so it is handed to a worker thread without a copy),
 * without the fstat and the extra reads of readFile(). A file that grew since
 * is read again whole; one that shrank yields what is there.
 */
export async function readSmallFile(fh: fsp.FileHandle, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafeSlow(size);
  const got = await readFully(fh, buf, size);
  if (got < size) return buf.subarray(0, got);
  const { bytesRead } = await fh.read(Buffer.allocUnsafe(1), 0, 1, size);
  return bytesRead === 0 ? buf : fh.readFile();
}

/** Holes shorter than this are read as data (keeps hole lists short). */
const MIN_HOLE = 64 * 1024;
/**
 * Non-directory entries being saved at once, across the whole walk: enough
 * for two full batches of the small-file reader (one being read while the
 * next fills). Each holds at most one small file's sealed bytes, or is a
 * large file (largeFileSlots, and the repository's in-flight budget).
 */
const ENTRY_SLOTS = 128;
/** Non-directory entries of a directory lstat'ed per message to the small-file reader's worker. */
const STAT_CHUNK = 128;
/** Subdirectories of a directory listed ahead of the walk (DirPrefetch bounds the total). */
const DIRS_AHEAD = 4;
/** At most this many holes per file; the rest is read as data. */
const MAX_HOLES = 65536;

/**
 * Hard-link groups seen by a backup: the first link's value (its node) for the
 * later links. A group is forgotten once all its links (st_nlink at the first)
 * have been seen, so a tree of hard-linked files (snapshot farms, package
 * stores) holds only the groups still open, not one node per file ever seen.
 * A group whose other links are outside the backup (or were added later) stays
 * until the end of the backup, as before.
 */
export class HardlinkGroups<T> {
  private readonly groups = new Map<string, { value: T; left: number }>();

  /** The first link of a group with `nlink` links: remember `value` for the other nlink − 1. */
  first(key: string, nlink: number, value: T): void {
    if (nlink > 1) this.groups.set(key, { value, left: nlink - 1 });
  }

  /** A later link: the first link's value (undefined if none is known); the group is dropped at its last link. */
  later(key: string): T | undefined {
    const g = this.groups.get(key);
    if (!g) return undefined;
    if (--g.left <= 0) this.groups.delete(key);
    return g.value;
  }

  /** Groups held now. */
  get size(): number {
    return this.groups.size;
  }
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
  /**
   * Files chunked at once (each holds a chunker window of max + 1 MiB). One: the
   * chunking is on this thread anyway, and the walk no longer waits at each
   * directory's end, so a second large file ran beside small files' batches and
   * the first file's chunks: ~20 MB more peak RSS on a first backup for no CPU gain
   * (docs/benchmarks.md, branch backup3).
   */
  private readonly largeFileSlots = new Semaphore(1);
  /** Non-directory entries in flight across the walk (lstat + save): bounds memory per file. */
  private readonly entrySlots = new Semaphore(ENTRY_SLOTS);
  /** First node of each hard-link group (dev:inode) in this snapshot: later links reuse its content. */
  private readonly hardlinks = new HardlinkGroups<Promise<TreeNode | undefined>>();
  /** Listings and parent trees of the next directories of the walk, read ahead. */
  private readonly dirs = new DirPrefetch((id) => this.loadParentTree(id));
  /** Reads small files in worker threads; started with the first one. */
  private smallReader: SmallFileReader | undefined;
  /**
   * A re-backup (one with a parent snapshot) runs a full collection at a directory of
   * the walk whenever the JavaScript heap grew by LIFEBOAT_BACKUP_HEAP_GC_MB (default 8; 0: none)
   * past its lowest since the last one (BufferReclaimer heapCap). The walk promotes every directory's listing, parent tree and nodes to the
   * old generation and drops them a directory later; V8 let that garbage, and the buffers it
   * holds, grow to ~20 MB of heap and ~12 MB of ArrayBuffers before collecting: an unchanged
   * re-backup of 1.2 GB / 23k files peaked at 94-95 MB, with this 87-90 (one collection more, 7 ms).
   * Not on a first backup: its peak is the encoding's buffers, and the collections only cost CPU
   * (docs/benchmarks.md, "The backup walk's garbage").
   */
  private readonly reclaimer: BufferReclaimer | undefined;

  /** `withParent`: the backup has a parent snapshot (see reclaimer). */
  constructor(
    private readonly repo: Repository,
    private readonly opts: FileBackupOptions,
    withParent: boolean,
  ) {
    this.excluded = matcher(opts.excludes);
    const cap = withParent ? envMiB('LIFEBOAT_BACKUP_HEAP_GC_MB', 8) : 0;
    this.reclaimer = cap > 0 ? new BufferReclaimer(16 * 1024 * 1024, 0, cap) : undefined;
  }

  warn(p: string | Buffer, err: unknown): void {
    const message = (err as NodeJS.ErrnoException)?.code
      ? `${(err as NodeJS.ErrnoException).code}: ${(err as Error).message}`
      : String((err as Error)?.message ?? err);
    const shown = typeof p === 'string' ? p : escapeBytes(p);
    this.summary.errors++;
    if (this.opts.progress) this.opts.progress.errors = this.summary.errors;
    this.warnings.push({ path: shown, message: message.replace(/[^\x20-\x7e\u00a0-\uffff]/g, '?') });
    this.opts.onWarning?.(shown, message);
  }

  /** A notice: reported like a warning, but not an error (exit code unaffected). */
  notice(p: Buffer, message: string): void {
    this.warn(p, new Error(message));
    this.summary.errors--;
    if (this.opts.progress) this.opts.progress.errors = this.summary.errors;
  }

  /** A regular file finished (new, changed, unmodified or another link): counted for the progress display. */
  private fileDone(bytes: number): void {
    const p = this.opts.progress;
    if (!p) return;
    p.filesDone++;
    p.bytesDone += bytes;
  }

  /** Extended attributes of a path that is not a symlink (opened without following, O_PATH). */
  private async xattrsOf(abs: Buffer, fd?: number): Promise<TreeNode['xattrs']> {
    let fh: fsp.FileHandle | undefined;
    try {
      if (fd === undefined) {
        if (!O_PATH) return undefined;
        // none (most directories): known from one llistxattr, without opening the path
        if (scanAddon()?.lxattrListSize(abs) === 0) return undefined;
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
  /** `onDir`: called when the entry is a directory, before walking it (saveDir's entry slot is released). */
  /** `stat`: its lstat (or the error), already requested by saveDir with its neighbours' (or given by the native listing). */
  /** `onWalked`: called, for a directory, once every entry below it is under way (see saveDir). */
  async saveEntry(
    abs: Buffer,
    name: Buffer,
    parentNode: TreeNode | undefined,
    rootDev: number,
    onDir?: () => void,
    stat?: NumStat | EntryStat | NodeJS.ErrnoException | Promise<EntryStat | NodeJS.ErrnoException>,
    onWalked?: () => void,
  ): Promise<TreeNode | undefined> {
    checkAborted(this.opts.signal);
    let st: NumStat;
    try {
      const got = stat === undefined ? await lstatBig(abs) : stat instanceof Promise ? await stat : stat;
      if (got instanceof Error) throw got;
      st = got instanceof NumStat ? got : NumStat.fromBig(got);
    } catch (err) {
      if (err instanceof LifeboatError) throw err; // the reader's worker failed: abort the backup
      this.warn(abs, err);
      return undefined;
    }
    if (st.isDirectory()) {
      onDir?.();
      const node: TreeNode = { ...statNode(name, st), type: 'dir', size: 0 };
      // same inode, mtime and ctime as in the parent snapshot: the extended attributes are
      // unchanged too (setting one changes the ctime), so they are not read again
      const xa = this.sameInode(st, parentNode, 'dir') ? parentNode!.xattrs : await this.xattrsOf(abs);
      if (xa) node.xattrs = xa;
      if (this.opts.oneFileSystem && st.dev !== rootDev) {
        node.subtree = await this.repo.saveTree({ nodes: [] });
        return node;
      }
      const sub = parentNode?.type === 'dir' ? parentNode.subtree : undefined;
      const parentTree = sub ? await (this.dirs.parentTree(abs, sub) ?? this.loadParentTree(sub)) : undefined;
      node.subtree = await this.saveDir(abs, parentTree, rootDev, onWalked, sub);
      // nothing changed below and the directory's own metadata is the parent's: the parent's node as is
      return node.subtree === sub && this.sameNode(st, parentNode, 'dir') ? parentNode! : node;
    }
    if (st.isSymbolicLink()) {
      // a symlink's target cannot change in place: same inode, mtime and ctime, same link
      if (this.sameNode(st, parentNode, 'symlink')) return parentNode!;
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
      const key = st.linkKey;
      if (st.nlink > 1 && key !== undefined) {
        const first = this.hardlinks.later(key);
        if (first) {
          // a later link of a file already saved in this snapshot: same content, not read again
          const f = await first;
          if (f && f.type === 'file' && f.size === st.size && f.mtimeNs === st.mtimeNs) {
            const node: TreeNode = { ...statNode(name, st), type: 'file', nlink: st.nlink };
            for (const k of ['content', 'sizes', 'holes', 'xattrs'] as const) if (f[k]) (node as unknown as Record<string, unknown>)[k] = f[k];
            this.summary.totalBytes += node.size;
            this.summary.filesUnmodified++;
            this.fileDone(node.size);
            return node;
          }
          return this.saveFile(abs, name, st, parentNode);
        }
        const p = this.saveFile(abs, name, st, parentNode);
        this.hardlinks.first(key, st.nlink, p);
        return p;
      }
      return this.saveFile(abs, name, st, parentNode);
    }
    const special: TreeNode['type'] | undefined = st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'chardev' : st.isBlockDevice() ? 'blockdev' : st.isSocket() ? 'socket' : undefined;
    if (!special) {
      this.notice(abs, 'unsupported file type skipped');
      return undefined;
    }
    if (this.sameNode(st, parentNode, special)) return parentNode!;
    const node: TreeNode = { ...statNode(name, st), type: special, size: 0 };
    if (special === 'chardev' || special === 'blockdev') node.rdev = st.rdev;
    if (special !== 'socket') {
      const xa = await this.xattrsOf(abs);
      if (xa) node.xattrs = xa;
    }
    return node;
  }

  private async loadParentTree(id: string): Promise<Tree | undefined> {
    try {
      // each parent tree is walked once: not kept in the blob cache (up to 32 MiB of tree
      // plaintext that no one reads again; with 1,000 entries per directory it filled)
      return await this.repo.loadTree(id, { cache: false });
    } catch {
      return undefined; // unreadable parent: just re-read everything below
    }
  }

  /**
   * Save a directory's entries and its tree; returns the tree's id. `onWalked` is called
   * once every entry below it is under way (each file has its entry slot, each
   * subdirectory is walked), before they are saved.
   */
  async saveDir(abs: Buffer, parentTree: Tree | undefined, rootDev: number, onWalked?: () => void, parentTreeId?: string): Promise<string> {
    this.summary.dirs++;
    this.reclaimer?.dropped(0);
    let entries: DirListing;
    try {
      entries = await this.dirs.listing(abs);
    } catch (err) {
      this.warn(abs, err);
      return this.repo.saveTree({ nodes: [] });
    }
    const byName = new Map((parentTree?.nodes ?? []).map((n) => [nameKey(n), n]));
    // The non-directory entries are lstat'ed in chunks (small-files.ts), the next chunk
    // requested when the walk enters the previous one; directories are lstat'ed when walked.
    // (without exclude patterns, no path is built and escaped per entry just to be matched against none)
    const kept = this.opts.excludes?.length ? entries.filter((ent) => !this.excluded(escapeBytes(joinBytes(abs, ent.name)))) : entries;
    // With the native addon the listing holds every entry's lstat already (scan-native.ts).
    const scanned = kept.length > 0 && kept[0]!.stat !== undefined;
    const fileNames = scanned ? [] : kept.filter((ent) => !ent.isDirectory()).map((ent) => ent.name);
    // created before any file is saved, so that the repository's encode workers are started with
    // the reader's ops (one pool; a large file saved first would otherwise start a pool without them)
    const reader = this.reader();
    const chunks = new Map<number, Promise<Array<EntryStat | NodeJS.ErrnoException>>>();
    const statOf = (k: number): Promise<EntryStat | NodeJS.ErrnoException> => {
      const c = Math.floor(k / STAT_CHUNK);
      for (let x = c; x <= c + 1 && x * STAT_CHUNK < fileNames.length; x++) {
        if (chunks.has(x)) continue;
        const p = reader.lstatMany(fileNames.slice(x * STAT_CHUNK, (x + 1) * STAT_CHUNK).map((n) => joinBytes(abs, n)));
        p.catch(() => {}); // awaited through saveEntry
        chunks.set(x, p);
      }
      chunks.delete(c - 1); // done with the chunk before (its entries hold their own results)
      return chunks.get(c)!.then((r) => r[k % STAT_CHUNK]!);
    };
    let fileIdx = 0;
    // the subdirectories, listed ahead (DirPrefetch) a few at a time as the walk comes near them
    const subdirs = kept.filter((ent) => ent.isDirectory());
    let dirIdx = 0;
    // Bounded memory whatever the size of the tree: subdirectories are walked one
    // at a time, depth first, and at most ENTRY_SLOTS non-directory entries are
    // in flight across the whole walk. The walk moves on to the next entry as soon
    // as a subdirectory's entries are all under way, not saved: the files of the
    // directories just walked are read and encoded (in the workers) while the next
    // ones are listed, instead of the workers running dry at every directory's end.
    // Held: the directories on the current path, with their parent trees, and those
    // whose files are still being saved (each holds an entry slot, or is the
    // ancestor of one that does). The dirent type is only a scheduling hint:
    // saveEntry decides from its own lstat.
    const nodes: Array<TreeNode | Promise<TreeNode | undefined>> = [];
    try {
      for (const ent of kept) {
        const name = ent.name;
        const prev = byName.get(name.toString('latin1'));
        const st = ent.stat;
        if (prev !== undefined && st instanceof NumStat && st.nlink === 1 && st.isFile() && this.unchanged(st, prev) && this.sameNode(st, prev, 'file')) {
          // an unchanged file (the listing's lstat says so): its parent node, at once (no path,
          // entry slot or promise; saveFile would come to the same)
          this.summary.totalBytes += st.size;
          this.summary.filesUnmodified++;
          this.fileDone(st.size);
          nodes.push(prev);
          continue;
        }
        const child = joinBytes(abs, name);
        if (ent.isDirectory()) {
          for (let j = dirIdx; j < Math.min(subdirs.length, dirIdx + DIRS_AHEAD); j++) {
            const n = subdirs[j]!.name;
            const pn = j === dirIdx ? prev : byName.get(n.toString('latin1'));
            this.dirs.ahead(j === dirIdx ? child : joinBytes(abs, n), pn?.type === 'dir' ? pn.subtree : undefined);
          }
          dirIdx++;
          let walked!: () => void;
          const below = new Promise<void>((resolve) => (walked = resolve));
          const p = this.saveEntry(child, name, prev, rootDev, undefined, st, walked);
          p.catch(() => {}); // handled by Promise.all below; not an unhandled rejection meanwhile
          nodes.push(p);
          try {
            await Promise.race([below, p]);
          } finally {
            this.dirs.drop(child); // not listed by the walk (not a directory any more, or another file system)
          }
        } else {
          await this.entrySlots.acquire();
          let held = true;
          const release = () => {
            if (held) this.entrySlots.release();
            held = false;
          };
          const p = this.saveEntry(child, name, prev, rootDev, release, scanned ? st : statOf(fileIdx++)).finally(release);
          p.catch(() => {}); // handled by Promise.all below; not an unhandled rejection meanwhile
          nodes.push(p);
        }
      }
    } catch (err) {
      await Promise.allSettled(nodes);
      throw err;
    }
    onWalked?.();
    const done = await Promise.all(nodes);
    // every node is the parent tree's own (same order, none added or gone): the parent tree is this
    // directory's tree, not encoded and hashed again
    const pn = parentTree?.nodes;
    if (parentTreeId !== undefined && pn && pn.length === done.length && done.every((n, i) => n === pn[i])) return parentTreeId;
    return this.repo.saveTree({ nodes: done.filter((n): n is TreeNode => n !== undefined) });
  }

  /** The parent snapshot's node is of the same inode, unchanged since: same type, size, inode, mtime and ctime (not with --force). */
  private sameInode(st: NumStat, p: TreeNode | undefined, type: TreeNode['type']): boolean {
    if (this.opts.force || !p || p.type !== type) return false;
    if ((type === 'file' && p.size !== st.size) || p.inode !== st.ino) return false;
    // trees written before nanosecond times (version 1) compare in milliseconds
    if (p.mtimeNs !== undefined ? p.mtimeNs !== st.mtimeNs : Math.abs(p.mtime - st.mtimeMs) > 1e-3) return false;
    return p.ctime !== undefined && Math.abs(p.ctime - st.ctimeMs) <= (p.mtimeNs !== undefined ? 0 : 1e-3);
  }

  /**
   * The node this entry would get is the parent snapshot's node `p`, field for field (same inode,
   * times to the nanosecond, mode, owner, device, link count; `p` holds no field this code would not
   * write): the walk can use `p` itself. Content (files), target (symlinks), extended attributes and
   * subtree (directories, checked by the caller) are those of `p` whenever the ctime is unchanged.
   */
  private sameNode(st: NumStat, p: TreeNode | undefined, type: TreeNode['type']): boolean {
    if (!this.sameInode(st, p, type) || p!.mtimeNs === undefined) return false;
    const q = p!;
    if (q.mode !== (st.mode & 0o7777) || q.uid !== st.uid || q.gid !== st.gid || q.dev !== st.dev || q.mtime !== st.mtimeMs || q.ctime !== st.ctimeMs) return false;
    if (type === 'file' ? q.nlink !== (st.nlink > 1 ? st.nlink : undefined) : q.size !== 0 || q.nlink !== undefined) return false;
    if (type === 'chardev' || type === 'blockdev' ? q.rdev !== st.rdev : q.rdev !== undefined) return false;
    const keys = NODE_KEYS[type];
    for (const k in q) if (!keys.has(k)) return false;
    return true;
  }

  private unchanged(st: NumStat, p: TreeNode | undefined): p is TreeNode & { content: string[] } {
    if (!this.sameInode(st, p, 'file') || !p!.content) return false;
    return p!.content.every((id) => this.repo.hasBlob(id));
  }

  private async saveFile(abs: Buffer, name: Buffer, st: NumStat, parentNode: TreeNode | undefined): Promise<TreeNode | undefined> {
    const node: TreeNode = { ...statNode(name, st), type: 'file' };
    if (st.nlink > 1) node.nlink = st.nlink;
    const stSize = st.size;
    this.summary.totalBytes += stSize;
    if (this.unchanged(st, parentNode)) {
      if (this.sameNode(st, parentNode, 'file')) {
        // the node would be the parent's, field for field: that object is used as is (nothing built)
        this.summary.filesUnmodified++;
        this.fileDone(stSize);
        return parentNode;
      }
      // same ctime: content, holes and extended attributes are unchanged too
      node.content = parentNode.content;
      if (parentNode.sizes) node.sizes = parentNode.sizes;
      if (parentNode.holes) node.holes = parentNode.holes;
      if (parentNode.xattrs) node.xattrs = parentNode.xattrs;
      this.summary.filesUnmodified++;
      this.fileDone(stSize);
      return node;
    }
    // A small file (one chunk) without a possible delta base (none in the parent, or too small for
    // a delta) and without holes: read, hashed, encoded and sketched in a worker (small-files.ts).
    // One that grew meanwhile is read below.
    const deltaCandidate = parentNode?.type === 'file' && !!parentNode.content?.length && stSize >= DELTA_MIN;
    const maySparse = stSize >= 2 * MIN_HOLE && st.blocks * 512 < stSize;
    if (stSize <= SMALL_FILE_MAX && stSize < this.repo.config.chunker.min && !deltaCandidate && !maySparse) {
      const done = await this.saveSmallFile(abs, node, stSize, parentNode);
      if (done !== 'grew') return done;
    }
    const slots = stSize < this.repo.config.chunker.min ? this.smallFileSlots : this.largeFileSlots;
    await slots.acquire();
    let fh: fsp.FileHandle | undefined;
    const prog = this.opts.progress;
    prog?.fileStarted(abs);
    /** Bytes of this file already counted in prog.bytesDone (the rest is added when it ends). */
    let counted = 0;
    try {
      // O_NONBLOCK: a FIFO or device put in the file's place since the scan would block the open (for good, with a
      // FIFO nobody writes to); opened this way it is found here and skipped with a warning
      const flags = fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;
      fh = await fsp.open(abs, flags | (fsc.O_NOATIME ?? 0)).catch(() => fsp.open(abs, flags));
      if (!(await fh.stat()).isFile()) throw new Error('is no longer a regular file (replaced during the backup); skipped');
      const xa = await this.xattrsOf(abs, fh.fd);
      if (xa) node.xattrs = xa;
      const parent = parentNode?.type === 'file' && parentNode.content && parentNode.sizes ? { content: parentNode.content, sizes: parentNode.sizes } : undefined;
      let size = 0;
      // A sparse file (fewer blocks allocated than its size): only its data regions are read.
      const sparse = stSize >= 2 * MIN_HOLE && st.blocks * 512 < stSize && canSeekHoles();
      if (stSize < this.repo.config.chunker.min && !sparse) {
        // Small file: one chunk, no chunker buffer needed.
        const data = await readSmallFile(fh, stSize);
        size = data.length;
        node.content = [];
        node.sizes = [];
        if (size > 0) {
          const { id } = await this.repo.saveBlob('data', data, parent?.content[0] ? { deltaBases: [parent.content[0]] } : {});
          node.content.push(id);
          node.sizes.push(size);
        }
        this.summary.bytesRead += size;
        counted = size;
        if (prog) prog.bytesDone += size;
      } else {
        // each chunk's blob id on the thread pool while the next read and cut run (see ContentWriter)
        const w = new ContentWriter(this.repo, parent, { asyncIds: true });
        const bufSize = 1024 * 1024; // at most this much per read, straight into the chunker's window
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
                if (prog) prog.bytesDone += off - pos;
                counted += off - pos;
                pos = off;
              }
              want = Math.min(bufSize, off + len - pos);
            } else if (pos < stSize) {
              size += stSize - pos;
              if (prog) prog.bytesDone += stSize - pos;
              counted += stSize - pos;
              pos = stSize;
            }
          }
          checkAborted(this.opts.signal);
          const bytesRead = await w.fill(async (into) => (await fh!.read(into, 0, Math.min(want, into.length), pos)).bytesRead);
          if (bytesRead === 0) break;
          size += bytesRead;
          pos += bytesRead;
          this.summary.bytesRead += bytesRead;
          counted += bytesRead;
          if (prog) prog.bytesDone += bytesRead;
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
      return this.fileStored(abs, node, size, stSize, parentNode, size - counted);
    } catch (err) {
      if (err instanceof LifeboatError) throw err; // repository failure: abort the backup
      this.warn(abs, err);
      return undefined;
    } finally {
      prog?.fileEnded(abs);
      await fh?.close().catch(() => {});
      slots.release();
    }
  }

  /** A file's content is stored (`size` bytes read, lstat said `stSize`): its node, the summary and the progress. */
  private fileStored(abs: Buffer, node: TreeNode, size: number, stSize: number, parentNode: TreeNode | undefined, progressBytes: number): TreeNode {
    if (size !== stSize) {
      this.warn(abs, new Error(`file changed while being read (size ${stSize} -> ${size}); stored what was read`));
      this.summary.errors--; // stored consistently, not a read error
    }
    node.size = size;
    this.summary.totalBytes += size - stSize;
    if (parentNode?.type === 'file') this.summary.filesChanged++;
    else this.summary.filesNew++;
    this.fileDone(progressBytes);
    return node;
  }

  private async saveSmallFile(abs: Buffer, node: TreeNode, stSize: number, parentNode: TreeNode | undefined): Promise<TreeNode | undefined | 'grew'> {
    const prog = this.opts.progress;
    prog?.fileStarted(abs);
    try {
      const r = await this.reader().read(abs, stSize);
      if (r.kind === 'grew') return 'grew';
      if (r.kind === 'error') {
        this.warn(abs, r.error);
        return undefined;
      }
      if (r.xattrError) this.warn(abs, new Error(`extended attributes not saved: ${r.xattrError}`));
      if (r.xattrs) node.xattrs = r.xattrs;
      const size = r.size;
      node.content = [];
      node.sizes = [];
      if (r.blob) {
        await this.repo.saveEncoded('data', r.blob.id, size, r.blob);
        node.content.push(r.blob.id);
        node.sizes.push(size);
      }
      this.summary.bytesRead += size;
      return this.fileStored(abs, node, size, stSize, parentNode, size);
    } catch (err) {
      if (err instanceof LifeboatError) throw err; // repository or worker failure: abort the backup
      this.warn(abs, err);
      return undefined;
    } finally {
      prog?.fileEnded(abs);
    }
  }

  /** The small-file reader (no worker starts before it is given work). */
  private reader(): SmallFileReader {
    return (this.smallReader ??= SmallFileReader.forRepository(this.repo));
  }

  /** Stop the small-file reader's workers. */
  async close(): Promise<void> {
    await this.smallReader?.close();
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
  // the scan for totals (progress display only) runs beside the backup and stops when it ends
  const scanStop = new AbortController();
  if (opts.progress) opts.progress.started = true;
  const scan = opts.progress
    ? scanPaths(paths, opts.progress, { matchExcluded: matcher(opts.excludes), oneFileSystem: !!opts.oneFileSystem, signal: scanStop.signal })
    : Promise.resolve();
  let archiver: Archiver | undefined;
  try {
    let parent: SnapshotWithId | undefined;
    if (opts.parent && opts.parent !== 'auto' && opts.parent !== 'none') parent = await repo.findSnapshot(opts.parent);
    else if (opts.parent !== 'none') parent = await findFileParent(repo, paths);
    // the parent may have been written by another process (another agent of the
    // fleet) after this repository was opened: read the index again for it
    if (parent && !repo.hasBlob(parent.tree)) await repo.reloadIndex();
    const parentRoot = parent ? await repo.loadTree(parent.tree) : undefined;
    const arch = new Archiver(repo, opts, parentRoot !== undefined);
    archiver = arch;

    const saveV = async (v: VDir, name: string, pnode: TreeNode | undefined): Promise<TreeNode | undefined> => {
      const st = await fsp.lstat(v.abs, { bigint: true });
      if (v.leaf) return arch.saveEntry(Buffer.from(v.abs), Buffer.from(name), pnode, Number(st.dev));
      const ptree = pnode?.type === 'dir' && pnode.subtree ? await repo.loadTree(pnode.subtree).catch(() => undefined) : undefined;
      const nodes = await saveChildren(v, ptree);
      arch.summary.dirs++;
      return { ...statNode(Buffer.from(name), NumStat.fromBig(st)), type: 'dir', size: 0, subtree: await repo.saveTree({ nodes }) };
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
      rootTree = await arch.saveDir(Buffer.from('/'), parentRoot, Number((await fsp.lstat('/', { bigint: true })).dev));
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
    // Without a held lock a prune may have started and judged the new packs garbage: no snapshot may point at them.
    lock.check();
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
    throw lock.cause(err);
  } finally {
    scanStop.abort();
    await scan;
    await archiver?.close();
    await lock.release();
  }
}
