import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { mmappedBytes } from '../../util/malloc.js';

/**
 * glibc's mmap threshold as the commands set it (util/malloc.ts mallocSettings): a files backup
 * 2 MiB, `lifeboat restore` of a files snapshot 1 MiB, a stream snapshot's restore the stream
 * commands' 2 MiB; `lifeboat run` of a configured job as `backup --source` of its source, the
 * daemon and `lifeboat serve` 2 MiB for all their jobs. Each run is a real command in a child process
 * with a probe preloaded: before the command, it raises glibc's own threshold to 16 MiB (a 16 MiB
 * mapped block freed, as a command's first large buffers did); when the process exits, it asks whether
 * a buffer of LB_PROBE_MIB MiB got a mapping of its own.
 */
const skip = mmappedBytes() < 0 ? 'native/mem.c did not build, or not glibc 2.33+' : false;
const main = new URL('../main.js', import.meta.url).pathname;
const malloc = new URL('../../util/malloc.js', import.meta.url).href;

/**
 * The probe preloaded into each command (`--expose-gc --import probe`): it raises glibc's own
 * threshold to 16 MiB first, and at exit writes to `out` how many bytes more got mapped for a
 * buffer of LB_PROBE_MIB MiB.
 */
function writeProbe(dir: string): { probe: string; out: string } {
  const probe = path.join(dir, 'probe.mjs');
  const out = path.join(dir, 'probe.json');
  writeFileSync(
    probe,
    `import { writeFileSync } from 'node:fs';
import { mmappedBytes } from ${JSON.stringify(malloc)};
let big = Buffer.allocUnsafeSlow(16 * 1024 * 1024); big.fill(1); big = undefined;
for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
process.on('exit', () => {
  const before = mmappedBytes();
  const b = Buffer.allocUnsafeSlow(Number(process.env.LB_PROBE_MIB) * 1024 * 1024); b.fill(1);
  writeFileSync(${JSON.stringify(out)}, JSON.stringify({ grew: mmappedBytes() - before, len: b.length }));
});
`,
  );
  return { probe, out };
}

test('backup and restore set the mmap threshold: files backup 2 MiB, files restore 1 MiB, stream restore 2 MiB; LIFEBOAT_MMAP_THRESHOLD=0 keeps glibc\'s', { skip }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-mmap-threshold-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_MMAP_THRESHOLD: '' };
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'a.txt'), 'some data\n'.repeat(1000));
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, '--tag', 'files', src], { env });
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, '--tag', 'stream', '--stdin', '--stdin-filename', 'dump.sql'], { env, input: 'INSERT 1;\n'.repeat(1000) });
    const { probe, out } = writeProbe(dir);
    const MiB = 1024 * 1024;
    let n = 0;
    const grew = (args: string[], mib: number, extra: NodeJS.ProcessEnv = {}): number => {
      rmSync(out, { force: true });
      execFileSync(process.execPath, ['--expose-gc', '--import', probe, main, ...args], { env: { ...env, LB_PROBE_MIB: String(mib), ...extra } });
      return (JSON.parse(readFileSync(out, 'utf8')) as { grew: number }).grew;
    };
    const backup = ['backup', '-q', '-r', repo, '--tag', 'files', src];
    const restore = (tag: string) => ['restore', 'latest', '-q', '-r', repo, '--tag', tag, '--target', path.join(dir, `out${n++}`)];
    assert.ok(grew(backup, 3) >= 3 * MiB, 'a files backup: a 3 MiB buffer is mapped');
    assert.equal(grew(backup, 1.5), 0, 'a files backup: a 1.5 MiB buffer comes from the heap (2 MiB)');
    assert.equal(grew(backup, 3, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control: with glibc\'s own (raised) threshold it comes from the heap');
    assert.ok(grew(restore('files'), 1.5) >= 1.5 * MiB, 'a files restore: a 1.5 MiB buffer is mapped');
    assert.equal(grew(restore('files'), 1.5, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control for the restore');
    assert.equal(grew(restore('stream'), 1.5), 0, 'a stream restore: under the 2 MiB stream threshold it comes from the heap');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lifeboat run sets what backup --source sets for its source (files and stream jobs: 2 MiB); the daemon and lifeboat serve 2 MiB from their start', { skip }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-mmap-threshold-run-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_MMAP_THRESHOLD: '' };
    mkdirSync(path.join(dir, 'src'));
    writeFileSync(path.join(dir, 'src', 'a.txt'), 'some data\n'.repeat(1000));
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(
      config,
      `repositories:\n  main: { location: ./repo, autoInit: true }\nsources:\n  files: { kind: files, paths: [./src] }\n  dump: { kind: command, command: "echo INSERT" }\n` +
        `jobs:\n  files: { source: files }\n  dump: { source: dump }\ndaemon: { catalog: ./catalog.db }\n`,
    );
    const { probe, out } = writeProbe(dir);
    const MiB = 1024 * 1024;
    const args = (cmd: string[]) => ['--expose-gc', '--import', probe, main, ...cmd, '-q', '--config', config];
    const grewAfter = (cmd: string[], mib: number, extra: NodeJS.ProcessEnv = {}): number => {
      rmSync(out, { force: true });
      execFileSync(process.execPath, args(cmd), { env: { ...env, LB_PROBE_MIB: String(mib), ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
      return (JSON.parse(readFileSync(out, 'utf8')) as { grew: number }).grew;
    };
    assert.ok(grewAfter(['run', 'files'], 3) >= 3 * MiB, 'run of a files job: a 3 MiB buffer is mapped');
    assert.equal(grewAfter(['run', 'files'], 1.5), 0, 'run of a files job: a 1.5 MiB buffer comes from the heap (2 MiB)');
    assert.ok(grewAfter(['run', 'dump'], 3) >= 3 * MiB, 'run of a stream job: a 3 MiB buffer is mapped');
    assert.equal(grewAfter(['run', 'dump'], 3, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control: glibc\'s own (raised) threshold');
    assert.ok(grewAfter(['backup', '--source', 'dump'], 3) >= 3 * MiB, 'backup --source of the stream source: the same');

    // the daemon and lifeboat serve: started, stopped by SIGTERM once they listen (no job runs: the setting is
    // the process's from its start)
    const serviceGrew = async (cmd: 'daemon' | 'serve', extra: NodeJS.ProcessEnv): Promise<number> => {
      rmSync(out, { force: true });
      const child = spawn(process.execPath, [...args([cmd]), '--listen', '127.0.0.1:0'], { env: { ...env, LB_PROBE_MIB: '3', ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
      let log = '';
      child.stdout.on('data', (d: Buffer) => (log += d.toString()));
      child.stderr.on('data', (d: Buffer) => (log += d.toString()));
      const closed = new Promise<number | null>((r) => child.on('close', r));
      try {
        for (const end = Date.now() + 60_000; !/daemon started|lifeboat serve: listening/.test(log); await new Promise((r) => setTimeout(r, 20))) {
          assert.ok(Date.now() < end && child.exitCode === null, `${cmd} did not start:\n${log}`);
        }
        child.kill('SIGTERM');
        assert.equal(await closed, 0, log);
      } finally {
        child.kill('SIGKILL');
      }
      return (JSON.parse(readFileSync(out, 'utf8')) as { grew: number }).grew;
    };
    for (const cmd of ['daemon', 'serve'] as const) {
      assert.ok((await serviceGrew(cmd, {})) >= 3 * MiB, `${cmd}: a 3 MiB buffer is mapped`);
      assert.equal(await serviceGrew(cmd, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, `${cmd}: the control`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
