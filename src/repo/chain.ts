import type { BlobCodec } from './codec.js';
import { blobId } from './crypto.js';

/** One blob of a delta chain, as decodeChain takes it (root first). */
export interface ChainMsg {
  sealed: Uint8Array[];
  compression: Array<0 | 1 | 2>;
  rawLength: number[];
  what: string[];
  noHash?: boolean;
  /** Per level, the blob's id (Repository.chainMsg sets them). */
  ids?: string[];
  /**
   * Per level, whether to hash it and report the ones whose hash is their id (check --read-data,
   * native-read-pool.ts verifyChunk: a base proven on the way need not be decoded again in its own pack).
   */
  prove?: boolean[];
  /** The root's sealed bytes are the caller's (a part of a pack's range being read): not freed after the job. */
  rootLent?: boolean;
}

/** Buffers per thread for the inner levels of a chain (and a transient result), reused: each grows to the largest blob seen (MAX_DATA_BLOB at most). */
const scratch: Buffer[] = [];
function scratchBuf(k: number, n: number): Buffer {
  let b = scratch[k];
  if (!b || b.length < n) b = scratch[k] = Buffer.allocUnsafeSlow(n);
  return b.subarray(0, n);
}

/**
 * Decode a delta chain: sealed[0] is the root (a full blob), each next one a
 * delta against the one before; only the last plaintext is returned (in its
 * own ArrayBuffer, hashed unless noHash). The inner levels pass through two
 * reused buffers: per level, one zstd decompression and no allocation (the
 * level-by-level path copies each base to the worker and allocates each
 * plaintext). Every level is checked as decode() checks a blob.
 */
export function decodeChain(codec: BlobCodec, idKey: Buffer, msg: ChainMsg, transient = false): { data: Buffer; id?: string } {
  const n = msg.sealed.length;
  let dict: Buffer | undefined;
  for (let i = 0; i < n; i++) {
    const raw = msg.rawLength[i]!;
    // (`transient`: the caller is done with the plaintext before the next call: a third reused buffer)
    const out = i < n - 1 ? scratchBuf(i & 1, raw) : transient ? scratchBuf(2, raw) : Buffer.allocUnsafeSlow(raw);
    codec.decodeTo(msg.sealed[i]!, msg.compression[i]!, raw, msg.what[i]!, out, dict);
    dict = out;
  }
  return { data: dict!, ...(msg.noHash ? {} : { id: blobId(idKey, dict!) }) };
}
