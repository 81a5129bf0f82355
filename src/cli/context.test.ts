import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { mmappedBytes } from '../util/malloc.js';

/**
 * CliContext.openRepo({ bulk: true }) (stream and dump backups, pg base-backup / restore, source restores) turns
 * V8's incremental marking off once the repository is open; without `bulk` (check, prune, files backups) it stays on. Each case in a
 * child process (the flag is process-wide): open the repository, then an allocation pattern that reaches V8's
 * marking limit; --trace-gc says whether a full collection finished an incremental marking.
 */
const context = new URL('./context.js', import.meta.url).href;
const main = new URL('./main.js', import.meta.url).pathname;
const probe = (repo: string, bulk: boolean) => `
const { CliContext } = await import(${JSON.stringify(context)});
const ctx = new CliContext({ repo: ${JSON.stringify(repo)}, quiet: true });
const r = await ctx.openRepo({ allowInit: false${bulk ? ', bulk: true' : ''} });
await r.close();
let keep = [];
for (let i = 0; i < 400000; i++) {
  keep.push({ i, s: 'x' + i, a: [i, i + 1, i + 2] });
  if (keep.length > 100000) keep = [];
  if (i % 1000 === 0) await new Promise((res) => setImmediate(res));
}
console.log('probe done');
`;

test('openRepo({ bulk: true }) turns incremental marking off; without bulk it stays on', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-ctx-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_INCREMENTAL_MARKING: '' };
    const repo = path.join(dir, 'repo');
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    const incremental = (bulk: boolean) => {
      const out = execFileSync(process.execPath, ['--trace-gc', '--input-type=module', '-e', probe(repo, bulk)], { env, encoding: 'utf8' });
      assert.match(out, /probe done/);
      return out.split('\n').filter((l) => l.includes('Mark-Compact') && l.includes('incremental marking')).length;
    };
    assert.equal(incremental(true), 0);
    assert.ok(incremental(false) >= 1, 'the control: without bulk the probe starts incremental marking');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('openRepo({ bulk: true }) gives buffers of 2 MiB or more mappings of their own (util/malloc.ts); without bulk glibc keeps its own threshold', { skip: mmappedBytes() < 0 ? 'native/mem.c did not build, or not glibc 2.33+' : false }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-ctx-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_MMAP_THRESHOLD: '' };
    const repo = path.join(dir, 'repo');
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    const malloc = new URL('../util/malloc.js', import.meta.url).href;
    // glibc's own threshold, raised to 16 MiB by freeing a 16 MiB mapped block first (what a stream's
    // large buffers did): then a 3 MiB buffer comes from the heap, unless the open set the threshold
    const mapped3MiB = (bulk: boolean) => {
      const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', `
        const { CliContext } = await import(${JSON.stringify(context)});
        const { mmappedBytes } = await import(${JSON.stringify(malloc)});
        let big = Buffer.allocUnsafeSlow(16 * 1024 * 1024); big.fill(1); big = undefined;
        for (let i = 0; i < 3; i++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 20)); }
        const ctx = new CliContext({ repo: ${JSON.stringify(repo)}, quiet: true });
        const r = await ctx.openRepo({ allowInit: false${bulk ? ', bulk: true' : ''} });
        await r.close();
        const before = mmappedBytes();
        const b = Buffer.allocUnsafeSlow(3 * 1024 * 1024); b.fill(1);
        console.log(JSON.stringify({ grew: mmappedBytes() - before }));`], { env, encoding: 'utf8' });
      return (JSON.parse(out.trim().split('\n').pop()!) as { grew: number }).grew;
    };
    assert.ok(mapped3MiB(true) >= 3 * 1024 * 1024, 'bulk: a 3 MiB buffer is mapped');
    assert.equal(mapped3MiB(false), 0, 'the control: without bulk it comes from the heap (glibc raised its threshold)');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
