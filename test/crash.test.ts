import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, makeTree, describeTree, runCli, CLI, Rng } from './helpers/tmp.js';

/**
 * Crash safety with real process kills: `lifeboat backup` and `lifeboat prune`
 * are SIGKILLed at random points. After every kill, `check --read-data` must
 * pass and every snapshot completed before must restore byte-identical.
 */
const RUNS = Number(process.env.LIFEBOAT_CRASH_RUNS ?? 20);

function killAfter(args: string[], env: Record<string, string>, delayMs: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), delayMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr });
    });
  });
}

test(`kill -9 during backup, prune and copy at ${RUNS} random points never damages a repository`, { timeout: 30 * 60_000 }, async () => {
  const t = tmpDir();
  try {
    const repo = path.join(t.dir, 'repo');
    const data = path.join(t.dir, 'data');
    const env = { LIFEBOAT_PASSWORD: 'crash-test', LIFEBOAT_TEST_SCRYPT_N: '1024' };
    const rng = new Rng(42);
    await makeTree(data, { files: 400, seed: 5, maxSize: 256 * 1024 });
    await fsp.writeFile(path.join(data, 'big-0.bin'), randomBytes(24 * 1024 * 1024));
    assert.equal((await runCli(['init', '--repo', repo, '--pack-size', '1MiB'], { env })).code, 0);
    const second = path.join(t.dir, 'second');
    assert.equal((await runCli(['init', '--repo', second, '--pack-size', '1MiB'], { env })).code, 0);
    const completed: Array<{ id: string; tree: Map<string, unknown> }> = [];
    const backupOnce = async () => {
      const r = await runCli(['backup', '--repo', repo, '--json', data], { env });
      assert.equal(r.code, 0, r.stderr);
      const id = JSON.parse(r.stdout.trim().split('\n').pop()!).snapshot_id as string;
      completed.push({ id, tree: await describeTree(data) });
    };
    await backupOnce();
    // time of a full backup, to spread kill points over it
    const t0 = Date.now();
    await fsp.writeFile(path.join(data, 'big-1.bin'), randomBytes(24 * 1024 * 1024));
    await backupOnce();
    const full = Math.max(300, Date.now() - t0);

    // the kill window of each command: at first a full backup's time; shrunk to most of a command's own time
    // whenever one finished before its kill point (its later runs change less data, and the machine may be
    // faster than when the backup was timed: a fixed window would let many finish before the kill)
    const windowOf = new Map<string, number>();
    let killedMidway = 0;
    for (let i = 0; i < RUNS; i++) {
      // change the data so every backup has new content to write
      await fsp.writeFile(path.join(data, `big-${i + 2}.bin`), randomBytes(8 * 1024 * 1024 + rng.int(8 * 1024 * 1024)));
      await fsp.writeFile(path.join(data, `small-${i}.txt`), `run ${i}\n`.repeat(1 + rng.int(1000)));
      const isPrune = i % 4 === 3;
      const isCopy = i % 4 === 1;
      if (isPrune) {
        // a completed backup, then forget the oldest snapshot (not crash points), then kill prune mid-way
        await backupOnce();
        const victim = completed.shift()!;
        const f = await runCli(['forget', '--repo', repo, victim.id], { env });
        assert.equal(f.code, 0, `forget after kill ${i - 1}: ${f.stderr}`);
      }
      const args = isPrune
        ? ['prune', '--repo', repo, '--max-unused', '0']
        : isCopy
          ? ['copy', '--repo', second, '--from-repo', repo]
          : ['backup', '--repo', repo, data];
      const started = Date.now();
      const res = await killAfter(args, { ...env, LIFEBOAT_FROM_PASSWORD: env.LIFEBOAT_PASSWORD }, 20 + rng.int(windowOf.get(args[0]!) ?? full));
      if (res.signal === 'SIGKILL') killedMidway++;
      else {
        assert.equal(res.code, 0, `${args[0]} failed on its own: ${res.stderr}`);
        windowOf.set(args[0]!, Math.max(50, Math.min(windowOf.get(args[0]!) ?? full, Math.floor((Date.now() - started) * 0.8))));
      }
      if (isCopy) {
        // the copy target must stay valid too, and a second (uninterrupted) copy completes it
        const c2 = await runCli(['check', '--repo', second, '--read-data'], { env: { ...env } });
        assert.equal(c2.code, 0, `copy target after kill ${i}: ${c2.stderr}`);
        assert.equal((await runCli(['copy', '--repo', second, '--from-repo', repo], { env: { ...env, LIFEBOAT_FROM_PASSWORD: env.LIFEBOAT_PASSWORD } })).code, 0);
      }
      if (!isPrune && !isCopy && res.code === 0) {
        // it finished before the kill: the latest snapshot is complete and must stay restorable
        const s = await runCli(['snapshots', '--repo', repo, '--json'], { env });
        const list = JSON.parse(s.stdout) as Array<{ id: string }>;
        completed.push({ id: list[list.length - 1]!.id, tree: await describeTree(data) });
      }
      const check = await runCli(['check', '--repo', repo, '--read-data'], { env });
      assert.equal(check.code, 0, `check after kill ${i} (${args[0]}): ${check.stderr}`);
      // every completed snapshot restores byte-identical (all of them every 5th run, else the newest and oldest)
      const toRestore = i % 5 === 4 ? completed : [completed[0]!, completed[completed.length - 1]!];
      for (const snap of toRestore) {
        const out = path.join(t.dir, `out-${i}-${snap.id.slice(0, 8)}`);
        const r = await runCli(['restore', snap.id, '--repo', repo, '--target', out], { env });
        assert.equal(r.code, 0, r.stderr);
        const got = await describeTree(path.join(out, data));
        assert.deepEqual(got, snap.tree, `snapshot ${snap.id.slice(0, 8)} after kill ${i}`);
        await fsp.rm(out, { recursive: true, force: true });
      }
    }
    console.log(`# ${RUNS} kill points, ${killedMidway} killed mid-operation`);
    assert.ok(killedMidway >= RUNS / 2, `only ${killedMidway} of ${RUNS} kills landed mid-operation`);
    // the copies restore byte-identical too
    const copied = JSON.parse((await runCli(['snapshots', '--repo', second, '--json'], { env })).stdout) as Array<{ copied_from: { snapshot: string } }>;
    for (const c of copied.slice(-2)) {
      const src = completed.find((x) => x.id === c.copied_from.snapshot);
      if (!src) continue;
      const out = path.join(t.dir, `copy-out-${c.copied_from.snapshot.slice(0, 8)}`);
      assert.equal((await runCli(['restore', c.copied_from.snapshot === src.id ? (c as unknown as { id: string }).id : '', '--repo', second, '--target', out], { env })).code, 0);
      assert.deepEqual(await describeTree(path.join(out, data)), src.tree);
    }
    // a final prune reclaims everything the killed runs left behind
    assert.equal((await runCli(['prune', '--repo', repo], { env })).code, 0);
    const final = await runCli(['check', '--repo', repo, '--read-data', '--json'], { env });
    assert.equal(final.code, 0, final.stderr);
    assert.deepEqual(JSON.parse(final.stdout).unreferenced_packs, []);
  } finally {
    t.cleanup();
  }
});
