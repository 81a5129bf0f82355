import type { BlobCodec } from './codec.js';
import { blobId } from './crypto.js';
import type { Compression } from './pack.js';

/**
 * Decode the blobs of one ranged read of a pack (restore reads a pack in a few
 * such ranges and hands each blob to every file position that needs it). Runs
 * in a decode worker: each blob is opened, decompressed straight into its
 * place in one plaintext slab and hashed with the id key; the slab travels
 * back without a copy, and the caller hands it back with a later range to be
 * filled again (SlabPool): the plaintexts of a restore reuse a few slabs
 * instead of allocating (and garbage-collecting) a buffer per blob. Offsets
 * are relative to the range. Full blobs only (a delta's bases are resolved
 * by Repository.loadBlob).
 */
export interface RangeBlob {
  offset: number;
  length: number;
  compression: Compression;
  rawLength: number;
  /** Names the blob in errors ("blob <id> in pack <pack>"). */
  what: string;
}

/** Per blob: the keyed hash of its plaintext and where the plaintext lies in the slab, or why it could not be decoded. */
export type RangeResult = { id: string; at: number } | { error: { message: string; name?: string } };

/**
 * `slab`: memory to decode into (used when it holds every plaintext); else a
 * new slab of at least `slabBytes` bytes. The plaintexts lie one after the
 * other, in the order of `blobs`.
 */
export function decodeRange(
  codec: BlobCodec,
  idKey: Buffer,
  chunk: Uint8Array,
  blobs: readonly RangeBlob[],
  slab?: ArrayBuffer,
  slabBytes = 0,
): { results: RangeResult[]; slab: ArrayBuffer } {
  let total = 0;
  for (const b of blobs) total += Number.isSafeInteger(b.rawLength) && b.rawLength > 0 ? b.rawLength : 0;
  const mem = slab && !(slab instanceof SharedArrayBuffer) && slab.byteLength >= total ? slab : (Buffer.allocUnsafeSlow(Math.max(total, slabBytes)).buffer as ArrayBuffer);
  const results: RangeResult[] = [];
  let at = 0;
  for (const b of blobs) {
    try {
      if (!(Number.isSafeInteger(b.offset) && Number.isSafeInteger(b.length) && b.offset >= 0 && b.length >= 0 && b.offset + b.length <= chunk.length)) {
        throw new Error(`range ${b.offset}+${b.length} lies outside the ${chunk.length}-byte part of the pack that was read`);
      }
      if (!(Number.isSafeInteger(b.rawLength) && b.rawLength >= 0)) throw new Error(`impossible length ${b.rawLength}`);
      const out = Buffer.from(mem, at, b.rawLength);
      codec.decodeInto(chunk.subarray(b.offset, b.offset + b.length), b.compression, b.rawLength, b.what, out);
      results.push({ id: blobId(idKey, out), at });
      at += b.rawLength;
    } catch (err) {
      const e = err as Error;
      results.push({ error: { message: e.message, name: e.name } });
    }
  }
  return { results, slab: mem };
}

/** A worker's answer to a `decodeRange` message (decode and encode workers both serve it). */
export function decodeRangeReply(
  codec: BlobCodec,
  idKey: Buffer,
  msg: { seq: number; chunk?: unknown; blobs?: unknown; slab?: unknown; slabBytes?: unknown },
): { reply: { seq: number; results: RangeResult[]; slab: ArrayBuffer }; transfer: ArrayBuffer[] } {
  const slab = msg.slab instanceof ArrayBuffer ? msg.slab : undefined;
  const slabBytes = Number.isSafeInteger(msg.slabBytes) ? (msg.slabBytes as number) : 0;
  const { results, slab: mem } = decodeRange(codec, idKey, msg.chunk as Uint8Array, msg.blobs as RangeBlob[], slab, slabBytes);
  return { reply: { seq: msg.seq, results, slab: mem }, transfer: [mem] };
}

/**
 * The plaintext slabs a restore reuses: taken (or none: the worker makes
 * one) for each ranged read, given back once every plaintext in it was
 * written. Keeps at most `keep` slabs; a slab larger than `max` (one very
 * large blob) is not kept.
 */
export class SlabPool {
  private readonly free: ArrayBuffer[] = [];
  constructor(
    /** The size of a new slab: enough for one ranged read's plaintexts. */
    readonly size: number,
    private readonly keep: number,
    private readonly max = size,
  ) {}

  /** A free slab of at least `bytes`, or undefined. */
  take(bytes: number): ArrayBuffer | undefined {
    for (let i = this.free.length - 1; i >= 0; i--) {
      if (this.free[i]!.byteLength >= bytes) return this.free.splice(i, 1)[0];
    }
    return undefined;
  }

  /** Give a slab back: nothing may use its bytes afterwards (it is handed to a worker and refilled). */
  give(slab: ArrayBuffer): void {
    if (slab.byteLength === 0 || slab.byteLength > this.max || this.free.length >= this.keep) return;
    this.free.push(slab);
  }

  get kept(): number {
    return this.free.length;
  }
}
