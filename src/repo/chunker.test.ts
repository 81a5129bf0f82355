import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { xorshift32 } from '../util/xorshift.js';
import { Chunker, DEFAULT_CHUNKER, gearTable, validateChunkerParams, windowSize } from './chunker.js';

const params = { min: 2 * 1024, avg: 8 * 1024, max: 32 * 1024 };
const gear = gearTable(Buffer.alloc(32, 7));

function chunkAll(data: Buffer, piece: number, g = gear): Buffer[] {
  const c = new Chunker(g, params);
  const out: Buffer[] = [];
  for (let off = 0; off < data.length; off += piece) out.push(...c.push(data.subarray(off, off + piece)));
  const last = c.finish();
  if (last) out.push(last);
  return out;
}

const ids = (chunks: Buffer[]) => chunks.map((c) => createHash('sha256').update(c).digest('hex').slice(0, 16));

test('chunks concatenate to the input and respect min/max', () => {
  const data = randomBytes(1024 * 1024);
  const chunks = chunkAll(data, 65536);
  assert.deepEqual(Buffer.concat(chunks), data);
  for (const c of chunks.slice(0, -1)) {
    assert.ok(c.length >= params.min && c.length <= params.max, `chunk of ${c.length} bytes`);
  }
  const avg = data.length / chunks.length;
  assert.ok(avg > params.min && avg < params.max, `average ${avg}`);
});

test('boundaries do not depend on how the stream is split into pushes', () => {
  const data = randomBytes(300 * 1024);
  const a = ids(chunkAll(data, data.length));
  for (const piece of [1, 977, 4096, 65536]) assert.deepEqual(ids(chunkAll(data, piece)), a, `piece size ${piece}`);
});

test('content-defined: an insertion near the start changes only the chunks around it', () => {
  // Seeded data (randomBytes made this fail now and then: a cut the insertion moved
  // can take the next one or two with it before the boundaries meet again). A chunker whose cuts depended
  // on positions would share none of the chunks after the insertion.
  const differing: number[] = [];
  for (let seed = 1; seed <= 12; seed++) {
    const next = xorshift32(seed * 0x9e3779b1);
    const data = Buffer.alloc(512 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (next() * 256) | 0;
    const edited = Buffer.concat([data.subarray(0, 1000), Buffer.from('inserted bytes'), data.subarray(1000)]);
    const a = new Set(ids(chunkAll(data, 8192)));
    const b = ids(chunkAll(edited, 8192));
    const shared = b.filter((id) => a.has(id)).length;
    assert.ok(b.length > 30, `${b.length} chunks`);
    assert.ok(shared >= b.length - 6, `seed ${seed}: ${shared} of ${b.length} chunks shared`);
    differing.push(b.length - shared);
  }
  differing.sort((x, y) => x - y);
  assert.ok(differing[6]! <= 3, `chunks not shared, per seed: ${differing.join(', ')}`);
});

test('the gear table is keyed: another seed cuts elsewhere', () => {
  const data = randomBytes(256 * 1024);
  const other = gearTable(Buffer.alloc(32, 8));
  assert.notDeepEqual(ids(chunkAll(data, 8192)), ids(chunkAll(data, 8192, other)));
});

test('a run of zeros is cut at max size; an empty stream yields no chunk', () => {
  const chunks = chunkAll(Buffer.alloc(100 * 1024), 4096);
  assert.deepEqual(chunks.slice(0, -1).map((c) => c.length), [32768, 32768, 32768]);
  assert.equal(new Chunker(gear, params).finish(), undefined);
});

test('parameter validation names the bad parameter', () => {
  assert.equal(validateChunkerParams(DEFAULT_CHUNKER), undefined);
  assert.match(validateChunkerParams({ min: 1024, avg: 3000, max: 8192 })!, /power of two/);
  assert.match(validateChunkerParams({ min: 8192, avg: 8192, max: 16384 })!, /min chunk size/);
  assert.match(validateChunkerParams({ min: 1024, avg: 8192, max: 8192 })!, /max chunk size/);
});

test('reading straight into the window (writable + commit) cuts exactly where push() does', () => {
  const data = randomBytes(700 * 1024);
  const expected = ids(chunkAll(data, 65536));
  for (const piece of [1, 1000, 40 * 1024, 200 * 1024]) {
    const c = new Chunker(gear, params);
    const out: Buffer[] = [];
    let off = 0;
    while (off < data.length) {
      const room = c.writable();
      assert.ok(room.length >= 1);
      const n = Math.min(piece, room.length, data.length - off);
      data.copy(room, 0, off, off + n);
      off += n;
      out.push(...c.commit(n));
    }
    const last = c.finish();
    if (last) out.push(last);
    assert.deepEqual(ids(out), expected, `piece size ${piece}`);
    assert.deepEqual(Buffer.concat(out), data);
    // every chunk owns its memory (it is transferred to a worker thread)
    for (const ch of out) assert.equal(ch.buffer.byteLength, ch.length);
  }
  assert.throws(() => new Chunker(gear, params).commit(1e9), RangeError);
});

test('reads straight into the window touch only about twice the largest chunk of it, not all of max + 1 MiB', () => {
  // A window is 9 MiB by default; the pages a read writes stay resident. The window slides as soon as
  // that copies no more than the cuts consumed, so the reads land near its front.
  const data = randomBytes(40 * 1024 * 1024);
  const read = 1024 * 1024;
  const c = new Chunker(gear, DEFAULT_CHUNKER);
  const out: Buffer[] = [];
  let off = 0;
  let base = -1;
  let highWater = 0;
  while (off < data.length) {
    const room = c.writable();
    if (base < 0) base = room.byteOffset; // the first room is the whole window
    const n = Math.min(read, room.length, data.length - off);
    data.copy(room, 0, off, off + n);
    highWater = Math.max(highWater, room.byteOffset - base + n);
    off += n;
    out.push(...c.commit(n));
  }
  const last = c.finish();
  if (last) out.push(last);
  assert.deepEqual(Buffer.concat(out), data);
  const largest = Math.max(...out.map((b) => b.length));
  assert.ok(highWater <= 2 * largest + read, `high-water ${highWater} with chunks of at most ${largest}`);
  assert.ok(highWater < windowSize(DEFAULT_CHUNKER) / 2, `high-water ${highWater} of a ${windowSize(DEFAULT_CHUNKER)}-byte window`);
});

test('cut points are exactly those of the first implementation (a change would stop deduplication against existing repositories)', () => {
  const b = Buffer.alloc(300001);
  let x = 9;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    if (i % 5000 < 1500) b[i] = 0;
    else if (i % 5000 < 2500) b[i] = 'pgbench row '.charCodeAt(i % 12);
    else b[i] = x >>> 24;
  }
  const ch = new Chunker(gearTable(Buffer.from('golden')), { min: 256, avg: 1024, max: 4096 });
  const sizes: number[] = [];
  for (let o = 0; o < b.length; o += 7001) for (const c of ch.push(b.subarray(o, o + 7001))) sizes.push(c.length);
  const last = ch.finish();
  if (last) sizes.push(last.length);
  // Computed by the original one-byte-per-iteration findCut.
  assert.equal(sizes.length, 163);
  assert.equal(createHash('sha256').update(JSON.stringify(sizes)).digest('hex'), '5c71ad520ff810209c9a2bbdd66ba92b29e9afe7da1eebf9a3c525e559d98aea');
});

test('a released window serves the next chunker: the same cuts, no bytes of the previous stream, and the old chunker refuses use', () => {
  const a = randomBytes(200 * 1024);
  const b = randomBytes(150 * 1024);
  const first = new Chunker(gear, params);
  for (let off = 0; off < a.length; off += 7000) first.push(a.subarray(off, off + 7000));
  const tail = first.finish();
  assert.ok(tail);
  const win = first.release();
  assert.ok(win && win.length === windowSize(params));
  assert.throws(() => first.writable(), /after release/);
  assert.throws(() => first.push(Buffer.alloc(1)), /after release/);
  // a chunker with data still in its window keeps it
  const busy = new Chunker(gear, params);
  busy.push(randomBytes(100));
  assert.equal(busy.release(), undefined);
  // the reused window: same chunks as a fresh chunker
  const second = new Chunker(gear, params, win);
  const out: Buffer[] = [];
  for (let off = 0; off < b.length; off += 5000) {
    const room = second.writable();
    assert.ok(room.buffer === win.buffer, 'the window is reused');
    const n = Math.min(room.length, 5000, b.length - off);
    b.copy(room, 0, off, off + n);
    out.push(...second.commit(n));
    off -= 5000 - n;
  }
  const last = second.finish();
  if (last) out.push(last);
  assert.deepEqual(ids(out), ids(chunkAll(b, b.length)));
  assert.deepEqual(Buffer.concat(out), b);
  // a window of the wrong size is not used
  const other = new Chunker(gear, { ...params, max: 64 * 1024 }, win);
  assert.ok(other.writable().buffer !== win.buffer);
});
