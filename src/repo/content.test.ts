import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BaseFinder } from './content.js';

const parent = { content: ['a', 'b', 'c', 'd'], sizes: [100, 200, 100, 50] };

test('BaseFinder: the parent chunk at a position, clamped to the last', () => {
  const f = new BaseFinder(parent);
  assert.equal(f.at(0), 'a');
  assert.equal(f.at(99), 'a');
  assert.equal(f.at(100), 'b');
  assert.equal(f.at(399), 'c');
  assert.equal(f.at(10_000), 'd');
  assert.equal(f.parentStart('c'), 300);
  assert.equal(f.parentStart('zzz'), undefined);
});

test('BaseFinder: the two parent chunks overlapping a range the most, in stream order', () => {
  const f = new BaseFinder(parent);
  assert.deepEqual(f.covering(50, 150), ['a', 'b']);
  assert.deepEqual(f.covering(120, 280), ['b']);
  // three overlapping chunks: c (100 bytes) and b (90) beat d (40)
  assert.deepEqual(f.covering(210, 440), ['b', 'c']);
  assert.deepEqual(new BaseFinder({ content: [], sizes: [] }).covering(0, 10), []);
});

test('BaseFinder: one base when a single parent chunk covers nearly all of the range', () => {
  const f = new BaseFinder(parent);
  // b covers 195 of 205 bytes (95%): c is not worth loading
  assert.deepEqual(f.covering(105, 310), ['b']);
  // b covers 150 of 170 bytes (88%): both
  assert.deepEqual(f.covering(150, 320), ['b', 'c']);
});
