import type { BlobCodec } from './codec.js';
import { verifyChunkReply } from './chunk-verify.js';
import { type WriteBlob, decodeRangeReply, decodeRangeWrite } from './chunk-decode.js';
import { writeSync } from 'node:fs';
import { blobId } from './crypto.js';
import type { BufferReclaimer } from '../util/reclaim.js';

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
 * - verifyChunk (chunk-verify.ts), decodeRange and decodeRangeWrite (chunk-decode.ts:
 *   restore's blobs decoded, checked and written to the caller's open files here).
 * `reclaimer` is told of the buffers each job drops (see reclaim.ts).
 */
export function readOps(codec: BlobCodec, idKey: Buffer, reclaimer: BufferReclaimer): Record<string, WorkerOp> {
  return {
    verifyChunk: (msg) => verifyChunkReply(codec, idKey, msg as { seq: number }),
    decodeRange: (msg) => {
      const r = decodeRangeReply(codec, idKey, msg as { seq: number });
      reclaimer.dropped((msg.chunk as Uint8Array).length);
      return r;
    },
    decodeRangeWrite: (msg) => {
      const results = decodeRangeWrite(codec, idKey, msg.chunk as Uint8Array, msg.blobs as WriteBlob[], (fd, buf, off, len, pos) => writeSync(fd, buf, off, len, pos));
      reclaimer.dropped((msg.chunk as Uint8Array).length);
      return { reply: { results } };
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
