// Index load cost and memory per blob (issue 18, branch stream20): a MasterIndex filled from JSON-parsed pack lists.
//   npm run build && node --expose-gc bench/index-load.mjs [N=40000] [nosf]
import { MasterIndex } from '../dist/src/repo/index.js';
import { createHash, randomBytes } from 'node:crypto';
const hid = (s) => createHash('sha256').update(String(s)).digest('hex');
const N = Number(process.argv[2] ?? 40000); const withSf = process.argv[3] !== 'nosf';
// build the pack lists (as parsed from index files: JSON, so strings/arrays are fresh objects)
const m = () => { gc(); const u = process.memoryUsage(); return u.heapUsed + u.arrayBuffers; };
const m0 = m();
const packs = [];
for (let p = 0; p < N / 16; p++) {
  const blobs = [];
  for (let j = 0; j < 16; j++) { const i = p * 16 + j; blobs.push({ id: hid(i), type: 'data', offset: j * 100, length: 100, rawLength: 1 << 20, compression: i % 2 ? 2 : 1, ...(i % 2 ? { base: hid(i - 1) } : {}), ...(withSf ? { sf: Array.from({ length: 12 }, () => randomBytes(4).readUInt32LE()) } : {}) }); }
  packs.push({ id: hid('p' + p), blobs: JSON.parse(JSON.stringify(blobs)) });
}
const idx = new MasterIndex();
gc(); const t0 = process.cpuUsage(); for (const p of packs) idx.addPack(p.id, p.blobs, true); idx.computeDepths(); const t1 = process.cpuUsage(t0); console.log('addPack+depths ms', ((t1.user + t1.system) / 1000).toFixed(0));
packs.length = 0;
const m1 = m();
console.log(`${N} blobs sf=${withSf}: ${((m1 - m0) / N).toFixed(0)} B/blob (compact columns ${(idx.memoryBytes / N).toFixed(0)})`);
globalThis.keep = idx;
