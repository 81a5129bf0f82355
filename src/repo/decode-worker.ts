import { parentPort, workerData } from 'node:worker_threads';
import { BlobCodec } from './codec.js';
import { verifyChunkReply } from './chunk-verify.js';
import { decodeRangeReply } from './chunk-decode.js';
import { blobId } from './crypto.js';
import { BufferReclaimer } from '../util/reclaim.js';

/**
 * Worker thread for the read path (restore, check): opens and decompresses
 * blobs, and hashes the plaintext unless told not to (a delta base decoded
 * only as a dictionary: the blob built on it is hashed, which catches a wrong
 * base). Messages: { seq, op: 'decode', sealed, compression, rawLength, what,
 * dict? (one buffer or the bases' plaintexts), noHash?, idOnly?, shared? (data in a SharedArrayBuffer) } -> { seq, data?, id? } or { seq, error }.
 * { seq, op: 'decodeRange', chunk, blobs } -> { seq, results } (chunk-decode.ts).
 */
interface Init {
  encKey: Uint8Array;
  idKey: Uint8Array;
  level: number;
}
const init = workerData as Init;
const codec = new BlobCodec(Buffer.from(init.encKey), init.level);
const idKey = Buffer.from(init.idKey);
/** The sealed input and the opened payload are dropped after every job: collect them promptly (see reclaim.ts). */
const reclaimer = new BufferReclaimer();

parentPort!.on('message', (msg: { seq: number; op: string; [k: string]: unknown }) => {
  // Sent by WorkerPool.close() after every job: the jobs queued before it are done, so end the thread.
  if (msg.op === 'close') {
    parentPort!.close();
    return;
  }
  try {
    if (msg.op === 'verifyChunk') {
      const { reply, transfer } = verifyChunkReply(codec, idKey, msg);
      parentPort!.postMessage(reply, transfer);
      return;
    }
    if (msg.op === 'decodeRange') {
      const { reply, transfer } = decodeRangeReply(codec, idKey, msg);
      reclaimer.dropped((msg.chunk as Uint8Array).length);
      parentPort!.postMessage(reply, transfer);
      return;
    }
    if (msg.op !== 'decode') {
      parentPort!.postMessage({ seq: msg.seq, error: { message: `unknown op ${msg.op}` } });
      return;
    }
    // A delta's dictionary may come as its bases' plaintexts: joined here, off the main thread.
    const d = msg.dict as Uint8Array | Uint8Array[] | undefined;
    const dict = Array.isArray(d) ? (d.length === 1 ? d[0] : Buffer.concat(d)) : d;
    const out = codec.decode(msg.sealed as Uint8Array, msg.compression as 0 | 1 | 2, msg.rawLength as number, msg.what as string, dict);
    const id = msg.noHash ? undefined : blobId(idKey, out);
    reclaimer.dropped(2 * (msg.sealed as Uint8Array).length + (dict?.length ?? 0));
    if (msg.idOnly) parentPort!.postMessage({ seq: msg.seq, id });
    else if (msg.shared) {
      // a delta base the main thread caches: later jobs send it back as their dictionary without a copy
      const sab = new Uint8Array(new SharedArrayBuffer(out.length));
      sab.set(out);
      reclaimer.dropped(out.length);
      parentPort!.postMessage({ seq: msg.seq, data: sab, id });
    } else {
      const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
      parentPort!.postMessage({ seq: msg.seq, data: out, id }, own ? [out.buffer as ArrayBuffer] : []);
    }
  } catch (err) {
    const e = err as Error;
    parentPort!.postMessage({ seq: msg.seq, error: { message: e.message, name: e.name } });
  }
});
