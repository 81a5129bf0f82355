import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import binding from 'zstd-napi/binding.js';
import { BlobCodec } from './codec.js';
import { zdeltaNative } from './native.js';
import { xorshift32 as rng } from '../util/xorshift.js';

// native/zdelta.c: the delta of a blob against its base as a zstd frame any reader decodes with the
// base as dictionary (codec.ts decode, decodeTo, decodeId); BlobCodec.encode's fallback is zstd's match finder.

const skip = zdeltaNative() ? false : 'native/zdelta.node not built';

/** Rows of a SQL dump (as bench/restore-data.mjs): day 1 updates ~1% of them, deletes a few and appends some. */
function dump(rows: number, day: number): Buffer {
  const out: string[] = [];
  const r = rng(3);
  for (let i = 0; i < rows; i++) {
    const u = r();
    if (day > 0 && u < 0.002) continue;
    const updated = day > 0 && u > 0.99;
    out.push(`${i}\tcustomer-${(i * 31) % 9973}\t${(i * 7919) % 100000 + (updated ? 17 : 0)}\t${updated ? 'updated' : i % 5 ? 'shipped' : 'open'}\t2026-0${1 + (i % 9)}-1${i % 10} 10:00:00\n`);
  }
  for (let i = 0; i < (day > 0 ? rows / 200 : 0); i++) out.push(`${rows + i}\tcustomer-new\t${i}\topen\t2026-12-01 10:00:00\n`);
  return Buffer.from(out.join(''));
}

function decodeAll(codec: BlobCodec, sealed: Buffer, raw: number, base: Buffer): Buffer[] {
  const a = codec.decode(sealed, 2, raw, 'test', base); // streaming, dictionary loaded into the context
  const b = Buffer.alloc(raw);
  codec.decodeTo(sealed, 2, raw, 'test', b, base); // one pass, dictionary read in place
  return [a, b];
}

test('the C delta: a frame that zstd decodes with the base as dictionary, a few KB for a daily dump chunk', { skip }, () => {
  const z = zdeltaNative()!;
  const base = dump(17_000, 0); // ~1 MiB
  const v1 = dump(17_000, 1);
  const out = Buffer.alloc(v1.length - 1);
  const info = new Float64Array(1);
  const n = z.delta(out, v1, base, 3, info);
  assert.ok(n > 0, `delta returned ${n}`);
  assert.ok(n < v1.length / 50, `delta of ${n} bytes for a ${v1.length}-byte chunk with ~1% of its rows changed`);
  assert.ok(info[0]! > v1.length * 0.95 && info[0]! <= v1.length, `matched ${info[0]}`);
  const d = new binding.DCtx();
  const back = Buffer.alloc(v1.length);
  assert.equal(d.decompressUsingDict(back, out.subarray(0, n), base), v1.length);
  assert.deepEqual(back, v1);
});

test('the C delta: in-place edits, shifted data, random rewrites and a two-base dictionary all decode back through every reader', { skip }, () => {
  const z = zdeltaNative()!;
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  const r = rng(9);
  const noise = (b: Buffer, from: number, to: number) => {
    for (let i = from; i < to; i++) b[i] = (r() * 256) | 0;
  };
  const base = Buffer.alloc(1 << 20);
  noise(base, 0, base.length);
  const cases: Array<[string, Buffer, Buffer]> = [];
  // seven 64 KiB random writes (bench/backup-data.mjs mutate)
  const w = Buffer.from(base);
  for (let k = 0; k < 7; k++) noise(w, k * 140_000 + 1234, k * 140_000 + 1234 + 65536);
  cases.push(['random writes', w, base]);
  // bytes inserted and deleted: every match after them lies on another diagonal
  cases.push(['insert+delete', Buffer.concat([base.subarray(0, 1000), Buffer.from('inserted!'), base.subarray(1000, 500_000), base.subarray(500_123)]), base]);
  // a chunk straddling two bases (dictionary = both, joined): over 2 MiB, beyond zstd level 4's window
  const b2 = Buffer.alloc(1_500_000);
  noise(b2, 0, b2.length);
  const dict = Buffer.concat([b2, base]);
  cases.push(['two bases', Buffer.concat([b2.subarray(900_000), base.subarray(0, 600_000)]), dict]);
  // the data before the base's start: matches far back
  cases.push(['prefix', Buffer.concat([Buffer.from('header v2\n'), base.subarray(10)]), base]);
  for (const [what, data, d] of cases) {
    const out = Buffer.alloc(data.length - 1);
    const info = new Float64Array(1);
    const n = z.delta(out, data, d, 3, info);
    assert.ok(n > 0, `${what}: delta returned ${n}`);
    const literals = data.length - info[0]!;
    assert.ok(n < literals + 4096, `${what}: ${n} bytes for ${literals} unmatched`);
    const e = codec.encode(data, d);
    assert.equal(e.compression, 2, what);
    for (const back of decodeAll(codec, e.sealed, data.length, d)) assert.ok(back.equals(data), `${what}: decoded differently`);
  }
});

test('the C delta declines what it must not encode: a base zstd reads as a formatted dictionary, tiny inputs; refuses bad arguments', { skip }, () => {
  const z = zdeltaNative()!;
  const info = new Float64Array(1);
  const base = Buffer.alloc(65536, 0x61);
  base.writeUInt32LE(0xec30a437, 0); // ZSTD_MAGIC_DICTIONARY
  const data = Buffer.from(base);
  data[40000] = 0x62;
  assert.equal(z.delta(Buffer.alloc(data.length - 1), data, base, 3, info), -1);
  assert.equal(z.delta(Buffer.alloc(8), Buffer.alloc(9), Buffer.alloc(1000), 3, info), -1);
  // no gain: unrelated data
  const r = rng(4);
  const a = Buffer.alloc(100_000);
  const b = Buffer.alloc(100_000);
  for (let i = 0; i < a.length; i++) {
    a[i] = (r() * 256) | 0;
    b[i] = (r() * 256) | 0;
  }
  assert.equal(z.delta(Buffer.alloc(b.length - 1), b, a, 3, info), 0);
  const call = z.delta as (...a: unknown[]) => number;
  assert.throws(() => call(Buffer.alloc(10), Buffer.alloc(10)), TypeError);
  assert.throws(() => call(Buffer.alloc(10), Buffer.alloc(10), Buffer.alloc(10), 3, new Float32Array(1)), TypeError);
  assert.throws(() => call(Buffer.alloc(10), 'x', Buffer.alloc(10), 3, info), TypeError);
});

test('encode takes the C delta when it loads (no zstd match finder on a dump chunk or a two-base dictionary); without it zstd does; both decode back alike', async () => {
  const base = dump(17_000, 0);
  const v1 = dump(17_000, 1);
  const big = Buffer.concat([dump(30_000, 0), base]); // over 2 MiB: the tuned zstd path without the C delta
  const chunk = Buffer.concat([big.subarray(big.length - base.length - 400_000, big.length - base.length), v1.subarray(0, 600_000)]);
  const codec = new BlobCodec(Buffer.alloc(32, 1), 3);
  const c = codec as unknown as { deltaFast: (...a: unknown[]) => unknown; delta: { compress: (...a: unknown[]) => unknown } };
  let zstdCalls = 0;
  const fast = c.deltaFast.bind(codec);
  c.deltaFast = (...a: unknown[]) => (zstdCalls++, fast(...a));
  const tuned = c.delta.compress.bind(c.delta);
  c.delta.compress = (...a: unknown[]) => (zstdCalls++, tuned(...a));
  const e1 = codec.encode(v1, base);
  const e2 = codec.encode(chunk, big);
  assert.equal(e1.compression, 2);
  assert.equal(e2.compression, 2);
  if (!skip) assert.equal(zstdCalls, 0, "zstd's match finder ran although the C delta loaded");
  else assert.equal(zstdCalls, 2);
  for (const back of decodeAll(codec, e1.sealed, v1.length, base)) assert.ok(back.equals(v1));
  for (const back of decodeAll(codec, e2.sealed, chunk.length, big)) assert.ok(back.equals(chunk));
  // the fallback (LIFEBOAT_NO_ZDELTA=1) in a process of its own: zstd's frames, read by this codec
  const codecUrl = new URL('./codec.js', import.meta.url).href;
  const nativeUrl = new URL('./native.js', import.meta.url).href;
  const script = `
    const [{ BlobCodec }, { zdeltaNative }] = await Promise.all([import(${JSON.stringify(codecUrl)}), import(${JSON.stringify(nativeUrl)})]);
    const chunks = []; for await (const c of process.stdin) chunks.push(c);
    const all = Buffer.concat(chunks); const n = all.readUInt32LE(0); const base = all.subarray(4, 4 + n); const data = all.subarray(4 + n);
    const e = new BlobCodec(Buffer.alloc(32, 1), 3).encode(data, base);
    process.stdout.write(JSON.stringify({ loaded: zdeltaNative() !== undefined, compression: e.compression, sealed: e.sealed.toString('base64') }));`;
  const len = Buffer.alloc(4);
  len.writeUInt32LE(base.length);
  const res = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', script], { input: Buffer.concat([len, base, v1]), env: { ...process.env, LIFEBOAT_NO_ZDELTA: '1' }, maxBuffer: 64 << 20 }).toString(),
  ) as { loaded: boolean; compression: number; sealed: string };
  assert.equal(res.loaded, false);
  assert.equal(res.compression, 2);
  for (const back of decodeAll(codec, Buffer.from(res.sealed, 'base64'), v1.length, base)) assert.ok(back.equals(v1));
});
