import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { FEATURES, SketchIndex, superFeatures } from './sketch.js';

function edit(data: Buffer, at: number, n: number): Buffer {
  const out = Buffer.from(data);
  randomBytes(n).copy(out, at);
  return out;
}

test('a slightly changed chunk finds its original among unrelated ones', () => {
  const idx = new SketchIndex();
  const original = randomBytes(256 * 1024);
  idx.add('original', superFeatures(original));
  for (let i = 0; i < 20; i++) idx.add(`other-${i}`, superFeatures(randomBytes(256 * 1024)));
  assert.equal(superFeatures(original).length, FEATURES);
  const changed = edit(edit(original, 1000, 64), 150_000, 64);
  assert.deepEqual(idx.find(superFeatures(changed)).slice(0, 1), ['original']);
});

test('shifted content (bytes inserted at the front) still matches', () => {
  const idx = new SketchIndex();
  const original = randomBytes(256 * 1024);
  idx.add('original', superFeatures(original));
  const shifted = Buffer.concat([randomBytes(777), original.subarray(0, original.length - 777)]);
  assert.deepEqual(idx.find(superFeatures(shifted)).slice(0, 1), ['original']);
});

test('unrelated content finds nothing; tiny input has no sketch', () => {
  const idx = new SketchIndex();
  for (let i = 0; i < 20; i++) idx.add(`c-${i}`, superFeatures(randomBytes(128 * 1024)));
  assert.deepEqual(idx.find(superFeatures(randomBytes(128 * 1024))), []);
  assert.deepEqual(superFeatures(Buffer.alloc(0)), []);
});

test('an ambiguous vote (many chunks with the same features) answers "don\'t know"', () => {
  const idx = new SketchIndex();
  const same = randomBytes(128 * 1024);
  for (let i = 0; i < 3; i++) idx.add(`copy-${i}`, superFeatures(same));
  assert.deepEqual(idx.find(superFeatures(same)), []);
});
