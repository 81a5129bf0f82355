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
const runMarking = (env: NodeJS.ProcessEnv) => {
  const out = execFileSync(process.execPath, ['--trace-gc', '--input-type=module', '-e', markingProbe], { env: { ...process.env, ...env }, encoding: 'utf8' });
  const lines = out.split('\n');
  return {
    set: (JSON.parse(lines.filter((l) => l.startsWith('{')).pop()!) as { set: boolean }).set,
    incremental: lines.filter((l) => l.includes('Mark-Compact') && l.includes('incremental marking')).length,
  };
};

test('withoutIncrementalMarking: no incremental marking afterwards; LIFEBOAT_INCREMENTAL_MARKING=1 keeps it', () => {
  const off = runMarking({ LIFEBOAT_INCREMENTAL_MARKING: '' });
  const on = runMarking({ LIFEBOAT_INCREMENTAL_MARKING: '1' });
  assert.equal(off.set, true);
  assert.equal(off.incremental, 0);
  assert.equal(on.set, false);
  assert.ok(on.incremental >= 1, 'the control: with V8 default the probe starts incremental marking');
});
