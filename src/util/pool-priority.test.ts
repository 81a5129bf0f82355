import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import { poolPriority, poolThreads } from './pool-priority.js';
import { requireAddon } from './native.js';

const built = process.platform === 'linux' && requireAddon('sched') !== undefined;

const pp = new URL('./pool-priority.js', import.meta.url).href;
const main = new URL('../cli/main.js', import.meta.url).pathname;

/** Nice value and scheduling policy of every thread of `pid` (/proc/PID/task/TID/stat: fields 19 and 41). */
function threadsOf(pid: number): Array<{ tid: number; nice: number; policy: number }> {
  const out: Array<{ tid: number; nice: number; policy: number }> = [];
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'latin1');
    } catch {
      continue; // the thread ended
    }
    // after the command name in parentheses: field 3 (state) is index 0
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({ tid: Number(t), nice: Number(f[19 - 3]), policy: Number(f[41 - 3]) });
  }
  return out;
}
const SCHED_BATCH = 3;
/** This process's own nice value and policy, which the children inherit (a runner started under `nice` has another). */
const own = threadsOf(process.pid).find((t) => t.tid === process.pid)!;
const skip = !built ? 'native/sched.c did not build, or not Linux' : own.nice > 12 ? `the tests run at nice ${own.nice}: no room to raise it by 7` : false;

test('the setting: nice 10 under SCHED_BATCH where the pool has a thread per core or more, none with a core to spare; LIFEBOAT_POOL_NICE decides', () => {
  assert.deepEqual(poolPriority({}, 2, 2), { threads: 2, nice: 10, batch: true });
  assert.deepEqual(poolPriority({}, 4, 4), { threads: 4, nice: 10, batch: true });
  assert.equal(poolPriority({}, 8, 4), undefined);
  assert.equal(poolPriority({ LIFEBOAT_POOL_NICE: '0' }, 2, 2), undefined);
  assert.deepEqual(poolPriority({ LIFEBOAT_POOL_NICE: '5' }, 8, 4), { threads: 4, nice: 5, batch: true });
  for (const bad of ['-1', '20', '2.5', 'high'])
    assert.throws(() => poolPriority({ LIFEBOAT_POOL_NICE: bad }, 2, 2), (e: unknown) => e instanceof ConfigError && /LIFEBOAT_POOL_NICE must be a whole number from 0 to 19/.test(e.message));
  // the pool size as libuv reads it
  assert.equal(poolThreads({}), 4);
  assert.equal(poolThreads({ UV_THREADPOOL_SIZE: '2' }), 2);
  assert.equal(poolThreads({ UV_THREADPOOL_SIZE: '0' }), 1);
  assert.equal(poolThreads({ UV_THREADPOOL_SIZE: '5000' }), 1024);
  assert.equal(poolPriority({ UV_THREADPOOL_SIZE: '3' }, 3)?.threads, 3);
});

/** Start `args` under node with `env`; resolve once its stdout has a line matching `ready`, with the child (still running). */
function startUntil(args: string[], env: NodeJS.ProcessEnv, ready: RegExp): Promise<{ child: ReturnType<typeof spawn>; line: string }> {
  const child = spawn(process.execPath, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no ${ready} within 10 s: ${out} ${err}`));
    }, 10_000);
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => ready.test(l));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve({ child, line });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited (${code}) before ${ready}: ${out} ${err}`));
    });
  });
}

test('tunePool raises the nice value of each of the pool threads, under SCHED_BATCH, and of no other thread', { skip }, async () => {
  // in a child process, so this test's own pool stays as it is; it waits until told to end
  const { child, line } = await startUntil(
    [
      '--input-type=module',
      '-e',
      `
      import { tunePool } from ${JSON.stringify(pp)};
      import { readFile } from 'node:fs/promises';
      const n = await tunePool({ threads: 3, nice: 7, batch: true });
      await readFile(${JSON.stringify(main)}); // the pool still works
      console.log(JSON.stringify({ n }));
      process.stdin.resume();
      process.stdin.on('end', () => process.exit(0));`,
    ],
    { ...process.env, UV_THREADPOOL_SIZE: '3' },
    /^\{"n"/,
  );
  try {
    assert.deepEqual(JSON.parse(line), { n: 3 });
    const threads = threadsOf(child.pid!);
    const tuned = threads.filter((t) => t.nice === Math.min(19, own.nice + 7));
    assert.equal(tuned.length, 3, JSON.stringify(threads));
    assert.ok(tuned.every((t) => t.policy === SCHED_BATCH), JSON.stringify(tuned));
    const mainThread = threads.find((t) => t.tid === child.pid)!;
    assert.deepEqual([mainThread.nice, mainThread.policy], [own.nice, own.policy]);
    assert.equal(threads.length - tuned.length, threads.filter((t) => t.nice === own.nice && t.policy === own.policy).length, JSON.stringify(threads));
  } finally {
    child.stdin!.end();
    child.kill('SIGKILL');
  }
});

test('the lifeboat command tunes its pool before it does anything else; LIFEBOAT_POOL_NICE=0 leaves it alone; a bad value is a usage error', { skip }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-pool-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', UV_THREADPOOL_SIZE: '2' };
    const repo = path.join(dir, 'repo');
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    // a backup of stdin that waits for its data: the pool's threads as they are while a command runs
    const during = async (extra: NodeJS.ProcessEnv) => {
      const child = spawn(process.execPath, [main, '-r', repo, 'backup', '--stdin', '--stdin-filename', 'x', '--json'], { env: { ...env, ...extra }, stdio: ['pipe', 'pipe', 'pipe'] });
      try {
        // node's threads and the pool's (started by the tuning itself, first thing): wait until they are there
        let threads = threadsOf(child.pid!);
        for (let i = 0; i < 200 && threads.length < 7; i++) {
          await new Promise((r) => setTimeout(r, 25));
          threads = threadsOf(child.pid!);
        }
        await new Promise((r) => setTimeout(r, 300));
        return threadsOf(child.pid!);
      } finally {
        child.stdin!.end('data\n');
        await new Promise((r) => child.on('exit', r));
      }
    };
    const on = await during({ LIFEBOAT_POOL_NICE: '6' });
    assert.equal(on.filter((t) => t.nice === Math.min(19, own.nice + 6) && t.policy === SCHED_BATCH).length, 2, JSON.stringify(on));
    const off = await during({ LIFEBOAT_POOL_NICE: '0' });
    assert.equal(off.filter((t) => t.nice !== own.nice || t.policy !== own.policy).length, 0, JSON.stringify(off));
    const bad = spawnSync(process.execPath, [main, '-V'], { env: { ...env, LIFEBOAT_POOL_NICE: 'high' }, encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /^lifeboat: LIFEBOAT_POOL_NICE must be a whole number from 0 to 19 \(0: off\), not "high"\n$/);
    assert.ok(existsSync(repo));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
