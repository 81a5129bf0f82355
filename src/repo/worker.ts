import { parentPort, workerData } from 'node:worker_threads';
import { BlobCodec } from './codec.js';
import { blobId } from './crypto.js';
import { superFeatures } from './sketch.js';

/** Worker thread: encodes (compress + seal) and decodes blobs off the main thread. */
interface Init {
  encKey: Uint8Array;
  idKey: Uint8Array;
  level: number;
}
const init = workerData as Init;
const codec = new BlobCodec(Buffer.from(init.encKey), init.level);
const idKey = Buffer.from(init.idKey);

parentPort!.on('message', (msg: { seq: number; op: string; [k: string]: unknown }) => {
  try {
    if (msg.op === 'encode') {
      const data = msg.data as Uint8Array;
      const sf = msg.sketch ? superFeatures(data) : undefined;
      const r = codec.encode(data, msg.dict as Uint8Array | undefined);
      parentPort!.postMessage({ seq: msg.seq, sealed: r.sealed, compression: r.compression, sf }, [r.sealed.buffer as ArrayBuffer]);
    } else if (msg.op === 'sketch') {
      const data = msg.data as Uint8Array;
      const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength;
      parentPort!.postMessage({ seq: msg.seq, sf: superFeatures(data), data }, own ? [data.buffer as ArrayBuffer] : []);
    } else if (msg.op === 'decode') {
      const out = codec.decode(
        msg.sealed as Uint8Array,
        msg.compression as 0 | 1 | 2,
        msg.rawLength as number,
        msg.what as string,
        msg.dict as Uint8Array | undefined,
      );
      const id = blobId(idKey, out);
      if (msg.idOnly) parentPort!.postMessage({ seq: msg.seq, id });
      else {
        const own = out.byteOffset === 0 && out.byteLength === out.buffer.byteLength;
        parentPort!.postMessage({ seq: msg.seq, data: out, id }, own ? [out.buffer as ArrayBuffer] : []);
      }
    } else {
      parentPort!.postMessage({ seq: msg.seq, error: { message: `unknown op ${msg.op}` } });
    }
  } catch (err) {
    const e = err as Error;
    parentPort!.postMessage({ seq: msg.seq, error: { message: e.message, name: e.name } });
  }
});
