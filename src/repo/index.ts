import { IntegrityError } from '../errors.js';
import { type BlobType, type Compression, type PackBlob, basesOf, validatePackBlob } from './pack.js';

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
  /** Delta chain depth: 0 for a full blob, base depth + 1 for a delta. */
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

  addPack(pack: string, blobs: PackBlob[]): void {
    for (const b of blobs) {
      if (this.entries.has(b.id)) continue;
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
        e.depth = Math.max(...basesOf(b).map((x) => this.entries.get(x)?.depth ?? 0)) + 1;
      }
      this.entries.set(b.id, e);
    }
  }

  /** Forget everything (before re-reading the index files). */
  clear(): void {
    this.entries.clear();
    this.files.clear();
  }

  addFile(name: string, file: IndexFile): void {
    this.files.set(name, file.packs);
    for (const p of file.packs) this.addPack(p.id, p.blobs);
  }

  /** Compute delta depths once all entries are known. Missing bases leave depth = Infinity-safe large number. */
  computeDepths(): void {
    const memo = new Map<string, number>();
    const depthOf = (id: string, guard: number): number => {
      const known = memo.get(id);
      if (known !== undefined) return known;
      const e = this.entries.get(id);
      if (!e || !e.base) {
        memo.set(id, 0);
        return 0;
      }
      if (guard > 64) return 64; // cycle or absurd chain; check reports it
      const d = Math.max(...basesOf(e).map((x) => depthOf(x, guard + 1))) + 1;
      memo.set(id, d);
      return d;
    };
    for (const [id, e] of this.entries) e.depth = depthOf(id, 0);
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
