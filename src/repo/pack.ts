import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { open, seal } from './crypto.js';
import { isHexId } from './hex-id.js';

/**
 * Pack files: many sealed blobs followed by a sealed header and the header's
 * length. See docs/format.md ("Packs").
 *
 *   [blob 0 sealed] [blob 1 sealed] ... [header sealed] [u32 LE: sealed header length]
 */
export type BlobType = 'data' | 'tree';
/** 0 = stored as is, 1 = zstd, 2 = zstd with the base blob's plaintext as dictionary (delta). */
export type Compression = 0 | 1 | 2;

export interface PackBlob {
  id: string;
  type: BlobType;
  offset: number;
  length: number;
  rawLength: number;
  compression: Compression;
  base?: string;
  /** Optional second base: the dictionary is base plaintext followed by base2 plaintext. */
  base2?: string;
  /** Resemblance sketch (super-features) of a data blob, used to find delta bases by content. */
  sf?: number[];
}

/**
 * A pack entry from its parts, built property by property in one fixed order
 * (the order the header's JSON has always had: id, type, rawLength,
 * compression, [base, base2], [sf], offset, length). Object spread
 * (`{ ...entry, offset, length }`) gave every entry a hidden class of its own
 * in V8 (about 260 bytes of map, descriptors and enum cache per blob, for
 * every entry waiting for its index file); entries built this way share a few.
 */
export function packBlob(entry: Omit<PackBlob, 'offset' | 'length'>, offset: number, length: number): PackBlob {
  // the common entry (no delta base, no sketch): one literal, all six properties in the object itself
  if (entry.base === undefined && entry.base2 === undefined && entry.sf === undefined) {
    return { id: entry.id, type: entry.type, rawLength: entry.rawLength, compression: entry.compression, offset, length };
  }
  const b = { id: entry.id, type: entry.type, rawLength: entry.rawLength, compression: entry.compression } as PackBlob;
  if (entry.base !== undefined) b.base = entry.base;
  if (entry.base2 !== undefined) b.base2 = entry.base2;
  if (entry.sf !== undefined) b.sf = entry.sf;
  b.offset = offset;
  b.length = length;
  return b;
}

export const MAX_PACK_HEADER = 16 * 1024 * 1024;

/*
 * Format maxima (docs/format.md, "Limits"). A repository is untrusted input:
 * readers refuse anything beyond these before allocating or reading.
 */
/** Bytes a seal adds to its plaintext (12-byte nonce + 16-byte tag). */
export const SEAL_OVERHEAD = 28;
/** Largest data blob plaintext (the chunker's largest allowed maximum chunk size). */
export const MAX_DATA_BLOB = 128 * 1024 * 1024;
/** Largest tree blob plaintext. */
export const MAX_TREE_BLOB = 256 * 1024 * 1024;
/** Largest pack file: largest pack size (512 MiB) + one largest blob + largest header + 4. */
export const MAX_PACK_SIZE = 1024 * 1024 * 1024;
/** Deepest delta chain a reader follows (a repository's maxDeltaDepth must not exceed it). */
export const MAX_DELTA_DEPTH = 64;
/**
 * The sealed bytes a reader takes for a chain of single-base deltas ending in a blob of `rawLength`
 * (the levels' sizes by the index, root included or not) at most: twice the blob plus 64 KiB. A delta
 * is smaller than what it encodes, so a real chain stays well inside; a damaged or hostile index cannot
 * make one blob's chain cost more than ~2 blobs of reads (Repository.chainEntries, check's forward paths).
 */
export function chainBytesLimit(rawLength: number): number {
  return 2 * Math.min(rawLength, MAX_DATA_BLOB) + 65536;
}
/** Largest decompressed sealed JSON object (config, snapshot, lock, WAL entry). */
export const MAX_JSON = 64 * 1024 * 1024;
/** Largest key file (plaintext JSON of a few hundred bytes). */
export const MAX_KEY_FILE = 1024 * 1024;
/** Largest decompressed index file (also about the largest string a JavaScript reader can parse). */
export const MAX_INDEX_JSON = 512 * 1024 * 1024;

/**
 * Why a (structurally valid) blob entry is impossible under the format limits,
 * or undefined when it is within them. Checked for every index and pack header
 * entry before any read or allocation.
 */
export function blobEntryProblem(b: PackBlob): string | undefined {
  const max = b.type === 'tree' ? MAX_TREE_BLOB : MAX_DATA_BLOB;
  if (b.rawLength > max) return `rawLength ${b.rawLength} exceeds the format maximum of ${max} bytes for a ${b.type} blob`;
  if (b.length < SEAL_OVERHEAD) return `length ${b.length} is shorter than a seal (${SEAL_OVERHEAD} bytes)`;
  // Writers keep compressed forms only when smaller than the plaintext, so a sealed blob never exceeds rawLength + seal.
  if (b.length > b.rawLength + SEAL_OVERHEAD) return `length ${b.length} exceeds rawLength ${b.rawLength} + ${SEAL_OVERHEAD} (impossible for any encoding)`;
  if (b.compression === 0 && b.length !== b.rawLength + SEAL_OVERHEAD) return `stored blob of length ${b.length} cannot hold ${b.rawLength} bytes`;
  if (b.offset + b.length + 4 > MAX_PACK_SIZE) return `offset ${b.offset} + length ${b.length} lies beyond the largest possible pack (${MAX_PACK_SIZE} bytes)`;
  return undefined;
}
function badEntry(where: string, why: string): never {
  throw new IntegrityError(`${where}: invalid blob entry: ${why}`);
}

function badCount(v: unknown): boolean {
  return typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0;
}

/**
 * Check a parsed blob entry in place (no copy: index loading checks millions):
 * the same checks and errors as validatePackBlob. Unknown fields are left on
 * the object; readers use only the fields of PackBlob.
 */
export function checkPackBlob(b: unknown, where: string): asserts b is PackBlob {
  const o = b as Record<string, unknown>;
  if (!o || typeof o !== 'object') badEntry(where, 'not an object');
  if (!isHexId(o.id)) badEntry(where, 'bad id');
  if (o.type !== 'data' && o.type !== 'tree') badEntry(where, 'bad type');
  if (badCount(o.offset)) badEntry(where, 'bad offset');
  if (badCount(o.length)) badEntry(where, 'bad length');
  if (badCount(o.rawLength)) badEntry(where, 'bad rawLength');
  if (o.compression !== 0 && o.compression !== 1 && o.compression !== 2) badEntry(where, 'bad compression');
  if (o.compression === 2) {
    if (!isHexId(o.base)) badEntry(where, 'delta blob without a valid base id');
    if (o.base2 !== undefined && !isHexId(o.base2)) badEntry(where, 'invalid second base id');
  } else if (o.base !== undefined || o.base2 !== undefined) badEntry(where, 'base set on a non-delta blob');
  const sf = o.sf;
  if (sf !== undefined) {
    if (!Array.isArray(sf) || sf.length > 16) badEntry(where, 'bad sketch');
    for (let i = 0; i < sf.length; i++) {
      const x = sf[i];
      if (!(typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) badEntry(where, 'bad sketch');
    }
  }
}

/** Check a parsed blob entry and return a copy with only the fields of PackBlob. */
export function validatePackBlob(b: unknown, where: string): PackBlob {
  checkPackBlob(b, where);
  const out: PackBlob = {
    id: b.id,
    type: b.type,
    offset: b.offset,
    length: b.length,
    rawLength: b.rawLength,
    compression: b.compression,
  };
  if (b.base !== undefined) out.base = b.base;
  if (b.base2 !== undefined) out.base2 = b.base2;
  if (b.sf !== undefined) out.sf = b.sf;
  return out;
}

/**
 * Accumulates sealed blobs in memory until the pack is finalized. Each blob is
 * copied into one growing pack buffer as it arrives (its own buffer can be
 * freed at once), so finalizing adds only the header: the pack is never held
 * twice (as parts and as their concatenation).
 */
export class PackWriter {
  readonly blobs: PackBlob[] = [];
  private buf: Buffer;
  private readonly hash = createHash('sha256');
  size = 0;

  /** `expected`: about how many bytes the pack will hold (memory is only touched as it fills). */
  constructor(expected = 16 * 1024 * 1024 + 64 * 1024) {
    this.buf = Buffer.allocUnsafeSlow(Number.isSafeInteger(expected) ? Math.min(Math.max(64 * 1024, expected), 600 * 1024 * 1024) : 16 * 1024 * 1024);
  }

  private room(n: number): void {
    if (this.size + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.size + n, Math.ceil(this.buf.length * 1.5)));
    this.buf.copy(grown, 0, 0, this.size);
    this.buf = grown;
  }

  add(entry: Omit<PackBlob, 'offset' | 'length'>, sealed: Uint8Array): void {
    this.blobs.push(packBlob(entry, this.size, sealed.length));
    this.room(sealed.length);
    this.buf.set(sealed, this.size);
    this.hash.update(sealed);
    this.size += sealed.length;
  }

  get count(): number {
    return this.blobs.length;
  }

  /** Returns the pack id (SHA-256 of the whole file) and its bytes. */
  finalize(encKey: Buffer): { id: string; data: Buffer; blobs: PackBlob[] } {
    const header = seal(encKey, Buffer.from(JSON.stringify({ v: 1, blobs: this.blobs })));
    this.room(header.length + 4);
    header.copy(this.buf, this.size);
    this.buf.writeUInt32LE(header.length, this.size + header.length);
    const end = this.size + header.length + 4;
    this.hash.update(this.buf.subarray(this.size, end));
    const data = this.buf.subarray(0, end);
    this.buf = Buffer.alloc(0); // the writer is done: the pack's bytes belong to the caller
    return { id: this.hash.digest('hex'), data, blobs: this.blobs };
  }
}

/** Parse and authenticate a pack's header from the whole pack file. */
export function parsePackHeader(encKey: Buffer, pack: Buffer, name: string): PackBlob[] {
  if (pack.length > MAX_PACK_SIZE) throw new IntegrityError(`pack ${name}: ${pack.length} bytes exceeds the format maximum of ${MAX_PACK_SIZE}`);
  if (pack.length < 4) throw new IntegrityError(`pack ${name}: truncated (${pack.length} bytes)`);
  const hlen = pack.readUInt32LE(pack.length - 4);
  if (hlen > MAX_PACK_HEADER || hlen + 4 > pack.length) {
    throw new IntegrityError(`pack ${name}: header length ${hlen} is impossible for a ${pack.length}-byte pack (truncated?)`);
  }
  const headerStart = pack.length - 4 - hlen;
  return parseHeaderBytes(encKey, pack.subarray(headerStart, pack.length - 4), headerStart, name);
}

/** Authenticate and validate a sealed pack header; `blobArea` is the number of bytes before the header. */
export function parseHeaderBytes(encKey: Buffer, sealedHeader: Buffer, blobArea: number, name: string): PackBlob[] {
  const plain = open(encKey, sealedHeader, `pack ${name} header`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(plain.toString('utf8'));
  } catch {
    throw new IntegrityError(`pack ${name}: header is not valid JSON`);
  }
  const p = parsed as { v?: unknown; blobs?: unknown };
  if (!p || p.v !== 1 || !Array.isArray(p.blobs)) throw new IntegrityError(`pack ${name}: unsupported header`);
  const blobs = p.blobs.map((b) => validatePackBlob(b, `pack ${name}`));
  for (const b of blobs) {
    if (b.offset + b.length > blobArea) throw new IntegrityError(`pack ${name}: blob ${b.id} extends past the blob area`);
  }
  // Entries beyond the format limits stay in the list: callers report them per blob (blobEntryProblem).
  return blobs;
}

/** The delta bases of a blob, in dictionary order (empty for a full blob). */
export function basesOf(b: { base?: string; base2?: string }): string[] {
  return b.base ? (b.base2 ? [b.base, b.base2] : [b.base]) : [];
}
