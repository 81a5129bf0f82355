import type { Repository } from './repository.js';
import type { SnapshotWithId } from './snapshot.js';
import { nameKey, type TreeNode } from './tree.js';
import { addDeltaBases, collectUsedBlobs } from './walk.js';

/** Library functions behind `ls`, `diff` and `stats`. */
export interface ListedNode {
  path: string;
  type: TreeNode['type'];
  mode: number;
  size: number;
  mtime: string;
  linktarget?: string;
  /** Hard links: the link count. */
  nlink?: number;
  /** Names of the extended attributes. */
  xattrs?: string[];
}

export async function* walkSnapshot(repo: Repository, treeId: string, prefix = ''): AsyncGenerator<{ path: string; node: TreeNode }> {
  // each tree once, in order: not kept in the blob cache (`ls` of 100,000 files 168 -> 158 MB)
  const tree = await repo.loadTree(treeId, { cache: false });
  for (const n of tree.nodes) {
    const p = `${prefix}/${n.name}`;
    yield { path: p, node: n };
    if (n.type === 'dir' && n.subtree) yield* walkSnapshot(repo, n.subtree, p);
  }
}

export function listed(path: string, n: TreeNode): ListedNode {
  const o: ListedNode = { path, type: n.type, mode: n.mode, size: n.size, mtime: new Date(n.mtime).toISOString() };
  if (n.linktarget !== undefined) o.linktarget = n.linktarget;
  if (n.nlink !== undefined) o.nlink = n.nlink;
  if (n.xattrs?.length) o.xattrs = n.xattrs.map((x) => x.name);
  return o;
}

export interface DiffEntry {
  path: string;
  change: 'added' | 'removed' | 'modified' | 'metadata' | 'type';
}

/** Compare two snapshot trees; identical subtrees are skipped by id. */
export async function diffTrees(repo: Repository, a: string, b: string, prefix = '', out: DiffEntry[] = []): Promise<DiffEntry[]> {
  if (a === b) return out;
  // keyed by raw name bytes (two names can share a display form)
  const ta = new Map((await repo.loadTree(a)).nodes.map((n) => [nameKey(n), n]));
  const tb = new Map((await repo.loadTree(b)).nodes.map((n) => [nameKey(n), n]));
  const names = [...new Set([...ta.keys(), ...tb.keys()])].sort((p, q) => Buffer.compare(Buffer.from(p, 'latin1'), Buffer.from(q, 'latin1')));
  for (const name of names) {
    const x = ta.get(name);
    const y = tb.get(name);
    const p = `${prefix}/${(x ?? y)!.name}`;
    if (!x) {
      out.push({ path: p + (y!.type === 'dir' ? '/' : ''), change: 'added' });
      continue;
    }
    if (!y) {
      out.push({ path: p + (x.type === 'dir' ? '/' : ''), change: 'removed' });
      continue;
    }
    if (x.type !== y.type) out.push({ path: p, change: 'type' });
    else if (x.type === 'dir') await diffTrees(repo, x.subtree!, y.subtree!, p, out);
    else if (x.type === 'file' && ((x.content ?? []).join() !== (y.content ?? []).join() || x.size !== y.size || JSON.stringify(x.holes ?? []) !== JSON.stringify(y.holes ?? [])))
      out.push({ path: p, change: 'modified' });
    else if (x.type === 'symlink' && (x.linktarget !== y.linktarget || x.linktargetBytes !== y.linktargetBytes)) out.push({ path: p, change: 'modified' });
    else if ((x.type === 'chardev' || x.type === 'blockdev') && x.rdev !== y.rdev) out.push({ path: p, change: 'modified' });
    else if (
      x.mode !== y.mode ||
      x.mtime !== y.mtime ||
      (x.mtimeNs !== undefined && y.mtimeNs !== undefined && x.mtimeNs !== y.mtimeNs) ||
      x.uid !== y.uid ||
      x.gid !== y.gid ||
      JSON.stringify(x.xattrs ?? []) !== JSON.stringify(y.xattrs ?? [])
    )
      out.push({ path: p, change: 'metadata' });
  }
  return out;
}

export interface RepoStatsReport {
  snapshots: number;
  /** Sum of the content size of every snapshot (what restoring all of them would write). */
  totalSize: number;
  /** Unique blobs needed by the snapshots, and their size before compression. */
  uniqueBlobs: number;
  uniqueRawSize: number;
  /** Bytes those blobs occupy in packs (compressed + encrypted). */
  uniqueStoredSize: number;
  /** Total size of all pack files (includes data not yet pruned). */
  packSize: number;
  /** Size of all objects in the repository (packs, index, snapshots, keys, ...). */
  storedSize: number;
  deltaBlobs: number;
  /** totalSize / uniqueRawSize. */
  dedupRatio: number;
  /** uniqueRawSize / uniqueStoredSize. */
  compressionRatio: number;
  /** totalSize / storedSize. */
  spaceSavingRatio: number;
}

export async function repoStats(repo: Repository, snaps: SnapshotWithId[]): Promise<RepoStatsReport> {
  const used = await collectUsedBlobs(
    repo,
    snaps.map((s) => s.tree),
    () => {},
  );
  addDeltaBases(repo, used);
  let totalSize = 0;
  for (const s of snaps) totalSize += s.summary?.totalBytes ?? 0;
  let raw = 0;
  let stored = 0;
  let deltas = 0;
  for (const id of used) {
    const e = repo.indexEntry(id);
    if (!e) continue;
    raw += e.rawLength;
    stored += e.length;
    if (e.base) deltas++;
  }
  let packSize = 0;
  let storedSize = 0;
  for (const t of ['data', 'index', 'snapshot', 'key', 'config', 'lock'] as const) {
    const list = await repo.storage.list(t);
    const sum = list.reduce((a, o) => a + o.size, 0);
    if (t === 'data') packSize = sum;
    storedSize += sum;
  }
  return {
    snapshots: snaps.length,
    totalSize,
    uniqueBlobs: used.size,
    uniqueRawSize: raw,
    uniqueStoredSize: stored,
    packSize,
    storedSize,
    deltaBlobs: deltas,
    dedupRatio: raw ? totalSize / raw : 0,
    compressionRatio: stored ? raw / stored : 0,
    spaceSavingRatio: storedSize ? totalSize / storedSize : 0,
  };
}
