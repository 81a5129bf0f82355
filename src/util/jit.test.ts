import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

/**
 * withoutOptimizer: after it, a hot function is not optimized (V8's own status bit, %GetOptimizationStatus
 * kOptimized = 16), and LIFEBOAT_RESTORE_OPT=1 keeps the optimizer. Each case in a child process (the flag
 * is process-wide and cannot be set back).
 */
const jit = new URL('./jit.js', import.meta.url).href;
const probe = `
const v8 = await import('node:v8');
v8.setFlagsFromString('--allow-natives-syntax');
const { withoutOptimizer } = await import(${JSON.stringify(jit)});
const set = withoutOptimizer();
const status = new Function('f', 'return %GetOptimizationStatus(f)');
function hot(a) { let s = 0; for (let i = 0; i < a.length; i++) s += a[i] * 2; return s; }
const arr = Array.from({ length: 1000 }, (_, i) => i);
let t = 0;
for (let i = 0; i < 20000; i++) t += hot(arr);
console.log(JSON.stringify({ set, optimized: (status(hot) & 16) !== 0, sum: t }));
`;
const run = (env: NodeJS.ProcessEnv) =>
  JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, ...env }, encoding: 'utf8' })) as { set: boolean; optimized: boolean; sum: number };

test('withoutOptimizer: no function is optimized afterwards; results are the same', () => {
  const off = run({ LIFEBOAT_RESTORE_OPT: '' });
  const on = run({ LIFEBOAT_RESTORE_OPT: '1' });
  assert.equal(off.set, true);
  assert.equal(off.optimized, false);
  // the control: the same hot function is optimized when the optimizer is kept (the probe can tell)
  assert.equal(on.set, false);
  assert.equal(on.optimized, true);
  assert.equal(off.sum, on.sum);
});

/**
 * withoutIncrementalMarking: afterwards V8 starts no incremental marking (--trace-gc: no full collection says
 * "incremental marking"), where the same allocation pattern with LIFEBOAT_INCREMENTAL_MARKING=1 (V8's default)
 * does: the control shows the probe reaches V8's marking limit.
 */
const markingProbe = `
const { withoutIncrementalMarking } = await import(${JSON.stringify(jit)});
const set = withoutIncrementalMarking();
let keep = [];
for (let i = 0; i < 400000; i++) {
  keep.push({ i, s: 'x' + i, a: [i, i + 1, i + 2] });
  if (keep.length > 100000) keep = [];
  if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
}
console.log(JSON.stringify({ set }));
`;
/** A probe run in a child process under --trace-gc: the JSON it printed last, and its full collections' lines. */
function traceGc<T>(probe: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []): { result: T; fullGcs: string[] } {
  const out = execFileSync(process.execPath, [...nodeArgs, '--trace-gc', '--input-type=module', '-e', probe], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const lines = out.split('\n');
  return { result: JSON.parse(lines.filter((l) => l.startsWith('{')).pop()!) as T, fullGcs: lines.filter((l) => l.includes('Mark-Compact')) };
}
const runMarking = (env: NodeJS.ProcessEnv) => {
  const { result, fullGcs } = traceGc<{ set: boolean }>(markingProbe, env);
  return { set: result.set, incremental: fullGcs.filter((l) => l.includes('incremental marking')).length };
};

test('withoutIncrementalMarking: no incremental marking afterwards; LIFEBOAT_INCREMENTAL_MARKING=1 keeps it', () => {
  const off = runMarking({ LIFEBOAT_INCREMENTAL_MARKING: '' });
  const on = runMarking({ LIFEBOAT_INCREMENTAL_MARKING: '1' });
  assert.equal(off.set, true);
  assert.equal(off.incremental, 0);
  assert.equal(on.set, false);
  assert.ok(on.incremental >= 1, 'the control: with V8 default the probe starts incremental marking');
});

/**
 * heapNearLiveSize: afterwards V8 collects the old generation before it grows far past what is live. The probe
 * (incremental marking off and 4 MiB semi-spaces, as in the stream commands run by bin/lifeboat) keeps up to
 * 100,000 objects alive at a time, long enough to reach the old generation, then drops them: the largest heap it
 * sees (V8's committed heap, sampled as it runs; here ~37 MB against 64-70) must stay well under the one with V8's
 * default growth (LIFEBOAT_HEAP_GROWTH=1, the control), with more full collections (--trace-gc: ~23 against 6-7)
 * for the same allocations.
 */
const growthProbe = `
const v8 = await import('node:v8');
const { heapNearLiveSize, withoutIncrementalMarking } = await import(${JSON.stringify(jit)});
withoutIncrementalMarking();
const set = heapNearLiveSize();
let keep = [];
let peak = 0;
for (let i = 0; i < 1500000; i++) {
  keep.push({ i, s: 'x' + i, a: [i, i + 1, i + 2] });
  if (keep.length > 100000) keep = [];
  if (i % 1000 === 0) {
    peak = Math.max(peak, v8.getHeapStatistics().total_heap_size);
    await new Promise((r) => setImmediate(r));
  }
}
console.log(JSON.stringify({ set, peak }));
`;
const runGrowth = (env: NodeJS.ProcessEnv) => {
  const { result, fullGcs } = traceGc<{ set: boolean; peak: number }>(growthProbe, env, ['--max-semi-space-size=4']);
  return { ...result, fullGcs: fullGcs.length };
};

test('heapNearLiveSize: the old generation is collected near its live size; LIFEBOAT_HEAP_GROWTH=1 keeps V8 default', () => {
  const near = runGrowth({ LIFEBOAT_HEAP_GROWTH: '', LIFEBOAT_INCREMENTAL_MARKING: '' });
  const dflt = runGrowth({ LIFEBOAT_HEAP_GROWTH: '1', LIFEBOAT_INCREMENTAL_MARKING: '' });
  assert.equal(near.set, true);
  assert.equal(dflt.set, false);
  assert.ok(near.fullGcs > dflt.fullGcs, `full collections: ${near.fullGcs} near the live size, ${dflt.fullGcs} by default`);
  assert.ok(near.peak < dflt.peak * 0.75, `largest heap: ${(near.peak / 2 ** 20).toFixed(1)} MiB near the live size, ${(dflt.peak / 2 ** 20).toFixed(1)} MiB by default`);
});
