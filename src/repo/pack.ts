import { createHash } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { open, seal } from './crypto.js';

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

export const MAX_PACK_HEADER = 16 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;

export function validatePackBlob(b: unknown, where: string): PackBlob {
  const o = b as Record<string, unknown>;
  const bad = (why: string): never => {
    throw new IntegrityError(`${where}: invalid blob entry: ${why}`);
  };
  if (!o || typeof o !== 'object') bad('not an object');
  if (typeof o.id !== 'string' || !HEX64.test(o.id)) bad('bad id');
  if (o.type !== 'data' && o.type !== 'tree') bad('bad type');
  for (const k of ['offset', 'length', 'rawLength'] as const) {
    const v = o[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`bad ${k}`);
  }
  if (o.compression !== 0 && o.compression !== 1 && o.compression !== 2) bad('bad compression');
  if (o.compression === 2) {
    if (typeof o.base !== 'string' || !HEX64.test(o.base)) bad('delta blob without a valid base id');
    if (o.base2 !== undefined && (typeof o.base2 !== 'string' || !HEX64.test(o.base2))) bad('invalid second base id');
  } else if (o.base !== undefined || o.base2 !== undefined) bad('base set on a non-delta blob');
  const out: PackBlob = {
    id: o.id as string,
    type: o.type as BlobType,
    offset: o.offset as number,
    length: o.length as number,
    rawLength: o.rawLength as number,
    compression: o.compression as Compression,
  };
  if (o.base !== undefined) out.base = o.base as string;
  if (o.base2 !== undefined) out.base2 = o.base2 as string;
  if (o.sf !== undefined) {
    if (!Array.isArray(o.sf) || o.sf.length > 16 || !o.sf.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
      bad('bad sketch');
    }
    out.sf = o.sf as number[];
  }
  return out;
}

/** Accumulates sealed blobs in memory until the pack is finalized. */
export class PackWriter {
  readonly blobs: PackBlob[] = [];
  private readonly parts: Buffer[] = [];
  private readonly hash = createHash('sha256');
  size = 0;

  add(entry: Omit<PackBlob, 'offset' | 'length'>, sealed: Buffer): void {
    this.blobs.push({ ...entry, offset: this.size, length: sealed.length });
    this.parts.push(sealed);
    this.hash.update(sealed);
    this.size += sealed.length;
  }

  get count(): number {
    return this.blobs.length;
  }

  /** Returns the pack id (SHA-256 of the whole file) and its bytes. */
  finalize(encKey: Buffer): { id: string; data: Buffer; blobs: PackBlob[] } {
    const header = seal(encKey, Buffer.from(JSON.stringify({ v: 1, blobs: this.blobs })));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(header.length);
    this.hash.update(header);
    this.hash.update(len);
    const data = Buffer.concat([...this.parts, header, len]);
    return { id: this.hash.digest('hex'), data, blobs: this.blobs };
  }
}

/** Parse and authenticate a pack's header from the whole pack file. */
export function parsePackHeader(encKey: Buffer, pack: Buffer, name: string): PackBlob[] {
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
  return blobs;
}

/** The delta bases of a blob, in dictionary order (empty for a full blob). */
export function basesOf(b: { base?: string; base2?: string }): string[] {
  return b.base ? (b.base2 ? [b.base, b.base2] : [b.base]) : [];
}
