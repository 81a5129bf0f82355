/**
 * Microbenchmark of the byte loops (issue 18): the chunker's cut search and the
 * resemblance sketch, JavaScript vs C (native/bytes.c). MB/s of CPU time on
 * random data, median of `runs` passes over a buffer of `mb` MiB.
 *   node dist/bench/bytes.js [mb=64] [runs=5] [random|pglike|FILE]
 * pglike: 8 KiB pages of zero runs, repeated row text and random bytes; FILE: its bytes, repeated.
 */
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Chunker, DEFAULT_CHUNKER, gearTable } from '../src/repo/chunker.js';
import { bytesNative } from '../src/repo/native.js';
import { superFeatures, superFeaturesJs } from '../src/repo/sketch.js';

const mb = Number(process.argv[2] ?? 64);
const runs = Number(process.argv[3] ?? 5);
const kind = process.argv[4] ?? 'random';
const data = makeData(mb * 1024 * 1024, kind);

function makeData(n: number, k: string): Buffer {
  if (k === 'random') return randomBytes(n);
  const b = Buffer.alloc(n);
  if (k === 'pglike') {
    const rnd = randomBytes(n);
    for (let i = 0; i < n; i++) {
      const o = i % 8192;
      b[i] = o < 2000 ? 0 : o < 5000 ? 'pgbench_accounts row '.charCodeAt(o % 21) ^ (o % 97 === 0 ? rnd[i]! : 0) : rnd[i]!;
    }
    return b;
  }
  const f = readFileSync(k);
  for (let off = 0; off < n; off += f.length) f.copy(b, off, 0, Math.min(f.length, n - off));
  return b;
}
const gear = gearTable(randomBytes(32));
if (!bytesNative()) console.log('the addon did not load: "C" rows run the JavaScript');

function cpuSeconds(f: () => void): number {
  const a = process.cpuUsage();
  f();
  const b = process.cpuUsage(a);
  return (b.user + b.system) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Chunk the buffer in 1 MiB reads into the window (the backup's path); the chunks are copies, counted too. */
function chunk(nativeCut: boolean): void {
  const c = new Chunker(gear, DEFAULT_CHUNKER, undefined, nativeCut);
  let off = 0;
  while (off < data.length) {
    const room = c.writable();
    const n = Math.min(room.length, 1 << 20, data.length - off);
    data.copy(room, 0, off, off + n);
    off += n;
    c.commit(n);
  }
  c.finish();
}

/** Sketch 1 MiB chunks (the default average chunk size). */
function sketch(f: (d: Uint8Array) => number[]): void {
  for (let off = 0; off < data.length; off += 1 << 20) f(data.subarray(off, off + (1 << 20)));
}

const rows: Array<[string, () => void]> = [
  ['chunker cut search, JavaScript', () => chunk(false)],
  ['chunker cut search, C', () => chunk(true)],
  ['sketch, JavaScript', () => sketch(superFeaturesJs)],
  ['sketch, C', () => sketch(superFeatures)],
];
for (const [, f] of rows) f(); // warm up (JIT)
const times = new Map<string, number[]>(rows.map(([name]) => [name, []]));
for (let r = 0; r < runs; r++) for (const [name, f] of rows) times.get(name)!.push(cpuSeconds(f));
for (const [name] of rows) {
  const s = median(times.get(name)!);
  console.log(`${name.padEnd(32)} ${(mb / s).toFixed(0).padStart(6)} MB/s  (${s.toFixed(3)} CPU s for ${mb} MiB, median of ${runs})`);
}
