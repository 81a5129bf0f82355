import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import { describeTree, makeTree, runCliMeasured, tmpDir, type MeasuredResult } from './helpers/tmp.js';
import { startS3Server, s3Location } from './helpers/s3server.js';
import { openStorage } from '../src/storage/open.js';

/**
 * Restoring from a repository that cannot be written: a read-only bind mount
 * (a write-protected disk) and an S3 key that may only read. Reading commands
 * (snapshots, ls, restore, check --read-data, drill) work without a lock and
 * say so once; writing commands fail clearly.
 */

const NOTICE = 'repository is read-only; continuing without a lock';
const GUARD = { killAfterMs: 120_000 };

function count(haystack: string, needle: string): number {
  return haystack.split(needle).length - 1;
}

function ok(r: MeasuredResult, what: string): void {
  assert.equal(r.killed, false, `${what} hung: ${r.stderr}`);
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  assert.ok(r.ms < 60_000, `${what} took ${r.ms} ms`);
}

function mountReadOnly(src: string, dst: string): string | undefined {
  try {
    execFileSync('mount', ['--bind', src, dst], { stdio: 'pipe' });
  } catch (err) {
    return `mount --bind not permitted here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()})`;
  }
  try {
    execFileSync('mount', ['-o', 'remount,bind,ro', dst], { stdio: 'pipe' });
  } catch (err) {
    execFileSync('umount', [dst], { stdio: 'pipe' });
    return `read-only remount not permitted here (${String((err as { stderr?: Buffer }).stderr ?? err).trim()})`;
  }
  return undefined;
}

test('read-only mount: snapshots, ls, restore, check --read-data and drill work without a lock; backup/forget/prune fail clearly', { timeout: 240_000 }, async (t) => {
  const tmp = tmpDir();
  const ro = path.join(tmp.dir, 'ro');
  let mounted = false;
  try {
    const data = path.join(tmp.dir, 'data');
    await makeTree(data, { files: 40, seed: 7 });
    await fsp.mkdir(path.join(tmp.dir, 'store'));
    await fsp.mkdir(ro);
    const env = { LIFEBOAT_PASSWORD: 'ro-pw' };
    const rw = path.join(tmp.dir, 'store/repo');
    const config = (dir: string) =>
      `repositories:\n  usb: { location: ./${dir}/repo, autoInit: true }\nsources:\n  data: { kind: files, paths: [./data] }\njobs:\n  data: { source: data }\ndaemon: { catalog: ./catalog.db }\n`;
    const cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
    await fsp.writeFile(cfgFile, config('store'));
    ok(await runCliMeasured(['run', 'data', '--config', cfgFile], { env }), 'backup job');

    const why = mountReadOnly(path.join(tmp.dir, 'store'), ro);
    if (why) {
      t.skip(why);
      return;
    }
    mounted = true;
    const repo = path.join(ro, 'repo');
    await assert.rejects(fsp.writeFile(path.join(repo, 'probe'), 'x'), /EROFS/);
    await fsp.writeFile(cfgFile, config('ro'));

    const snaps = await runCliMeasured(['snapshots', '--repo', repo, '--json'], { env, ...GUARD });
    ok(snaps, 'snapshots');
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1);

    const ls = await runCliMeasured(['ls', 'latest', '--repo', repo], { env, ...GUARD });
    ok(ls, 'ls');
    assert.match(ls.stdout, /data/);

    const out = path.join(tmp.dir, 'out');
    const restore = await runCliMeasured(['restore', 'latest', '--repo', repo, '--target', out], { env, ...GUARD });
    ok(restore, 'restore');
    assert.equal(count(restore.stderr, NOTICE), 1, restore.stderr);
    assert.deepEqual(await describeTree(path.join(out, data)), await describeTree(data));

    const check = await runCliMeasured(['check', '--read-data', '--repo', repo], { env, ...GUARD });
    ok(check, 'check --read-data');
    assert.equal(count(check.stderr, NOTICE), 1, check.stderr);
    assert.match(check.stdout, /no errors were found/);

    const drill = await runCliMeasured(['drill', 'data', '--no-notify', '--config', cfgFile], { env, ...GUARD });
    ok(drill, 'drill');
    assert.match(drill.stdout, /PASSED/);

    // --no-lock: reading commands take no lock (and do not even try)
    const noLock = await runCliMeasured(['--no-lock', 'check', '--repo', repo], { env, ...GUARD });
    ok(noLock, 'check --no-lock');
    assert.equal(count(noLock.stderr, NOTICE), 0, noLock.stderr);

    // writing commands fail clearly (exit 1), --no-lock does not let them through (exit 2)
    for (const args of [['backup', data], ['forget', '--keep-last', '1'], ['prune']]) {
      const r = await runCliMeasured([...args, '--repo', repo], { env, ...GUARD });
      assert.equal(r.killed, false);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`repository at ${repo} is read-only: "${args[0]}" writes to it and cannot run \\(.*read-only file system, EROFS`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
    const nb = await runCliMeasured(['--no-lock', 'backup', data, '--repo', repo], { env, ...GUARD });
    assert.equal(nb.code, 2, nb.stderr);
    assert.match(nb.stderr, /--no-lock: "backup" writes to the repository and needs its lock/);
    assert.deepEqual(await fsp.readdir(path.join(rw, 'locks')), []);
  } finally {
    if (mounted) execFileSync('umount', [ro]);
    tmp.cleanup();
  }
});

test('S3 read-only key (writes answered 403 AccessDenied): snapshots, ls, restore and check --read-data work; backup fails clearly', { timeout: 240_000 }, async () => {
  const srv = await startS3Server();
  const tmp = tmpDir();
  try {
    const data = path.join(tmp.dir, 'data');
    await makeTree(data, { files: 30, seed: 11 });
    const loc = s3Location(srv, 'ro-key');
    const env = { ...loc.env, LIFEBOAT_PASSWORD: 's3-ro-pw' };
    ok(await runCliMeasured(['init', '--repo', loc.location], { env, cwd: tmp.dir }), 'init');
    ok(await runCliMeasured(['backup', '--repo', loc.location, data], { env, cwd: tmp.dir }), 'backup');

    const roEnv = { ...env, AWS_ACCESS_KEY_ID: srv.readOnlyAccessKeyId };
    const snaps = await runCliMeasured(['snapshots', '--repo', loc.location, '--json'], { env: roEnv, cwd: tmp.dir, ...GUARD });
    ok(snaps, 'snapshots');
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 1);
    ok(await runCliMeasured(['ls', 'latest', '--repo', loc.location], { env: roEnv, cwd: tmp.dir, ...GUARD }), 'ls');

    const out = path.join(tmp.dir, 'out');
    const restore = await runCliMeasured(['restore', 'latest', '--repo', loc.location, '--target', out], { env: roEnv, cwd: tmp.dir, ...GUARD });
    ok(restore, 'restore');
    assert.equal(count(restore.stderr, NOTICE), 1, restore.stderr);
    assert.deepEqual(await describeTree(path.join(out, data)), await describeTree(data));

    const check = await runCliMeasured(['check', '--read-data', '--repo', loc.location], { env: roEnv, cwd: tmp.dir, ...GUARD });
    ok(check, 'check --read-data');
    assert.equal(count(check.stderr, NOTICE), 1, check.stderr);

    const b = await runCliMeasured(['backup', '--repo', loc.location, data], { env: roEnv, cwd: tmp.dir, ...GUARD });
    assert.equal(b.killed, false);
    assert.equal(b.code, 1, b.stderr);
    assert.match(b.stderr, /is read-only: "backup" writes to it and cannot run \(S3 refused a write \(AccessDenied\)/);

    // the read-only key really was refused (and nothing was written with it)
    const reqs = await srv.requests();
    const roWrites = reqs.filter((r) => r.method === 'PUT' && String(r.headers.authorization ?? '').includes(`Credential=${srv.readOnlyAccessKeyId}/`));
    assert.ok(roWrites.length >= 3, `lock writes attempted with the read-only key: ${roWrites.length}`);
    const storage = openStorage(loc.location, loc.opts);
    assert.deepEqual(await storage.list('lock'), []);
    assert.equal((await storage.list('snapshot')).length, 1);
    await storage.close();
  } finally {
    await srv.stop();
    tmp.cleanup();
  }
});
