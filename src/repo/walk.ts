import type { Repository } from './repository.js';
import type { TreeNode } from './tree.js';
import { basesOf } from './pack.js';
import { BlobSet } from './blobset.js';
import { heapReclaimer } from '../util/reclaim.js';

/**
 * Trees loaded at a time by default: one at a time, a walk over a storage behind a network
 * (check, prune, stats) waited for one request after the other (prune of a repository on S3
 * behind a 5 ms proxy: see docs/benchmarks.md, "Trees read ahead").
 */
const WALK_TREES = 8;

/**
 * Collect every blob a set of snapshot trees needs: tree blobs, file content
 * blobs, and (transitively) the bases of delta blobs. Shared trees are visited
 * once. Errors loading a tree are reported through onError and the subtree is
 * skipped (callers that delete data must treat any error as fatal).
 * Trees are not kept in the repository's blob cache unless `cacheTrees`: a walk visits each once,
 * and the cache (up to 32 MiB of them) only held memory through what followed (prune of 100,000
 * files in 100 directories 153 -> 130 MB; check's data phase).
 */
export async function collectUsedBlobs(
  repo: Repository,
  treeIds: Iterable<string>,
  onError: (treeId: string, err: unknown) => void,
  visit?: (node: TreeNode, treeId: string) => void,
  /** true: trees are kept in the blob cache (for a caller that walks trees shared between several calls). */
  cacheTrees = false,
  /**
   * Trees loaded at a time. With more than one, trees are visited (and errors
   * reported) in the order their loads finish, not depth first; the set is the same.
   */
  concurrency = WALK_TREES,
): Promise<BlobSet> {
  const used = new BlobSet(repo.index);
  // A full collection whenever the JavaScript heap grew by LIFEBOAT_WALK_HEAP_GC_MB (default 12; 0: none) past
  // its lowest since the last one (BufferReclaimer heapCap), as the backup walk does: each tree's decoded nodes
  // are garbage a tree later, yet V8 let them fill its old generation first. check of 100,000 files in four
  // snapshots peaked at 95-96 MiB, with this at 86-87 for the same CPU time; stats 91-99 -> 83-86 MiB (8 MiB:
  // the same peaks for 5% more CPU; docs/benchmarks.md, "Walks' garbage collected").
  const reclaimer = heapReclaimer('LIFEBOAT_WALK_HEAP_GC_MB', 12);
  const stack = [...treeIds];
  let loading = 0;
  let waiting: Array<() => void> = [];
  const wake = () => {
    const w = waiting;
    waiting = [];
    for (const r of w) r();
  };
  const run = async (): Promise<void> => {
    for (;;) {
      const id = stack.pop();
      if (id === undefined) {
        if (loading === 0) return wake(); // nothing left and nothing that could add more
        await new Promise<void>((r) => waiting.push(r));
        continue;
      }
      if (used.has(id)) continue;
      used.add(id);
      let nodes: TreeNode[] | undefined;
      loading++;
      try {
        nodes = (await repo.loadTree(id, { cache: cacheTrees })).nodes;
      } catch (err) {
        onError(id, err);
      } finally {
        loading--;
      }
      for (const n of nodes ?? []) {
        visit?.(n, id);
        if (n.type === 'dir' && n.subtree) stack.push(n.subtree);
        else if (n.type === 'file' && n.content) for (const c of n.content) used.add(c);
      }
      reclaimer?.dropped(0);
      wake();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, concurrency) }, run));
  addDeltaBases(repo, used);
  return used;
}

export function addDeltaBases(repo: Repository, used: BlobSet): void {
  // Only delta blobs have bases: start from the used ones (not from every used id).
  const stack: string[] = [];
  for (const [id] of repo.index.deltas()) if (used.has(id)) stack.push(id);
  while (stack.length) {
    const e = repo.indexEntry(stack.pop()!);
    if (!e) continue;
    for (const b of basesOf(e)) {
      if (used.has(b)) continue;
      used.add(b);
      stack.push(b);
    }
  }
}
