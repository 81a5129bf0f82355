import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, chmodSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { tmpDir, makeTree, describeTree, runCli, CLI } from './helpers/tmp.js';

const env = { LIFEBOAT_PASSWORD: 'cli-test-pw' };

describe('lifeboat CLI end to end', () => {
  let t: ReturnType<typeof tmpDir>;
  let repo: string;
  let data: string;
  before(async () => {
    t = tmpDir();
    repo = path.join(t.dir, 'repo');
    data = path.join(t.dir, 'data');
    await makeTree(data, { files: 300, seed: 11 });
    await fsp.writeFile(path.join(data, 'large.bin'), randomBytes(3 * 1024 * 1024));
  });
  after(() => t.cleanup());

  test('init, backup, snapshots, ls, restore, diff, stats, check', async () => {
    let r = await runCli(['init', '--repo', repo], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /created Lifeboat repository/);
    r = await runCli(['init', '--repo', repo], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /already exists/);

    r = await runCli(['backup', '--repo', repo, '--tag', 'first', data], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /snapshot [0-9a-f]{8} saved/);
    await fsp.writeFile(path.join(data, 'new-file.txt'), 'hello\n');
    await fsp.rm(path.join(data, 'large.bin'));
    r = await runCli(['backup', '--repo', repo, '--json', data], { env });
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(summary.message_type, 'summary');
    assert.ok(summary.files_unmodified > 200, 'unchanged files reused from the parent');

    r = await runCli(['snapshots', '--repo', repo, '--json'], { env });
    const snaps = JSON.parse(r.stdout) as Array<{ id: string; tags: string[]; paths: string[] }>;
    assert.equal(snaps.length, 2);
    assert.deepEqual(snaps[0]!.tags, ['first']);
    assert.deepEqual(snaps[0]!.paths, [data]);
    r = await runCli(['snapshots', '--repo', repo], { env });
    assert.match(r.stdout, new RegExp(snaps[1]!.id.slice(0, 8)));
    assert.match(r.stdout, /2 snapshots/);

    r = await runCli(['ls', '--repo', repo, '--json', 'latest'], { env });
    const items = JSON.parse(r.stdout) as Array<{ path: string }>;
    assert.ok(items.some((i) => i.path === `${data}/new-file.txt`));

    r = await runCli(['diff', '--repo', repo, snaps[0]!.id.slice(0, 8), snaps[1]!.id.slice(0, 8)], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /\+\s+.*new-file\.txt/);
    assert.match(r.stdout, /-\s+.*large\.bin/);

    const out = path.join(t.dir, 'restore1');
    r = await runCli(['restore', 'latest', '--repo', repo, '--target', out], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /files verified/);
    assert.deepEqual(await describeTree(path.join(out, data)), await describeTree(data));
    // restore refuses a non-empty target unless --overwrite
    r = await runCli(['restore', 'latest', '--repo', repo, '--target', out], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /not empty/);
    // first snapshot, sub-path syntax ID:/path
    const out2 = path.join(t.dir, 'restore2');
    r = await runCli(['restore', `${snaps[0]!.id.slice(0, 10)}:${data}`, '--repo', repo, '--target', out2], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await fsp.stat(path.join(out2, 'large.bin'))).size, 3 * 1024 * 1024);

    r = await runCli(['stats', '--repo', repo, '--json'], { env });
    const st = JSON.parse(r.stdout);
    assert.equal(st.snapshots, 2);
    assert.ok(st.dedup_ratio > 1.5, `dedup ratio ${st.dedup_ratio}`);
    assert.ok(st.stored_size > 0 && st.stored_size < st.total_size);

    r = await runCli(['check', '--repo', repo, '--read-data'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /no errors were found/);
  });

  test('stdin and --stdin-from-command streams; a failing command creates no snapshot', async () => {
    const payload = randomBytes(2 * 1024 * 1024 + 17);
    let r = await runCli(['backup', '--repo', repo, '--stdin', '--stdin-filename', 'blob.bin', '--json'], { env, input: payload });
    assert.equal(r.code, 0, r.stderr);
    const id = JSON.parse(r.stdout.trim().split('\n').pop()!).snapshot_id as string;
    const child = spawnSync(process.execPath, [CLI, 'restore', id, '--repo', repo, '--stdout'], { env: { ...process.env, ...env, LIFEBOAT_TEST_SCRYPT_N: '1024' }, maxBuffer: 64 << 20 });
    assert.equal(child.status, 0, child.stderr.toString());
    assert.ok(Buffer.from(child.stdout).equals(payload));

    r = await runCli(['backup', '--repo', repo, '--stdin-from-command', 'seq 1 200000', '--stdin-filename', 'seq.txt', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const before = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'], { env })).stdout).length;
    r = await runCli(['backup', '--repo', repo, '--stdin-from-command', 'seq 1 100000; echo "dump exploded" >&2; exit 3'], { env });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exit code 3/);
    assert.match(r.stderr, /dump exploded/);
    const after = JSON.parse((await runCli(['snapshots', '--repo', repo, '--json'], { env })).stdout).length;
    assert.equal(after, before, 'a failed dump must not produce a snapshot');
  });

  test('forget with a policy, prune frees space, check still passes', async () => {
    const r0 = await runCli(['snapshots', '--repo', repo, '--json', '--path', data], { env });
    assert.equal(JSON.parse(r0.stdout).length, 2);
    let r = await runCli(['forget', '--repo', repo], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no policy given/);
    r = await runCli(['forget', '--repo', repo, '--keep-last', '1', '--dry-run', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(plan.dry_run, true);
    assert.equal(plan.removed.length, 1, JSON.stringify(plan));
    r = await runCli(['forget', '--repo', repo, '--keep-last', '1', '--prune'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /removed 1 snapshot/);
    assert.match(r.stdout, /freed/);
    r = await runCli(['check', '--repo', repo, '--read-data'], { env });
    assert.equal(r.code, 0, r.stderr);
  });

  test('keys: add, list, passwd, remove; wrong password exits 12', async () => {
    const pwFile = path.join(t.dir, 'pw2');
    await fsp.writeFile(pwFile, 'second-password\n');
    let r = await runCli(['key', 'add', '--repo', repo, '--new-password-file', pwFile], { env });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['key', 'list', '--repo', repo, '--json'], { env });
    const keys = JSON.parse(r.stdout) as Array<{ name: string; current: boolean }>;
    assert.equal(keys.length, 2);
    r = await runCli(['snapshots', '--repo', repo, '--password-file', pwFile], { env: { LIFEBOAT_PASSWORD: undefined } });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['snapshots', '--repo', repo], { env: { LIFEBOAT_PASSWORD: 'nope' } });
    assert.equal(r.code, 12);
    assert.match(r.stderr, /wrong password/);
    // remove the first key using the second password
    const first = keys.find((k) => k.current)!;
    r = await runCli(['key', 'remove', '--repo', repo, '--password-file', pwFile, first.name.slice(0, 8)], { env: { LIFEBOAT_PASSWORD: undefined } });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['snapshots', '--repo', repo], { env });
    assert.equal(r.code, 12, 'old password no longer works');
    // passwd back to the original password
    r = await runCli(['key', 'passwd', '--repo', repo, '--password-file', pwFile], { env: { LIFEBOAT_PASSWORD: undefined, LIFEBOAT_NEW_PASSWORD: env.LIFEBOAT_PASSWORD } });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['snapshots', '--repo', repo], { env });
    assert.equal(r.code, 0, r.stderr);
  });

  test('documented exit codes: no repository 10, usage 2, missing password 2', async () => {
    let r = await runCli(['snapshots', '--repo', path.join(t.dir, 'nothing-here')], { env });
    assert.equal(r.code, 10);
    assert.match(r.stderr, /no Lifeboat repository/);
    r = await runCli(['backup', '--repo', repo, '--no-such-flag'], { env });
    assert.equal(r.code, 2);
    r = await runCli(['snapshots', '--repo', repo], { env: { LIFEBOAT_PASSWORD: undefined } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no repository password/);
    r = await runCli(['restore', 'zzz', '--repo', repo, '--target', path.join(t.dir, 'x')], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /invalid snapshot id/);
  });

  test('unreadable files: backup completes with exit code 3 and names the file (as an unprivileged user)', async (tc) => {
    if (process.getuid?.() !== 0) {
      tc.skip('needs root to switch to an unprivileged user');
      return;
    }
    const base = path.join(t.dir, 'unpriv');
    await fsp.mkdir(path.join(base, 'data'), { recursive: true });
    await fsp.writeFile(path.join(base, 'data', 'ok.txt'), 'readable\n');
    await fsp.writeFile(path.join(base, 'data', 'secret.txt'), 'not readable\n');
    spawnSync('chown', ['-R', 'nobody:nogroup', base]);
    chmodSync(path.join(base, 'data', 'secret.txt'), 0o000);
    chmodSync(t.dir, 0o755);
    const run = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'init', '--repo', path.join(base, 'repo')],
      { env: { ...process.env, ...env, LIFEBOAT_TEST_SCRYPT_N: '1024', HOME: base } },
    );
    assert.equal(run.status, 0, run.stderr.toString());
    const b = spawnSync(
      'setpriv',
      ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'backup', '--repo', path.join(base, 'repo'), path.join(base, 'data')],
      { env: { ...process.env, ...env, LIFEBOAT_TEST_SCRYPT_N: '1024', HOME: base } },
    );
    assert.equal(b.status, 3, b.stderr.toString());
    assert.match(b.stderr.toString(), /secret\.txt: EACCES/);
    assert.match(b.stderr.toString(), /incomplete/);
  });
});

describe('configuration file', () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir();
  });
  after(() => t.cleanup());

  test('backup of configured sources with autoInit; relative paths resolve from the config file', async () => {
    await fsp.mkdir(path.join(t.dir, 'site/www'), { recursive: true });
    await fsp.writeFile(path.join(t.dir, 'site/www/index.html'), '<h1>hi</h1>');
    await fsp.writeFile(path.join(t.dir, 'site/www/cache.tmp'), 'junk');
    await fsp.writeFile(path.join(t.dir, 'pw'), 'from-file\n');
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    await fsp.writeFile(
      cfg,
      `repositories:\n  main:\n    location: ./repo\n    password: { file: ./pw }\n    autoInit: true\nsources:\n  site:\n    kind: files\n    paths: [./site]\n    excludes: ['*.tmp']\n`,
    );
    let r = await runCli(['backup', '--config', cfg], { env: { LIFEBOAT_PASSWORD: undefined }, cwd: '/' });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['ls', '--config', cfg, '--json', 'latest'], { env: { LIFEBOAT_PASSWORD: undefined }, cwd: '/' });
    const paths = (JSON.parse(r.stdout) as Array<{ path: string }>).map((p) => p.path);
    assert.ok(paths.some((p) => p.endsWith('/www/index.html')));
    assert.ok(!paths.some((p) => p.endsWith('cache.tmp')), 'excluded file was stored');
    r = await runCli(['snapshots', '--config', cfg, '--json'], { env: { LIFEBOAT_PASSWORD: undefined } });
    assert.deepEqual(JSON.parse(r.stdout)[0].tags, ['source:site']);
  });

  test('malformed config: the error names the file, line, key and reason, exit code 2', async () => {
    const cases: Array<[string, RegExp]> = [
      ['repositories:\n  main:\n    location: ./r\n    pasword: { env: X }\n', /lifeboat\.yaml:4:5: repositories\.main: unknown key "pasword"/],
      ['repositories:\n  main:\n    location: 5\n', /repositories\.main\.location: .*string/i],
      ['repositories:\n  main:\n    location: ./r\nsources:\n  s:\n    kind: files\n    paths: []\n', /sources\.s\.paths: at least one path/],
      ['repositories:\n  main:\n    location: ./r\n    password: { env: A, file: b }\n', /exactly one of env, file or command/],
      ['repositories: [unclosed\n', /invalid YAML/],
      ['repositories:\n  main:\n    location: ./r\nsources:\n  s:\n    kind: nosuchkind\n', /sources\.s/],
      ['repositories:\n  main:\n    location: ./r\ndefaults:\n  repository: other\n', /unknown repository "other"/],
    ];
    for (const [text, re] of cases) {
      const cfg = path.join(t.dir, 'lifeboat.yaml');
      await fsp.writeFile(cfg, text);
      const r = await runCli(['snapshots', '--config', cfg], { env });
      assert.equal(r.code, 2, `${text}\n${r.stderr}`);
      assert.match(r.stderr, re);
    }
  });

  test('missing password env var named in the error', async () => {
    const cfg = path.join(t.dir, 'lb2.yaml');
    await fsp.writeFile(cfg, 'repositories:\n  main:\n    location: ./r2\n    password: { env: MY_REPO_PW }\n');
    const r = await runCli(['snapshots', '--config', cfg], { env: { LIFEBOAT_PASSWORD: undefined, MY_REPO_PW: undefined } });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /MY_REPO_PW is not set/);
  });
});

void createHash;
