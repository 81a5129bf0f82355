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
 * buffers of LB_PROBE_MIB MiB get mappings of their own.
 *
 * PROBE_N of them, kept: glibc maps a block at or above the threshold only when the heap has no free
 * chunk that fits (its top or its bins): whatever the command freed last may serve the first one or
 * two from the heap (a files restore under load did: "a 1.5 MiB buffer is mapped" failed 1 run in 8).
 * Under the threshold none is ever mapped (the heap grows instead), so the control stays exactly 0.
 */
const PROBE_N = 32;
/** Most of the probe's PROBE_N buffers got mappings of their own. */
const mostMapped = (mapped: number): boolean => mapped >= PROBE_N / 2;
const skip = mmappedBytes() < 0 ? 'native/mem.c did not build, or not glibc 2.33+' : false;
const main = new URL('../main.js', import.meta.url).pathname;
const malloc = new URL('../../util/malloc.js', import.meta.url).href;

/**
 * The probe preloaded into each command (`--expose-gc --import probe`): it raises glibc's own
 * threshold to 16 MiB first, and at exit writes to `out` how many of PROBE_N buffers of
 * LB_PROBE_MIB MiB got mappings of their own.
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
  const size = Number(process.env.LB_PROBE_MIB) * 1024 * 1024;
  const kept = [];
  let mapped = 0;
  for (let i = 0; i < ${PROBE_N}; i++) {
    // (a collection the allocation sets off may unmap something meanwhile: half the size counts as mapped)
    const before = mmappedBytes();
    const b = Buffer.allocUnsafeSlow(size); b.fill(1); kept.push(b);
    if (mmappedBytes() - before >= size / 2) mapped++;
  }
  writeFileSync(${JSON.stringify(out)}, JSON.stringify({ mapped }));
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
    let n = 0;
    const mappedIn = (args: string[], mib: number, extra: NodeJS.ProcessEnv = {}): number => {
      rmSync(out, { force: true });
      execFileSync(process.execPath, ['--expose-gc', '--import', probe, main, ...args], { env: { ...env, LB_PROBE_MIB: String(mib), ...extra } });
      return (JSON.parse(readFileSync(out, 'utf8')) as { mapped: number }).mapped;
    };
    const backup = ['backup', '-q', '-r', repo, '--tag', 'files', src];
    const restore = (tag: string) => ['restore', 'latest', '-q', '-r', repo, '--tag', tag, '--target', path.join(dir, `out${n++}`)];
    assert.ok(mostMapped(mappedIn(backup, 3)), 'a files backup: 3 MiB buffers are mapped');
    assert.equal(mappedIn(backup, 1.5), 0, 'a files backup: 1.5 MiB buffers come from the heap (2 MiB)');
    assert.equal(mappedIn(backup, 3, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control: with glibc\'s own (raised) threshold it comes from the heap');
    assert.ok(mostMapped(mappedIn(restore('files'), 1.5)), 'a files restore: 1.5 MiB buffers are mapped');
    assert.equal(mappedIn(restore('files'), 1.5, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control for the restore');
    assert.equal(mappedIn(restore('stream'), 1.5), 0, 'a stream restore: under the 2 MiB stream threshold it comes from the heap');
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
    const args = (cmd: string[]) => ['--expose-gc', '--import', probe, main, ...cmd, '-q', '--config', config];
    const mappedAfter = (cmd: string[], mib: number, extra: NodeJS.ProcessEnv = {}): number => {
      rmSync(out, { force: true });
      execFileSync(process.execPath, args(cmd), { env: { ...env, LB_PROBE_MIB: String(mib), ...extra }, stdio: ['ignore', 'ignore', 'pipe'] });
      return (JSON.parse(readFileSync(out, 'utf8')) as { mapped: number }).mapped;
    };
    assert.ok(mostMapped(mappedAfter(['run', 'files'], 3)), 'run of a files job: 3 MiB buffers are mapped');
    assert.equal(mappedAfter(['run', 'files'], 1.5), 0, 'run of a files job: 1.5 MiB buffers come from the heap (2 MiB)');
    assert.ok(mostMapped(mappedAfter(['run', 'dump'], 3)), 'run of a stream job: 3 MiB buffers are mapped');
    assert.equal(mappedAfter(['run', 'dump'], 3, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control: glibc\'s own (raised) threshold');
    assert.ok(mostMapped(mappedAfter(['backup', '--source', 'dump'], 3)), 'backup --source of the stream source: the same');

    // the daemon and lifeboat serve: started, stopped by SIGTERM once they listen (no job runs: the setting is
    // the process's from its start)
    const serviceMapped = async (cmd: 'daemon' | 'serve', extra: NodeJS.ProcessEnv): Promise<number> => {
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
      return (JSON.parse(readFileSync(out, 'utf8')) as { mapped: number }).mapped;
    };
    for (const cmd of ['daemon', 'serve'] as const) {
      assert.ok(mostMapped(await serviceMapped(cmd, {})), `${cmd}: 3 MiB buffers are mapped`);
      assert.equal(await serviceMapped(cmd, { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, `${cmd}: the control`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
