import { IntegrityError } from '../errors.js';
import { decodeHexId, isHexId } from './hex-id.js';
import type { IndexScan } from './index-scan.js';
import { type BlobType, type Compression, type PackBlob, MAX_DELTA_DEPTH, basesOf, blobEntryProblem, checkPackBlob } from './pack.js';

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

/**
 * Check a parsed index file, in place: every entry is checked (a malformed one
 * refuses the whole file, before any of it is used), nothing is copied. The
 * result is the parsed object itself; readers use only the fields of IndexFile.
 */
export function validateIndexFile(x: unknown, name: string): IndexFile {
  const o = x as { v?: unknown; packs?: unknown };
  if (!o || typeof o !== 'object' || o.v !== 1 || !Array.isArray(o.packs)) {
    throw new IntegrityError(`index ${name}: unsupported or malformed index file`);
  }
  const packs: unknown[] = o.packs;
  for (let i = 0; i < packs.length; i++) {
    const pp = packs[i] as { id?: unknown; blobs?: unknown };
    if (!pp || !isHexId(pp.id) || !Array.isArray(pp.blobs)) {
      throw new IntegrityError(`index ${name}: malformed pack entry`);
    }
    const blobs: unknown[] = pp.blobs;
    const where = `index ${name}, pack ${pp.id}`;
    for (let j = 0; j < blobs.length; j++) checkPackBlob(blobs[j], where);
  }
  return o as IndexFile;
}

/**
 * The in-memory master index: every blob id the repository holds and where.
 *
 * Compact representation (the on-disk index files are unchanged, see
 * docs/format.md "Index files"): one slot per blob in parallel typed-array
 * columns, grown in fixed blocks (no doubling slack, no copy on growth):
 *   id 32 B | pack number 4 B | offset 4 B | length 4 B | rawLength 4 B |
 *   flags 1 B | depth 4 B | extra 4 B                          = 57 B per blob
 * plus an open-addressing hash table of slot numbers (4 B × 2–4 slots per blob,
 * load factor at most 1/2) = 65–73 B per blob. Pack ids are stored once per
 * pack. Delta bases and resemblance sketches (only blobs of at least 4 KiB /
 * 64 KiB) live in a side table referenced by `extra`. A lookup hashes the
 * 32-byte id (already a uniformly distributed keyed hash) into the table and
 * compares 32 bytes; get() materialises an IndexEntry object on demand.
 */
const BLOCK_BITS = 16;
const BLOCK = 1 << BLOCK_BITS;
const MASK = BLOCK - 1;
const DEPTH_INFINITE = 0xffffffff;
const F_TREE = 4; // flags: bits 0-1 compression, bit 2 tree

interface Block {
  ids: Buffer;
  /** The same memory as ids, 8 words per id (compared word by word). */
  ids32: Int32Array;
  pack: Uint32Array;
  offset: Uint32Array;
  length: Uint32Array;
  rawLength: Uint32Array;
  flags: Uint8Array;
  depth: Uint32Array;
  extra: Int32Array;
}

interface Extra {
  base?: string;
  base2?: string;
  sf?: number[];
}

const XREC_BITS = 14; // records per chunk of the extra table
const XSF_BITS = 16; // sketch words per chunk
const XID_BITS = 12; // base ids per chunk
const X_SF = 1; // record flags: has a sketch, a base, a second base
const X_BASE = 2;
const X_BASE2 = 4;

const HEX_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[48 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[97 + i] = 10 + i;

/** Decode a 64-digit lowercase hex id into out[off..off+32); false when `s` is not one (out partly written). */
function hexInto(s: string, out: Buffer, off: number): boolean {
  if (s.length !== 64) return false;
  for (let i = 0; i < 32; i++) {
    const a = s.charCodeAt(2 * i);
    const b = s.charCodeAt(2 * i + 1);
    const hi = a < 128 ? HEX_VALUE[a]! : -1;
    const lo = b < 128 ? HEX_VALUE[b]! : -1;
    if ((hi | lo) < 0) return false;
    out[off + i] = (hi << 4) | lo;
  }
  return true;
}

/**
 * The sketches and delta bases of the blobs that have them, in typed-array
 * chunks (allocated as filled, never copied): per blob a 16-byte record, the
 * sketch as 4 bytes per feature and each base id as 32 bytes: 96 B for a
 * delta with a 12-feature sketch (a daily big stream adds one per MiB), where
 * an object holding a number array and a hex string took ~270 B. An entry
 * that does not fit (not possible for checked entries: sketch values are
 * uint32, ids 64 lowercase hex digits) is kept as an object.
 */
class ExtraTable {
  private readonly recs: Uint32Array[] = [];
  private count = 0;
  private readonly sfs: Uint32Array[] = [];
  private sfUsed = 1 << XSF_BITS;
  private readonly ids: Buffer[] = [];
  private idUsed = 1 << XID_BITS;
  private readonly odd = new Map<number, Extra>();

  get size(): number {
    return this.count;
  }

  /** A new record (its number, 0-based), zeroed. */
  private newRecord(): number {
    const x = this.count++;
    if ((x & ((1 << XREC_BITS) - 1)) === 0) this.recs.push(new Uint32Array(4 << XREC_BITS));
    const rec = this.recs[x >>> XREC_BITS]!;
    const r = (x & ((1 << XREC_BITS) - 1)) * 4;
    rec[r] = rec[r + 1] = rec[r + 2] = rec[r + 3] = 0;
    return x;
  }

  /** Room for n sketch words in the last chunk (a new chunk when they do not fit); the position in it. */
  private sfRoom(n: number): number {
    if (this.sfUsed + n > 1 << XSF_BITS) {
      this.sfs.push(new Uint32Array(1 << XSF_BITS));
      this.sfUsed = 0;
    }
    return this.sfUsed;
  }

  /** Room for n base ids in the last chunk (a new chunk when they do not fit); the position in it. */
  private idRoom(n: number): number {
    if (this.idUsed + n > 1 << XID_BITS) {
      this.ids.push(Buffer.alloc(32 << XID_BITS));
      this.idUsed = 0;
    }
    return this.idUsed;
  }

  /** Point record x at the sketch words and base ids just written at sfPos / idPos, and count them as used. */
  private commit(x: number, sfLen: number, sfPos: number, bases: number, idPos: number, hasSf: boolean): void {
    const rec = this.recs[x >>> XREC_BITS]!;
    const r = (x & ((1 << XREC_BITS) - 1)) * 4;
    let flags = 0;
    if (hasSf) {
      rec[r] = (this.sfs.length - 1) * (1 << XSF_BITS) + sfPos;
      this.sfUsed += sfLen;
      flags |= X_SF | (sfLen << 8);
    }
    if (bases > 0) {
      rec[r + 2] = (this.ids.length - 1) * (1 << XID_BITS) + idPos;
      this.idUsed += bases;
      flags |= X_BASE | (bases === 2 ? X_BASE2 : 0);
    }
    rec[r + 1] = flags;
  }

  /** Store an entry's extra fields; returns its number (1-based). */
  add(sf: readonly number[] | undefined, base: string | undefined, base2: string | undefined): number {
    const x = this.newRecord();
    // One pass: copy and check at once (checked entries always fit; anything else is kept as an object).
    let sfPos = 0;
    let fits = true;
    if (sf) {
      if (sf.length > 16) fits = false;
      else {
        sfPos = this.sfRoom(sf.length);
        const sfChunk = this.sfs[this.sfs.length - 1]!;
        for (let i = 0; i < sf.length; i++) {
          const v = sf[i]!;
          if (v >>> 0 !== v) {
            fits = false;
            break;
          }
          sfChunk[sfPos + i] = v;
        }
      }
    }
    let idPos = 0;
    if (fits && base) {
      idPos = this.idRoom(base2 ? 2 : 1);
      const chunk = this.ids[this.ids.length - 1]!;
      fits = hexInto(base, chunk, idPos * 32) && (!base2 || hexInto(base2, chunk, idPos * 32 + 32));
    }
    if (!fits) {
      // nothing was reserved: the words and ids written above are overwritten by the next entry
      const o: Extra = {};
      if (sf) o.sf = [...sf];
      if (base) o.base = base;
      if (base2) o.base2 = base2;
      this.odd.set(x, o);
      return x + 1;
    }
    this.commit(x, sf ? sf.length : 0, sfPos, base ? (base2 ? 2 : 1) : 0, idPos, !!sf);
    return x + 1;
  }

  /**
   * add() from columns (index-scan.ts): sfLen words of `sf` from sfAt (sfLen 0: no
   * sketch), `bases` ids (0-2) of 32 bytes in `ids` from idAt. Returns the number (1-based).
   */
  addRaw(sf: Uint32Array, sfAt: number, sfLen: number, ids: Buffer, idAt: number, bases: number): number {
    const x = this.newRecord();
    let sfPos = 0;
    if (sfLen > 0) {
      sfPos = this.sfRoom(sfLen);
      this.sfs[this.sfs.length - 1]!.set(sf.subarray(sfAt, sfAt + sfLen), sfPos);
    }
    let idPos = 0;
    if (bases > 0) {
      idPos = this.idRoom(bases);
      ids.copy(this.ids[this.ids.length - 1]!, idPos * 32, idAt * 32, (idAt + bases) * 32);
    }
    this.commit(x, sfLen, sfPos, bases, idPos, sfLen > 0);
    return x + 1;
  }

  private flagsOf(x: number): number {
    return this.recs[(x - 1) >>> XREC_BITS]![((x - 1) & ((1 << XREC_BITS) - 1)) * 4 + 1]!;
  }

  /** Does extra `x` (1-based) name a delta base? */
  hasBase(x: number): boolean {
    const o = this.odd.size > 0 ? this.odd.get(x - 1) : undefined;
    return o ? !!o.base : (this.flagsOf(x) & X_BASE) !== 0;
  }

  /** Copy base `which` (0 or 1) of extra `x` into `out` (32 bytes); false when it has no such base or it is kept as an object. */
  baseInto(x: number, which: 0 | 1, out: Buffer): boolean {
    const f = this.flagsOf(x);
    if (!(f & (which === 0 ? X_BASE : X_BASE2)) || (this.odd.size > 0 && this.odd.has(x - 1))) return false;
    const pos = this.recs[(x - 1) >>> XREC_BITS]![((x - 1) & ((1 << XREC_BITS) - 1)) * 4 + 2]! + which;
    const o = (pos & ((1 << XID_BITS) - 1)) * 32;
    this.ids[pos >>> XID_BITS]!.copy(out, 0, o, o + 32);
    return true;
  }

  /** The fields of extra `x` (1-based), as fresh objects. */
  get(x: number): Extra {
    const odd = this.odd.size > 0 ? this.odd.get(x - 1) : undefined;
    if (odd) {
      const o: Extra = {};
      if (odd.sf) o.sf = [...odd.sf];
      if (odd.base) o.base = odd.base;
      if (odd.base2) o.base2 = odd.base2;
      return o;
    }
    const rec = this.recs[(x - 1) >>> XREC_BITS]!;
    const r = ((x - 1) & ((1 << XREC_BITS) - 1)) * 4;
    const f = rec[r + 1]!;
    const o: Extra = {};
    if (f & X_SF) {
      const pos = rec[r]!;
      const off = pos & ((1 << XSF_BITS) - 1);
      o.sf = Array.from(this.sfs[pos >>> XSF_BITS]!.subarray(off, off + (f >>> 8)));
    }
    if (f & X_BASE) {
      const pos = rec[r + 2]!;
      const chunk = this.ids[pos >>> XID_BITS]!;
      const off = (pos & ((1 << XID_BITS) - 1)) * 32;
      o.base = chunk.toString('hex', off, off + 32);
      if (f & X_BASE2) o.base2 = chunk.toString('hex', off + 32, off + 64);
    }
    return o;
  }
}

function newBlock(): Block {
  const ids = new ArrayBuffer(BLOCK * 32);
  return {
    ids: Buffer.from(ids),
    ids32: new Int32Array(ids),
    pack: new Uint32Array(BLOCK),
    offset: new Uint32Array(BLOCK),
    length: new Uint32Array(BLOCK),
    rawLength: new Uint32Array(BLOCK),
    flags: new Uint8Array(BLOCK),
    depth: new Uint32Array(BLOCK),
    extra: new Int32Array(BLOCK),
  };
}

export class MasterIndex {
  private blocks: Block[] = [];
  /** Blocks of the index before clear(), reused as it is filled again (reloadIndex does not need twice the memory). */
  private spare: Block[] = [];
  private count = 0;
  /** Hash table: slot + 1, 0 = empty. Capacity a power of two, at least twice the count. */
  private table = new Uint32Array(1024);
  private readonly packIds: string[] = [];
  private readonly packNumbers = new Map<string, number>();
  private extras = new ExtraTable();
  private readonly keyMem = new ArrayBuffer(32);
  private readonly key = Buffer.from(this.keyMem);
  private readonly key32 = new Int32Array(this.keyMem);
  private gen = 0;
  /**
   * Entries refused at load because they are impossible under the format limits
   * (blob id -> pack and reason). They are not usable; reading such a blob fails
   * with the reason, and `check` reports them.
   */
  readonly rejected = new Map<string, { pack: string; reason: string }>();
  /** index file name -> ids of the packs it lists (for check/prune, repair) */
  readonly files = new Map<string, string[]>();
  /** Delta bases referenced by an entry but not (yet) in the index. */
  private readonly missingBases = new Set<string>();

  get size(): number {
    return this.count;
  }

  /** Bytes held by the compact structures (for the benchmarks' bytes-per-blob figure). */
  get memoryBytes(): number {
    return (this.blocks.length + this.spare.length) * BLOCK * 57 + this.table.byteLength;
  }

  /** The slot of a blob id, or -1. `id` must be 64 lowercase hex digits to be found. */
  private find(id: string): number {
    if (!decodeHexId(id, this.key)) return -1;
    return this.findKey();
  }

  /** The slot of the id in this.key, or -1. */
  private findKey(): number {
    const k = this.key32;
    const t = this.table;
    const m = t.length - 1;
    let h = k[0]! & m;
    for (;;) {
      const s = t[h]!;
      if (s === 0) return -1;
      const slot = s - 1;
      const w = this.blocks[slot >>> BLOCK_BITS]!.ids32;
      const o = (slot & MASK) * 8;
      if (
        w[o] === k[0] &&
        w[o + 1] === k[1] &&
        w[o + 2] === k[2] &&
        w[o + 3] === k[3] &&
        w[o + 4] === k[4] &&
        w[o + 5] === k[5] &&
        w[o + 6] === k[6] &&
        w[o + 7] === k[7]
      ) {
        return slot;
      }
      h = (h + 1) & m;
    }
  }

  private grow(): void {
    const t = new Uint32Array(this.table.length * 2);
    const m = t.length - 1;
    for (let slot = 0; slot < this.count; slot++) {
      const b = this.blocks[slot >>> BLOCK_BITS]!;
      let h = b.ids32[(slot & MASK) * 8]! & m;
      while (t[h] !== 0) h = (h + 1) & m;
      t[h] = slot + 1;
    }
    this.table = t;
  }

  has(id: string): boolean {
    return this.find(id) >= 0;
  }

  /**
   * Slot of a blob (0 <= slot < size), or -1. Slots are stable until clear():
   * `generation` changes then, so holders of slot numbers can tell.
   */
  slotOf(id: string): number {
    return this.find(id);
  }

  /** Changes on every clear() (slot numbers become meaningless). */
  get generation(): number {
    return this.gen;
  }

  /** Pack number of a slot (0 <= n < packCount), see packName(). */
  packNoAt(slot: number): number {
    return this.blocks[slot >>> BLOCK_BITS]!.pack[slot & MASK]!;
  }

  /** Sealed length of the blob in a slot. */
  lengthAt(slot: number): number {
    return this.blocks[slot >>> BLOCK_BITS]!.length[slot & MASK]!;
  }

  get packCount(): number {
    return this.packIds.length;
  }

  packName(no: number): string {
    return this.packIds[no]!;
  }

  /** Id of the blob in a slot (0 <= slot < size). */
  idAt(slot: number): string {
    const o = (slot & MASK) * 32;
    return this.blocks[slot >>> BLOCK_BITS]!.ids.toString('hex', o, o + 32);
  }

  private depthAt(slot: number): number {
    const d = this.blocks[slot >>> BLOCK_BITS]!.depth[slot & MASK]!;
    return d === DEPTH_INFINITE ? Infinity : d;
  }

  private setDepth(slot: number, d: number): void {
    this.blocks[slot >>> BLOCK_BITS]!.depth[slot & MASK] = d >= DEPTH_INFINITE ? DEPTH_INFINITE : d;
  }

  private extraAt(slot: number): Extra | undefined {
    const x = this.blocks[slot >>> BLOCK_BITS]!.extra[slot & MASK]!;
    return x > 0 ? this.extras.get(x) : undefined;
  }

  /** Is the blob in a slot a delta? */
  private isDeltaAt(slot: number): boolean {
    const x = this.blocks[slot >>> BLOCK_BITS]!.extra[slot & MASK]!;
    return x > 0 && this.extras.hasBase(x);
  }

  /** `e` with the sketch and delta bases of the blob in a slot, if it has any. */
  private withExtra<T extends { sf?: number[]; base?: string; base2?: string }>(e: T, slot: number): T {
    const x = this.extraAt(slot);
    if (x) {
      if (x.sf) e.sf = x.sf;
      if (x.base) e.base = x.base;
      if (x.base2) e.base2 = x.base2;
    }
    return e;
  }

  /** Entry of the blob in a slot (0 <= slot < size). */
  entryAt(slot: number): IndexEntry {
    const b = this.blocks[slot >>> BLOCK_BITS]!;
    const i = slot & MASK;
    const f = b.flags[i]!;
    const e: IndexEntry = {
      pack: this.packIds[b.pack[i]!]!,
      type: f & F_TREE ? 'tree' : 'data',
      offset: b.offset[i]!,
      length: b.length[i]!,
      rawLength: b.rawLength[i]!,
      compression: (f & 3) as Compression,
      depth: b.depth[i] === DEPTH_INFINITE ? Infinity : b.depth[i]!,
    };
    return this.withExtra(e, slot);
  }

  /** The pack-header / index-file entry of the blob in a slot (as written in an index file), built straight from the columns. */
  packBlobAt(slot: number): PackBlob {
    const b = this.blocks[slot >>> BLOCK_BITS]!;
    const i = slot & MASK;
    const f = b.flags[i]!;
    const e: PackBlob = {
      id: this.idAt(slot),
      type: f & F_TREE ? 'tree' : 'data',
      offset: b.offset[i]!,
      length: b.length[i]!,
      rawLength: b.rawLength[i]!,
      compression: (f & 3) as Compression,
    };
    return this.withExtra(e, slot);
  }

  /** A copy of the entry of a blob (changing it does not change the index). */
  get(id: string): IndexEntry | undefined {
    const s = this.find(id);
    return s < 0 ? undefined : this.entryAt(s);
  }

  /** The pack holding a blob (cheaper than get()). */
  packOf(id: string): string | undefined {
    const s = this.find(id);
    return s < 0 ? undefined : this.packIds[this.blocks[s >>> BLOCK_BITS]!.pack[s & MASK]!];
  }

  *ids(): IterableIterator<string> {
    for (let s = 0; s < this.count; s++) yield this.idAt(s);
  }

  /** Every entry (materialised one at a time: memory stays flat while iterating). */
  *values(): IterableIterator<[string, IndexEntry]> {
    for (let s = 0; s < this.count; s++) yield [this.idAt(s), this.entryAt(s)];
  }

  /** Ids and entries of the delta blobs. */
  *deltas(): IterableIterator<[string, IndexEntry]> {
    for (let s = 0; s < this.count; s++) if (this.isDeltaAt(s)) yield [this.idAt(s), this.entryAt(s)];
  }

  /** Ids and entries of the blobs the index places in one pack. */
  *inPack(pack: string): IterableIterator<[string, IndexEntry]> {
    const p = this.packNumbers.get(pack);
    if (p === undefined) return;
    for (let s = 0; s < this.count; s++) if (this.blocks[s >>> BLOCK_BITS]!.pack[s & MASK] === p) yield [this.idAt(s), this.entryAt(s)];
  }

  private packNumber(pack: string): number {
    let n = this.packNumbers.get(pack);
    if (n === undefined) {
      n = this.packIds.length;
      this.packIds.push(pack);
      this.packNumbers.set(pack, n);
    }
    return n;
  }

  /**
   * Add a pack's entries. `deferDepths`: the caller runs computeDepths() once after a bulk load.
   * `slots` (as long as `blobs`): set to each entry's slot, or -1 where the entry was not added
   * (the blob is in the index already, or its entry was refused).
   */
  addPack(pack: string, blobs: PackBlob[], deferDepths = false, slots?: Int32Array): void {
    let recompute = false;
    let packNo = -1;
    const k = this.key;
    for (let j = 0; j < blobs.length; j++) {
      const b = blobs[j]!;
      if (slots) slots[j] = -1;
      if (!decodeHexId(b.id, k)) throw new IntegrityError(`index entry in pack ${pack}: bad blob id`);
      if (this.findKey() >= 0) continue;
      const problem = blobEntryProblem(b);
      if (problem) {
        if (!this.rejected.has(b.id)) this.rejected.set(b.id, { pack, reason: `index entry for blob ${b.id} in pack ${pack}: ${problem}` });
        continue;
      }
      if (this.rejected.size > 0) this.rejected.delete(b.id); // another copy of the blob is usable
      if (packNo < 0) packNo = this.packNumber(pack);
      const extra = b.sf || b.base ? this.extras.add(b.sf, b.base || undefined, b.base ? b.base2 || undefined : undefined) : 0;
      const slot = this.insertKey(packNo, b.offset, b.length, b.rawLength, (b.compression & 3) | (b.type === 'tree' ? F_TREE : 0), extra);
      if (slots) slots[j] = slot;
      if (b.base && !deferDepths) {
        let d = 0;
        for (const x of basesOf(b)) {
          if (x === b.id) d = Infinity;
          else {
            const bs = this.find(x);
            if (bs < 0) this.missingBases.add(x);
            else d = Math.max(d, this.depthAt(bs));
          }
        }
        this.setDepth(slot, d + 1);
      }
      // An earlier entry used this blob as a base before it was known: depths (and cycles) must be recomputed.
      if (this.missingBases.delete(b.id)) recompute = true;
    }
    if (recompute && !deferDepths) this.computeDepths();
  }

  /** A new slot for the blob whose id is in this.key (not in the index yet), filled and in the hash table. */
  private insertKey(packNo: number, offset: number, length: number, rawLength: number, flags: number, extra: number): number {
    if ((this.count + 1) * 2 > this.table.length) this.grow();
    const slot = this.count;
    if ((slot & MASK) === 0) this.blocks.push(this.spare.pop() ?? newBlock());
    const blk = this.blocks[slot >>> BLOCK_BITS]!;
    const i = slot & MASK;
    blk.ids32.set(this.key32, i * 8);
    blk.pack[i] = packNo;
    blk.offset[i] = offset;
    blk.length[i] = length;
    blk.rawLength[i] = rawLength;
    blk.flags[i] = flags;
    blk.depth[i] = 0;
    blk.extra[i] = extra;
    const t = this.table;
    const m = t.length - 1;
    let h = this.key32[0]! & m;
    while (t[h] !== 0) h = (h + 1) & m;
    t[h] = slot + 1;
    this.count++;
    return slot;
  }

  /**
   * addFile() for an index file read by the C scanner (index-scan.ts): the same
   * entries, from its columns, without an object per blob. Its entries are the
   * checked ones (the scanner declines a file with any other); call
   * computeDepths() after the last file, as after addFile().
   */
  addScanned(name: string, s: IndexScan): void {
    const packs = s.packEnd.length;
    const names: string[] = [];
    for (let p = 0; p < packs; p++) names.push(s.packIds.toString('hex', p * 32, p * 32 + 32));
    this.files.set(name, names);
    const k = this.key;
    let j = 0;
    let sfAt = 0;
    let baseAt = 0;
    for (let p = 0; p < packs; p++) {
      let packNo = -1;
      for (const end = s.packEnd[p]!; j < end; j++) {
        const f = s.num[j * 4 + 3]!;
        const sfLen = (f >>> 8) & 31;
        const bases = f & (1 << 17) ? 2 : f & (1 << 16) ? 1 : 0;
        s.ids.copy(k, 0, j * 32, j * 32 + 32);
        if (this.findKey() < 0) {
          if (this.rejected.size > 0 || this.missingBases.size > 0) {
            const id = k.toString('hex');
            this.rejected.delete(id); // another copy of the blob is usable
            this.missingBases.delete(id);
          }
          if (packNo < 0) packNo = this.packNumber(names[p]!);
          const extra = sfLen > 0 || bases > 0 ? this.extras.addRaw(s.sf, sfAt, sfLen, s.bases, baseAt, bases) : 0;
          this.insertKey(packNo, s.num[j * 4]!, s.num[j * 4 + 1]!, s.num[j * 4 + 2]!, (f & 3) | (f & 4 ? F_TREE : 0), extra);
        }
        sfAt += sfLen;
        baseAt += bases;
      }
    }
  }

  /**
   * Forget everything (before re-reading the index files). The columns and the
   * hash table are kept and reused as the index is filled again (every field of
   * a slot is written when it is filled): re-reading a repository's index needs
   * no second copy of it, whenever the collector runs. releaseSpare() frees
   * what the new contents did not need.
   */
  clear(): void {
    this.gen++;
    this.spare.push(...this.blocks.reverse());
    this.blocks = [];
    this.count = 0;
    this.table.fill(0);
    this.packIds.length = 0;
    this.packNumbers.clear();
    this.extras = new ExtraTable();
    this.missingBases.clear();
    this.rejected.clear();
    this.files.clear();
  }

  /** Free the columns kept by clear() that the index did not fill again. */
  releaseSpare(): void {
    this.spare = [];
  }

  /** Add an index file's packs; call computeDepths() after the last one. */
  addFile(name: string, file: IndexFile): void {
    this.files.set(
      name,
      file.packs.map((p) => p.id),
    );
    for (const p of file.packs) this.addPack(p.id, p.blobs, true);
  }

  /**
   * Compute delta depths once all entries are known, without recursion: an
   * iterative depth-first walk over the delta entries only (full blobs are
   * depth 0). A missing base counts as depth 0 (reading the blob reports it
   * missing). An entry on a cycle, or building on one, gets depth Infinity.
   */
  computeDepths(): void {
    this.missingBases.clear();
    const deltas: number[] = [];
    for (let s = 0; s < this.count; s++) {
      const b = this.blocks[s >>> BLOCK_BITS]!;
      b.depth[s & MASK] = 0;
      if (this.isDeltaAt(s)) deltas.push(s);
    }
    if (deltas.length === 0) return;
    const state = new Map<number, 1 | 2>(); // 1 = on the walk's path, 2 = done
    const basesSlots = (s: number): number[] => {
      const out: number[] = [];
      const x = this.blocks[s >>> BLOCK_BITS]!.extra[s & MASK]!;
      for (const which of [0, 1] as const) {
        // the base id straight from the table into the lookup key (no hex string)
        let bs: number;
        let id: string | undefined;
        if (this.extras.baseInto(x, which, this.key)) bs = this.findKey();
        else {
          const e = this.extras.get(x);
          id = which === 0 ? e.base : e.base2;
          if (!id) continue;
          bs = this.find(id);
        }
        if (bs < 0) this.missingBases.add(id ?? this.key.toString('hex'));
        else if (!out.includes(bs)) out.push(bs);
      }
      return out;
    };
    for (const start of deltas) {
      if (state.has(start)) continue;
      // Explicit stack of [slot, its base slots, next base to visit, depth so far].
      const stack: Array<{ s: number; bases: number[]; next: number; d: number }> = [{ s: start, bases: basesSlots(start), next: 0, d: 0 }];
      state.set(start, 1);
      while (stack.length) {
        const top = stack[stack.length - 1]!;
        if (top.next < top.bases.length) {
          const c = top.bases[top.next++]!;
          const cs = state.get(c);
          const isDelta = this.isDeltaAt(c);
          if (!isDelta) continue; // a full blob: depth 0
          if (cs === 1) top.d = Infinity; // a cycle
          else if (cs === 2) top.d = Math.max(top.d, this.depthAt(c));
          else {
            state.set(c, 1);
            stack.push({ s: c, bases: basesSlots(c), next: 0, d: 0 });
          }
          continue;
        }
        stack.pop();
        const d = top.d + 1;
        this.setDepth(top.s, d);
        state.set(top.s, 2);
        if (stack.length) {
          const parent = stack[stack.length - 1]!;
          parent.d = Math.max(parent.d, d);
        }
      }
    }
  }

  /**
   * Why the delta chain of a blob cannot be read, or undefined when it is within
   * the format limit: a cycle, or deeper than MAX_DELTA_DEPTH.
   */
  chainProblem(id: string): string | undefined {
    const slot = this.find(id);
    if (slot < 0) return undefined;
    return this.chainProblemAt(slot, id);
  }

  private chainProblemAt(slot: number, id: string): string | undefined {
    const depth = this.depthAt(slot);
    if (depth <= MAX_DELTA_DEPTH) return undefined;
    if (depth === Infinity) {
      // Name the loop: follow bases until one repeats (bounded by the number of entries).
      const seen: string[] = [];
      let cur: string | undefined = id;
      const onLoop = new Set<string>();
      while (cur && !onLoop.has(cur) && seen.length <= this.count) {
        onLoop.add(cur);
        seen.push(cur);
        const ce: IndexEntry | undefined = this.get(cur);
        cur = ce ? basesOf(ce).find((b) => this.get(b)?.depth === Infinity) : undefined;
      }
      const start = cur ? seen.indexOf(cur) : -1;
      const loop = start >= 0 ? seen.slice(start) : seen;
      return `delta chain of blob ${id} loops back on itself (cycle in the index: ${loop.slice(0, 4).join(' -> ')}${loop.length > 4 ? ' -> ...' : ''} -> ${loop[0]})`;
    }
    return `delta chain of blob ${id} is ${depth} deep, more than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`;
  }

  /** Blobs whose delta chain cannot be read (cycle or too deep), with the reason; scans the compact columns. */
  *chainProblems(): IterableIterator<[string, string]> {
    for (let s = 0; s < this.count; s++) {
      if (this.blocks[s >>> BLOCK_BITS]!.depth[s & MASK]! > MAX_DELTA_DEPTH) {
        const id = this.idAt(s);
        yield [id, this.chainProblemAt(s, id)!];
      }
    }
  }

  /** Packs referenced by the index with the number of their blobs, the total length and the end of the last blob. */
  packs(): Map<string, { blobs: number; bytes: number; end: number }> {
    const out = new Map<string, { blobs: number; bytes: number; end: number }>();
    const per: Array<{ blobs: number; bytes: number; end: number }> = [];
    for (let s = 0; s < this.count; s++) {
      const b = this.blocks[s >>> BLOCK_BITS]!;
      const i = s & MASK;
      const pn = b.pack[i]!;
      let p = per[pn];
      if (!p) {
        p = { blobs: 0, bytes: 0, end: 0 };
        per[pn] = p;
        out.set(this.packIds[pn]!, p);
      }
      p.blobs++;
      p.bytes += b.length[i]!;
      p.end = Math.max(p.end, b.offset[i]! + b.length[i]!);
    }
    return out;
  }
}
