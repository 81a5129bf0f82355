import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, Rng, runCli, textBytes, tmpDir } from './helpers/tmp.js';
import { heapTrimStats } from '../src/util/heap-trim.js';

/**
 * The restore of a stream snapshot trims the heap as it goes (util/heap-trim.ts) only when
 * LIFEBOAT_TRIM_MS asks for it (docs/benchmarks.md, "check --read-data and a dump's restore where a
 * page fault is dear"): the thread of native/mem.c that does it is named "lifeboat-trim". The restore
 * writes the dump to a pipe this test does not read until it has looked at the process's threads: by
 * then the restore has begun (its first bytes are there) and waits for the pipe, so the threads are
 * those of a restore at work.
 */
const env = { LIFEBOAT_PASSWORD: 'trim-pw', LIFEBOAT_TEST_SCRYPT_N: '1024' };
const skip = heapTrimStats() && process.platform === 'linux' ? false : 'native/mem.c did not build, or not Linux';

/** Restore the latest snapshot of `repo` to a pipe (it must exit 0): the names of its threads once its first bytes arrive, and all of its output. */
async function restoreThreads(repo: string, trimMs?: string): Promise<{ threads: string[]; out: Buffer }> {
  const child = spawn(process.execPath, [CLI, 'restore', 'latest', '-q', '-r', repo, '--target', '-'], {
    env: { ...process.env, ...env, ...(trimMs === undefined ? { LIFEBOAT_TRIM_MS: '' } : { LIFEBOAT_TRIM_MS: trimMs }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    child.stdout.once('readable', () => resolve());
    child.once('error', reject);
  });
  const threads = readdirSync(`/proc/${child.pid}/task`).map((tid) => {
    try {
      return readFileSync(`/proc/${child.pid}/task/${tid}/comm`, 'utf8').trim();
    } catch {
      return '';
    }
  });
  const chunks: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => chunks.push(d));
  const code = await exited;
  assert.equal(code, 0, stderr);
  return { threads, out: Buffer.concat(chunks) };
}

test('restore of a stream snapshot: no heap trims by default, nor with LIFEBOAT_TRIM_MS=0; LIFEBOAT_TRIM_MS=100 runs them while it writes (a "lifeboat-trim" thread)', { skip, timeout: 120_000 }, async () => {
  const t = tmpDir();
  try {
    const repo = path.join(t.dir, 'repo');
    // far more than a pipe holds: the restore is still writing when the test looks
    const dump = textBytes(8 * 1024 * 1024, new Rng(21));
    assert.equal((await runCli(['init', '-q', '-r', repo], { env })).code, 0);
    assert.equal((await runCli(['backup', '-q', '-r', repo, '--stdin', '--stdin-filename', 'dump.sql'], { env, input: dump })).code, 0);
    const on = await restoreThreads(repo, '100');
    assert.ok(on.threads.includes('lifeboat-trim'), `threads: ${on.threads.join(', ')}`);
    assert.ok(on.out.equals(dump), 'the dump comes back as it was');
    for (const ms of [undefined, '0']) {
      const off = await restoreThreads(repo, ms);
      assert.ok(!off.threads.includes('lifeboat-trim'), `LIFEBOAT_TRIM_MS=${ms}: threads: ${off.threads.join(', ')}`);
      assert.ok(off.threads.length > 1, 'the control saw the process at work (its other threads)');
      assert.ok(off.out.equals(dump));
    }
  } finally {
    t.cleanup();
  }
});

test('a bad LIFEBOAT_TRIM_MS is a usage error when any command starts (exit 2, one line), not in the middle of one', async () => {
  const r = await runCli(['-V'], { env: { ...env, LIFEBOAT_TRIM_MS: 'often' } });
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'lifeboat: LIFEBOAT_TRIM_MS must be 0 (no trims) or a whole number of milliseconds from 10 to 60000, not "often"\n');
  assert.equal((await runCli(['-V'], { env: { ...env, LIFEBOAT_TRIM_MS: '250' } })).code, 0);
});
