import type { BlobCodec } from './codec.js';
import { blobId } from './crypto.js';
import type { Compression } from './pack.js';

/**
 * Decode the blobs of one ranged read of a pack (restore reads a pack in a few
 * such ranges and hands each blob to every file position that needs it). Runs
 * in a decode worker: each blob is opened, decompressed and hashed with the id
 * key, and its plaintext transferred back (no copy, except for a small one
 * cut from a shared slab). Offsets are relative to the range. Full blobs only
 * (a delta's bases are resolved by Repository.loadBlob).
 */
export interface RangeBlob {
  offset: number;
  length: number;
  compression: Compression;
  rawLength: number;
  /** Names the blob in errors ("blob <id> in pack <pack>"). */
  what: string;
}

/** Per blob: its plaintext and the plaintext's keyed hash, or why it could not be decoded. */
export type RangeResult = { id: string; data: Uint8Array } | { error: { message: string; name?: string } };

export function decodeRange(codec: BlobCodec, idKey: Buffer, chunk: Uint8Array, blobs: readonly RangeBlob[]): { results: RangeResult[]; transfer: ArrayBuffer[] } {
  const results: RangeResult[] = [];
  const transfer: ArrayBuffer[] = [];
  for (const b of blobs) {
    try {
      if (!(Number.isSafeInteger(b.offset) && Number.isSafeInteger(b.length) && b.offset >= 0 && b.length >= 0 && b.offset + b.length <= chunk.length)) {
        throw new Error(`range ${b.offset}+${b.length} lies outside the ${chunk.length}-byte part of the pack that was read`);
      }
      let data = codec.decode(chunk.subarray(b.offset, b.offset + b.length), b.compression, b.rawLength, b.what);
      const id = blobId(idKey, data);
      // A plaintext that owns its memory travels without a copy; a small one cut from a shared slab is copied out first.
      if (!(data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) || data.buffer instanceof SharedArrayBuffer) {
        const own = Buffer.allocUnsafeSlow(data.length);
        data.copy(own);
        data = own;
      }
      transfer.push(data.buffer as ArrayBuffer);
      results.push({ id, data });
    } catch (err) {
      const e = err as Error;
      results.push({ error: { message: e.message, name: e.name } });
    }
  }
  return { results, transfer };
}

/** A worker's answer to a `decodeRange` message (decode and encode workers both serve it). */
export function decodeRangeReply(
  codec: BlobCodec,
  idKey: Buffer,
  msg: { seq: number; chunk?: unknown; blobs?: unknown },
): { reply: { seq: number; results: RangeResult[] }; transfer: ArrayBuffer[] } {
  const { results, transfer } = decodeRange(codec, idKey, msg.chunk as Uint8Array, msg.blobs as RangeBlob[]);
  return { reply: { seq: msg.seq, results }, transfer };
}
