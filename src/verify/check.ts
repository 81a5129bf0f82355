import { createHash } from 'node:crypto';
import { IntegrityError, errorMessage } from '../errors.js';
import { blobId } from '../repo/crypto.js';
import type { Repository } from '../repo/repository.js';
import { MAX_PACK_SIZE, basesOf, blobEntryProblem, parsePackHeader } from '../repo/pack.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { collectUsedBlobs } from '../repo/walk.js';
import { checkWal } from '../repo/wal.js';
import { mapLimit } from '../util/sync.js';

/**
 * Repository verification. Structure check: every index, snapshot and tree
 * decodes and authenticates, every referenced blob is indexed and its pack
 * exists with the right size. --read-data additionally reads every pack (or a
 * subset), checks its SHA-256 against its name, authenticates its header and
 * decodes every blob, verifying each blob's keyed hash. Every problem is
 * reported by object name, with the snapshots it affects.
 */
export interface CheckOptions {
  readData?: boolean;
  /** Read only a subset of packs: "n/m" (bucket n of m by pack id) or "x%" (random sample). */
  subset?: string;
  onProgress?: (done: number, total: number) => void;
}

export interface CheckProblem {
  kind: 'index' | 'snapshot' | 'tree' | 'pack' | 'blob' | 'key' | 'config' | 'wal';
  object: string;
  message: string;
  /** Snapshot ids whose data is affected. */
  snapshots?: string[];
}

export interface CheckResult {
  ok: boolean;
  problems: CheckProblem[];
  /** Informational: leftover packs from interrupted backups (prune removes them). */
  unreferencedPacks: string[];
  snapshots: number;
  packs: number;
  packsRead: number;
  blobs: number;
  bytesRead: number;
  /** Archived PostgreSQL WAL files (src/repo/wal.ts). */
  walFiles?: number;
}

export function selectSubset(packs: string[], subset: string | undefined): string[] {
  if (!subset) return packs;
  const frac = /^(\d+(?:\.\d+)?)%$/.exec(subset);
  if (frac) {
    const pct = Number(frac[1]);
    if (!(pct > 0 && pct <= 100)) throw new IntegrityError(`--read-data-subset ${subset}: percentage must be in (0, 100]`);
    const n = Math.max(1, Math.round((packs.length * pct) / 100));
    const shuffled = [...packs];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    return shuffled.slice(0, n);
  }
  const nm = /^(\d+)\/(\d+)$/.exec(subset);
  if (nm) {
    const n = Number(nm[1]);
    const m = Number(nm[2]);
    if (!(m >= 1 && n >= 1 && n <= m)) throw new IntegrityError(`--read-data-subset ${subset}: expected n/m with 1 <= n <= m`);
    return packs.filter((p) => parseInt(p.slice(0, 8), 16) % m === n - 1);
  }
  throw new IntegrityError(`--read-data-subset ${subset}: expected "n/m" or "x%"`);
}

export async function checkRepository(repo: Repository, opts: CheckOptions = {}): Promise<CheckResult> {
  const problems: CheckProblem[] = [];
  const res: CheckResult = { ok: true, problems, unreferencedPacks: [], snapshots: 0, packs: 0, packsRead: 0, blobs: 0, bytesRead: 0 };

  // 1. Index files: damaged ones were skipped (and recorded) when the repository was opened.
  for (const [name, err] of repo.indexErrors) problems.push({ kind: 'index', object: name, message: errorMessage(err) });
  res.blobs = repo.index.size;

  // 2. Packs: every indexed pack exists and is large enough.
  const stored = new Map((await repo.storage.list('data')).map((o) => [o.name, o.size]));
  const needed = new Map<string, number>();
  for (const [, e] of repo.index.values()) needed.set(e.pack, Math.max(needed.get(e.pack) ?? 0, e.offset + e.length));
  res.packs = stored.size;
  const badPacks = new Map<string, string>();
  for (const [pack, minSize] of needed) {
    const size = stored.get(pack);
    if (size === undefined) badPacks.set(pack, 'pack file is missing');
    else if (size < minSize + 4) {
      // Name the entries that do not fit: a truncated pack, or index entries pointing past its end.
      const beyond = [...repo.index.values()].filter(([, e]) => e.pack === pack && e.offset + e.length + 4 > size);
      const named = beyond
        .slice(0, 3)
        .map(([id, e]) => `blob ${id} at offset ${e.offset}, length ${e.length}`)
        .join('; ');
      badPacks.set(
        pack,
        `pack is truncated or its index entries are damaged: ${size} bytes, index needs more than ${minSize} (${named}${beyond.length > 3 ? `; and ${beyond.length - 3} more` : ''})`,
      );
    }
  }
  for (const [pack, size] of stored) {
    if (size > MAX_PACK_SIZE) badPacks.set(pack, `pack is ${size} bytes, more than the format maximum of ${MAX_PACK_SIZE}`);
  }
  // Index entries refused at load (impossible under the format limits): their packs are still referenced.
  const rejectedPacks = new Set([...repo.index.rejected.values()].map((r) => r.pack));
  for (const name of stored.keys()) if (!needed.has(name) && !rejectedPacks.has(name)) res.unreferencedPacks.push(name);
  const damagedBlobs = new Map<string, string>();
  for (const [id, r] of repo.index.rejected) damagedBlobs.set(id, r.reason);
  for (const [id, e] of repo.index.values()) {
    for (const b of basesOf(e)) {
      if (!repo.index.has(b)) problems.push({ kind: 'blob', object: b, message: `delta base is missing from the index (needed by a blob in pack ${e.pack})` });
    }
    // Delta chains: no cycles, no deeper than the format allows.
    const chain = repo.index.chainProblem(id);
    if (chain) damagedBlobs.set(id, chain);
  }

  // 3. Snapshots and trees.
  const snapshots: SnapshotWithId[] = await repo.listSnapshots({
    onError: (id, err) => problems.push({ kind: 'snapshot', object: id, message: errorMessage(err) }),
  });
  res.snapshots = snapshots.length;
  const perSnapshot = new Map<string, Set<string>>();
  const treeProblems = new Map<string, string>();
  for (const s of snapshots) {
    const used = await collectUsedBlobs(repo, [s.tree], (treeId, err) => treeProblems.set(treeId, errorMessage(err)));
    perSnapshot.set(s.id, used);
  }
  for (const used of perSnapshot.values()) {
    for (const id of used) {
      if (!repo.index.has(id) && !damagedBlobs.has(id)) damagedBlobs.set(id, 'blob is referenced but not in any index');
    }
  }

  // 4. Read data.
  if (opts.readData) {
    const packs = selectSubset([...stored.keys()].sort(), opts.subset);
    let done = 0;
    await mapLimit(packs, 2, async (pack) => {
      try {
        const size = stored.get(pack) ?? 0;
        if (size > MAX_PACK_SIZE) throw new IntegrityError(`pack is ${size} bytes, more than the format maximum of ${MAX_PACK_SIZE}`);
        const data = await repo.storage.load('data', pack);
        res.bytesRead += data.length;
        if (createHash('sha256').update(data).digest('hex') !== pack) {
          badPacks.set(pack, 'pack content does not match its name (SHA-256): data is damaged');
        }
        const blobs = parsePackHeader(repo.key.encKey, data, pack);
        for (const b of blobs) {
          const e = repo.index.get(b.id);
          try {
            const impossible = blobEntryProblem(b);
            if (impossible) throw new IntegrityError(`pack header entry: ${impossible}`);
            if (b.offset + b.length > data.length) throw new IntegrityError('extends past the end of the pack');
            const sealed = Buffer.from(data.subarray(b.offset, b.offset + b.length));
            let dict: Buffer | undefined;
            if (b.compression === 2) {
              if (basesOf(b).includes(b.id)) throw new IntegrityError('delta blob is its own base (cycle)');
              dict = await repo.loadDict(basesOf(b), 1);
            }
            const got =
              b.rawLength >= 64 * 1024
                ? await repo.pool.verify(sealed, b.compression, b.rawLength, `blob ${b.id}`, dict)
                : blobId(repo.key.idKey, repoDecode(repo, sealed, b, dict));
            if (got !== b.id) throw new IntegrityError('content does not match its id (hash mismatch)');
            if (e && e.pack === pack && (e.offset !== b.offset || e.length !== b.length)) {
              throw new IntegrityError('pack header and index disagree on its position');
            }
          } catch (err) {
            if (!e || e.pack === pack) damagedBlobs.set(b.id, `in pack ${pack}: ${errorMessage(err)}`);
          }
        }
        res.packsRead++;
      } catch (err) {
        badPacks.set(pack, badPacks.get(pack) ?? errorMessage(err));
      }
      opts.onProgress?.(++done, packs.length);
    });
  }

  // 4b. Archived WAL entries (with readData: reassembled and hashed).
  const wal = await checkWal(repo, { readData: !!opts.readData && !opts.subset });
  res.walFiles = wal.entries;
  for (const p of wal.problems) problems.push({ kind: 'wal', object: p.object, message: p.message });

  // 5. Attribute damage to snapshots.
  for (const [pack, msg] of badPacks) {
    const blobIds = [...repo.index.values()].filter(([, e]) => e.pack === pack).map(([id]) => id);
    for (const id of blobIds) if (!damagedBlobs.has(id)) damagedBlobs.set(id, `in pack ${pack}: ${msg}`);
    problems.push({ kind: 'pack', object: pack, message: msg, snapshots: affected(perSnapshot, new Set(blobIds)) });
  }
  for (const [treeId, msg] of treeProblems) {
    problems.push({ kind: 'tree', object: treeId, message: msg, snapshots: affected(perSnapshot, new Set([treeId])) });
  }
  const packOf = (id: string) => repo.index.get(id)?.pack;
  for (const [id, msg] of damagedBlobs) {
    const p = packOf(id);
    if (p && badPacks.has(p)) continue; // already reported with its pack
    problems.push({ kind: 'blob', object: id, message: msg, snapshots: affected(perSnapshot, new Set([id])) });
  }
  const unindexed = [...damagedBlobs.values()].filter((m) => /not in any index/.test(m)).length;
  if (unindexed > 0 && res.unreferencedPacks.length > 0) {
    problems.push({
      kind: 'index',
      object: 'missing',
      message:
        `${unindexed} referenced blob(s) are in no index while ${res.unreferencedPacks.length} pack(s) are not indexed ` +
        `(${res.unreferencedPacks.slice(0, 3).map((p) => p.slice(0, 8)).join(', ')}${res.unreferencedPacks.length > 3 ? ', ...' : ''}): ` +
        'an index file was lost or damaged; "lifeboat repair index" rebuilds the index from the packs',
    });
  }
  res.ok = problems.length === 0;
  return res;
}

function repoDecode(repo: Repository, sealed: Buffer, b: { compression: 0 | 1 | 2; rawLength: number; id: string }, dict?: Buffer): Buffer {
  return repo.decodeBlob(sealed, b.compression, b.rawLength, `blob ${b.id}`, dict);
}

function affected(per: Map<string, Set<string>>, ids: Set<string>): string[] {
  const out: string[] = [];
  for (const [snap, used] of per) {
    for (const id of ids) {
      if (used.has(id)) {
        out.push(snap);
        break;
      }
    }
  }
  return out;
}
