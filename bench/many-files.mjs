// Many small files (issue 18 "Scale"): N files of 1–4 KB, 1000 per directory, deterministic (xorshift, seed).
//   node bench/many-files.mjs <dir> <N> [seed]
// Content: random-ish (incompressible, every file distinct). Layout: <dir>/dNNNN/fNNNNNN.bin.
// Existing files with the right size are kept, so a larger N extends a smaller run (100k ⊂ 300k ⊂ 1M).
import { mkdirSync, openSync, writeSync, closeSync, statSync } from 'node:fs';
import * as path from 'node:path';

const [,, dir, nS, seedS] = process.argv;
if (!dir || !nS) { console.error('usage: node bench/many-files.mjs <dir> <N> [seed]'); process.exit(2); }
const N = Number(nS); const SEED = Number(seedS ?? 1) >>> 0 || 1; const PER_DIR = 1000;
const buf = Buffer.allocUnsafe(4096); const u32 = new Uint32Array(buf.buffer, buf.byteOffset, 1024);
let made = 0; let bytes = 0;
for (let i = 0; i < N; i++) {
  // per-file xorshift32 state derived from (seed, i): files are independent of N and of generation order
  let s = (Math.imul(i + 1, 0x9e3779b1) ^ Math.imul(SEED, 0x85ebca6b)) >>> 0 || 1;
  const next = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s; };
  const size = 1024 + (next() % 3073); // 1024..4096 bytes
  const d = path.join(dir, `d${String(Math.floor(i / PER_DIR)).padStart(4, '0')}`);
  if (i % PER_DIR === 0) mkdirSync(d, { recursive: true });
  const p = path.join(d, `f${String(i).padStart(7, '0')}.bin`);
  bytes += size;
  try { if (statSync(p).size === size) continue; } catch { /* missing: write it */ }
  for (let w = 0; w < (size + 3) >> 2; w++) u32[w] = next();
  const fd = openSync(p, 'w'); writeSync(fd, buf, 0, size); closeSync(fd); made++;
}
console.log(JSON.stringify({ dir, files: N, written: made, bytes }));
