import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { mmappedBytes } from '../../util/malloc.js';

/**
 * `lifeboat restore` of a files snapshot sets glibc's mmap threshold to 1 MiB (util/malloc.ts
 * restoreMallocSettings); a stream snapshot's restore keeps the stream commands' 2 MiB. Each run is
 * a real command in a child process with a probe preloaded: before the command, it raises glibc's own
 * threshold to 16 MiB (a 16 MiB mapped block freed, as a restore's first large buffers did); when the
 * process exits, it asks whether a 1.5 MiB buffer got a mapping of its own.
 */
const skip = mmappedBytes() < 0 ? 'native/mem.c did not build, or not glibc 2.33+' : false;
const main = new URL('../main.js', import.meta.url).pathname;
const malloc = new URL('../../util/malloc.js', import.meta.url).href;

test('restore: a files restore gives buffers of 1 MiB or more mappings of their own; a stream restore keeps 2 MiB; LIFEBOAT_MMAP_THRESHOLD=0 keeps glibc\'s', { skip }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-restore-malloc-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_MMAP_THRESHOLD: '' };
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    mkdirSync(src);
    writeFileSync(path.join(src, 'a.txt'), 'some data\n'.repeat(1000));
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, '--tag', 'files', src], { env });
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, '--tag', 'stream', '--stdin', '--stdin-filename', 'dump.sql'], { env, input: 'INSERT 1;\n'.repeat(1000) });
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
  const b = Buffer.allocUnsafeSlow(1.5 * 1024 * 1024); b.fill(1);
  writeFileSync(${JSON.stringify(out)}, JSON.stringify({ grew: mmappedBytes() - before, len: b.length }));
});
`,
    );
    let n = 0;
    const grew = (tag: string, extra: NodeJS.ProcessEnv = {}): number => {
      rmSync(out, { force: true });
      const target = path.join(dir, `out${n++}`);
      execFileSync(process.execPath, ['--expose-gc', '--import', probe, main, 'restore', 'latest', '-q', '-r', repo, '--tag', tag, '--target', target], { env: { ...env, ...extra } });
      return (JSON.parse(readFileSync(out, 'utf8')) as { grew: number }).grew;
    };
    assert.ok(grew('files') >= 1.5 * 1024 * 1024, 'a files restore: the 1.5 MiB buffer is mapped');
    assert.equal(grew('files', { LIFEBOAT_MMAP_THRESHOLD: '0' }), 0, 'the control: with glibc\'s own (raised) threshold it comes from the heap');
    assert.equal(grew('stream'), 0, 'a stream restore: under the 2 MiB stream threshold it comes from the heap');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
