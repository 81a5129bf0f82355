import { IntegrityError, LifeboatError, errorMessage } from '../errors.js';
import type { IndexFilePack } from './index.js';
import { type PackBlob, PackWriter, parseHeaderBytes, MAX_PACK_HEADER } from './pack.js';
import type { Repository } from './repository.js';
import { addDeltaBases, collectUsedBlobs } from './walk.js';
import { applyWalRetention } from './wal.js';

/**
 * prune: delete data no snapshot needs. Order of operations keeps the
 * repository valid at every instant (a crash at any point loses nothing):
 *   1. under an exclusive lock, find the blobs every snapshot needs (with delta bases);
 *   2. copy still-needed blobs out of partly-used packs into new packs (verified);
 *   3. write ONE new index file describing every kept blob;
 *   4. delete the old index files;
 *   5. delete packs that are no longer referenced.
 * A crash after 3 leaves duplicate index entries (harmless); after 4, orphan
 * packs that the next prune deletes.
 */
export interface PruneOptions {
  /** Repack a partly used pack when at least this fraction of it is unused (default 0.1). */
  maxUnusedFraction?: number;
  dryRun?: boolean;
  retryLockMs?: number;
  onProgress?: (msg: string) => void;
  /** Apply WAL retention (src/repo/wal.ts) before collecting blobs (default true). */
  walRetention?: boolean;
}

export interface PruneResult {
  packsBefore: number;
  packsDeleted: number;
  packsRepacked: number;
  packsWritten: number;
  blobsKept: number;
  blobsRemoved: number;
  bytesBefore: number;
  bytesFreed: number;
  dryRun: boolean;
  /** Archived WAL files removed by WAL retention (older than every kept base backup). */
  walRemoved?: number;
}

export async function prune(repo: Repository, opts: PruneOptions = {}): Promise<PruneResult> {
  const lock = await repo.lock(true, 'prune', opts.retryLockMs ?? 0);
  try {
    // What was written between opening the repository and getting the lock
    // (a backup, an archived WAL file) must count as used, not as garbage.
    await repo.reloadIndex();
    if (repo.indexErrors.size > 0) {
      throw new LifeboatError(
        `refusing to prune: ${repo.indexErrors.size} index file(s) are damaged (${[...repo.indexErrors.keys()].map((n) => n.slice(0, 8)).join(', ')}); run "lifeboat repair index" first`,
        5,
      );
    }
    const maxUnused = opts.maxUnusedFraction ?? 0.1;
    const snaps = await repo.listSnapshots();
    const treeErrors: string[] = [];
    const used = await collectUsedBlobs(
      repo,
      snaps.map((s) => s.tree),
      (id, err) => treeErrors.push(`${id}: ${errorMessage(err)}`),
    );
    if (treeErrors.length) {
      throw new LifeboatError(`refusing to prune: ${treeErrors.length} tree(s) cannot be read (${treeErrors[0]}); run "lifeboat check"`, 5);
    }
    // Archived WAL: retention first (entries only), then keep every blob a remaining entry needs.
    let walPlan;
    try {
      walPlan = await applyWalRetention(repo, snaps, { dryRun: opts.walRetention === false || !!opts.dryRun });
    } catch (err) {
      throw new LifeboatError(`refusing to prune: archived WAL cannot be read (${errorMessage(err)}); run "lifeboat check"`, 5);
    }
    for (const e of opts.walRetention === false ? [...walPlan.keep, ...walPlan.remove] : walPlan.keep) for (const b of e.blobs) used.add(b);
    addDeltaBases(repo, used);
    for (const id of used) {
      if (!repo.index.has(id)) throw new LifeboatError(`refusing to prune: blob ${id} is needed but not indexed; run "lifeboat check"`, 5);
    }

    const stored = new Map((await repo.storage.list('data')).map((o) => [o.name, o.size]));
    const res: PruneResult = {
      packsBefore: stored.size,
      packsDeleted: 0,
      packsRepacked: 0,
      packsWritten: 0,
      blobsKept: 0,
      blobsRemoved: 0,
      bytesBefore: [...stored.values()].reduce((a, b) => a + b, 0),
      bytesFreed: 0,
      dryRun: !!opts.dryRun,
      walRemoved: opts.walRetention === false ? 0 : walPlan.remove.length,
    };

    // Per pack: kept and dropped blobs, using the index's chosen location of each blob.
    const perPack = new Map<string, { keep: Array<[string, PackBlob]>; dropBytes: number; keepBytes: number }>();
    for (const [id, e] of repo.index.values()) {
      const p = perPack.get(e.pack) ?? { keep: [], dropBytes: 0, keepBytes: 0 };
      const b: PackBlob = { id, type: e.type, offset: e.offset, length: e.length, rawLength: e.rawLength, compression: e.compression };
      if (e.base) b.base = e.base;
      if (e.base2) b.base2 = e.base2;
      if (e.sf) b.sf = e.sf;
      if (used.has(id)) {
        p.keep.push([id, b]);
        p.keepBytes += e.length;
      } else {
        p.dropBytes += e.length;
        res.blobsRemoved++;
      }
      perPack.set(e.pack, p);
    }
    res.blobsKept = used.size;

    const keepPacks: IndexFilePack[] = [];
    const repack: string[] = [];
    const deletePacks = new Set<string>();
    for (const name of stored.keys()) if (!perPack.has(name)) deletePacks.add(name); // leftovers of interrupted runs
    for (const [pack, p] of perPack) {
      if (!stored.has(pack)) continue; // missing pack: check reports it; nothing to delete
      if (p.keep.length === 0) deletePacks.add(pack);
      else if (p.dropBytes > 0 && p.dropBytes / (p.dropBytes + p.keepBytes) >= maxUnused) repack.push(pack);
      else keepPacks.push({ id: pack, blobs: p.keep.map(([, b]) => b) });
    }
    res.packsRepacked = repack.length;
    for (const p of repack) deletePacks.add(p);
    for (const p of deletePacks) res.bytesFreed += stored.get(p) ?? 0;
    res.packsDeleted = deletePacks.size;
    if (opts.dryRun) return res;

    // 2. Repack: copy sealed blobs verbatim after verifying them.
    const newPacks: IndexFilePack[] = [];
    const writers: Record<'data' | 'tree', PackWriter> = { data: new PackWriter(), tree: new PackWriter() };
    const flushWriter = async (t: 'data' | 'tree') => {
      const w = writers[t];
      if (w.count === 0) return;
      writers[t] = new PackWriter();
      const { id, data, blobs } = w.finalize(repo.key.encKey);
      await repo.storage.save('data', id, data);
      newPacks.push({ id, blobs });
      res.packsWritten++;
      res.bytesFreed -= data.length;
    };
    for (const pack of repack) {
      opts.onProgress?.(`repacking ${pack.slice(0, 8)}`);
      const p = perPack.get(pack)!;
      for (const [id, b] of p.keep) {
        await repo.loadBlob(id); // verifies MAC + hash before the old copy is deleted
        const sealed = await repo.storage.load('data', pack, { offset: b.offset, length: b.length });
        const { offset: _o, length: _l, ...entry } = b;
        writers[b.type].add(entry, sealed);
        if (writers[b.type].size >= repo.config.packSize) await flushWriter(b.type);
      }
    }
    await flushWriter('data');
    await flushWriter('tree');

    // 3. One index for everything kept.
    const oldIndexFiles = [...repo.index.files.keys()];
    const newIndex = await repo.writeIndexFile([...keepPacks, ...newPacks]);
    // 4. Old index files.
    for (const f of oldIndexFiles) if (f !== newIndex) await repo.storage.remove('index', f).catch(() => {});
    // 5. Unreferenced packs.
    for (const p of deletePacks) await repo.storage.remove('data', p).catch(() => {});
    return res;
  } finally {
    await lock.release();
  }
}

/** Read only a pack's header (tail of the file) and authenticate it. */
export async function readPackHeader(repo: Repository, pack: string, size: number): Promise<PackBlob[]> {
  if (size < 4) throw new IntegrityError(`pack ${pack}: truncated (${size} bytes)`);
  const tail = await repo.storage.load('data', pack, { offset: size - 4, length: 4 });
  const hlen = tail.readUInt32LE(0);
  if (hlen > MAX_PACK_HEADER || hlen + 4 > size) throw new IntegrityError(`pack ${pack}: impossible header length ${hlen}`);
  const header = await repo.storage.load('data', pack, { offset: size - 4 - hlen, length: hlen });
  return parseHeaderBytes(repo.key.encKey, header, size - 4 - hlen, pack);
}

/**
 * repair index: rebuild the index from the pack headers (for a lost or damaged
 * index file). Writes the new index before deleting the old files.
 */
export async function repairIndex(repo: Repository, onProblem?: (pack: string, msg: string) => void): Promise<{ packs: number; blobs: number; badPacks: number }> {
  const lock = await repo.lock(true, 'repair index');
  try {
    const packs: IndexFilePack[] = [];
    let blobs = 0;
    let bad = 0;
    for (const o of await repo.storage.list('data')) {
      try {
        const hb = await readPackHeader(repo, o.name, o.size);
        packs.push({ id: o.name, blobs: hb });
        blobs += hb.length;
      } catch (err) {
        bad++;
        onProblem?.(o.name, errorMessage(err));
      }
    }
    const old = (await repo.storage.list('index')).map((f) => f.name);
    const name = await repo.writeIndexFile(packs);
    for (const f of old) if (f !== name) await repo.storage.remove('index', f).catch(() => {});
    return { packs: packs.length, blobs, badPacks: bad };
  } finally {
    await lock.release();
  }
}
