import type { BlobCodec } from './codec.js';
import { blobId } from './crypto.js';
import type { Compression } from './pack.js';

/**
 * Decode the blobs of one ranged read of a pack (restore reads a pack in a few
 * such ranges and hands each blob to every file position that needs it). Runs
 * in a decode worker: each blob is opened, decompressed and hashed with the id
 * key, and its plaintext copied into one output buffer for the whole range,
 * which is transferred back (one transfer, no per-blob buffers crossing
 * threads). Offsets are relative to the range. Full blobs only (a delta's
 * bases are resolved by Repository.loadBlob).
 */
export interface RangeBlob {
  offset: number;
  length: number;
  compression: Compression;
  rawLength: number;
  /** Names the blob in errors ("blob <id> in pack <pack>"). */
  what: string;
}

/** Per blob: its plaintext's keyed hash and where the plaintext lies in `out`, or why it could not be decoded. */
export type RangeResult = { id: string; start: number; length: number } | { error: { message: string; name?: string } };

export function decodeRange(codec: BlobCodec, idKey: Buffer, chunk: Uint8Array, blobs: readonly RangeBlob[]): { out: Uint8Array; results: RangeResult[] } {
  let total = 0;
  for (const b of blobs) if (Number.isSafeInteger(b.rawLength) && b.rawLength > 0) total += b.rawLength;
  // (the caller bounds the range's plaintext: see restore-plan.ts; allocUnsafeSlow: never a pooled slab, so it can be transferred)
  const out = Buffer.allocUnsafeSlow(total);
  let pos = 0;
  const results: RangeResult[] = [];
  for (const b of blobs) {
    try {
      if (!(Number.isSafeInteger(b.offset) && Number.isSafeInteger(b.length) && b.offset >= 0 && b.length >= 0 && b.offset + b.length <= chunk.length)) {
        throw new Error(`range ${b.offset}+${b.length} lies outside the ${chunk.length}-byte part of the pack that was read`);
      }
      const data = codec.decode(chunk.subarray(b.offset, b.offset + b.length), b.compression, b.rawLength, b.what);
      // decode() checked data.length === rawLength, so it fits the space counted for it
      out.set(data, pos);
      results.push({ id: blobId(idKey, data), start: pos, length: data.length });
      pos += data.length;
    } catch (err) {
      const e = err as Error;
      results.push({ error: { message: e.message, name: e.name } });
    }
  }
  return { out, results };
}

/** A worker's answer to a `decodeRange` message (decode and encode workers both serve it). */
export function decodeRangeReply(
  codec: BlobCodec,
  idKey: Buffer,
  msg: { seq: number; chunk?: unknown; blobs?: unknown },
): { reply: { seq: number; out: Uint8Array; results: RangeResult[] }; transfer: ArrayBuffer[] } {
  const { out, results } = decodeRange(codec, idKey, msg.chunk as Uint8Array, msg.blobs as RangeBlob[]);
  return { reply: { seq: msg.seq, out, results }, transfer: [out.buffer as ArrayBuffer] };
}
