import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { writeFileSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpDir, runCli } from './helpers/tmp.js';
import { startS3Server, s3Location, type S3TestServer } from './helpers/s3server.js';
import { startFaultProxy, type FaultProxy } from './helpers/faultproxy.js';
import { openStorage } from '../src/storage/open.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { readLocks } from '../src/repo/lock.js';
import { RCLONE_ENV, rcloneLocation, rcloneMissing } from './helpers/rclone.js';

/**
 * Leased repository locks across processes (docs/format.md "Locks"), against a
 * real S3 server over HTTP: every holder and waiter is its own process (the
 * CLI, or test/helpers/lock-holder.js taking a lock through the library), with
 * short leases (LIFEBOAT_LOCK_LEASE).
 */
const HOLDER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), 'helpers/lock-holder.js');
const PW = 'lock-test-pw';

interface Holder {
  child: ChildProcess;
  /** Resolves with the first JSON line of type t. */
  next(t: string): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stderr(): string;
}

function startHolder(env: Record<string, string>): Holder {
  const child = spawn(process.execPath, [HOLDER], { env: { ...process.env, LIFEBOAT_PASSWORD: PW, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<{ t: string; resolve: (o: Record<string, unknown>) => void }> = [];
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (l) => {
    const o = JSON.parse(l) as Record<string, unknown>;
    lines.push(o);
    for (const w of waiters.filter((w) => w.t === o.t)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(o);
    }
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    stderr: () => err,
    next: (t) => {
      const seen = lines.find((o) => o.t === t);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ t, resolve });
        void exited.then((code) => reject(new Error(`lock holder exited (${code}) before "${t}": ${err}`)));
      });
    },
  };
}

describe('repository locks across processes (S3 over HTTP; rclone)', () => {
  let srv: S3TestServer;
  let t: ReturnType<typeof tmpDir>;
  let src: string;

  before(async () => {
    srv = await startS3Server();
    t = tmpDir();
    src = path.join(t.dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'a.txt'), 'hello\n');
  });
  after(async () => {
    await srv.stop();
    t.cleanup();
  });

  async function newRepo(prefix: string): Promise<ReturnType<typeof s3Location>> {
    const loc = s3Location(srv, prefix);
    const r = await runCli(['init', '--repo', loc.location], { env: { ...loc.env, LIFEBOAT_PASSWORD: PW } });
    assert.equal(r.code, 0, r.stderr);
    return loc;
  }

  it('an exclusive lock blocks a backup; a live holder is never stale over several leases; unlock keeps live locks', { timeout: 240_000 }, async () => {
    const loc = await newRepo('live');
    // leases of 6 s, not 2-3 s: each refresh call has lease/6 to answer, and on a loaded machine a storage call
    // can take longer than 333 ms, so a short-leased holder (or the CLI's own backup) really loses its lock
    const lease = 6000;
    const env = { ...loc.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_LOCK_LEASE: `${lease}ms` };
    // held for at least five leases, and until the checks below are done (a release file): on a loaded
    // machine the three CLI runs below can take longer than five leases, and must all find the lock held
    const releaseFile = path.join(t.dir, 'live.release');
    const holder = startHolder({ ...env, LB_LOCATION: loc.location, LB_EXCLUSIVE: '1', LB_HOLD_MS: String(5 * lease), LB_RELEASE_FILE: releaseFile, LB_HOLD_AFTER_MS: String(lease) });
    const locked = await holder.next('locked');

    // blocked at once without --retry-lock
    let r = await runCli(['backup', '--repo', loc.location, src], { env });
    assert.equal(r.code, 11, r.stderr);
    assert.match(r.stderr, /locked exclusively by "prune"/);

    // list locks: one live exclusive lock with its lease and refresh counter
    r = await runCli(['list', 'locks', '--repo', loc.location, '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const listed = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    assert.equal(listed.length, 1, r.stdout);
    assert.equal(listed[0]!.id, locked.id);
    assert.equal(listed[0]!.exclusive, true);
    assert.equal(listed[0]!.stale, false);
    assert.equal(listed[0]!.lease_ms, lease);
    assert.match(String(listed[0]!.reason), /storage's clock/);

    // unlock without --remove-all leaves a live lock alone
    r = await runCli(['unlock', '--repo', loc.location], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed 0 lock/);

    // a waiting backup gets the repository only after the holder released it,
    // five leases later (one more after the release file), and never judges the refreshed lock stale
    const waiting = runCli(['backup', '--retry-lock', '2m', '--repo', loc.location, src], { env });
    writeFileSync(releaseFile, '');
    r = await waiting;
    const backupDone = Date.now();
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /stale/);
    const released = await holder.next('released');
    assert.equal(await holder.exited, 0, holder.stderr());
    assert.ok(Number(released.seq) >= 5, `refreshed ${String(released.seq)} times over 5 leases`);
    assert.ok(backupDone >= Number(released.at), 'the backup ran only after the holder released the lock');
  });

  it('kill -9 of the holder: a waiting backup proceeds within the lease, removing the stale lock with a log line', { timeout: 120_000 }, async () => {
    const loc = await newRepo('crash');
    const lease = 6000; // not shorter: see the first test
    const env = { ...loc.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_LOCK_LEASE: `${lease}ms` };
    // the holder records another host name: its pid cannot be checked from here, only its lease counts
    const holder = startHolder({ ...env, LB_LOCATION: loc.location, LB_EXCLUSIVE: '1', LB_HOLD_MS: '600000', LB_HOST: 'agent-b.example' });
    const locked = await holder.next('locked');
    holder.child.kill('SIGKILL');
    await holder.exited;
    const killedAt = Date.now();
    const r = await runCli(['backup', '--retry-lock', '5m', '--repo', loc.location, src], { env });
    const waited = Date.now() - killedAt;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`removed stale lock ${String(locked.id)} of "prune" \\(exclusive, pid \\d+ on agent-b\\.example, .*\\): not refreshed for [\\d.]+s by the storage's clock`));
    // the lease plus the storage's 1 s timestamp granularity, a retry interval and process start-up (which
    // takes many seconds on a loaded machine); far below the 5 min the backup would otherwise wait
    process.stdout.write(`# backup proceeded ${waited} ms after kill -9 of the holder (lease ${lease} ms)\n`);
    assert.ok(waited < lease + 45_000, `waited ${waited} ms`);
    const list = await runCli(['list', 'locks', '--repo', loc.location, '--json'], { env });
    assert.deepEqual(JSON.parse(list.stdout), []);
  });

  it('unlock --remove-all takes a live lock away; its holder notices and stops', { timeout: 120_000 }, async () => {
    const loc = await newRepo('removeall');
    const env = { ...loc.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_LOCK_LEASE: '6s' }; // not shorter: see the first test
    const holder = startHolder({ ...env, LB_LOCATION: loc.location, LB_EXCLUSIVE: '1', LB_HOLD_MS: '600000' });
    await holder.next('locked');
    const r = await runCli(['unlock', '--remove-all', '--repo', loc.location], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed lock [0-9a-f]{16} of "prune" .*removed by --remove-all/);
    const lost = await holder.next('lost');
    assert.match(String(lost.message), /lost its exclusive repository lock .*removed by another process/);
    assert.equal(await holder.exited, 11);
  });

  it('rclone (listings without storage times): kill -9 of a holder on another host is taken over by observing the lease pass', { timeout: 240_000 }, async (tc) => {
    const missing = rcloneMissing();
    if (missing) {
      tc.skip(missing);
      return;
    }
    const location = rcloneLocation(path.join(t.dir, 'rclone-repo'));
    const lease = 6000; // not shorter: see the first test
    const env = { ...RCLONE_ENV, LIFEBOAT_PASSWORD: PW, LIFEBOAT_LOCK_LEASE: `${lease}ms` };
    assert.equal((await runCli(['init', '--repo', location], { env })).code, 0);
    // an append-only server (rclone serve restic --append-only refuses overwrites, even in locks/): refreshes still work
    const ao = startHolder({ ...env, LIFEBOAT_APPEND_ONLY: '1', LB_LOCATION: location, LB_HOLD_MS: String(Math.round(2.5 * lease)) });
    const aoReleased = await ao.next('released');
    assert.equal(await ao.exited, 0, ao.stderr());
    assert.ok(Number(aoReleased.seq) >= 2, `refreshed ${String(aoReleased.seq)} times`);
    assert.deepEqual(JSON.parse((await runCli(['list', 'locks', '--repo', location, '--json'], { env })).stdout), [], 'no object left behind');

    const holder = startHolder({ ...env, LB_LOCATION: location, LB_EXCLUSIVE: '1', LB_HOLD_MS: '600000', LB_HOST: 'agent-c.example' });
    const locked = await holder.next('locked');
    // refreshed while alive (seq grows; each refresh writes the next object, which append-only servers allow):
    // listed until a refresh shows (a fixed wait of one lease is too short when the holder is starved of CPU)
    let r: Awaited<ReturnType<typeof runCli>>;
    let live: Array<Record<string, unknown>>;
    for (const end = Date.now() + 60_000; ; ) {
      r = await runCli(['list', 'locks', '--repo', location, '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      live = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
      if (live.length !== 1 || Number(live[0]!.seq) >= 1 || Date.now() > end) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(live.length, 1);
    assert.equal(live[0]!.id, locked.id);
    assert.ok(Number(live[0]!.seq) >= 1, r.stdout);
    assert.equal(live[0]!.storage_time, null);
    assert.equal(live[0]!.stale, false);
    holder.child.kill('SIGKILL');
    await holder.exited;
    const killedAt = Date.now();
    r = await runCli(['backup', '--retry-lock', '5m', '--repo', location, src], { env });
    const waited = Date.now() - killedAt;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`removed stale lock ${String(locked.id)} of "prune" .*agent-c\\.example.*: seen unchanged for [\\d.]+s \\(lease 6s\\)`));
    process.stdout.write(`# rclone: backup proceeded ${waited} ms after kill -9 of the holder (lease ${lease} ms, judged by observation)\n`);
    assert.ok(waited >= lease, 'observation needs a whole lease');
  });

  describe('a holder that cannot refresh', () => {
    let proxy: FaultProxy;
    after(async () => proxy?.close());

    it('prune stops with a clear error when the storage becomes unreachable, and the repository stays valid', { timeout: 180_000 }, async () => {
      const direct = s3Location(srv, 'unreachable');
      proxy = await startFaultProxy({ target: { port: Number(new URL(srv.endpoint).port) }, rate: 0, latencyMs: 100 });
      const slow = s3Location({ ...srv, endpoint: `http://127.0.0.1:${proxy.port}` }, 'unreachable');
      // a repository with many snapshots and packs, most of them forgotten: prune has a lot to do over the slow link
      const repo = await Repository.init(openStorage(direct.location, direct.opts), PW);
      for (let i = 0; i < 25; i++) {
        writeFileSync(path.join(src, `f${i}.bin`), Buffer.alloc(20_000, i));
        await backupPaths(repo, { paths: [src] });
      }
      const snaps = await repo.listSnapshots();
      for (const s of snaps.slice(0, -1)) await repo.removeSnapshot(s.id);
      await repo.close();

      const lease = 6000;
      const env = { ...slow.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_LOCK_LEASE: `${lease}ms` };
      const started = Date.now();
      const pruning = runCli(['prune', '--repo', slow.location], { env });
      let pruneEnded: Awaited<typeof pruning> | undefined;
      void pruning.then((r) => (pruneEnded = r));
      // cut the network once the prune holds its lock (refreshed at least once: acquisition is over); up to
      // 2 min (the CLI's start-up over the slow link takes long on a loaded machine), and said at once if the
      // prune ended before that (with its output)
      const watcher = await Repository.open(openStorage(direct.location, direct.opts), PW);
      for (;;) {
        const locks = await readLocks(watcher.storage, watcher.key.encKey);
        if (locks.some((l) => l.info.operation === 'prune' && (l.info.seq ?? 0) >= 1)) break;
        assert.equal(pruneEnded, undefined, `prune ended before the network was cut: ${JSON.stringify(pruneEnded)}`);
        assert.ok(Date.now() - started < 120_000, 'prune never took its lock');
        await new Promise((r) => setTimeout(r, 50));
      }
      await watcher.close();
      proxy.down = true;
      const cutAt = Date.now();
      const r = await pruning;
      const stoppedAfter = Date.now() - cutAt;
      process.stdout.write(`# prune stopped ${stoppedAfter} ms after the storage became unreachable (lease ${lease} ms)\n`);
      assert.equal(r.code, 11, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /"prune" lost its exclusive repository lock .*could not refresh it for \d+ s of its 6 s lease/);
      assert.doesNotMatch(r.stderr, /unexpected error|at .*\.js:\d+/);
      // far sooner than a storage request's own deadline (2 min): the lease ended it
      assert.ok(stoppedAfter < 60_000, `stopped after ${stoppedAfter} ms`);

      // the repository is intact, and the dead prune's lock is stale after its lease
      const denv = { ...direct.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_LOCK_LEASE: `${lease}ms` };
      const check = await runCli(['check', '--read-data', '--retry-lock', '2m', '--repo', direct.location], { env: denv });
      assert.equal(check.code, 0, `${check.stdout}\n${check.stderr}`);
      const again = await runCli(['prune', '--retry-lock', '2m', '--repo', direct.location], { env: denv });
      assert.equal(again.code, 0, again.stderr);
    });
  });
});

describe('lockLease in lifeboat.yaml', () => {
  it('sets the lease of the locks taken on that repository; LIFEBOAT_LOCK_LEASE overrides it; under 1s is a config error (exit 2)', async () => {
    const { parseConfig } = await import('../src/config/load.js');
    const { openConfiguredRepo } = await import('../src/config/repos.js');
    const t = tmpDir('lb-lease-cfg-');
    const saved = process.env.LIFEBOAT_LOCK_LEASE;
    try {
      writeFileSync(path.join(t.dir, 'pw'), PW);
      const yaml = (lease: string) => `repositories:
  main: { location: ./repo, password: { file: ./pw }, autoInit: true, lockLease: ${lease} }
sources:
  s: { kind: files, paths: [./s] }
jobs:
  s: { source: s }
`;
      delete process.env.LIFEBOAT_LOCK_LEASE;
      const file = path.join(t.dir, 'lifeboat.yaml');
      let repo = await openConfiguredRepo(parseConfig(yaml('90s'), file), 'main', { allowInit: true });
      try {
        assert.equal(repo.lockLeaseMs, 90_000);
        // the lock it takes carries that lease
        const l = await repo.lock(false, 'test');
        const locks = await readLocks(repo.storage, repo.key.encKey);
        await l.release();
        assert.equal(locks.length, 1);
        assert.equal(locks[0]!.info.leaseMs, 90_000);
      } finally {
        await repo.close();
      }
      process.env.LIFEBOAT_LOCK_LEASE = '7s';
      repo = await openConfiguredRepo(parseConfig(yaml('90s'), file), 'main');
      assert.equal(repo.lockLeaseMs, 7000, 'the environment overrides the file');
      await repo.close();
      delete process.env.LIFEBOAT_LOCK_LEASE;
      writeFileSync(file, yaml('500ms'));
      const r = await runCli(['-c', file, 'snapshots'], { env: { LIFEBOAT_LOCK_LEASE: undefined } });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /repositories\.main\.lockLease: 500ms: the lock lease must be at least 1s/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    } finally {
      if (saved === undefined) delete process.env.LIFEBOAT_LOCK_LEASE;
      else process.env.LIFEBOAT_LOCK_LEASE = saved;
      t.cleanup();
    }
  });
});
