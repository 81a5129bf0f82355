import { test } from 'node:test';
import assert from 'node:assert/strict';
import { byCodeUnit } from './compare.js';

test('byCodeUnit: timestamps in time order, ids and names in code unit order, whatever the locale', () => {
  const times = ['2026-12-01T10:00:00.500Z', '2026-01-02T00:00:00Z', '2026-12-01T09:59:59.999Z', '2025-12-31T23:59:59Z'];
  assert.deepEqual([...times].sort(byCodeUnit), ['2025-12-31T23:59:59Z', '2026-01-02T00:00:00Z', '2026-12-01T09:59:59.999Z', '2026-12-01T10:00:00.500Z']);
  // upper case before lower case, digits before letters, a prefix first: not a collation's order
  assert.deepEqual(['b', 'B', 'a1', 'a', 'A', '10', '9'].sort(byCodeUnit), ['10', '9', 'A', 'B', 'a', 'a1', 'b']);
  assert.equal(byCodeUnit('x', 'x'), 0);
  assert.equal(byCodeUnit('ab', 'a'), 1);
});
