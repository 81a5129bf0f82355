import type { BlobCodec } from './codec.js';
import { type ChainMsg, decodeChain } from './chain.js';
import type { Compression } from './pack.js';

/**
 * Verify the blobs of one contiguous range of a pack (check --read-data): each
 * blob is opened, decompressed and hashed with the id key, the plaintext
 * streaming through one scratch buffer, so nothing but the range itself and a
 * blob's compressed payload is held. Runs in a decode worker (the range is
 * transferred there, not copied). Offsets are relative to the range.
 */
export interface ChunkBlob {
  offset: number;
  length: number;
  compression: Compression;
  rawLength: number;
  /** Names the blob in errors ("blob <id>"). */
  what: string;
  /** Delta dictionary: one buffer, or the bases' plaintexts in order. */
  dict?: Uint8Array | Uint8Array[];
  /**
   * Instead of `dict`: per delta base, in order, its sealed chain (root first, chain.ts), decoded here
   * into reused buffers just before the blob: the bases' plaintexts never cross threads or stay alive.
   */
  chains?: ChainMsg[];
}

/** Per blob: the keyed hash of its plaintext, or why it could not be decoded. */
export type ChunkResult = { id: string } | { error: { message: string; name?: string } };

/** Plaintext pieces hashed at a time (fits in a core's cache next to the hash state). */
const SCRATCH = 256 * 1024;
let scratch: Buffer | undefined;

export function verifyChunk(codec: BlobCodec, idKey: Buffer, chunk: Uint8Array, blobs: readonly ChunkBlob[]): ChunkResult[] {
  scratch ??= Buffer.allocUnsafeSlow(SCRATCH);
  const out: ChunkResult[] = [];
  for (const b of blobs) {
    try {
      if (!(Number.isSafeInteger(b.offset) && Number.isSafeInteger(b.length) && b.offset >= 0 && b.length >= 0 && b.offset + b.length <= chunk.length)) {
        throw new Error(`range ${b.offset}+${b.length} lies outside the ${chunk.length}-byte part of the pack that was read`);
      }
      const d = b.dict;
      const dict = b.chains ? chainsDict(codec, idKey, b.chains) : Array.isArray(d) ? (d.length === 1 ? d[0] : Buffer.concat(d)) : d;
      out.push({ id: codec.decodeId(chunk.subarray(b.offset, b.offset + b.length), b.compression, b.rawLength, b.what, idKey, scratch, dict) });
    } catch (err) {
      const e = err as Error;
      out.push({ error: { message: e.message, name: e.name } });
    }
  }
  return out;
}

/** The bases' plaintexts, joined (a delta's dictionary), reused: grows to the largest set of bases seen. */
let joined: Buffer | undefined;
/** Which bases `joined` holds, and where (the last dictionary built). */
let held: Array<{ key: string; off: number; len: number }> = [];

/**
 * A delta's dictionary from its bases' chains, valid until the next call: a base stored whole is decoded
 * straight into its place (a deeper chain through decodeChain's reused buffers, then copied). A base the
 * previous dictionary held is moved, not decoded again: neighbouring deltas of a changed file share one
 * (bases k and k+1, then k+1 and k+2), a third of the bases of a 5% change.
 */
function chainsDict(codec: BlobCodec, idKey: Buffer, chains: readonly ChainMsg[]): Buffer {
  let total = 0;
  for (const c of chains) total += c.rawLength[c.rawLength.length - 1]!;
  if (!joined || joined.length < total) {
    joined = Buffer.allocUnsafeSlow(total);
    held = [];
  }
  // cleared until the new dictionary is complete: a base that fails to decode leaves nothing half-written behind
  let old = held;
  held = [];
  const placed: typeof held = [];
  let off = 0;
  for (const c of chains) {
    const n = c.sealed.length;
    const raw = c.rawLength[n - 1]!;
    const key = c.what[n - 1]!; // "blob <id> in pack <pack>"
    const had = old.find((h) => h.key === key && h.len === raw);
    if (had) {
      if (had.off !== off) joined.copyWithin(off, had.off, had.off + raw);
    } else if (n === 1) codec.decodeTo(c.sealed[0]!, c.compression[0]!, raw, c.what[0]!, joined.subarray(off, off + raw));
    else decodeChain(codec, idKey, c, true).data.copy(joined, off);
    // what else lay where this base now is is gone
    old = old.filter((h) => h.off + h.len <= off || h.off >= off + raw);
    placed.push({ key, off, len: raw });
    off += raw;
  }
  held = placed;
  return joined.subarray(0, off);
}

/**
 * A worker's answer to a `verifyChunk` message (decode and encode workers
 * both serve it): the results, and the range transferred back to the main
 * thread (its memory is freed, or reused, there) when the worker owns it.
 */
export function verifyChunkReply(
  codec: BlobCodec,
  idKey: Buffer,
  msg: { seq: number; chunk?: unknown; blobs?: unknown },
): { reply: { seq: number; results: ChunkResult[]; chunk: Uint8Array | undefined }; transfer: ArrayBuffer[] } {
  const chunk = msg.chunk as Uint8Array;
  const results = verifyChunk(codec, idKey, chunk, msg.blobs as ChunkBlob[]);
  const own = chunk.byteOffset === 0 && !(chunk.buffer instanceof SharedArrayBuffer);
  return { reply: { seq: msg.seq, results, chunk: own ? chunk : undefined }, transfer: own ? [chunk.buffer as ArrayBuffer] : [] };
}
