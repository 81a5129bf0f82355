import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { tmpDir, runCli, CLI, type RunResult } from './helpers/tmp.js';

/**
 * CLI hygiene with the real CLI: a closed stdout pipe, one set of exit codes
 * for every command that opens a repository, usage errors without the whole
 * help, and known failures as one line without a stack trace.
 */

const PW = 'hygiene-pw';
const STACK = /^\s+at /m;

/** stderr is exactly one "lifeboat: ..." line, no stack trace. */
function assertOneLine(r: RunResult, what: string): void {
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^lifeboat: /, what);
  assert.doesNotMatch(r.stderr, STACK, `${what}: stack trace`);
  assert.doesNotMatch(r.stderr, /unexpected error/, what);
}

/** Run `bash -c script` with CLI and NODE in the environment: a real shell pipeline. */
function bash(script: string, env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', script], {
      env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', NODE: process.execPath, CLI, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

async function pool<T, R>(items: T[], n: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      for (let i = next++; i < items.length; i = next++) out[i] = await fn(items[i]!);
    }),
  );
  return out;
}

describe('CLI hygiene', () => {
  const t = tmpDir('lb-hygiene-');
  const repo = path.join(t.dir, 'repo');
  const repo2 = path.join(t.dir, 'repo2');
  const data = path.join(t.dir, 'data');
  const good = path.join(t.dir, 'good.pw');
  const bad = path.join(t.dir, 'bad.pw');
  const env = { LIFEBOAT_PASSWORD: undefined };

  before(async () => {
    await fsp.mkdir(data, { recursive: true });
    // a listing far larger than a pipe buffer (64 KiB)
    for (let i = 0; i < 2500; i++) await fsp.writeFile(path.join(data, `file-${String(i).padStart(5, '0')}-${'x'.repeat(60)}.txt`), `${i}\n`);
    await fsp.writeFile(good, `${PW}\n`);
    await fsp.writeFile(bad, 'not-the-password\n');
    for (const r of [repo, repo2]) {
      const res = await runCli(['init', '--repo', r, '--password-file', good], { env });
      assert.equal(res.code, 0, res.stderr);
    }
    const res = await runCli(['backup', '--repo', repo, '--password-file', good, data], { env });
    assert.equal(res.code, 0, res.stderr);
  });
  after(() => t.cleanup());

  test('a listing piped into head (or into a reader that exits at once) ends quietly with exit 0', async () => {
    const err = path.join(t.dir, 'pipe.err');
    const r = await bash(`"$NODE" "$CLI" ls latest --repo "$REPO" --password-file "$PWF" 2>"$ERR" | head -n 3 >/dev/null; echo "cli=\${PIPESTATUS[0]}"`, {
      REPO: repo,
      PWF: good,
      ERR: err,
    });
    assert.match(r.stdout, /cli=0\b/, `${r.stdout}\n${await fsp.readFile(err, 'utf8')}`);
    assert.equal(await fsp.readFile(err, 'utf8'), '', 'nothing on stderr');

    const r2 = await bash(`"$NODE" "$CLI" snapshots --repo "$REPO" --password-file "$PWF" 2>"$ERR" | true; echo "cli=\${PIPESTATUS[0]}"`, { REPO: repo, PWF: good, ERR: err });
    assert.match(r2.stdout, /cli=0\b/, await fsp.readFile(err, 'utf8'));
    assert.equal(await fsp.readFile(err, 'utf8'), '');

    // incident show: the catalog is a SQLite file next to the config
    const cfg = path.join(t.dir, 'incidents.yaml');
    await fsp.writeFile(cfg, `repositories:\n  main: { location: ./repo }\ndaemon: { catalog: ./catalog.db }\n`);
    for (const title of ['first', 'second']) {
      const o = await runCli(['-c', cfg, 'incident', 'open', '--title', title, '--message', 'm'.repeat(2000)], { env });
      assert.equal(o.code, 0, o.stderr);
    }
    const r3 = await bash(`"$NODE" "$CLI" -c "$CFG" incident show 2 2>"$ERR" | true; echo "cli=\${PIPESTATUS[0]}"`, { CFG: cfg, ERR: err });
    assert.match(r3.stdout, /cli=0\b/, await fsp.readFile(err, 'utf8'));
    assert.equal(await fsp.readFile(err, 'utf8'), '');
  });

  test('wrong password: exit 12, missing repository: exit 10, from every command that opens a repository', { timeout: 900_000 }, async () => {
    const missing = path.join(t.dir, 'no-such-repo');
    const scratch = path.join(t.dir, 'scratch');
    await fsp.mkdir(scratch, { recursive: true });
    const wal = path.join(scratch, '000000010000000000000001');
    await fsp.writeFile(wal, Buffer.alloc(1024));
    // commands given a repository and a password file
    const repoCommands: string[][] = [
      ['check'],
      ['check', '--read-data'],
      ['forget', 'latest'],
      ['forget', '--keep-last', '1'],
      ['prune'],
      ['unlock'],
      ['repair', 'index'],
      ['key', 'list'],
      ['key', 'add'],
      ['key', 'passwd'],
      ['backup', data],
      ['restore', 'latest', '--target', path.join(scratch, 'restore')],
      ['restore', 'latest', '--stdout'],
      ['snapshots'],
      ['ls', 'latest'],
      ['diff', 'latest', 'latest'],
      ['stats'],
      ['wal-push', wal],
      ['wal-fetch', '000000010000000000000001', path.join(scratch, 'fetched')],
      ['pg', 'wal-list'],
      ['pg', 'wal-prune'],
      ['pg', 'restore', '--to', path.join(scratch, 'pgdata'), '--archive-mode', 'off'],
      ['pg', 'base-backup'],
      ['copy', '--from-repo', repo2, '--from-password-file', good],
    ];
    // commands that take the repository from the config
    const cfgCommands: string[][] = [
      ['run', 'job1'],
      ['drill', 'job1'],
      ['backup', '--source', 'files1'],
      ['restore', 'latest', '--source', 'pg1', '--to-database', 'lb_hygiene_never_created'],
    ];
    const writeCfg = async (name: string, location: string, pwFile: string) => {
      const f = path.join(t.dir, name);
      await fsp.writeFile(
        f,
        [
          'repositories:',
          '  main:',
          `    location: ${JSON.stringify(location)}`,
          `    password: { file: ${JSON.stringify(pwFile)} }`,
          'sources:',
          `  files1: { kind: files, paths: [${JSON.stringify(data)}] }`,
          '  pg1: { kind: postgres, database: lb_hygiene_never_created }',
          'jobs:',
          '  job1: { source: files1, repository: main }',
          'daemon:',
          `  catalog: ${JSON.stringify(path.join(t.dir, `${name}.db`))}`,
          '',
        ].join('\n'),
      );
      return f;
    };
    const cfgBad = await writeCfg('bad.yaml', repo, bad);
    const cfgMissing = await writeCfg('missing.yaml', missing, good);

    type Case = { name: string; args: string[]; want: number };
    const cases: Case[] = [];
    for (const c of repoCommands) {
      cases.push({ name: `wrong password: ${c.join(' ')}`, args: [...c, '--repo', repo, '--password-file', bad], want: 12 });
      cases.push({ name: `no repository: ${c.join(' ')}`, args: [...c, '--repo', missing, '--password-file', good], want: 10 });
    }
    for (const c of cfgCommands) {
      cases.push({ name: `wrong password (config): ${c.join(' ')}`, args: ['--config', cfgBad, ...c], want: 12 });
      cases.push({ name: `no repository (config): ${c.join(' ')}`, args: ['--config', cfgMissing, ...c], want: 10 });
    }
    // copy: the source repository is the one with the problem
    cases.push({ name: 'wrong password: copy source', args: ['copy', '--from-repo', repo, '--from-password-file', bad, '--repo', repo2, '--password-file', good], want: 12 });
    cases.push({ name: 'no repository: copy source', args: ['copy', '--from-repo', missing, '--from-password-file', good, '--repo', repo2, '--password-file', good], want: 10 });

    const results = await pool(cases, 3, async (c) => ({ c, r: await runCli(c.args, { env, cwd: scratch }) }));
    const wrong = results
      .filter(({ c, r }) => r.code !== c.want || STACK.test(r.stderr))
      .map(({ c, r }) => `${c.name}: exit ${r.code} (want ${c.want}): ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    assert.deepEqual(wrong, []);
    for (const { c, r } of results) {
      assert.match(r.stderr, c.want === 12 ? /wrong password/ : /no Lifeboat repository/, c.name);
    }
  });

  test('a mistyped command prints the suggestion and a hint, not the whole help', async () => {
    for (const [args, suggestion] of [
      [['snapshts'], 'snapshots'],
      [['key', 'lst'], 'list'],
      [['pg', 'wal-lst'], 'wal-list'],
    ] as const) {
      const r = await runCli([...args], { env });
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`Did you mean ${suggestion}\\?`), r.stderr);
      assert.doesNotMatch(r.stderr, /Commands:|Options:|Usage:/, `the whole help was printed:\n${r.stderr}`);
      assert.ok(r.stderr.trim().split('\n').length <= 3, r.stderr);
      assert.equal(r.stdout, '');
    }
  });

  test('init on an existing regular file: one line, exit 2, nothing created', async () => {
    const file = path.join(t.dir, 'a-file');
    await fsp.writeFile(file, 'keep me\n');
    const r = await runCli(['init', '--repo', file, '--password-file', good], { env });
    assert.equal(r.code, 2, r.stderr);
    assertOneLine(r, 'init on a file');
    assert.match(r.stderr, /exists and is not a directory/);
    assert.equal(await fsp.readFile(file, 'utf8'), 'keep me\n');
  });

  test('an invalid --to-database URL: one line, exit 2, the password is not printed', async () => {
    const cfg = path.join(t.dir, 'pg.yaml');
    await fsp.writeFile(cfg, `repositories:\n  main: { location: ${JSON.stringify(repo)}, password: { file: ${JSON.stringify(good)} } }\nsources:\n  pg1: { kind: postgres, database: x }\n`);
    for (const url of ['postgres://u:s3cretpw@bad host/x', 'mysql://u:s3cretpw@[::1/x']) {
      const r = await runCli(['--config', cfg, 'restore', 'latest', '--source', 'pg1', '--to-database', url], { env });
      assert.equal(r.code, 2, r.stderr);
      assertOneLine(r, url);
      assert.doesNotMatch(r.stderr + r.stdout, /s3cretpw/);
      assert.match(r.stderr, /u:\*\*\*@/);
      assert.match(r.stderr, /not a valid URL/);
    }
  });
});
