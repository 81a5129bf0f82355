import { parentPort, workerData } from 'node:worker_threads';
import { BlobCodec } from './codec.js';
import { readOps } from './read-ops.js';
import { BufferReclaimer } from '../util/reclaim.js';

/**
 * Worker thread for the read path (restore, check): answers the read ops
 * (read-ops.ts: decode, verifyChunk, decodeRange); { seq, op, … } -> { seq, … }
 * or { seq, error }.
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

const ops = readOps(codec, idKey, reclaimer);

parentPort!.on('message', (msg: { seq: number; op: string; [k: string]: unknown }) => {
  // Sent by WorkerPool.close() after every job: the jobs queued before it are done, so end the thread.
  if (msg.op === 'close') {
    parentPort!.close();
    return;
  }
  try {
    if (!Object.hasOwn(ops, msg.op)) {
      parentPort!.postMessage({ seq: msg.seq, error: { message: `unknown op ${msg.op}` } });
      return;
    }
    const { reply, transfer } = ops[msg.op]!(msg);
    parentPort!.postMessage({ ...reply, seq: msg.seq }, transfer ?? []);
  } catch (err) {
    const e = err as Error;
    parentPort!.postMessage({ seq: msg.seq, error: { message: e.message, name: e.name } });
  }
});
