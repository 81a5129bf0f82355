import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SOURCE_CAPABILITIES, sourceSchema } from '../config/sources.js';
import { SOURCE_KINDS } from './registry.js';

test('every configurable source kind is registered once, with the capabilities its schema declares', () => {
  const kinds = sourceSchema.options.map((o) => o.shape.kind.value).sort();
  assert.deepEqual(Object.keys(SOURCE_KINDS).sort(), kinds);
  assert.deepEqual(Object.keys(SOURCE_CAPABILITIES).sort(), kinds);
  for (const k of kinds) {
    const kind = SOURCE_KINDS[k];
    assert.equal(kind.layout, SOURCE_CAPABILITIES[k].layout, k);
    assert.equal(kind.restoresTo, SOURCE_CAPABILITIES[k].restoresTo, k);
    for (const fn of ['backup', 'findSnapshot', 'restore'] as const) assert.equal(typeof kind[fn], 'function', `${k}.${fn}`);
  }
  // drills: every kind but mongodb has a scratch target
  assert.deepEqual(kinds.filter((k) => !SOURCE_KINDS[k].drill), ['mongodb']);
});
