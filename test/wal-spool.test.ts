import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { CLI, runCli, tmpDir } from './helpers/tmp.js';
import { tryLock } from '../src/repo/wal-spool.js';

/**
 * The WAL spool (wal-push --spool / wal-fetch --spool, src/repo/wal-spool*.ts)
 * with real processes: a push worker killed with SIGKILL at any moment loses no
 * queued segment (even though the source files are gone, as PostgreSQL recycles
 * them once archive_command succeeded); a worker failure is reported by the
 * next archive_command; a prefetched segment is handed over only when its bytes
 * match the archive, a damaged one is refetched from the repository, and a
 * segment the repository cannot deliver intact never reaches the spool.
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const env = { LIFEBOAT_PASSWORD: 'spool-pw' };
const seg = (n: number) => `00000001000000000000${n.toString(16).toUpperCase().padStart(4, '0')}`;

async function waitFor(what: string, fn: () => Promise<boolean> | boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function startWorker(dir: 'push' | 'fetch', spool: string, repo: string, idle: number): ChildProcess {
  const child = spawn(process.execPath, [CLI, 'wal-spool-worker', dir, spool, '--repo', repo, '--idle', String(idle)], {
    env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', ...env },
    stdio: 'ignore',
  });
  return child;
}

/** The spool's lock for `dir` is free (no worker running). */
function lockFree(spool: string, dir: 'push' | 'fetch'): boolean {
  const l = tryLock(path.join(spool, `${dir}.lock`));
  l?.release();
  return l !== undefined;
}

test('wal-push --spool: kill -9 of the push worker at any moment loses no queued segment', { timeout: 300_000 }, async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const repo = path.join(dir, 'repo');
  const spool = path.join(dir, 'spool');
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  await fsp.mkdir(spool);
  const wal = path.join(dir, 'pg_wal');
  await fsp.mkdir(wal);
  const content = new Map<string, Buffer>();
  let n = 1;
  for (const delay of [300, 500, 700, 900, 1200]) {
    // queue while this test holds the worker lock (so no archive_command starts one), then let a worker run and kill it
    const held = tryLock(path.join(spool, 'push.lock'));
    assert.ok(held);
    for (let i = 0; i < 3; i++, n++) {
      const name = seg(n);
      const data = randomBytes(3 << 20);
      content.set(name, data);
      await fsp.writeFile(path.join(wal, name), data);
      const r = await runCli(['wal-push', path.join(wal, name), '--repo', repo, '--spool', spool, '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(JSON.parse(r.stdout.trim()).status, 'queued');
      await fsp.rm(path.join(wal, name)); // PostgreSQL may recycle it now
    }
    held!.release();
    const w = startWorker('push', spool, repo, 60);
    const exited = new Promise((r) => w.on('exit', r));
    await sleep(delay);
    w.kill('SIGKILL');
    await exited;
  }
  const queued = (await fsp.readdir(path.join(spool, 'push'))).filter((f) => /^[0-9A-F]{24}$/.test(f));
  // a fresh worker (as the next archive_command would start) finishes the queue
  const r = await runCli(['wal-spool-worker', 'push', spool, '--repo', repo, '--idle', '0'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await fsp.readdir(path.join(spool, 'push'))).filter((f) => /^[0-9A-F]{24}$/.test(f)), []);
  for (const [name, data] of content) {
    const dest = path.join(dir, `out-${name}`);
    const f = await runCli(['wal-fetch', name, dest, '--repo', repo], { env });
    assert.equal(f.code, 0, `${name} lost (was ${queued.includes(name) ? 'still queued' : 'pushed'} after the kills): ${f.stderr}`);
    assert.ok((await fsp.readFile(dest)).equals(data), `${name}: archived bytes differ`);
  }
  const chk = await runCli(['check', '--read-data', '--repo', repo], { env });
  assert.equal(chk.code, 0, chk.stdout + chk.stderr);
});

test('wal-push --spool: a push worker failure is reported by the next archive_command, which keeps its file', { timeout: 120_000 }, async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const repo = path.join(dir, 'repo');
  const spool = path.join(dir, 'spool');
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  const a = path.join(dir, 'a', seg(1));
  const b = path.join(dir, 'b', seg(1));
  await fsp.mkdir(path.dirname(a));
  await fsp.mkdir(path.dirname(b));
  await fsp.writeFile(a, randomBytes(1 << 20));
  await fsp.writeFile(b, randomBytes(1 << 20));
  assert.equal((await runCli(['wal-push', a, '--repo', repo], { env })).code, 0);
  // a second cluster archiving the same name with other bytes: queued, then refused by the worker
  const q = await runCli(['wal-push', b, '--repo', repo, '--spool', spool, '--idle', '0'], { env });
  assert.equal(q.code, 0, q.stderr);
  await waitFor('the worker to record its failure', () => existsSync(path.join(spool, 'push', 'error')));
  await waitFor('the worker to exit', () => lockFree(spool, 'push'));
  const c = path.join(dir, 'a', seg(2));
  await fsp.writeFile(c, randomBytes(1 << 20));
  const r = await runCli(['wal-push', c, '--repo', repo, '--spool', spool, '--idle', '0'], { env });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /push worker failed: 000000010000000000000001: .*DIFFERENT content/);
  assert.ok(!existsSync(path.join(spool, 'push', seg(2))), 'not queued while the worker fails');
  assert.ok(existsSync(path.join(spool, 'push', seg(1))), 'the refused file stays queued (nothing dropped)');
  await waitFor('the worker to exit', () => lockFree(spool, 'push'));
});

test('wal-fetch --spool: prefetched segments are verified before PostgreSQL gets them; a damaged one is not handed over', { timeout: 180_000 }, async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const repo = path.join(dir, 'repo');
  const spool = path.join(dir, 'spool');
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  const wal = path.join(dir, 'pg_wal');
  await fsp.mkdir(wal);
  const content = new Map<string, Buffer>();
  for (let i = 1; i <= 4; i++) {
    const data = randomBytes(1 << 20);
    content.set(seg(i), data);
    await fsp.writeFile(path.join(wal, seg(i)), data);
    assert.equal((await runCli(['wal-push', path.join(wal, seg(i)), '--repo', repo], { env })).code, 0);
  }
  const fetch = (name: string, dest: string) => runCli(['wal-fetch', name, dest, '--repo', repo, '--spool', spool, '--prefetch', '3', '--idle', '3', '--json'], { env });
  const out = path.join(dir, 'restore');
  await fsp.mkdir(out);
  const r1 = await fetch(seg(1), path.join(out, 'a'));
  assert.equal(r1.code, 0, r1.stderr);
  assert.ok((await fsp.readFile(path.join(out, 'a'))).equals(content.get(seg(1))!));
  const ready = (name: string) => existsSync(path.join(spool, 'fetch', `${name}.cksum`));
  await waitFor('segments 2-4 prefetched', () => ready(seg(2)) && ready(seg(3)) && ready(seg(4)));

  // damage the prefetched copy of segment 2 (one byte in the middle)
  const f2 = path.join(spool, 'fetch', seg(2));
  const fh = await fsp.open(f2, 'r+');
  const b = Buffer.alloc(1);
  await fh.read(b, 0, 1, 500_000);
  b[0]! ^= 0x5a;
  await fh.write(b, 0, 1, 500_000);
  await fh.close();
  const r2 = await fetch(seg(2), path.join(out, 'b'));
  assert.equal(r2.code, 0, r2.stderr);
  assert.match(r2.stderr, /does not match its checksum\/size \(damaged spool\)/);
  assert.ok(!JSON.parse(r2.stdout.trim()).prefetched, 'fetched from the repository instead');
  assert.ok((await fsp.readFile(path.join(out, 'b'))).equals(content.get(seg(2))!), 'PostgreSQL got the archived bytes, not the damaged ones');

  // an intact prefetched segment is handed over as is
  const r3 = await fetch(seg(3), path.join(out, 'c'));
  assert.equal(r3.code, 0, r3.stderr);
  assert.equal(JSON.parse(r3.stdout.trim()).prefetched, true);
  assert.ok((await fsp.readFile(path.join(out, 'c'))).equals(content.get(seg(3))!));

  // the end of the archive: answered from the worker's fresh "missing" marker; archived later, it is found
  await waitFor('segment 5 known missing', () => existsSync(path.join(spool, 'fetch', `${seg(5)}.missing`)));
  const r5 = await fetch(seg(5), path.join(out, 'e'));
  assert.equal(r5.code, 1, r5.stdout + r5.stderr);
  // answered from the marker, or (on a machine so loaded that the marker aged past its 5 s TTL before this
  // process started) from the repository itself: either way "not in the archive", exit 1, no file
  assert.match(r5.stderr, /000000010000000000000005 is not in the archive/);
  assert.ok(!existsSync(path.join(out, 'e')));
  const data5 = randomBytes(1 << 20);
  await fsp.writeFile(path.join(wal, seg(5)), data5);
  assert.equal((await runCli(['wal-push', path.join(wal, seg(5)), '--repo', repo], { env })).code, 0);
  await waitFor('the stale marker of segment 5 removed (restore_command asked for it: no longer re-checked)', () => !existsSync(path.join(spool, 'fetch', `${seg(5)}.missing`)));
  const r5b = await fetch(seg(5), path.join(out, 'e'));
  assert.equal(r5b.code, 0, r5b.stderr);
  assert.ok((await fsp.readFile(path.join(out, 'e'))).equals(data5));

  await waitFor('the prefetch worker to exit', () => lockFree(spool, 'fetch'));
  assert.deepEqual((await fsp.readdir(path.join(spool, 'fetch'))).filter((f) => f !== 'want'), [], 'the spool is emptied on exit');
});

test('wal-fetch --spool: a segment damaged in the repository never reaches the spool, and restore_command fails loudly', { timeout: 180_000 }, async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const repo = path.join(dir, 'repo');
  const spool = path.join(dir, 'spool');
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  const wal = path.join(dir, 'pg_wal');
  await fsp.mkdir(wal);
  const packs = async () => {
    const out: string[] = [];
    for (const d of await fsp.readdir(path.join(repo, 'data'))) for (const f of await fsp.readdir(path.join(repo, 'data', d))) out.push(path.join(repo, 'data', d, f));
    return out;
  };
  for (let i = 1; i <= 2; i++) {
    await fsp.writeFile(path.join(wal, seg(i)), randomBytes(1 << 20));
    const before = await packs();
    assert.equal((await runCli(['wal-push', path.join(wal, seg(i)), '--repo', repo], { env })).code, 0);
    if (i === 2) {
      // segment 2 is alone in the new pack(s): damage each in the middle
      for (const p of (await packs()).filter((p) => !before.includes(p))) {
        const fh = await fsp.open(p, 'r+');
        const st = await fh.stat();
        await fh.write(Buffer.from('damaged!'), 0, 8, Math.floor(st.size / 2));
        await fh.close();
      }
    }
  }
  const out = path.join(dir, 'restore');
  await fsp.mkdir(out);
  const fetch = (name: string, dest: string) => runCli(['wal-fetch', name, dest, '--repo', repo, '--spool', spool, '--prefetch', '2', '--idle', '2'], { env });
  const r1 = await fetch(seg(1), path.join(out, 'a'));
  assert.equal(r1.code, 0, r1.stderr);
  const log = path.join(spool, 'worker.log');
  await waitFor('the prefetch of segment 2 to fail', async () => /prefetch of 000000010000000000000002 failed: .*restore_command will fetch it itself/.test(await fsp.readFile(log, 'utf8').catch(() => '')));
  assert.ok(!existsSync(path.join(spool, 'fetch', seg(2))) && !existsSync(path.join(spool, 'fetch', `${seg(2)}.cksum`)), 'nothing of segment 2 in the spool');
  const r2 = await fetch(seg(2), path.join(out, 'b'));
  assert.notEqual(r2.code, 0, 'a damaged segment must not be restored');
  assert.ok(!existsSync(path.join(out, 'b')) && !existsSync(path.join(out, 'b.tmp')), 'nothing written under the destination');
  await waitFor('the prefetch worker to exit', () => lockFree(spool, 'fetch'));
});

test('bin/lifeboat-wal (the shell fast path of --spool): queues durably, reports worker errors, hands over only verified prefetched files', { timeout: 180_000 }, async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const script = path.resolve(path.dirname(CLI), '../../../bin/lifeboat-wal');
  const run = (args: string[], extra: Record<string, string> = {}) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(script, args, { env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_NODE: process.execPath, ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  const repo = path.join(dir, 'repo');
  const spool = path.join(dir, 'spool');
  assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
  await fsp.mkdir(path.join(spool, 'push'), { recursive: true });
  await fsp.mkdir(path.join(spool, 'fetch'), { recursive: true });
  // the test plays the running workers (holds both locks), so nothing is started behind its back
  const pushLock = tryLock(path.join(spool, 'push.lock'));
  const fetchLock = tryLock(path.join(spool, 'fetch.lock'));
  t.after(() => {
    pushLock?.release();
    fetchLock?.release();
  });
  const wal = path.join(dir, 'pg_wal');
  await fsp.mkdir(wal);
  const d1 = randomBytes(1 << 20);
  await fsp.writeFile(path.join(wal, seg(1)), d1);
  const common = ['--repo', repo, '--spool', spool];
  const p1 = await run(['wal-push', path.join(wal, seg(1)), ...common]);
  assert.equal(p1.code, 0, p1.stderr);
  assert.ok((await fsp.readFile(path.join(spool, 'push', seg(1)))).equals(d1), 'queued bytes');
  assert.deepEqual((await fsp.readdir(path.join(spool, 'push'))).filter((f) => f.endsWith('.tmp')), []);
  // a recorded worker failure fails the next archive_command
  await fsp.writeFile(path.join(spool, 'push', 'error'), JSON.stringify({ name: seg(1), message: 'repository unreachable', time: 'now' }));
  await fsp.writeFile(path.join(wal, seg(2)), randomBytes(1000));
  const p2 = await run(['wal-push', path.join(wal, seg(2)), ...common]);
  assert.equal(p2.code, 1);
  assert.match(p2.stderr, /push worker failed: 000000010000000000000001: repository unreachable/);
  assert.ok(!existsSync(path.join(spool, 'push', seg(2))));

  // prefetched files: an intact one is handed over, a damaged one is not
  const d3 = randomBytes(1 << 20);
  const d4 = randomBytes(1 << 20);
  for (const [n, d] of [[seg(3), d3], [seg(4), d4]] as const) {
    await fsp.writeFile(path.join(wal, n), d);
    assert.equal((await runCli(['wal-push', path.join(wal, n), '--repo', repo], { env })).code, 0);
    // the system's cksum, as an operator's shell would write it: "CRC SIZE"
    const { spawnSync } = await import('node:child_process');
    await fsp.writeFile(path.join(spool, 'fetch', `${n}.cksum`), spawnSync('cksum', { input: d, encoding: 'utf8' }).stdout);
  }
  await fsp.writeFile(path.join(spool, 'fetch', seg(3)), d3);
  const bad = Buffer.from(d4);
  bad[12345]! ^= 1;
  await fsp.writeFile(path.join(spool, 'fetch', seg(4)), bad);
  const out = path.join(dir, 'out');
  await fsp.mkdir(out);
  // handed over by the script itself (its cksum matched): no node to fall back to
  const f3 = await run(['wal-fetch', seg(3), path.join(out, 'x3'), ...common], { LIFEBOAT_NODE: '/bin/false' });
  assert.equal(f3.code, 0, f3.stderr);
  assert.ok((await fsp.readFile(path.join(out, 'x3'))).equals(d3));
  assert.ok(!existsSync(path.join(spool, 'fetch', seg(3))), 'moved, not copied');
  assert.equal((await fsp.readFile(path.join(spool, 'fetch', 'want'), 'utf8')).trim(), seg(3));
  const f4 = await run(['wal-fetch', seg(4), path.join(out, 'x4'), ...common]);
  assert.equal(f4.code, 0, f4.stderr);
  assert.match(f4.stderr, /damaged spool/);
  assert.ok((await fsp.readFile(path.join(out, 'x4'))).equals(d4), 'the archived bytes, not the damaged prefetched ones');
  // a fresh "missing" marker answers without the repository
  await fsp.writeFile(path.join(spool, 'fetch', `${seg(9)}.missing`), 'now\n');
  const f9 = await run(['wal-fetch', seg(9), path.join(out, 'x9'), ...common]);
  assert.equal(f9.code, 1);
  assert.match(f9.stderr, /not in the archive \(checked moments ago by the prefetch worker\)/);
  assert.ok(!existsSync(path.join(out, 'x9')));
});
