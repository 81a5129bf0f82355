import type { Compression } from '../repo/pack.js';

/**
 * The pack plan of a restore batch: restore reads the files of a snapshot in
 * bounded batches, and for each batch reads each pack it needs once, in a few
 * coalesced ranged reads, handing every blob to each file position that needs
 * it (a blob shared by several files, or used twice in one, is read and
 * decoded once per batch). Pure functions: the restorer (restore-batch.ts)
 * does the reading, checking and writing.
 */

/** One place a blob goes: chunk `chunk` of file `file` of the batch. */
export interface BlobUse {
  file: number;
  chunk: number;
}

/** Where a full blob lies (Repository.fullBlobLocation). */
export interface BlobLocation {
  pack: string;
  offset: number;
  length: number;
  compression: Compression;
  rawLength: number;
}

export interface PlannedBlob extends BlobLocation {
  id: string;
  uses: BlobUse[];
}

export interface PackPlan {
  pack: string;
  /** By offset. */
  blobs: PlannedBlob[];
}

export interface BatchPlan {
  /** Packs in the order the batch first needs them. */
  packs: PackPlan[];
  /** Blobs that are not full blobs at a known place (deltas, unknown or refused entries): loaded one by one. */
  loose: Array<{ id: string; uses: BlobUse[] }>;
}

/** Group the chunks of a batch's files (content lists, in batch order) by blob, then by pack. */
export function planBatch(files: ReadonlyArray<readonly string[]>, locate: (id: string) => BlobLocation | undefined): BatchPlan {
  const byId = new Map<string, PlannedBlob | { id: string; uses: BlobUse[] }>();
  const packs = new Map<string, PackPlan>();
  const loose: Array<{ id: string; uses: BlobUse[] }> = [];
  for (let f = 0; f < files.length; f++) {
    const content = files[f]!;
    for (let c = 0; c < content.length; c++) {
      const id = content[c]!;
      let b = byId.get(id);
      if (!b) {
        const loc = locate(id);
        if (loc) {
          const pb: PlannedBlob = { id, pack: loc.pack, offset: loc.offset, length: loc.length, compression: loc.compression, rawLength: loc.rawLength, uses: [] };
          let p = packs.get(loc.pack);
          if (!p) packs.set(loc.pack, (p = { pack: loc.pack, blobs: [] }));
          p.blobs.push(pb);
          b = pb;
        } else {
          b = { id, uses: [] };
          loose.push(b);
        }
        byId.set(id, b);
      }
      b.uses.push({ file: f, chunk: c });
    }
  }
  const out = [...packs.values()];
  for (const p of out) p.blobs.sort((a, b) => a.offset - b.offset || a.length - b.length);
  return { packs: out, loose };
}

/** One ranged read of a pack: [start, end) holds every listed blob whole. */
export interface PackRead {
  start: number;
  end: number;
  blobs: PlannedBlob[];
}

/**
 * Coalesce a pack's needed blobs (by offset) into ranged reads: a read grows
 * while the gap to the next blob is at most `maxGap` bytes (read and thrown
 * away: cheaper than another request), the read stays within `maxRange` bytes
 * and its blobs' plaintext within `maxRaw`. A single blob larger than the
 * bounds is a read of its own.
 */
export function coalesceReads(blobs: readonly PlannedBlob[], maxRange: number, maxGap: number, maxRaw: number): PackRead[] {
  const reads: PackRead[] = [];
  let cur: (PackRead & { raw: number }) | undefined;
  for (const b of blobs) {
    const end = b.offset + b.length;
    if (cur && b.offset - cur.end <= maxGap && Math.max(cur.end, end) - cur.start <= maxRange && cur.raw + b.rawLength <= maxRaw) {
      cur.blobs.push(b);
      cur.end = Math.max(cur.end, end);
      cur.raw += b.rawLength;
      continue;
    }
    if (cur) reads.push({ start: cur.start, end: cur.end, blobs: cur.blobs });
    cur = { start: b.offset, end, blobs: [b], raw: b.rawLength };
  }
  if (cur) reads.push({ start: cur.start, end: cur.end, blobs: cur.blobs });
  return reads;
}

/**
 * The bound of one batch: at most `maxFiles` files (each holds a temporary
 * file open until its last chunk is written) and `maxChunks` chunk positions
 * (the plan's memory). A file is always accepted into an empty batch, however
 * many chunks it has.
 */
export class BatchBound {
  files = 0;
  chunks = 0;
  constructor(
    readonly maxFiles: number,
    readonly maxChunks: number,
  ) {}

  accepts(chunks: number): boolean {
    return this.files === 0 || (this.files < this.maxFiles && this.chunks + chunks <= this.maxChunks);
  }

  add(chunks: number): void {
    this.files++;
    this.chunks += chunks;
  }

  reset(): void {
    this.files = 0;
    this.chunks = 0;
  }
}
