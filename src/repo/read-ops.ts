import type { BlobCodec } from './codec.js';
import { verifyChunkReply } from './chunk-verify.js';
import { decodeRangeReply } from './chunk-decode.js';
import { blobId } from './crypto.js';
import { type ChainMsg, decodeChain } from './chain.js';
import { BufferReclaimer } from '../util/reclaim.js';

/** An op a worker thread answers: the reply (posted with the request's `seq`) and what it transfers. */
export type WorkerOp = (msg: Record<string, unknown>) => { reply: Record<string, unknown>; transfer?: ArrayBuffer[] };

/**
 * The read-path ops, answered alike by the decode workers (decode-worker.ts)
 * and the encode workers (worker.ts: a backup that reads delta bases or parent
 * trees decodes in its encode pool):
 * - decode { sealed, compression, rawLength, what, dict? (one buffer or the
 *   bases' plaintexts, joined here), noHash?, idOnly?, shared? } -> { data?, id? }:
 *   the plaintext is hashed unless `noHash` (a delta base decoded only as a
 *   dictionary: the blob built on it is hashed, which catches a wrong base);
 *   `shared`: returned in a SharedArrayBuffer (a delta base the main thread
 *   caches: later jobs send it back as their dictionary without a copy);
 * - decodeChain (ChainMsg) -> { data, id? }: a chain of deltas in one job (decodeChain above);
 * - verifyChunk (chunk-verify.ts) and decodeRange (chunk-decode.ts).
 * `reclaimer` is told of the buffers each job drops (see reclaim.ts).
 */
export function readOps(codec: BlobCodec, idKey: Buffer, reclaimer: BufferReclaimer): Record<string, WorkerOp> {
  // verifyChunk drops small deciphered pieces (codec.ts decodeId) at about the rate it reads: collected every
  // 2 MiB, check --read-data peaked at ~140 MB instead of ~160 MB (every 16 MiB), for no measurable CPU
  const verifyReclaimer = new BufferReclaimer(2 * 1024 * 1024);
  return {
    verifyChunk: (msg) => {
      const r = verifyChunkReply(codec, idKey, msg as { seq: number });
      // the pieces deciphered for the range's blobs (about its size) are garbage now
      verifyReclaimer.dropped((msg.chunk as Uint8Array).length);
      return r;
    },
    decodeRange: (msg) => {
      const r = decodeRangeReply(codec, idKey, msg as { seq: number });
      reclaimer.dropped((msg.chunk as Uint8Array).length);
      return r;
    },
    decodeChain: (msg) => {
      const m = msg as unknown as ChainMsg;
      const r = decodeChain(codec, idKey, m);
      reclaimer.dropped(2 * m.sealed.reduce((a, x) => a + x.length, 0));
      return { reply: r, transfer: [r.data.buffer as ArrayBuffer] };
    },
    decode: (msg) => {
      const d = msg.dict as Uint8Array | Uint8Array[] | undefined;
      const dict = Array.isArray(d) ? (d.length === 1 ? d[0] : Buffer.concat(d)) : d;
      const out = codec.decode(msg.sealed as Uint8Array, msg.compression as 0 | 1 | 2, msg.rawLength as number, msg.what as string, dict);
      const id = msg.noHash ? undefined : blobId(idKey, out);
      reclaimer.dropped(2 * (msg.sealed as Uint8Array).length + (dict?.length ?? 0));
      if (msg.idOnly) return { reply: { id } };
      if (msg.shared) {
        const sab = new Uint8Array(new SharedArrayBuffer(out.length));
        sab.set(out);
        reclaimer.dropped(out.length);
        return { reply: { data: sab, id } };
      }
      const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
      return { reply: { data: out, id }, transfer: own ? [out.buffer as ArrayBuffer] : [] };
    },
  };
}
