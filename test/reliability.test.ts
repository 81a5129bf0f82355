import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { promises as fsp, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, runCli, describeTree, CLI } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';

const env = { LIFEBOAT_PASSWORD: 'rel-pw' };

describe('reliability: bad conditions give clear errors and lose nothing', () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir();
  });
  after(() => t.cleanup());

  test('full disk: backup fails with a clear error, no snapshot, earlier snapshots intact', async (tc) => {
    const mnt = path.join(t.dir, 'small-disk');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12m', 'tmpfs', mnt]);
    if (m.status !== 0) {
      tc.skip(`cannot mount a tmpfs here: ${m.stderr}`);
      return;
    }
    try {
      const repo = path.join(mnt, 'repo');
      const small = path.join(t.dir, 'small');
      const big = path.join(t.dir, 'big');
      await fsp.mkdir(small);
      await fsp.mkdir(big);
      await fsp.writeFile(path.join(small, 'a.bin'), randomBytes(2 * 1024 * 1024));
      await fsp.writeFile(path.join(big, 'b.bin'), randomBytes(30 * 1024 * 1024));
      assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
      assert.equal((await runCli(['backup', '--repo', repo, small], { env })).code, 0);
      const r = await runCli(['backup', '--repo', repo, big], { env });
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /no space left on device/);
      const snaps = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'], { env })).stdout);
      assert.equal(snaps.length, 1, 'the failed backup must not leave a snapshot');
      const c = await runCli(['check', '--repo', repo, '--read-data'], { env });
      assert.equal(c.code, 0, c.stderr);
      const out = path.join(t.dir, 'fd-out');
      assert.equal((await runCli(['restore', 'latest', '--repo', repo, '--target', out], { env })).code, 0);
      assert.deepEqual(await describeTree(path.join(out, small)), await describeTree(small));
      // prune reclaims the space the failed backup used
      assert.equal((await runCli(['prune', '--repo', repo], { env })).code, 0);
    } finally {
      spawnSync('umount', ['-l', mnt]);
    }
  });

  test('two backups into one repository at the same time both succeed', async () => {
    const repo = path.join(t.dir, 'conc');
    const a = path.join(t.dir, 'conc-a');
    const b = path.join(t.dir, 'conc-b');
    await fsp.mkdir(a);
    await fsp.mkdir(b);
    const shared = randomBytes(6 * 1024 * 1024);
    await fsp.writeFile(path.join(a, 'shared.bin'), shared);
    await fsp.writeFile(path.join(b, 'shared.bin'), shared);
    await fsp.writeFile(path.join(a, 'own.bin'), randomBytes(6 * 1024 * 1024));
    await fsp.writeFile(path.join(b, 'own.bin'), randomBytes(6 * 1024 * 1024));
    assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
    const [ra, rb] = await Promise.all([runCli(['backup', '--repo', repo, a], { env }), runCli(['backup', '--repo', repo, b], { env })]);
    assert.equal(ra.code, 0, ra.stderr);
    assert.equal(rb.code, 0, rb.stderr);
    const c = await runCli(['check', '--repo', repo, '--read-data'], { env });
    assert.equal(c.code, 0, c.stderr);
    for (const src of [a, b]) {
      const out = path.join(t.dir, `conc-out-${path.basename(src)}`);
      const r = await runCli(['restore', 'latest', '--path', src, '--repo', repo, '--target', out], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await describeTree(path.join(out, src)), await describeTree(src));
    }
  });

  test('backup while prune holds the lock: refused with exit 11, or waits with --retry-lock', async () => {
    const repoDir = path.join(t.dir, 'locked');
    const data = path.join(t.dir, 'locked-data');
    await fsp.mkdir(data);
    await fsp.writeFile(path.join(data, 'x'), 'x');
    assert.equal((await runCli(['init', '--repo', repoDir], { env })).code, 0);
    process.env.LIFEBOAT_TEST_SCRYPT_N = '1024';
    const repo = await Repository.open(new LocalStorage(repoDir), env.LIFEBOAT_PASSWORD);
    const lock = await repo.lock(true, 'prune');
    let r = await runCli(['backup', '--repo', repoDir, data], { env });
    assert.equal(r.code, 11, r.stderr);
    assert.match(r.stderr, /locked exclusively by "prune"/);
    // with --retry-lock the backup waits until the exclusive lock is released
    const waiting = runCli(['backup', '--repo', repoDir, '--retry-lock', '30s', data], { env });
    await new Promise((res) => setTimeout(res, 1500));
    await lock.release();
    r = await waiting;
    assert.equal(r.code, 0, r.stderr);
    // prune refuses while a backup holds a shared lock
    const shared = await repo.lock(false, 'backup');
    r = await runCli(['prune', '--repo', repoDir], { env });
    assert.equal(r.code, 11, r.stderr);
    await shared.release();
    await repo.close();
  });

  test('a lock left by a killed process does not block the next run', async () => {
    const repoDir = path.join(t.dir, 'stale');
    const data = path.join(t.dir, 'stale-data');
    await fsp.mkdir(data);
    await fsp.writeFile(path.join(data, 'big.bin'), randomBytes(40 * 1024 * 1024));
    assert.equal((await runCli(['init', '--repo', repoDir], { env })).code, 0);
    const child = spawn(process.execPath, [CLI, 'backup', '--repo', repoDir, data], { env: { ...process.env, ...env }, stdio: 'ignore' });
    // kill once its lock file exists (waited for, up to 60 s: the CLI's start-up is slow on a loaded machine)
    for (const end = Date.now() + 60_000; ; await new Promise((res) => setTimeout(res, 10))) {
      if ((await fsp.readdir(path.join(repoDir, 'locks'))).length > 0 || child.exitCode !== null) break;
      assert.ok(Date.now() < end, 'the backup never took its lock');
    }
    child.kill('SIGKILL');
    await new Promise((res) => child.on('close', res));
    const r = await runCli(['prune', '--repo', repoDir], { env });
    assert.equal(r.code, 0, r.stderr);
  });

  test('--one-file-system does not descend into another mounted filesystem', async (tc) => {
    const data = path.join(t.dir, 'xdev-data');
    const mnt = path.join(data, 'mounted');
    mkdirSync(mnt, { recursive: true });
    await fsp.writeFile(path.join(data, 'here.txt'), 'on the root filesystem');
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt]);
    if (m.status !== 0) {
      tc.skip(`cannot mount a tmpfs here: ${m.stderr}`);
      return;
    }
    try {
      await fsp.writeFile(path.join(mnt, 'elsewhere.txt'), 'on another filesystem');
      const repoDir = path.join(t.dir, 'xdev-repo');
      assert.equal((await runCli(['init', '--repo', repoDir], { env })).code, 0);
      assert.equal((await runCli(['backup', '--repo', repoDir, '--one-file-system', data], { env })).code, 0);
      assert.equal((await runCli(['backup', '--repo', repoDir, data], { env })).code, 0);
      const snaps = JSON.parse((await runCli(['snapshots', '--repo', repoDir, '--json'], { env })).stdout) as Array<{ id: string }>;
      const list = async (id: string) => (JSON.parse((await runCli(['ls', '--repo', repoDir, '--json', id], { env })).stdout) as Array<{ path: string }>).map((x) => x.path);
      const xdev = await list(snaps[0]!.id);
      const all = await list(snaps[1]!.id);
      assert.ok(xdev.includes(`${data}/here.txt`));
      assert.ok(xdev.includes(`${mnt}`), 'the mount point itself is kept (empty)');
      assert.ok(!xdev.includes(`${mnt}/elsewhere.txt`), 'crossed into the other filesystem');
      assert.ok(all.includes(`${mnt}/elsewhere.txt`));
    } finally {
      spawnSync('umount', ['-l', mnt]);
    }
  });

  test('two processes creating the same repository at once: one wins, both back up into it, nothing is lost', async () => {
    await fsp.mkdir(path.join(t.dir, 'race-a'));
    await fsp.mkdir(path.join(t.dir, 'race-b'));
    await fsp.writeFile(path.join(t.dir, 'race-a/a.bin'), randomBytes(2 * 1024 * 1024));
    await fsp.writeFile(path.join(t.dir, 'race-b/b.bin'), randomBytes(2 * 1024 * 1024));
    const cfg = path.join(t.dir, 'race.yaml');
    await fsp.writeFile(
      cfg,
      `repositories:\n  main: { location: ./race-repo, autoInit: true }\nsources:\n  a: { kind: files, paths: [./race-a] }\n  b: { kind: files, paths: [./race-b] }\n`,
    );
    for (let round = 0; round < 3; round++) {
      await fsp.rm(path.join(t.dir, 'race-repo'), { recursive: true, force: true });
      const [ra, rb] = await Promise.all([runCli(['backup', '--config', cfg, '--source', 'a'], { env }), runCli(['backup', '--config', cfg, '--source', 'b'], { env })]);
      assert.equal(ra.code, 0, ra.stderr);
      assert.equal(rb.code, 0, rb.stderr);
      assert.equal((await fsp.readdir(path.join(t.dir, 'race-repo/keys'))).length, 1, 'the losing init must remove its key file');
      const c = await runCli(['check', '--repo', path.join(t.dir, 'race-repo'), '--read-data'], { env });
      assert.equal(c.code, 0, c.stderr);
      const snaps = JSON.parse((await runCli(['snapshots', '--repo', path.join(t.dir, 'race-repo'), '--json'], { env })).stdout);
      assert.equal(snaps.length, 2);
    }
  });

  test('a file growing while it is read: snapshot is consistent, a warning names it', async () => {
    const repoDir = path.join(t.dir, 'growing');
    const data = path.join(t.dir, 'growing-data');
    await fsp.mkdir(data);
    const file = path.join(data, 'app.log');
    await fsp.writeFile(file, randomBytes(64 * 1024 * 1024));
    assert.equal((await runCli(['init', '--repo', repoDir], { env })).code, 0);
    const backup = runCli(['backup', '--repo', repoDir, data], { env });
    const fh = await fsp.open(file, 'a');
    for (let i = 0; i < 50; i++) {
      await fh.write(randomBytes(256 * 1024));
      await new Promise((res) => setTimeout(res, 5));
    }
    await fh.close();
    const r = await backup;
    assert.equal(r.code, 0, r.stderr);
    const c = await runCli(['check', '--repo', repoDir, '--read-data'], { env });
    assert.equal(c.code, 0, c.stderr);
    const out = path.join(t.dir, 'growing-out');
    assert.equal((await runCli(['restore', 'latest', '--repo', repoDir, '--target', out], { env })).code, 0);
    const restored = await fsp.stat(path.join(out, file));
    assert.ok(restored.size >= 64 * 1024 * 1024);
  });
});
