import type { Repository } from './repository.js';
import type { SnapshotWithId } from './snapshot.js';
import type { Tree, TreeNode } from './tree.js';
import { basesOf } from './pack.js';
import { readContent } from './content.js';

/**
 * Copy snapshots between repositories (3-2-1 copies) without re-reading the
 * source data. Blob ids are keyed per repository, so every blob is decoded
 * (and verified) from the source, re-identified with the destination's key and
 * stored only if the destination lacks it; trees are rewritten with the new ids.
 * A delta blob in the source is stored as a delta against the copy of its base
 * when that base is already in the destination. Already-copied snapshots
 * (recorded in `copiedFrom`) are skipped, so copy is idempotent.
 */
export interface CopyResult {
  copied: Array<{ source: string; target: string }>;
  skipped: string[];
  blobsNew: number;
  dataAdded: number;
}

export async function copySnapshots(
  src: Repository,
  dst: Repository,
  snapshots: SnapshotWithId[],
  onProgress?: (msg: string) => void,
): Promise<CopyResult> {
  const srcLock = await src.lock(false, 'copy (source)');
  const dstLock = await dst.lock(false, 'copy');
  const before = { ...dst.stats };
  const res: CopyResult = { copied: [], skipped: [], blobsNew: 0, dataAdded: 0 };
  try {
    const existing = new Set(
      (await dst.listSnapshots()).map((s) => (s as SnapshotWithId & { copiedFrom?: { repository: string; snapshot: string } }).copiedFrom).filter(Boolean).map((c) => `${c!.repository}/${c!.snapshot}`),
    );
    const idMap = new Map<string, string>(); // source blob id -> destination blob id
    const treeMap = new Map<string, string>();

    const copyBlob = async (id: string, data: Buffer): Promise<string> => {
      const known = idMap.get(id);
      if (known) return known;
      const newId = dst.blobId(data);
      const e = src.indexEntry(id);
      const bases = (e ? basesOf(e) : []).map((b) => idMap.get(b)).filter((b): b is string => !!b);
      await dst.saveBlob('data', data, { id: newId, ...(bases.length ? { deltaBases: bases } : {}) });
      idMap.set(id, newId);
      return newId;
    };

    const copyTree = async (id: string): Promise<string> => {
      const known = treeMap.get(id);
      if (known) return known;
      const tree: Tree = await src.loadTree(id);
      const nodes: TreeNode[] = [];
      for (const n of tree.nodes) {
        const m: TreeNode = { ...n };
        if (n.type === 'dir' && n.subtree) m.subtree = await copyTree(n.subtree);
        if (n.type === 'file' && n.content) {
          // each new chunk once, decoded (and verified) a window ahead in worker threads
          const need = [...new Set(n.content.filter((c) => !idMap.has(c)))];
          let k = 0;
          for await (const data of readContent(src, need)) await copyBlob(need[k++]!, data);
          m.content = n.content.map((c) => idMap.get(c)!);
        }
        nodes.push(m);
      }
      const newId = await dst.saveTree({ nodes });
      treeMap.set(id, newId);
      return newId;
    };

    for (const s of snapshots) {
      const key = `${src.config.id}/${s.id}`;
      if (existing.has(key)) {
        res.skipped.push(s.id);
        continue;
      }
      onProgress?.(`copying snapshot ${s.id.slice(0, 8)}`);
      const tree = await copyTree(s.tree);
      await dst.flush();
      // parent ids refer to the source repository: not carried over
      const { id: _id, v: _v, program: _p, parent: _parent, ...meta } = s;
      const target = await dst.saveSnapshot({ ...meta, tree, copiedFrom: { repository: src.config.id, snapshot: s.id } });
      res.copied.push({ source: s.id, target });
    }
    res.blobsNew = dst.stats.blobsNew - before.blobsNew;
    res.dataAdded = dst.stats.dataAdded - before.dataAdded;
    return res;
  } catch (err) {
    await dst.abandon();
    throw err;
  } finally {
    await dstLock.release();
    await srcLock.release();
  }
}
