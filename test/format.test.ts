import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatBytesOneDecimal, formatDuration, formatDurationPrecise, formatElapsed } from '../src/util/format.js';

/**
 * The size and duration formats were copies in several modules; they now live
 * in src/util/format.ts. Each keeps the exact output its callers printed
 * before (these tables were taken from the former copies).
 */

test('formatBytes (CLI) and formatBytesOneDecimal (runbook steps)', () => {
  const cases: Array<[number, string, string]> = [
    [0, '0 B', '0 B'],
    [1.5, '1.5 B', '1.5 B'],
    [1023, '1023 B', '1023 B'],
    [1024, '1.00 KiB', '1.0 KiB'],
    [1536, '1.50 KiB', '1.5 KiB'],
    [10752, '10.5 KiB', '10.5 KiB'],
    [102400, '100 KiB', '100.0 KiB'],
    [1048575, '1024 KiB', '1024.0 KiB'],
    [1048576, '1.00 MiB', '1.0 MiB'],
    [5.5 * 2 ** 30, '5.50 GiB', '5.5 GiB'],
    [2 ** 50, '1024 TiB', '1024.0 TiB'],
    [-2048, '-2.00 KiB', '-2048 B'],
    [NaN, 'NaN', 'NaN B'],
    [Infinity, 'Infinity', 'Infinity TiB'],
  ];
  for (const [n, cli, oneDecimal] of cases) {
    assert.equal(formatBytes(n), cli, `formatBytes(${n})`);
    assert.equal(formatBytesOneDecimal(n), oneDecimal, `formatBytesOneDecimal(${n})`);
  }
});

test('formatDuration (config syntax), formatDurationPrecise (drills), formatElapsed (CLI)', () => {
  const cases: Array<[number, string, string, string]> = [
    [0, '0ms', '0ms', '0 ms'],
    [0.4, '0ms', '0ms', '0.4 ms'],
    [999, '999ms', '999ms', '999 ms'],
    [999.6, '1s', '1000ms', '999.6 ms'],
    [1000, '1s', '1.00s', '1.0 s'],
    [1500, '1s', '1.50s', '1.5 s'],
    [59_999, '59s', '60.00s', '60.0 s'],
    [60_000, '1m', '1m', '1m0s'],
    [61_500, '1m1s', '1m1s', '1m2s'],
    [5_400_000, '1h30m', '1h30m', '90m0s'],
    [86_401_000, '1d1s', '1d1s', '1440m1s'],
    [-1500, '-1s', '-1500ms', '-1500 ms'],
    [NaN, 'NaN', 'NaN', 'NaNmNaNs'],
    [Infinity, 'Infinity', 'Infinity', 'InfinitymNaNs'],
  ];
  for (const [ms, compact, precise, elapsed] of cases) {
    assert.equal(formatDuration(ms), compact, `formatDuration(${ms})`);
    assert.equal(formatDurationPrecise(ms), precise, `formatDurationPrecise(${ms})`);
    assert.equal(formatElapsed(ms), elapsed, `formatElapsed(${ms})`);
  }
});
