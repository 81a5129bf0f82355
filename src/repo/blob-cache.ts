/**
 * A byte-bounded LRU cache of decoded blob plaintexts (trees, and delta bases
 * while a chain is resolved). Each entry records whether its keyed hash was
 * checked: a delta base decoded only to serve as a dictionary is kept
 * unchecked (the blob built on it is checked, which catches a wrong base) and
 * must be hashed before it is handed out as a blob in its own right.
 *
 * Memory: at most `maxBytes` of plaintext; an entry larger than a quarter of
 * the bound is not kept.
 */
export interface CachedBlob {
  data: Buffer;
  /** The keyed hash of `data` was checked against the blob's id. */
  verified: boolean;
}

export class BlobCache {
  private readonly map = new Map<string, CachedBlob>();
  private used = 0;
  constructor(readonly maxBytes: number) {}

  get bytes(): number {
    return this.used;
  }

  get size(): number {
    return this.map.size;
  }

  get(id: string): CachedBlob | undefined {
    const v = this.map.get(id);
    if (v !== undefined) {
      this.map.delete(id);
      this.map.set(id, v);
    }
    return v;
  }

  /** A plaintext of this many bytes would be kept (set() refuses one larger than a quarter of the bound). */
  keeps(bytes: number): boolean {
    return bytes <= this.maxBytes / 4;
  }

  /** Keep a blob; a verified entry is never downgraded by an unverified one with the same id. */
  set(id: string, data: Buffer, verified: boolean): void {
    if (!this.keeps(data.length)) return;
    const old = this.map.get(id);
    if (old) {
      if (old.verified && !verified) {
        this.get(id);
        return;
      }
      this.used -= old.data.length;
      this.map.delete(id);
    }
    this.map.set(id, { data, verified });
    this.used += data.length;
    while (this.used > this.maxBytes) {
      const first = this.map.keys().next().value as string;
      this.used -= this.map.get(first)!.data.length;
      this.map.delete(first);
    }
  }

  /** Mark an entry as checked (after its hash was computed and matched). */
  markVerified(id: string): void {
    const v = this.map.get(id);
    if (v) v.verified = true;
  }

  delete(id: string): void {
    const v = this.map.get(id);
    if (!v) return;
    this.used -= v.data.length;
    this.map.delete(id);
  }

  /** Drop every unverified entry (after a chain failed its final check). */
  dropUnverified(): void {
    for (const [id, v] of this.map) if (!v.verified) this.delete(id);
  }

  clear(): void {
    this.map.clear();
    this.used = 0;
  }
}

/**
 * Repository's read cache: trees and data blobs (delta bases) in BlobCaches of their own, so the
 * bases a delta chain keeps cannot push the trees out and hold no more than their own bound
 * (restore of a dump's day 3: 32 MiB of cached bases were ~50 MB more peak RSS than 4 MiB, for no
 * CPU time saved now that the chains decode in C: bench/results/rss6.md).
 */
export class ReadCache {
  readonly trees: BlobCache;
  readonly data: BlobCache;
  constructor(treeBytes: number, dataBytes: number) {
    this.trees = new BlobCache(treeBytes);
    this.data = new BlobCache(dataBytes);
  }

  /** Entries held, trees and data blobs. */
  get size(): number {
    return this.trees.size + this.data.size;
  }

  get bytes(): number {
    return this.trees.bytes + this.data.bytes;
  }

  get(id: string): CachedBlob | undefined {
    return this.trees.get(id) ?? this.data.get(id);
  }

  set(id: string, data: Buffer, verified: boolean, tree: boolean): void {
    (tree ? this.trees : this.data).set(id, data, verified);
  }

  /** A data blob's plaintext of this many bytes would be kept. */
  keepsData(bytes: number): boolean {
    return this.data.keeps(bytes);
  }

  markVerified(id: string): void {
    this.trees.markVerified(id);
    this.data.markVerified(id);
  }

  dropUnverified(): void {
    this.trees.dropUnverified();
    this.data.dropUnverified();
  }

  clear(): void {
    this.trees.clear();
    this.data.clear();
  }
}
