// Delta encoding per chunk (branch delta5): BlobCodec.encode(chunk, base) with the C delta (native/zdelta.c)
// against zstd's match finder (LIFEBOAT_NO_ZDELTA=1: the encoder before delta5), on three kinds of pairs:
//   dump  : day-3 chunks of `node bench/restore-data.mjs dumpday` on their day-2 base (0.5-2 MiB, same first row)
//   writes: 1 MiB chunks (random bytes, or log text from bench/backup-data.mjs) with seven 64 KiB random writes
//   2base : a 1.1 MiB day-3 chunk straddling two day-2 chunks (a 2.3 MB dictionary: zstd took its tuned path)
// usage: node bench/delta-encode.mjs DUMP2.sql DUMP3.sql [LOGFILE]   (runs both encoders in child processes)
// Prints ms per chunk (best of 5 passes) and sealed bytes per chunk.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

const here = new URL('.', import.meta.url);
if (process.env.DELTA_ENCODE_CHILD) {
  const { BlobCodec } = await import(new URL('../dist/src/repo/codec.js', here).href);
  const { zdeltaNative } = await import(new URL('../dist/src/repo/native.js', here).href);
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  const b = Buffer.concat(chunks);
  const pairs = [];
  for (let o = 0; o < b.length; ) {
    const a = b.readUInt32LE(o), c = b.readUInt32LE(o + 4);
    pairs.push([b.subarray(o + 8, o + 8 + a), b.subarray(o + 8 + a, o + 8 + a + c)]);
    o += 8 + a + c;
  }
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  let best = 1e9, size = 0;
  for (let r = 0; r < 5; r++) {
    size = 0;
    const t = process.hrtime.bigint();
    for (const [d, x] of pairs) size += codec.encode(x, d).sealed.length;
    best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e6 / pairs.length);
  }
  process.stdout.write(`${zdeltaNative() ? 'C delta' : 'zstd   '} ${best.toFixed(3)} ms/chunk ${(size / pairs.length).toFixed(0)} B/chunk`);
  process.exit(0);
}

const [, , d2f, d3f, logf] = process.argv;
const a = readFileSync(d2f), b = readFileSync(d3f);
const MiB = 1 << 20;
let s = 12345;
const rnd = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
const frame = (pairs) => Buffer.concat(pairs.flatMap(([d, x]) => { const h = Buffer.alloc(8); h.writeUInt32LE(d.length, 0); h.writeUInt32LE(x.length, 4); return [h, d, x]; }));
/** the day-2 offset of the row that starts at day-3 offset `off` (its first line) */
const baseAt = (off) => { const row = b.subarray(off, b.indexOf(9, off)).toString(); return a.indexOf('\n' + row + '\t', Math.max(0, off - 3 * MiB)) + 1; };
const sets = {};
sets.dump = [];
for (let i = 0; i < 80; i++) {
  const sz = Math.floor((0.5 + 1.5 * rnd()) * MiB);
  const off = b.indexOf(10, i * 3 * MiB) + 1;
  const ao = baseAt(off);
  sets.dump.push([a.subarray(ao, ao + Math.floor(sz * (0.95 + 0.1 * rnd()))), b.subarray(off, off + sz)]);
}
sets.writes = [];
const log = logf ? readFileSync(logf) : a;
for (let i = 0; i < 40; i++) {
  const base = i % 2 ? randomBytes(MiB) : Buffer.from(log.subarray((i * 300000) % (log.length - MiB), ((i * 300000) % (log.length - MiB)) + MiB));
  const x = Buffer.from(base);
  for (let k = 0; k < 7; k++) randomBytes(65536).copy(x, Math.floor(rnd() * (x.length - 65536)));
  sets.writes.push([base, x]);
}
sets['2base'] = [];
for (let i = 0; i < 20; i++) {
  const off = b.indexOf(10, i * 12 * MiB) + 1;
  const ao = baseAt(off);
  sets['2base'].push([a.subarray(ao, ao + 2300000), b.subarray(off + 700000, off + 1800000)]);
}
for (const [name, pairs] of Object.entries(sets)) {
  const input = frame(pairs);
  for (const env of [{}, { LIFEBOAT_NO_ZDELTA: '1' }]) {
    const out = execFileSync(process.execPath, [new URL(import.meta.url).pathname], { input, env: { ...process.env, ...env, DELTA_ENCODE_CHILD: '1' }, maxBuffer: 1 << 20 });
    console.log(`${name.padEnd(6)} ${out}`);
  }
}
