import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Chunker, DEFAULT_CHUNKER, gearTable, validateChunkerParams } from './chunker.js';

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
  const data = randomBytes(512 * 1024);
  const edited = Buffer.concat([data.subarray(0, 1000), Buffer.from('inserted bytes'), data.subarray(1000)]);
  const a = new Set(ids(chunkAll(data, 8192)));
  const b = ids(chunkAll(edited, 8192));
  const shared = b.filter((id) => a.has(id)).length;
  assert.ok(shared >= b.length - 3, `${shared} of ${b.length} chunks shared`);
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
