import { IntegrityError } from '../errors.js';
import { type BlobType, type Compression, type PackBlob, MAX_DELTA_DEPTH, basesOf, blobEntryProblem, validatePackBlob } from './pack.js';

/** Where a blob lives, plus what is needed to decode it. */
export interface IndexEntry {
  pack: string;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
  compression: Compression;
  base?: string;
  base2?: string;
  /**
   * Delta chain depth: 0 for a full blob, base depth + 1 for a delta; Infinity
   * when the chain loops back on itself (a damaged or hostile index).
   */
  depth: number;
  /** Resemblance sketch (data blobs >= 64 KiB). */
  sf?: number[];
}

export interface IndexFilePack {
  id: string;
  blobs: PackBlob[];
}

/** Contents of one index file (sealed + zstd in storage). */
export interface IndexFile {
  v: 1;
  packs: IndexFilePack[];
}

const HEX64 = /^[0-9a-f]{64}$/;

export function validateIndexFile(x: unknown, name: string): IndexFile {
  const o = x as { v?: unknown; packs?: unknown };
  if (!o || typeof o !== 'object' || o.v !== 1 || !Array.isArray(o.packs)) {
    throw new IntegrityError(`index ${name}: unsupported or malformed index file`);
  }
  return {
    v: 1,
    packs: o.packs.map((p: unknown) => {
      const pp = p as { id?: unknown; blobs?: unknown };
      if (!pp || typeof pp.id !== 'string' || !HEX64.test(pp.id) || !Array.isArray(pp.blobs)) {
        throw new IntegrityError(`index ${name}: malformed pack entry`);
      }
      return { id: pp.id, blobs: pp.blobs.map((b: unknown) => validatePackBlob(b, `index ${name}, pack ${pp.id}`)) };
    }),
  };
}

/** The in-memory master index: every blob id the repository holds and where. */
export class MasterIndex {
  private readonly entries = new Map<string, IndexEntry>();
  /**
   * Entries refused at load because they are impossible under the format limits
   * (blob id -> pack and reason). They are not usable; reading such a blob fails
   * with the reason, and `check` reports them.
   */
  readonly rejected = new Map<string, { pack: string; reason: string }>();
  /** index file name -> packs it lists (for check/prune) */
  readonly files = new Map<string, IndexFilePack[]>();

  get size(): number {
    return this.entries.size;
  }

  has(id: string): boolean {
    return this.entries.has(id);
  }

  get(id: string): IndexEntry | undefined {
    return this.entries.get(id);
  }

  ids(): IterableIterator<string> {
    return this.entries.keys();
  }

  values(): IterableIterator<[string, IndexEntry]> {
    return this.entries.entries();
  }

  /** Delta bases referenced by an entry but not (yet) in the index. */
  private readonly missingBases = new Set<string>();

  /** Add a pack's entries. `deferDepths`: the caller runs computeDepths() once after a bulk load. */
  addPack(pack: string, blobs: PackBlob[], deferDepths = false): void {
    let recompute = false;
    for (const b of blobs) {
      if (this.entries.has(b.id)) continue;
      const problem = blobEntryProblem(b);
      if (problem) {
        if (!this.rejected.has(b.id)) this.rejected.set(b.id, { pack, reason: `index entry for blob ${b.id} in pack ${pack}: ${problem}` });
        continue;
      }
      this.rejected.delete(b.id); // another copy of the blob is usable
      const e: IndexEntry = {
        pack,
        type: b.type,
        offset: b.offset,
        length: b.length,
        rawLength: b.rawLength,
        compression: b.compression,
        depth: 0,
      };
      if (b.sf) e.sf = b.sf;
      if (b.base) {
        e.base = b.base;
        if (b.base2) e.base2 = b.base2;
        e.depth = Math.max(...basesOf(b).map((x) => (x === b.id ? Infinity : (this.entries.get(x)?.depth ?? 0)))) + 1;
        for (const x of basesOf(b)) if (!this.entries.has(x) && x !== b.id) this.missingBases.add(x);
      }
      this.entries.set(b.id, e);
      // An earlier entry used this blob as a base before it was known: depths (and cycles) must be recomputed.
      if (this.missingBases.delete(b.id)) recompute = true;
    }
    if (recompute && !deferDepths) this.computeDepths();
  }

  /** Forget everything (before re-reading the index files). */
  clear(): void {
    this.entries.clear();
    this.missingBases.clear();
    this.rejected.clear();
    this.files.clear();
  }

  /** Add an index file's packs; call computeDepths() after the last one. */
  addFile(name: string, file: IndexFile): void {
    this.files.set(name, file.packs);
    for (const p of file.packs) this.addPack(p.id, p.blobs, true);
  }

  /**
   * Compute delta depths once all entries are known, without recursion: a
   * topological pass from the full blobs up. A missing base counts as depth 0
   * (reading the blob reports it missing). Entries left over sit on a cycle, or
   * build on one: their depth is Infinity.
   */
  computeDepths(): void {
    const waiting = new Map<string, number>(); // delta id -> bases not yet resolved
    const dependents = new Map<string, string[]>(); // base id -> deltas that use it
    const ready: string[] = [];
    this.missingBases.clear();
    for (const [id, e] of this.entries) {
      e.depth = 0;
      let n = 0;
      for (const b of new Set(basesOf(e))) {
        if (!this.entries.has(b)) {
          this.missingBases.add(b);
          continue;
        }
        n++;
        const d = dependents.get(b);
        if (d) d.push(id);
        else dependents.set(b, [id]);
      }
      if (n === 0) ready.push(id);
      else waiting.set(id, n);
    }
    while (ready.length > 0) {
      const id = ready.pop()!;
      const e = this.entries.get(id)!;
      if (e.base) e.depth += 1; // a delta: one more than its deepest base (accumulated below)
      for (const dep of dependents.get(id) ?? []) {
        const de = this.entries.get(dep)!;
        de.depth = Math.max(de.depth, e.depth);
        const left = waiting.get(dep)! - 1;
        if (left === 0) {
          waiting.delete(dep);
          ready.push(dep);
        } else waiting.set(dep, left);
      }
    }
    for (const id of waiting.keys()) this.entries.get(id)!.depth = Infinity;
  }

  /**
   * Why the delta chain of a blob cannot be read, or undefined when it is within
   * the format limit: a cycle, or deeper than MAX_DELTA_DEPTH.
   */
  chainProblem(id: string): string | undefined {
    const e = this.entries.get(id);
    if (!e || e.depth <= MAX_DELTA_DEPTH) return undefined;
    if (e.depth === Infinity) {
      // Name the loop: follow bases until one repeats (bounded by the number of entries).
      const seen: string[] = [];
      let cur: string | undefined = id;
      const onLoop = new Set<string>();
      while (cur && !onLoop.has(cur) && seen.length <= this.entries.size) {
        onLoop.add(cur);
        seen.push(cur);
        const ce: IndexEntry | undefined = this.entries.get(cur);
        cur = ce ? basesOf(ce).find((b) => this.entries.get(b)?.depth === Infinity) : undefined;
      }
      const start = cur ? seen.indexOf(cur) : -1;
      const loop = start >= 0 ? seen.slice(start) : seen;
      return `delta chain of blob ${id} loops back on itself (cycle in the index: ${loop.slice(0, 4).join(' -> ')}${loop.length > 4 ? ' -> ...' : ''} -> ${loop[0]})`;
    }
    return `delta chain of blob ${id} is ${e.depth} deep, more than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`;
  }

  /** Packs referenced by the index with the total length of their blobs. */
  packs(): Map<string, { blobs: number; bytes: number }> {
    const out = new Map<string, { blobs: number; bytes: number }>();
    for (const e of this.entries.values()) {
      const p = out.get(e.pack) ?? { blobs: 0, bytes: 0 };
      p.blobs++;
      p.bytes += e.length;
      out.set(e.pack, p);
    }
    return out;
  }
}
