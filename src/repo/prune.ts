import { IntegrityError, LifeboatError, errorMessage } from '../errors.js';
import type { IndexFilePack } from './index.js';
import { type PackBlob, PackWriter, parseHeaderBytes, MAX_PACK_HEADER } from './pack.js';
import type { Repository } from './repository.js';
import { addDeltaBases, collectUsedBlobs } from './walk.js';
import { applyWalRetention } from './wal.js';
import { applyBinlogRetention } from './binlog.js';

/**
 * prune: delete data no snapshot needs. Order of operations keeps the
 * repository valid at every instant (a crash at any point loses nothing):
 *   1. under an exclusive lock, find the blobs every snapshot needs (with delta bases);
 *   2. copy still-needed blobs out of partly-used packs into new packs (verified);
 *   3. write new index files describing every kept blob (at most 100,000 entries each);
 *   4. delete the old index files (after all new ones are written);
 *   5. delete packs that are no longer referenced.
 * A crash after 3 leaves duplicate index entries (harmless); after 4, orphan
 * packs that the next prune deletes.
 */
/** Entries per index file written by prune (about 20 MB of JSON). */
const INDEX_FILE_BLOBS = 100_000;

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
  /** Abandoned temporary files (`.tmp-*` of a writer that was killed) removed, and their bytes. */
  tempRemoved?: number;
  tempBytesRemoved?: number;
}

/** Index files beyond what a rewrite would write that a prune which changes nothing leaves as they are. */
export const COMPACT_SLACK = 8;

/** A temporary file untouched this long belongs to no running writer (prune also holds the exclusive lock). */
export const STALE_TEMP_MS = 60 * 60 * 1000;

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
      lock.check();
      walPlan = await applyWalRetention(repo, snaps, { dryRun: opts.walRetention === false || !!opts.dryRun, check: () => lock.check() });
    } catch (err) {
      throw new LifeboatError(`refusing to prune: archived WAL cannot be read (${errorMessage(err)}); run "lifeboat check"`, 5);
    }
    for (const e of opts.walRetention === false ? [...walPlan.keep, ...walPlan.remove] : walPlan.keep) for (const b of e.blobs) used.add(b);
    // Archived MySQL binary logs (src/repo/binlog.ts): the same rule, against the dumps' binlog coordinates.
    let binlogPlan;
    try {
      lock.check();
      binlogPlan = await applyBinlogRetention(repo, snaps, { dryRun: opts.walRetention === false || !!opts.dryRun, check: () => lock.check() });
    } catch (err) {
      throw new LifeboatError(`refusing to prune: archived binary logs cannot be read (${errorMessage(err)}); run "lifeboat check"`, 5);
    }
    for (const e of opts.walRetention === false ? [...binlogPlan.keep, ...binlogPlan.remove] : binlogPlan.keep) for (const b of e.blobs) used.add(b);
    addDeltaBases(repo, used);
    for (const id of used.notIndexed()) {
      throw new LifeboatError(`refusing to prune: blob ${id} is needed but not indexed; run "lifeboat check"`, 5);
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

    // Per pack (by the index's pack number): kept and dropped bytes, using the
    // index's chosen location of each blob. Counters only: memory per pack, not per blob.
    const index = repo.index;
    const nPacks = index.packCount;
    const keepBytes = new Float64Array(nPacks);
    const dropBytes = new Float64Array(nPacks);
    const keepCount = new Uint32Array(nPacks);
    for (let s = 0; s < index.size; s++) {
      const pn = index.packNoAt(s);
      if (used.hasSlot(s)) {
        keepBytes[pn]! += index.lengthAt(s);
        keepCount[pn]!++;
      } else {
        dropBytes[pn]! += index.lengthAt(s);
        res.blobsRemoved++;
      }
    }
    res.blobsKept = used.size;

    const KEEP = 1;
    const REPACK = 2;
    const fate = new Uint8Array(nPacks); // 0: delete (or missing), KEEP, REPACK
    const indexed = new Set<string>();
    const repack: number[] = [];
    const deletePacks = new Set<string>();
    for (let pn = 0; pn < nPacks; pn++) {
      const pack = index.packName(pn);
      indexed.add(pack);
      if (!stored.has(pack)) continue; // missing pack: check reports it; nothing to delete
      if (keepCount[pn] === 0) deletePacks.add(pack);
      else if (dropBytes[pn]! > 0 && dropBytes[pn]! / (dropBytes[pn]! + keepBytes[pn]!) >= maxUnused) {
        fate[pn] = REPACK;
        repack.push(pn);
      } else fate[pn] = KEEP;
    }
    for (const name of stored.keys()) if (!indexed.has(name)) deletePacks.add(name); // leftovers of interrupted runs
    indexed.clear();
    res.packsRepacked = repack.length;
    for (const pn of repack) deletePacks.add(index.packName(pn));
    for (const p of deletePacks) res.bytesFreed += stored.get(p) ?? 0;
    res.packsDeleted = deletePacks.size;
    if (opts.dryRun) return res;

    // Kept slots grouped by pack (a counting sort: 4 bytes per kept blob).
    const start = new Uint32Array(nPacks + 1);
    for (let pn = 0; pn < nPacks; pn++) start[pn + 1] = start[pn]! + (fate[pn] ? keepCount[pn]! : 0);
    const slots = new Uint32Array(start[nPacks]!);
    const fill = start.slice(0, nPacks);
    for (let s = 0; s < index.size; s++) {
      const pn = index.packNoAt(s);
      if (fate[pn] && used.hasSlot(s)) slots[fill[pn]!++] = s;
    }
    const packBlobs = (pn: number): PackBlob[] => {
      const out: PackBlob[] = [];
      for (let k = start[pn]!; k < start[pn + 1]!; k++) out.push(index.packBlobAt(slots[k]!));
      return out;
    };

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
    for (const pn of repack) {
      lock.check();
      const pack = index.packName(pn);
      opts.onProgress?.(`repacking ${pack.slice(0, 8)}`);
      for (const b of packBlobs(pn)) {
        await repo.loadBlob(b.id); // verifies MAC + hash before the old copy is deleted
        const sealed = await repo.storage.load('data', pack, { offset: b.offset, length: b.length });
        const { offset: _o, length: _l, ...entry } = b;
        writers[b.type].add(entry, sealed);
        if (writers[b.type].size >= repo.config.packSize) await flushWriter(b.type);
      }
    }
    await flushWriter('data');
    await flushWriter('tree');

    // 3. New index files for everything kept (at most INDEX_FILE_BLOBS entries
    // each: bounded memory, and each file far below the format's size limit).
    // Not when nothing changes: every indexed pack is stored and kept as it is, every entry is used, no
    // pack was deleted or written, and there are at most COMPACT_SLACK more index files than a rewrite
    // would write (many small ones, a backup's or an archived WAL file's each, are still joined). New files
    // would say what the index files say: a prune that freed nothing rewrote the whole index, at 100,000
    // files most of its peak memory and a fifth of its time (docs/benchmarks.md, "Walks' garbage collected").
    const unchanged =
      deletePacks.size === 0 &&
      newPacks.length === 0 &&
      res.blobsRemoved === 0 &&
      fate.every((f) => f === KEEP) &&
      index.files.size <= Math.ceil(index.size / INDEX_FILE_BLOBS) + COMPACT_SLACK;
    if (!unchanged) {
      const oldIndexFiles = [...index.files.keys()];
      const newIndexFiles = new Set<string>();
      let batch: IndexFilePack[] = [];
      let batchBlobs = 0;
      const writeBatch = async () => {
        lock.check();
        if (batch.length) newIndexFiles.add(await repo.writeIndexFile(batch));
        batch = [];
        batchBlobs = 0;
      };
      for (let pn = 0; pn < nPacks; pn++) {
        if (fate[pn] !== KEEP) continue;
        const blobs = packBlobs(pn);
        batch.push({ id: index.packName(pn), blobs });
        batchBlobs += blobs.length;
        if (batchBlobs >= INDEX_FILE_BLOBS) await writeBatch();
      }
      for (const p of newPacks) {
        batch.push(p);
        batchBlobs += p.blobs.length;
        if (batchBlobs >= INDEX_FILE_BLOBS) await writeBatch();
      }
      lock.check();
      if (batch.length || newIndexFiles.size === 0) newIndexFiles.add(await repo.writeIndexFile(batch));
      // 4. Old index files (only after every new one is written).
      for (const f of oldIndexFiles) {
        if (newIndexFiles.has(f)) continue;
        lock.check();
        await repo.storage.remove('index', f).catch(() => {});
      }
    }
    // 5. Unreferenced packs.
    for (const p of deletePacks) {
      lock.check();
      await repo.storage.remove('data', p).catch(() => {});
    }
    // 6. Temporary files a killed writer left behind (local storage: packs are built in data/).
    if (repo.storage.removeStaleTemp) {
      lock.check();
      const t = await repo.storage.removeStaleTemp(STALE_TEMP_MS);
      if (t.files) {
        res.tempRemoved = t.files;
        res.tempBytesRemoved = t.bytes;
      }
    }
    lock.check();
    return res;
  } catch (err) {
    // A failure after the lease ran out (e.g. a storage call cut off with the network) is reported as the lock loss.
    throw lock.cause(err);
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
 * index file). Writes the new index files (at most 100,000 entries each)
 * before deleting the old files.
 */
export async function repairIndex(repo: Repository, onProblem?: (pack: string, msg: string) => void): Promise<{ packs: number; blobs: number; badPacks: number }> {
  const lock = await repo.lock(true, 'repair index');
  try {
    // New index files (at most INDEX_FILE_BLOBS entries each, written as the
    // headers are read: bounded memory), then the old files are deleted.
    const old = (await repo.storage.list('index')).map((f) => f.name);
    const written = new Set<string>();
    let batch: IndexFilePack[] = [];
    let batchBlobs = 0;
    let packs = 0;
    let blobs = 0;
    let bad = 0;
    for (const o of await repo.storage.list('data')) {
      try {
        const hb = await readPackHeader(repo, o.name, o.size);
        batch.push({ id: o.name, blobs: hb });
        packs++;
        blobs += hb.length;
        batchBlobs += hb.length;
        if (batchBlobs >= INDEX_FILE_BLOBS) {
          lock.check();
          written.add(await repo.writeIndexFile(batch));
          batch = [];
          batchBlobs = 0;
        }
      } catch (err) {
        bad++;
        onProblem?.(o.name, errorMessage(err));
      }
    }
    lock.check();
    if (batch.length || written.size === 0) written.add(await repo.writeIndexFile(batch));
    for (const f of old) {
      if (written.has(f)) continue;
      lock.check();
      await repo.storage.remove('index', f).catch(() => {});
    }
    return { packs, blobs, badPacks: bad };
  } catch (err) {
    throw lock.cause(err);
  } finally {
    await lock.release();
  }
}
