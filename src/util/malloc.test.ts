import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { ConfigError } from '../errors.js';
import { mmappedBytes } from './malloc.js';
import { heapTrimInterval } from './heap-trim.js';

// glibc's mmap threshold set at run time (native/mem.c): checked in a child process, where
// malloc's state is this test's own. A Buffer's memory comes from malloc: under the 2 MiB
// default a 3 MiB one gets a mapping of its own and a 1.5 MiB one comes from the heap (glibc's
// own threshold starts at 128 KiB, so that one would be mapped without the setting); under a
// 32 MiB threshold both come from the heap.
const skip = mmappedBytes() < 0 ? 'native/mem.c did not build, or not glibc 2.33+' : false;
const malloc = new URL('./malloc.js', import.meta.url).href;

function mappedGrowth(env: NodeJS.ProcessEnv, mib: number, work = 'stream'): { set: boolean; grew: number } {
  const probe = `
    import { mallocSettings, mmappedBytes } from ${JSON.stringify(malloc)};
    const set = mallocSettings(${JSON.stringify(work)});
    const before = mmappedBytes();
    const b = Buffer.allocUnsafeSlow(${mib} * 1024 * 1024);
    b.fill(1);
    process.stdout.write(JSON.stringify({ set, grew: mmappedBytes() - before }));`;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, ...env }, encoding: 'utf8' })) as { set: boolean; grew: number };
}

test("mallocSettings('stream'): buffers of the threshold or more get mappings of their own; LIFEBOAT_MMAP_THRESHOLD sets or turns it off", { skip }, () => {
  const big = mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: '' }, 3);
  assert.equal(big.set, true);
  assert.ok(big.grew >= 3 * 1024 * 1024, `a 3 MiB buffer under the 2 MiB default: ${big.grew} bytes more mapped`);
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: '' }, 1.5).grew, 0, 'a 1.5 MiB buffer under the 2 MiB default comes from the heap');
  const high = mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: String(32 * 1024 * 1024) }, 3);
  assert.equal(high.set, true);
  assert.equal(high.grew, 0, 'under a 32 MiB threshold it comes from the heap');
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: '0' }, 3).set, false);
  // beyond glibc's range, or not a number: not set, and no error
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: String(64 * 1024 * 1024) }, 3).set, false);
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: 'lots' }, 3).set, false);
});

test("mallocSettings('filesRestore'): 1 MiB by default (a 1.5 MiB buffer is mapped, a 0.5 MiB one is not); LIFEBOAT_MMAP_THRESHOLD overrides it", { skip }, () => {
  const r = mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: '' }, 1.5, 'filesRestore');
  assert.equal(r.set, true);
  assert.ok(r.grew >= 1.5 * 1024 * 1024, `a 1.5 MiB buffer under the 1 MiB default: ${r.grew} bytes more mapped`);
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: '' }, 0.5, 'filesRestore').grew, 0, 'a 0.5 MiB buffer comes from the heap');
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: String(32 * 1024 * 1024) }, 1.5, 'filesRestore').grew, 0, 'under a 32 MiB threshold it comes from the heap');
  assert.equal(mappedGrowth({ LIFEBOAT_MMAP_THRESHOLD: '0' }, 1.5, 'filesRestore').set, false);
});

/**
 * The start of a child's probe: 64 buffers of 1 MiB from the heap (under a 32 MiB threshold, set by the
 * child's LIFEBOAT_MMAP_THRESHOLD), each followed by one of 256 KiB that stays (`pins`), so the freed
 * ones are holes between them, not the heap's top (which free() gives back by itself); `anon()`: RssAnon in bytes.
 */
const HOLES = `
    import { readFileSync } from 'node:fs';
    import { mallocSettings as setThreshold } from ${JSON.stringify(malloc)};
    import { collector } from ${JSON.stringify(new URL('./reclaim.js', import.meta.url).href)};
    const anon = () => Number(/^RssAnon:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    setThreshold('stream');
    let bufs = [];
    const pins = [];
    for (let i = 0; i < 64; i++) {
      bufs.push(Buffer.allocUnsafeSlow(1024 * 1024).fill(1));
      pins.push(Buffer.allocUnsafeSlow(256 * 1024).fill(2));
    }
    bufs = undefined;
    collector()();`;

test('releaseIdleMemory: the free pages left in the middle of the C heap go back to the kernel (malloc_trim)', { skip }, () => {
  // the holes of HOLES, then one trim
  const probe = `
    import { releaseIdleMemory } from ${JSON.stringify(malloc)};
    ${HOLES}
    const before = anon();
    const released = releaseIdleMemory();
    process.stdout.write(JSON.stringify({ released, dropped: before - anon(), pins: pins.length }));`;
  const r = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, LIFEBOAT_MMAP_THRESHOLD: String(32 * 1024 * 1024), GLIBC_TUNABLES: '' }, encoding: 'utf8' }),
  ) as { released: boolean; dropped: number };
  assert.equal(r.released, true);
  assert.ok(r.dropped >= 32 * 1024 * 1024, `RssAnon dropped by ${r.dropped} bytes`);
});

test('heapTrimInterval: 100 ms by default (or the default the caller gives); LIFEBOAT_TRIM_MS 0 (none) or 10-60000; anything else is a usage error', () => {
  assert.equal(heapTrimInterval({}), 100);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '' }), 100);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '0' }), 0);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '10' }), 10);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '60000' }), 60000);
  // a caller whose default is none (a dump's restore): trims only when LIFEBOAT_TRIM_MS asks
  assert.equal(heapTrimInterval({}, 0), 0);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '' }, 0), 0);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '250' }, 0), 250);
  assert.equal(heapTrimInterval({ LIFEBOAT_TRIM_MS: '0' }, 0), 0);
  for (const bad of ['5', '60001', '1.5', '-10', 'often', '100ms', ' 100']) {
    assert.throws(() => heapTrimInterval({ LIFEBOAT_TRIM_MS: bad }), (e: unknown) => e instanceof ConfigError && e.exitCode === 2 && /LIFEBOAT_TRIM_MS/.test(e.message), bad);
  }
});

test('heapTrim: a thread gives the free pages in the middle of the heap back every interval, while any caller wants it; LIFEBOAT_TRIM_MS=0 starts none', { skip }, () => {
  // the holes of HOLES: 64 buffers of 1 MiB freed between 256 KiB ones that stay. Without trims they stay
  // resident for as long as this waits; with a trim every 10 ms they are gone at the next one
  const probe = `
    import { heapTrim, heapTrimStats } from ${JSON.stringify(new URL('./heap-trim.js', import.meta.url).href)};
    ${HOLES}
    const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    /** Until the trims counted \`n\` more (a deadline of 10 s for a loaded machine's timers, not a measure). */
    const trims = async (n) => {
      const want = heapTrimStats().runs + n;
      for (const end = Date.now() + 10_000; heapTrimStats().runs < want && Date.now() < end; ) await sleep(5);
    };
    await sleep(50);
    const freed = anon();
    const off = heapTrim();
    await sleep(200);
    const untrimmed = freed - anon();
    const offStats = heapTrimStats();
    off();
    const stopA = heapTrim({ LIFEBOAT_TRIM_MS: '10' });
    const stopB = heapTrim({ LIFEBOAT_TRIM_MS: '10' });
    await trims(2);
    const trimmed = freed - anon();
    stopA();
    const afterOne = heapTrimStats().intervalMs;
    await trims(1);
    stopB();
    const stopped = heapTrimStats();
    await sleep(100);
    process.stdout.write(JSON.stringify({ untrimmed, offStats, trimmed, afterOne, stopped, later: heapTrimStats(), pins: pins.length }));`;
  const r = JSON.parse(
    execFileSync(process.execPath, ['--input-type=module', '-e', probe], { env: { ...process.env, LIFEBOAT_MMAP_THRESHOLD: String(32 * 1024 * 1024), LIFEBOAT_TRIM_MS: '0', GLIBC_TUNABLES: '' }, encoding: 'utf8' }),
  ) as {
    untrimmed: number;
    offStats: { runs: number; intervalMs: number };
    trimmed: number;
    afterOne: number;
    stopped: { runs: number; intervalMs: number };
    later: { runs: number; intervalMs: number };
  };
  assert.deepEqual([r.offStats.runs, r.offStats.intervalMs], [0, 0], 'LIFEBOAT_TRIM_MS=0: no thread, no trims');
  assert.ok(r.untrimmed < 16 * 1024 * 1024, `without trims the holes stay resident (RssAnon fell by ${r.untrimmed} bytes)`);
  assert.ok(r.trimmed >= 32 * 1024 * 1024, `with trims every 10 ms RssAnon fell by ${r.trimmed} bytes`);
  assert.equal(r.afterOne, 10, 'one caller stopped, the other still wants the trims');
  assert.equal(r.stopped.intervalMs, 0, 'both stopped');
  assert.equal(r.later.runs, r.stopped.runs, 'no trim after the last caller stopped them');
});
