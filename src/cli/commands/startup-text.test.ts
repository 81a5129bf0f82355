import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { requireAddon } from '../../util/native.js';
import { SETTLE_AT_MS } from '../../util/startup-text.js';

/**
 * Which commands give the executable's start-up pages back once their repository is open
 * (util/startup-text.ts, called by cli/context.ts openRepo and cli/wal-fast.ts): real commands in a
 * child process, with a probe preloaded that writes at exit what the command's own module instance
 * counted. What they restore is compared with what was backed up.
 */
const skip = typeof requireAddon<{ dropExecutableText?: unknown }>('mem')?.dropExecutableText === 'function' ? false : 'native/mem.c did not build';
const main = new URL('../main.js', import.meta.url).pathname;
const mod = new URL('../../util/startup-text.js', import.meta.url).href;

/** A scratch directory with src/ (filled by `fill`) and a repository initialized at repo/, for `fn`; removed afterwards. */
function scratchRepo(
  prefix: string,
  fill: (src: string) => void,
  fn: (s: { dir: string; env: NodeJS.ProcessEnv; repo: string; src: string }) => void,
): void {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_RELEASE_TEXT: '' };
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    mkdirSync(src);
    fill(src);
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    fn({ dir, env, repo, src });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("backup, restore, restore --stdout and wal-push give the executable's start-up pages back once the repository is open; LIFEBOAT_RELEASE_TEXT=0 keeps them", { skip }, () => {
  const big = Buffer.alloc(3 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
  const fill = (src: string) => {
    writeFileSync(path.join(src, 'big.bin'), big);
    for (let i = 0; i < 10; i++) writeFileSync(path.join(src, `f${i}.txt`), `file ${i}\n`.repeat(50 + i));
  };
  scratchRepo('lb-startup-text-', fill, ({ dir, env, repo, src }) => {
    const probe = path.join(dir, 'probe.mjs');
    const out = path.join(dir, 'probe.json');
    // the modules the command loaded, one URL a line (a loader hook: it runs on its own thread)
    const loaded = path.join(dir, 'loaded.txt');
    const hook = `import { appendFileSync } from 'node:fs'; export async function load(u, c, next) { appendFileSync(${JSON.stringify(loaded)}, u + '\\n'); return next(u, c); }`;
    writeFileSync(
      probe,
      `import { writeFileSync } from 'node:fs';
import { register } from 'node:module';
import { startupTextReleases } from ${JSON.stringify(mod)};
register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
process.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify(startupTextReleases())));
`,
    );
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}, input?: Buffer) => {
      rmSync(out, { force: true });
      rmSync(loaded, { force: true });
      const stdout = execFileSync(process.execPath, ['--import', probe, main, ...args], { env: { ...env, ...extra }, ...(input ? { input } : {}), maxBuffer: 64 << 20 });
      return { stdout, released: JSON.parse(readFileSync(out, 'utf8')) as { releases: number; kB: number; ms: number } };
    };
    const released = (r: { released: { releases: number; kB: number; ms: number } }, what: string) => {
      assert.ok(r.released.releases >= 1 && r.released.kB > 1024, `${what}: ${JSON.stringify(r.released)}`);
    };
    released(run(['backup', '-q', '-r', repo, '--tag', 'files', src]), 'files backup');
    released(run(['backup', '-q', '-r', repo, '--tag', 'stream', '--stdin', '--stdin-filename', 'dump.sql'], {}, big), 'stream backup');
    const target = path.join(dir, 'out');
    released(run(['restore', 'latest', '-q', '-r', repo, '--tag', 'files', '--target', target]), 'files restore');
    const back = path.join(target, src);
    assert.ok(readFileSync(path.join(back, 'big.bin')).equals(big), 'restored as it was');
    for (let i = 0; i < 10; i++) assert.equal(readFileSync(path.join(back, `f${i}.txt`), 'utf8'), `file ${i}\n`.repeat(50 + i));
    const stream = run(['restore', 'latest', '-q', '-r', repo, '--tag', 'stream', '--stdout']);
    released(stream, 'restore --stdout');
    assert.ok(stream.stdout.equals(big), 'the stream restored as it was');
    // wal-push starts from cli/wal-fast.ts (no command framework)
    const wal = path.join(dir, 'pg_wal');
    mkdirSync(wal);
    const seg = path.join(wal, '000000010000000000000003');
    writeFileSync(seg, big.subarray(0, 1 << 20));
    const fullCli = () => readFileSync(loaded, 'utf8').includes('/cli/program.js');
    released(run(['wal-push', seg, '-r', repo]), 'wal-push');
    assert.equal(fullCli(), false, 'wal-push: the fast path');
    const fetched = path.join(dir, 'fetched');
    run(['wal-fetch', '000000010000000000000003', fetched, '-r', repo]);
    assert.ok(readFileSync(fetched).equals(big.subarray(0, 1 << 20)), 'the pushed segment fetched as it was');
    // the repository named before the command (restic's order): the fast path as well
    const seg4 = path.join(wal, '000000010000000000000004');
    writeFileSync(seg4, big.subarray(1 << 20, 2 << 20));
    released(run(['-r', repo, 'wal-push', seg4]), '-r REPO wal-push');
    assert.equal(fullCli(), false, '-r REPO wal-push: the fast path');
    rmSync(fetched);
    run(['-r', repo, 'wal-fetch', '000000010000000000000004', fetched]);
    assert.equal(fullCli(), false, '-r REPO wal-fetch: the fast path');
    assert.ok(readFileSync(fetched).equals(big.subarray(1 << 20, 2 << 20)), 'the second segment fetched as it was');
    // an option only the full CLI takes: its wal-push (cli/commands/pg.ts) releases too
    const seg5 = path.join(wal, '000000010000000000000005');
    writeFileSync(seg5, big.subarray(2 << 20, 3 << 20));
    released(run(['--limit-upload', '1000000', 'wal-push', seg5, '-r', repo]), 'wal-push through the full CLI');
    assert.equal(fullCli(), true, '--limit-upload: the full CLI');
    rmSync(fetched);
    released(run(['--limit-download', '1000000', 'wal-fetch', '000000010000000000000005', fetched, '-r', repo]), 'wal-fetch through the full CLI');
    assert.ok(readFileSync(fetched).equals(big.subarray(2 << 20, 3 << 20)), 'the third segment fetched as it was');
    // off
    const off = run(['restore', 'latest', '-q', '-r', repo, '--tag', 'stream', '--stdout'], { LIFEBOAT_RELEASE_TEXT: '0' });
    assert.deepEqual(off.released, { releases: 0, kB: 0, ms: 0 });
    assert.ok(off.stdout.equals(big));
  });
});

test("sourceBackupSettings (`lifeboat run`, `backup --source`) and the daemon's and serve's idle hook give them back too", { skip }, () => {
  const ctx = new URL('../context.js', import.meta.url).href;
  const probe = `
import { serviceSettings, sourceBackupSettings } from ${JSON.stringify(ctx)};
import { startupTextReleases } from ${JSON.stringify(mod)};
const counts = [];
sourceBackupSettings('tree');
counts.push(startupTextReleases().releases);
// a second call while the first one's later drops are pending adds nothing
sourceBackupSettings('stream');
counts.push(startupTextReleases().releases);
await new Promise((r) => setTimeout(r, ${SETTLE_AT_MS[SETTLE_AT_MS.length - 1]! + 400}));
counts.push(startupTextReleases().releases);
const idle = serviceSettings();
idle();
counts.push(startupTextReleases().releases);
process.stdout.write(JSON.stringify(counts));
`;
  const run = (extra: NodeJS.ProcessEnv) => JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, ...extra }, encoding: 'utf8' })) as number[];
  // one drop now, one at each point of the schedule (SETTLE_AT_MS), and one more for the idle hook
  const later = SETTLE_AT_MS.length;
  assert.deepEqual(run({ LIFEBOAT_RELEASE_TEXT: '' }), [1, 1, 1 + later, 2 + later]);
  assert.deepEqual(run({ LIFEBOAT_RELEASE_TEXT: '0' }), [0, 0, 0, 0]);
});

test("openRepo gives the start-up pages back before it reads the index too (with a large index, reading it on top of them was the peak); snapshots, key and locks do not read it, prune and forget read it once", { skip }, () => {
  const fill = (src: string) => {
    for (let i = 0; i < 5; i++) writeFileSync(path.join(src, `f${i}.txt`), `file ${i}\n`.repeat(100 + i));
  };
  scratchRepo('lb-startup-text-index-', fill, ({ dir, env, repo, src }) => {
    const repoMod = new URL('../../repo/repository.js', import.meta.url).href;
    const probe = path.join(dir, 'probe.mjs');
    const out = path.join(dir, 'probe.json');
    // the releases counted when the command's index load starts, and at its exit
    writeFileSync(
      probe,
      `import { writeFileSync } from 'node:fs';
import { Repository } from ${JSON.stringify(repoMod)};
import { startupTextReleases } from ${JSON.stringify(mod)};
const atIndex = [];
const load = Repository.prototype.loadIndex;
Repository.prototype.loadIndex = function (...a) { atIndex.push(startupTextReleases().releases); return load.apply(this, a); };
process.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify({ atIndex, atExit: startupTextReleases().releases })));
`,
    );
    let stdout = '';
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      rmSync(out, { force: true });
      stdout = execFileSync(process.execPath, ['--import', probe, main, ...args], { env: { ...env, ...extra }, encoding: 'utf8' });
      return JSON.parse(readFileSync(out, 'utf8')) as { atIndex: number[]; atExit: number };
    };
    for (const args of [['backup', '-q', '-r', repo, src], ['backup', '-q', '-r', repo, src], ['check', '-q', '-r', repo], ['ls', '-r', repo, 'latest', '--json']]) {
      const r = run(args);
      assert.equal(r.atIndex.length, 1, `${args[0]}: the index read once (${JSON.stringify(r)})`);
      assert.ok(r.atIndex[0]! >= 1, `${args.join(' ')}: a release before the index load (${JSON.stringify(r)})`);
      assert.ok(r.atExit > r.atIndex[0]!, `${args.join(' ')}: and once it is loaded (${JSON.stringify(r)})`);
    }
    assert.match(stdout, /f4\.txt/, 'ls listed the snapshot');
    assert.deepEqual(run(['check', '-q', '-r', repo], { LIFEBOAT_RELEASE_TEXT: '0' }), { atIndex: [0], atExit: 0 });
    // commands that read no blob do not read the index at all (CliContext.openRepo's index: false), and still work
    const noIndex = (args: string[], reads = 0) => {
      const r = run(args);
      assert.equal(r.atIndex.length, reads, `${args.join(' ')}: the index read ${reads} times (${JSON.stringify(r)})`);
      return JSON.parse(stdout.split('\n')[0]!) as unknown; // (forget --prune: the forget line, then prune's)
    };
    assert.equal((noIndex(['snapshots', '-r', repo, '--json']) as unknown[]).length, 2, 'snapshots lists both');
    assert.equal((noIndex(['key', 'list', '-r', repo, '--json']) as unknown[]).length, 1, 'key list lists the key');
    assert.deepEqual(noIndex(['list', 'locks', '-r', repo, '--json']), [], 'no locks');
    assert.deepEqual((noIndex(['unlock', '-r', repo, '--json']) as { removed: unknown[] }).removed, [], 'unlock removed none');
    // prune reads it once, after taking its lock (not also when the repository is opened); so does forget --prune
    assert.equal((noIndex(['prune', '-r', repo, '--json'], 1) as { packs_deleted: number }).packs_deleted, 0, 'nothing to prune');
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, src], { env });
    const forgot = noIndex(['forget', '--keep-last', '1', '--prune', '-r', repo, '--json'], 1);
    assert.equal((forgot as { removed: unknown[] }).removed.length, 2, 'forget removed the two older snapshots');
    assert.equal((noIndex(['snapshots', '-r', repo, '--json']) as unknown[]).length, 1, 'one left');
    run(['check', '-q', '-r', repo]);
  });
});
