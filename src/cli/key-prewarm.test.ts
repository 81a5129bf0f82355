import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { prewarmTarget } from './key-prewarm.js';

const dir = mkdtempSync(path.join(tmpdir(), 'lb-prewarm-'));
test.after(() => rmSync(dir, { recursive: true, force: true }));
const pwFile = path.join(dir, 'pw');
writeFileSync(pwFile, 'from-file\n');
const argv = (...a: string[]) => ['node', 'main.js', ...a];

test('prewarmTarget: a local repository and a password readable without side effects', () => {
  const env = { LIFEBOAT_PASSWORD: 'from-env' };
  assert.deepEqual(prewarmTarget(argv('backup', '-r', '/srv/repo', '/data'), env), { dir: '/srv/repo', password: 'from-env' });
  assert.deepEqual(prewarmTarget(argv('--repo=/srv/repo', 'check'), env), { dir: '/srv/repo', password: 'from-env' });
  assert.deepEqual(prewarmTarget(argv('check', '-r/srv/repo'), env), { dir: '/srv/repo', password: 'from-env' });
  assert.deepEqual(prewarmTarget(argv('check', '-r', 'local:/srv/repo'), env), { dir: '/srv/repo', password: 'from-env' });
  assert.deepEqual(prewarmTarget(argv('wal-push', 'pg_wal/000000010000000000000001'), { LIFEBOAT_REPOSITORY: '/srv/r', LIFEBOAT_PASSWORD: 'x' }), { dir: '/srv/r', password: 'x' });
  // --password-file first, as the command reads it (one trailing newline dropped); then LIFEBOAT_PASSWORD_FILE
  assert.deepEqual(prewarmTarget(argv('check', '-r', '/srv/repo', '--password-file', pwFile), env), { dir: '/srv/repo', password: 'from-file' });
  assert.deepEqual(prewarmTarget(argv('check', '-r', '/srv/repo', `-p${pwFile}`), env), { dir: '/srv/repo', password: 'from-file' });
  assert.deepEqual(prewarmTarget(argv('check', '-r', '/srv/repo'), { LIFEBOAT_PASSWORD_FILE: pwFile }), { dir: '/srv/repo', password: 'from-file' });
});

test('prewarmTarget: nothing for remote repositories, password commands, spool clients, help, init, or when turned off', () => {
  const env = { LIFEBOAT_PASSWORD: 'pw' };
  for (const a of [
    argv('check', '-r', 's3:https://host/bucket/p'),
    argv('check', '-r', 's3://bucket/p'),
    argv('check', '-r', 'sftp:u@h:/p'),
    argv('check', '-r', 'rclone:remote:p'),
    argv('check', '-r', '/srv/repo', '--password-command', 'pass show x'),
    argv('check', '-r', '/srv/repo', '--password-command=pass show x'),
    argv('wal-push', 'f', '--spool', '/var/spool', '-r', '/srv/repo'),
    argv('check', '-r', '/srv/repo', '--help'),
    argv('help', 'check', '-r', '/srv/repo'),
    argv('init', '-r', '/srv/repo'),
    argv('check'),
    argv('check', '--', '-r', '/srv/repo'),
  ]) {
    assert.equal(prewarmTarget(a, env), undefined, a.join(' '));
  }
  assert.equal(prewarmTarget(argv('check', '-r', '/srv/repo'), {}), undefined, 'no password');
  assert.equal(prewarmTarget(argv('check', '-r', '/srv/repo'), { ...env, LIFEBOAT_KEY_PREWARM: '0' }), undefined);
  assert.equal(prewarmTarget(argv('check', '-r', '/srv/repo', '-p', path.join(dir, 'missing'))), undefined, 'an unreadable file is left to the command');
});

test('prewarmTarget: a password file that is not a regular file is not read (the command would find it empty)', () => {
  const fifo = path.join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  // reading the FIFO would block here for ever: the test ending at all is the check
  assert.equal(prewarmTarget(argv('check', '-r', '/srv/repo', '-p', fifo)), undefined);
  assert.equal(prewarmTarget(argv('check', '-r', '/srv/repo'), { LIFEBOAT_PASSWORD_FILE: dir }), undefined, 'a directory');
});

test('a real command: the repository opens with the key derived ahead (one scrypt, taken by the open)', () => {
  const main = new URL('./main.js', import.meta.url).pathname;
  const keys = new URL('../repo/keys.js', import.meta.url).href;
  const repo = path.join(dir, 'repo');
  const out = path.join(dir, 'derivations.json');
  const probe = path.join(dir, 'probe.mjs');
  // the same module instance as the command's (same URL): what it derived, written at exit
  writeFileSync(probe, `import { keyDerivations } from ${JSON.stringify(keys)};\nimport { writeFileSync } from 'node:fs';\nprocess.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify(keyDerivations())));\n`);
  const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024' };
  execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
  const run = (extra: NodeJS.ProcessEnv) => {
    rmSync(out, { force: true });
    const json = execFileSync(process.execPath, ['--import', probe, main, 'snapshots', '--json', '-r', repo], { env: { ...env, ...extra }, encoding: 'utf8' });
    assert.deepEqual(JSON.parse(json), []);
    return JSON.parse(readFileSync(out, 'utf8')) as { started: number; used: number; waiting: number };
  };
  assert.deepEqual(run({}), { started: 1, used: 1, waiting: 0 });
  assert.deepEqual(run({ LIFEBOAT_KEY_PREWARM: '0' }), { started: 1, used: 0, waiting: 0 });
  // a wrong password: the guess is dropped and the command fails as it always did
  assert.throws(() => run({ LIFEBOAT_PASSWORD: 'wrong' }), (e: { status?: number; stderr?: Buffer }) => e.status !== 0 && /password/i.test(String(e.stderr)));
});
