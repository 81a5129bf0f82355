import { parentPort, workerData } from 'node:worker_threads';
import { BlobCodec } from './codec.js';
import { type WorkerOp, readOps } from './read-ops.js';
import { type ChainMsg, decodeChain } from './chain.js';
import { superFeatures } from './sketch.js';
import { BufferReclaimer } from '../util/reclaim.js';

/**
 * Worker thread: encodes (compress + seal) and decodes blobs off the main thread.
 * `extension`: the URL of a module of a higher layer whose `workerOps(init)`
 * answers more ops in the same threads (e.g. engine/small-files-worker.ts):
 * one pool of threads rather than one per layer (each costs ~10-20 MB of RSS).
 */
export interface WorkerInit {
  encKey: Uint8Array;
  idKey: Uint8Array;
  level: number;
  extension?: string;
}
/** An op of an extension: the reply (posted with `seq`) and what it transfers. */
export type { WorkerOp };
const init = workerData as WorkerInit;
const codec = new BlobCodec(Buffer.from(init.encKey), init.level);
const idKey = Buffer.from(init.idKey);
/**
 * Every encode drops its input, zstd's output and the cipher's output (about three times the
 * blob); V8 would let ~64 MiB of them pile up per thread before collecting: collect them promptly
 * (see reclaim.ts; a first backup's peak RSS fell by tens of MB, docs/benchmarks.md).
 */
const reclaimer = new BufferReclaimer();
/** The read ops (decode, verifyChunk, decodeRange: read-ops.ts, as the decode workers answer them) and the extension's. */
const ops: Record<string, WorkerOp> = {
  ...readOps(codec, idKey, reclaimer),
  ...(init.extension
    ? await (import(init.extension) as Promise<{ workerOps(init: WorkerInit): Promise<Record<string, WorkerOp>> }>).then((m) => m.workerOps(init))
    : {}),
};

parentPort!.on('message', (msg: { seq: number; op: string; [k: string]: unknown }) => {
  // Sent by WorkerPool.close() after every job: the jobs queued before it are done, so end the thread.
  if (msg.op === 'close') {
    parentPort!.close();
    return;
  }
  try {
    if (msg.op === 'encode') {
      const data = msg.data as Uint8Array;
      let dict = msg.dict as Uint8Array | undefined;
      if (msg.chain) {
        // the base as its delta chain: decoded here and checked against its id; a base that fails
        // either way is not used (the blob is stored in full, as the main thread does)
        try {
          const b = decodeChain(codec, idKey, msg.chain as ChainMsg, true);
          if (b.id === msg.base) dict = b.data;
        } catch {
          dict = undefined;
        }
      }
      const r = codec.encode(data, dict);
      // The sketch (as costly as compressing) only for data zstd could shrink: incompressible
      // chunks (random, already compressed or encrypted) find their delta base by offset.
      const sf = msg.sketch && r.compression !== 0 ? superFeatures(data) : undefined;
      parentPort!.postMessage({ seq: msg.seq, sealed: r.sealed, compression: r.compression, sf }, [r.sealed.buffer as ArrayBuffer]);
      reclaimer.dropped(3 * data.length);
    } else if (msg.op === 'encodeBatch') {
      // Many small blobs in one message: the per-message cost is paid once per batch.
      const items = msg.items as Array<{ data: Uint8Array; sketch: boolean }>;
      const results: Array<{ sealed?: Uint8Array; compression?: number; sf?: number[]; error?: { message: string; name?: string } }> = [];
      const transfer = new Set<ArrayBuffer>();
      for (const it of items) {
        try {
          const r = codec.encode(it.data);
          const sf = it.sketch && r.compression !== 0 ? superFeatures(it.data) : undefined;
          results.push({ sealed: r.sealed, compression: r.compression, ...(sf ? { sf } : {}) });
          const ab = r.sealed.buffer as ArrayBuffer;
          if (r.sealed.byteOffset === 0 && r.sealed.byteLength === ab.byteLength) transfer.add(ab);
        } catch (err) {
          results.push({ error: { message: (err as Error).message, name: (err as Error).name } });
        }
      }
      parentPort!.postMessage({ seq: msg.seq, results }, [...transfer]);
      reclaimer.dropped(3 * items.reduce((n, it) => n + it.data.length, 0));
    } else if (msg.op === 'sketch') {
      const data = msg.data as Uint8Array;
      const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      parentPort!.postMessage({ seq: msg.seq, sf: superFeatures(data), data }, own ? [data.buffer as ArrayBuffer] : []);
    } else if (Object.hasOwn(ops, msg.op)) {
      const { reply, transfer } = ops[msg.op]!(msg);
      parentPort!.postMessage({ ...reply, seq: msg.seq }, transfer ?? []);
    } else {
      parentPort!.postMessage({ seq: msg.seq, error: { message: `unknown op ${msg.op}` } });
    }
  } catch (err) {
    const e = err as Error;
    parentPort!.postMessage({ seq: msg.seq, error: { message: e.message, name: e.name } });
  }
});
