import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Chunker, type ChunkerParams, gearTable } from './chunker.js';
import { bytesNative } from './native.js';
import { superFeatures, superFeaturesAsync, superFeaturesJs } from './sketch.js';

// The C byte loops (native/bytes.c) against the JavaScript they replace: the cut points and
// sketches are stored in repositories (deduplication, delta bases), so they must be identical.
const addon = new URL('../../../native/build/Release/bytes.node', import.meta.url).pathname;
const skip =
  process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addon) ? 'native/ did not build (no compiler): the JavaScript is used' : false;

function native() {
  const n = bytesNative();
  assert.ok(n, `${addon} exists but did not load`);
  return n;
}

/** Files under `dir` (recursively, regular files only), up to `budget` bytes in all. */
function realFiles(dirs: string[], budget: number, maxFile = 4 * 1024 * 1024): string[] {
  const out: string[] = [];
  let total = 0;
  const walk = (d: string, depth: number) => {
    let names: string[];
    try {
      names = readdirSync(d).sort();
    } catch {
      return;
    }
    for (const n of names) {
      if (total >= budget) return;
      const p = path.join(d, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < 3) walk(p, depth + 1);
      } else if (st.isFile() && st.size <= maxFile) {
        out.push(p);
        total += st.size;
      }
    }
  };
  for (const d of dirs) walk(d, 0);
  return out;
}

const SIZES = [0, 1, 2, 3, 4, 5, 7, 8, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000, 4095, 4096, 4097, 65535, 65536, 65537, 100003, 1 << 20, (3 << 20) + 5];

test('sketch: C and JavaScript agree on random data of many sizes, and on uniform data', { skip }, () => {
  native();
  for (const n of SIZES) {
    const d = randomBytes(n);
    assert.deepEqual(superFeatures(d), superFeaturesJs(d), `random, ${n} bytes`);
  }
  for (const fill of [0, 0xff, 0x41]) {
    for (const n of [0, 100, 4096, 300_000]) {
      const d = Buffer.alloc(n, fill);
      assert.deepEqual(superFeatures(d), superFeaturesJs(d), `${n} bytes of ${fill}`);
    }
  }
  assert.deepEqual(superFeatures(Buffer.alloc(0)), []);
  assert.equal(superFeatures(randomBytes(1 << 20)).length, 12);
});

test('sketch: every prefix and every suffix of a buffer (first and last bytes count; views at every offset)', { skip }, () => {
  native();
  for (let r = 0; r < 4; r++) {
    const d = randomBytes(3000);
    for (let n = 0; n <= d.length; n++) {
      assert.deepEqual(superFeatures(d.subarray(0, n)), superFeaturesJs(d.subarray(0, n)), `prefix of ${n} bytes`);
      assert.deepEqual(superFeatures(d.subarray(n)), superFeaturesJs(d.subarray(n)), `suffix from ${n}`);
    }
  }
});

test('sketch: C and JavaScript agree on real files (libraries, documentation, headers)', { skip }, () => {
  native();
  const files = realFiles(['/usr/lib/x86_64-linux-gnu', '/usr/share/doc', '/usr/include'], 48 * 1024 * 1024);
  assert.ok(files.length > 20, `found ${files.length} files`);
  let withSketch = 0;
  for (const f of files) {
    const d = readFileSync(f);
    const sf = superFeatures(d);
    assert.deepEqual(sf, superFeaturesJs(d), f);
    if (sf.length) withSketch++;
  }
  assert.ok(withSketch > 10, `${withSketch} files had a sketch`);
});

test('sketch: views at any byteOffset are read in place (no copy, no bytes outside the view)', { skip }, () => {
  native();
  const big = randomBytes(1 << 20);
  for (const [off, n] of [
    [0, 0],
    [1, 1],
    [3, 63],
    [7, 4095],
    [1000, 65536],
    [12345, 500_000],
    [(1 << 20) - 129, 129],
    [(1 << 20) - 1, 1],
    [1 << 20, 0],
  ] as const) {
    const view = big.subarray(off, off + n);
    const copy = Buffer.from(view);
    assert.deepEqual(superFeatures(view), superFeaturesJs(copy), `view at ${off}, ${n} bytes`);
    // a Uint8Array over a shared ArrayBuffer (not a Buffer) too
    const u8 = new Uint8Array(big.buffer, big.byteOffset + off, n);
    assert.deepEqual(superFeatures(u8), superFeaturesJs(copy), `Uint8Array at ${off}, ${n} bytes`);
  }
});

/** Chunk `data` fed in pieces of `piece` bytes; returns the chunk lengths and checks the chunks concatenate to data. */
function cuts(data: Buffer, params: ChunkerParams, piece: number, nativeCut: boolean, gear: Int32Array): number[] {
  const c = new Chunker(gear, params, undefined, nativeCut);
  const sizes: number[] = [];
  const h = createHash('sha256');
  for (let o = 0; o < data.length; o += piece) {
    for (const ch of c.push(data.subarray(o, o + piece))) {
      sizes.push(ch.length);
      h.update(ch);
    }
  }
  const last = c.finish();
  if (last) {
    sizes.push(last.length);
    h.update(last);
  }
  assert.equal(h.digest('hex'), createHash('sha256').update(data).digest('hex'));
  return sizes;
}

/** Random runs, zero runs (cut at max) and real text: the kinds of data a backup sees. */
function mixedStream(n: number): Buffer {
  const text = Buffer.concat(realFiles(['/usr/share/doc', '/usr/include'], 4 * 1024 * 1024, 256 * 1024).map((f) => readFileSync(f)));
  const parts: Buffer[] = [];
  let len = 0;
  let k = 0;
  while (len < n) {
    const kind = k++ % 3;
    const size = 1 + ((k * 7919 * 131) % (700 * 1024));
    const p = kind === 0 ? randomBytes(size) : kind === 1 ? Buffer.alloc(size) : text.subarray((k * 4099) % Math.max(1, text.length - size), ((k * 4099) % Math.max(1, text.length - size)) + size);
    parts.push(p);
    len += p.length;
  }
  return Buffer.concat(parts).subarray(0, n);
}

test("chunker: the C cut search gives the JavaScript's full cut sequence over a multi-MiB stream fed in pieces", { skip }, () => {
  native();
  const gear = gearTable(randomBytes(32));
  const data = mixedStream(12 * 1024 * 1024);
  const small = { min: 2 * 1024, avg: 8 * 1024, max: 32 * 1024 };
  const mid = { min: 64 * 1024, avg: 256 * 1024, max: 1024 * 1024 };
  const dflt = { min: 512 * 1024, avg: 1024 * 1024, max: 8 * 1024 * 1024 };
  for (const params of [small, mid, dflt]) {
    const expected = cuts(data, params, 65536, false, gear);
    assert.ok(expected.length > 3, `${expected.length} chunks`);
    for (const piece of [977, 65536, 1 << 20, data.length]) {
      assert.deepEqual(cuts(data, params, piece, true, gear), expected, `avg ${params.avg}, pieces of ${piece}`);
    }
  }
  // byte by byte (every call resumes the rolling hash where the previous one stopped)
  const head = data.subarray(0, 200 * 1024);
  assert.deepEqual(cuts(head, small, 1, true, gear), cuts(head, small, 65536, false, gear), 'pieces of 1 byte');
});

test('chunker: C and JavaScript cut real files identically (writable + commit, sliding window)', { skip }, () => {
  native();
  const gear = gearTable(Buffer.from('real files'));
  const params = { min: 16 * 1024, avg: 64 * 1024, max: 256 * 1024 };
  const data = Buffer.concat(realFiles(['/usr/lib/x86_64-linux-gnu'], 24 * 1024 * 1024).map((f) => readFileSync(f)));
  const run = (nativeCut: boolean) => {
    const c = new Chunker(gear, params, undefined, nativeCut);
    const sizes: number[] = [];
    let off = 0;
    while (off < data.length) {
      const room = c.writable();
      const n = Math.min(room.length, 50_000, data.length - off);
      data.copy(room, 0, off, off + n);
      off += n;
      for (const ch of c.commit(n)) sizes.push(ch.length);
    }
    const last = c.finish();
    if (last) sizes.push(last.length);
    return sizes;
  };
  const js = run(false);
  assert.ok(js.length > 50, `${js.length} chunks`);
  assert.deepEqual(run(true), js);
});

test('the C checks its arguments: out-of-range offsets and wrong types throw, nothing is read outside the view', { skip }, () => {
  const n = native();
  const gear = gearTable(Buffer.alloc(32));
  const st = (start: number, len: number, scanned = 0) => Int32Array.from([start, len, scanned, 0, 64, 1024, 4096, -1, -1]);
  const buf = Buffer.alloc(5000);
  assert.throws(() => n.findCut(buf, gear, st(1, 5000)), RangeError);
  assert.throws(() => n.findCut(buf, gear, st(0, 5001)), RangeError);
  assert.throws(() => n.findCut(buf, gear, st(-1, 10)), RangeError);
  assert.throws(() => n.findCut(buf, gear, st(0, -5)), RangeError);
  assert.throws(() => n.findCut(buf, gear, st(0, 100, -7)), RangeError);
  assert.throws(() => n.findCut(buf, gear, st(0x7fffffff, 0x7fffffff)), RangeError);
  // the length is that of the view, not of the ArrayBuffer behind it
  assert.throws(() => n.findCut(buf.subarray(100, 200), gear, st(0, 101)), RangeError);
  assert.throws(() => n.findCut(buf, gear.subarray(1), st(0, 10)), TypeError);
  assert.throws(() => n.findCut(buf, new Uint32Array(256) as unknown as Int32Array, st(0, 10)), TypeError);
  assert.throws(() => n.findCut(buf, gear, new Int32Array(8)), TypeError);
  assert.throws(() => n.findCut('x' as unknown as Buffer, gear, st(0, 1)), TypeError);
  assert.throws(() => (n.findCut as (...a: unknown[]) => number)(buf, gear), TypeError);
  // a mask of all ones never matches: the cut is at max
  assert.equal(n.findCut(buf, gear, st(0, 5000)), 4096);
  assert.equal(n.findCut(buf, gear, st(0, 63)), 0);
  assert.throws(() => n.sketch(buf, new Uint32Array(11)), TypeError);
  assert.throws(() => n.sketch(buf, new Int32Array(12) as unknown as Uint32Array), TypeError);
  assert.throws(() => n.sketch(new Uint16Array(4) as unknown as Uint8Array, new Uint32Array(12)), TypeError);
  assert.throws(() => (n.sketch as (...a: unknown[]) => boolean)(buf), TypeError);
  const out = new Uint32Array(12).fill(7);
  assert.equal(n.sketch(new Uint8Array(0), out), false);
  assert.deepEqual([...out], new Array(12).fill(7));
});

test('the addon loads in worker threads (context-aware) and gives the same sketches there', { skip }, async () => {
  native();
  const data = randomBytes(2 * 1024 * 1024);
  const expected = superFeaturesJs(data);
  const url = new URL('./sketch.js', import.meta.url).href;
  const nativeUrl = new URL('./native.js', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    Promise.all([import(${JSON.stringify(url)}), import(${JSON.stringify(nativeUrl)})]).then(([s, n]) => {
      parentPort.postMessage({ loaded: n.bytesNative() !== undefined, sf: s.superFeatures(workerData) });
    });`;
  const run = () =>
    new Promise<{ loaded: boolean; sf: number[] }>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: data });
      w.once('message', (m) => {
        resolve(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
  const results = await Promise.all([run(), run(), run()]);
  for (const r of results) {
    assert.equal(r.loaded, true);
    assert.deepEqual(r.sf, expected);
  }
});

test('sketch on the thread pool (sketchAsync): the same features as the JavaScript, many at once, views in place', { skip }, async () => {
  const big = randomBytes(3 << 20);
  const cases: Uint8Array[] = [
    big,
    big.subarray(12_345, 12_345 + (1 << 20)),
    randomBytes(200_000),
    Buffer.alloc(300_000, 7), // uniform: no position sampled
    new Uint8Array(0),
  ];
  const got = await Promise.all(cases.map((d) => superFeaturesAsync(d)!));
  cases.forEach((d, i) => assert.deepEqual(got[i], superFeaturesJs(d), `case ${i} (${d.length} bytes)`));
  assert.deepEqual(got[3], []);
  assert.throws(() => native().sketchAsync(new Uint16Array(4) as unknown as Uint8Array, () => {}), TypeError);
});
