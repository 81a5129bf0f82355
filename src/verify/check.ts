import { IntegrityError, errorMessage } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import { MAX_PACK_SIZE, basesOf } from '../repo/pack.js';
import type { SnapshotWithId } from '../repo/snapshot.js';
import { collectUsedBlobs } from '../repo/walk.js';
import type { BlobSet } from '../repo/blobset.js';
import { checkWal } from '../repo/wal.js';
import { checkBinlogs } from '../repo/binlog.js';
import { InlineVerifier, ProvenBlobs, RangeBuffers, readPackData } from './read-pack.js';
import { releaseStartupTextEvery } from '../util/startup-text.js';
import { heapTrim } from '../util/heap-trim.js';

/**
 * Repository verification. Structure check: every index, snapshot and tree
 * decodes and authenticates, every referenced blob is indexed and its pack
 * exists with the right size. --read-data additionally reads every pack (or a
 * subset), checks its SHA-256 against its name, authenticates its header and
 * decodes every blob, verifying each blob's keyed hash (read-pack.ts: a pack is
 * streamed in bounded ranges, never held whole). Every problem is
 * reported by object name, with the snapshots it affects.
 */
export interface CheckOptions {
  readData?: boolean;
  /** Read only a subset of packs: "n/m" (bucket n of m by pack id) or "x%" (random sample). */
  subset?: string;
  onProgress?: (done: number, total: number) => void;
  /** Called once the walk of the snapshots' trees is over (also when it failed); the packs' data may still be being read. */
  onWalkDone?: () => void;
}

export interface CheckProblem {
  kind: 'index' | 'snapshot' | 'tree' | 'pack' | 'blob' | 'key' | 'config' | 'wal' | 'binlog' | 'storage';
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
  /**
   * With --read-data: delta bases proven while the blobs built on them were verified (their
   * plaintext hashed on the way), not decoded again in their own packs (read-pack.ts ProvenBlobs).
   */
  blobsProven?: number;
  /** Archived PostgreSQL WAL files (src/repo/wal.ts). */
  walFiles?: number;
  /** Archived MySQL/MariaDB binary logs (src/repo/binlog.ts). */
  binlogFiles?: number;
  /** What the storage enforces (S3 Object Lock), as checked against the repository settings. */
  immutability?: string[];
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

  // 0. The storage enforces what the settings promise (S3 Object Lock retention).
  if (repo.storage.checkImmutability) {
    try {
      res.immutability = await repo.storage.checkImmutability();
    } catch (err) {
      problems.push({ kind: 'storage', object: repo.storage.location, message: errorMessage(err) });
    }
  }

  // 1. Index files: damaged ones were skipped (and recorded) when the repository was opened.
  for (const [name, err] of repo.indexErrors) problems.push({ kind: 'index', object: name, message: errorMessage(err) });
  res.blobs = repo.index.size;

  // The decode worker starts (~0.1 s: a thread, its isolate, zstd) while the packs are listed and the index checked.
  if (opts.readData) repo.readPool.verifyChunk(Buffer.alloc(0), []).catch(() => {});

  // 2. Packs: every indexed pack exists and is large enough.
  const stored = new Map((await repo.storage.list('data')).map((o) => [o.name, o.size]));
  const needed = new Map<string, number>();
  for (const [pack, p] of repo.index.packs()) needed.set(pack, p.end);
  res.packs = stored.size;
  const badPacks = new Map<string, string>();
  for (const [pack, minSize] of needed) {
    const size = stored.get(pack);
    if (size === undefined) badPacks.set(pack, 'pack file is missing');
    else if (size < minSize + 4) {
      // Name the entries that do not fit: a truncated pack, or index entries pointing past its end.
      const beyond = [...repo.index.inPack(pack)].filter(([, e]) => e.offset + e.length + 4 > size);
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
  for (const [, e] of repo.index.deltas()) {
    for (const b of basesOf(e)) {
      if (!repo.index.has(b)) problems.push({ kind: 'blob', object: b, message: `delta base is missing from the index (needed by a blob in pack ${e.pack})` });
    }
  }
  // Delta chains: no cycles, no deeper than the format allows.
  for (const [id, chain] of repo.index.chainProblems()) damagedBlobs.set(id, chain);

  // 4. Read data: started here, before the walk of the trees, and run alongside it
  // (the walk waits on one small read at a time; the data phase keeps a decode
  // worker busy). Its findings are merged after the walk's, in pack order, so the
  // report does not depend on which finished first.
  // The packs that hold delta blobs or their bases wait for the walk to end (walkDone): decoding their chains
  // beside the walk added the two phases' memory (the bench's repository, files and a dump's days 0-3: peak
  // RSS median 210 -> 195 MB in 9 interleaved runs, same wall time; docs/benchmarks.md, "check: the delta
  // packs after the walk"); the other packs are read meanwhile.
  let walkEnded!: () => void;
  const walkDone = new Promise<void>(
    (resolve) =>
      (walkEnded = () => {
        resolve();
        opts.onWalkDone?.();
      }),
  );
  const readData = opts.readData
    ? readAllPacks(repo, selectSubset([...stored.keys()].sort(), opts.subset), stored, opts.onProgress, (n) => (res.blobsProven = n), walkDone)
    : undefined;
  readData?.catch(() => {}); // awaited below; not an unhandled rejection meanwhile

  // 3. Snapshots and trees.
  let snapshots: SnapshotWithId[];
  let used: BlobSet;
  const treeProblems = new Map<string, string>();
  try {
    snapshots = await repo.listSnapshots({
      onError: (id, err) => problems.push({ kind: 'snapshot', object: id, message: errorMessage(err) }),
    });
    res.snapshots = snapshots.length;
    // One walk over all snapshots (shared trees once) into a bit set over the index:
    // memory is one bit per blob, not a set of ids per snapshot. Which snapshots a
    // problem affects is worked out at the end, only when there are problems.
    used = await collectUsedBlobs(
      repo,
      snapshots.map((s) => s.tree),
      (treeId, err) => treeProblems.set(treeId, errorMessage(err)),
      // (Several trees at a time, the default: one at a time, the walk (a small read per tree) waited behind every
      // range the main thread verifies and could outlast the data phase; problems are sorted by tree below.)
    );
  } catch (err) {
    walkEnded();
    await readData?.catch(() => {}); // nothing reads the repository after check returns
    throw err;
  }
  walkEnded();
  for (const id of used.notIndexed()) {
    if (!damagedBlobs.has(id)) damagedBlobs.set(id, 'blob is referenced but not in any index');
  }
  const toAttribute: Array<{ problem: CheckProblem; ids: Set<string> }> = [];
  const affected = (problem: CheckProblem, ids: Set<string>) => {
    problem.snapshots = [];
    toAttribute.push({ problem, ids });
    return problem;
  };

  if (readData) {
    for (const r of await readData) {
      res.bytesRead += r.bytesRead;
      if (r.read) res.packsRead++;
      for (const [id, msg] of r.damaged) damagedBlobs.set(id, `in pack ${r.pack}: ${msg}`);
      if (r.hashBad) badPacks.set(r.pack, 'pack content does not match its name (SHA-256): data is damaged');
      if (r.error !== undefined) badPacks.set(r.pack, badPacks.get(r.pack) ?? r.error);
    }
  }

  // 4b. Archived WAL entries (with readData: reassembled and hashed).
  const wal = await checkWal(repo, { readData: !!opts.readData && !opts.subset });
  res.walFiles = wal.entries;
  for (const p of wal.problems) problems.push({ kind: 'wal', object: p.object, message: p.message });
  const binlogs = await checkBinlogs(repo, { readData: !!opts.readData && !opts.subset });
  res.binlogFiles = binlogs.entries;
  for (const p of binlogs.problems) problems.push({ kind: 'binlog', object: p.object, message: p.message });

  // 5. Attribute damage to snapshots.
  for (const [pack, msg] of badPacks) {
    const blobIds = [...repo.index.inPack(pack)].map(([id]) => id);
    for (const id of blobIds) if (!damagedBlobs.has(id)) damagedBlobs.set(id, `in pack ${pack}: ${msg}`);
    problems.push(affected({ kind: 'pack', object: pack, message: msg }, new Set(blobIds)));
  }
  for (const [treeId, msg] of [...treeProblems].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    problems.push(affected({ kind: 'tree', object: treeId, message: msg }, new Set([treeId])));
  }
  const packOf = (id: string) => repo.index.packOf(id);
  for (const [id, msg] of damagedBlobs) {
    const p = packOf(id);
    if (p && badPacks.has(p)) continue; // already reported with its pack
    problems.push(affected({ kind: 'blob', object: id, message: msg }, new Set([id])));
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
  await attribute(repo, snapshots, toAttribute);
  res.ok = problems.length === 0;
  return res;
}

/** Fill in the snapshots each problem affects: one walk per snapshot, one bit set at a time. */
async function attribute(repo: Repository, snapshots: SnapshotWithId[], items: Array<{ problem: CheckProblem; ids: Set<string> }>): Promise<void> {
  if (items.length === 0) return;
  for (const s of snapshots) {
    // one walk per snapshot: the trees they share are kept in the blob cache between the walks
    const used = await collectUsedBlobs(repo, [s.tree], () => {}, undefined, true);
    for (const { problem, ids } of items) {
      for (const id of ids) {
        if (used.has(id)) {
          problem.snapshots!.push(s.id);
          break;
        }
      }
    }
  }
}

interface PackFindings {
  pack: string;
  bytesRead: number;
  read: boolean;
  hashBad: boolean;
  damaged: Array<[string, string]>;
  error?: string;
}

/**
 * check --read-data over `packs`, PACKS_AT_ONCE at a time (read-pack.ts pipelines the
 * ranges of each): per pack, in the order of `packs`, what was found. Until `heavyAfter`
 * settles (the walk of the trees), only packs with no delta blob and no delta's base are
 * read; from then on the others (whose chains are decoded) come first, then the rest.
 */
async function readAllPacks(
  repo: Repository,
  packs: string[],
  stored: Map<string, number>,
  onProgress?: (done: number, total: number) => void,
  onProven?: (n: number) => void,
  heavyAfter: Promise<void> = Promise.resolve(),
): Promise<PackFindings[]> {
  let done = 0;
  const buffers = new RangeBuffers();
  // The packs holding the deepest deltas first: their bases' chains, hashed on the way, prove the
  // blobs of the shallower packs (read-pack.ts ProvenBlobs); the findings stay in the order of `packs`
  const { depth, heavy } = deltaPacks(repo);
  const plain = packs.map((p, i) => ({ p, i })).filter((x) => !heavy.has(x.p));
  // With the C codec, the other way round: the packs of the chains' roots first, and the deltas built on a
  // root verified forward from its bytes as its range is read (ProvenBlobs.forward), which reads each delta's
  // own bytes instead of its chain from the root again; their packs' blobs are then proven
  const forward = repo.readPool.native && process.env.LIFEBOAT_CHECK_INLINE !== '1' && process.env.LIFEBOAT_CHECK_FORWARD !== '0';
  const deep = packs
    .map((p, i) => ({ p, i, d: depth.get(p) ?? 0 }))
    .filter((x) => heavy.has(x.p))
    .sort((a, b) => (forward ? a.d - b.d : b.d - a.d) || a.i - b.i);
  let walked = false;
  void heavyAfter.then(() => (walked = true));
  let nextPlain = 0;
  let nextDeep = 0;
  /** The next pack to read (undefined: none left). */
  const next = async (): Promise<{ p: string; i: number } | undefined> => {
    if (!walked && nextPlain < plain.length) return plain[nextPlain++];
    if (!walked) await heavyAfter;
    return nextDeep < deep.length ? deep[nextDeep++] : plain[nextPlain++];
  };
  const proven = new ProvenBlobs(repo, packs, undefined, forward);
  // (the C codec decodes on libuv's threads, every core: the main thread need not help)
  const inline = process.env.LIFEBOAT_CHECK_INLINE === '0' || (repo.readPool.native && process.env.LIFEBOAT_CHECK_INLINE !== '1') ? undefined : new InlineVerifier(repo);
  const atOnce = Number(process.env.LIFEBOAT_CHECK_PACKS) || (repo.readPool.native ? PACKS_AT_ONCE_NATIVE : PACKS_AT_ONCE);
  const out = new Array<PackFindings>(packs.length);
  const reader = async (): Promise<void> => {
    for (let x = await next(); x; x = await next()) {
      const pack = x.p;
      const f: PackFindings = { pack, bytesRead: 0, read: false, hashBad: false, damaged: [] };
      try {
        const size = stored.get(pack) ?? 0;
        if (size > MAX_PACK_SIZE) throw new IntegrityError(`pack is ${size} bytes, more than the format maximum of ${MAX_PACK_SIZE}`);
        const r = await readPackData(repo, pack, size, buffers, inline, undefined, proven);
        f.bytesRead = r.bytesRead;
        f.hashBad = !r.hashOk;
        f.damaged = r.damaged;
        if (r.headerError) throw r.headerError;
        f.read = true;
      } catch (err) {
        f.error = errorMessage(err);
      }
      onProgress?.(++done, packs.length);
      out[x.i] = f;
    }
  };
  // the executable's pages the walk and the first reads alone used are given back as the reads go on (util/startup-text.ts),
  // and so are the heap's free pages (util/heap-trim.ts: ~6 MB lower peak in the bench's check)
  const stopReleasing = releaseStartupTextEvery();
  const stopTrims = heapTrim();
  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(atOnce, packs.length)) }, reader));
  } finally {
    stopTrims();
    stopReleasing();
  }
  onProven?.(proven.skipped);
  return out;
}

/**
 * Per pack, the depth of its deepest delta blob; `heavy`: the packs holding a delta blob or a
 * delta's base (reading those decodes chains).
 */
function deltaPacks(repo: Repository): { depth: Map<string, number>; heavy: Set<string> } {
  const depth = new Map<string, number>();
  const heavy = new Set<string>();
  for (const [, e] of repo.index.deltas()) {
    heavy.add(e.pack);
    if (Number.isFinite(e.depth) && (depth.get(e.pack) ?? 0) < e.depth) depth.set(e.pack, e.depth);
    for (const b of basesOf(e)) {
      const p = repo.index.packOf(b);
      if (p !== undefined) heavy.add(p);
    }
  }
  return { depth, heavy };
}

/**
 * Packs read at a time by check --read-data (LIFEBOAT_CHECK_PACKS overrides): two keep the worker fed across a
 * pack's end (its tail and header are read first) and, with delta blobs, peaked lower than one (mutated files
 * 217-229 MB vs 233-241, dumps 225 vs 272); without deltas one peaked ~6 MB lower (bench/results/check5.md).
 */
const PACKS_AT_ONCE = 2;
/**
 * With the C codec (native-read-pool.ts) one pack at a time: its ranges keep both pool threads busy, and a
 * second pack only added its buffers (and its delta bases' chains) to the peak: /tmp/lead-all ~124 -> ~110 MB,
 * a dump's days 0-3 ~256 -> ~185 MB, the same CPU (bench/results/rss6.md).
 */
const PACKS_AT_ONCE_NATIVE = 1;
