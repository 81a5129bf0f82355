import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { LARGE, freeLarge, hugeBuffer, largeBuffer, useHugeBuffers } from './huge-buffer.js';
import { requireAddon } from './native.js';

const skip = typeof requireAddon<{ hugeBuffer?: unknown }>('mem')?.hugeBuffer === 'function' ? false : 'native/mem.c did not build';
/** Transparent huge pages can be asked for (madvise or always), as on the machines the bench runs on. */
const thp = (() => {
  try {
    return /\[(always|madvise)\]/.test(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'));
  } catch {
    return false;
  }
})();
const faults = () => process.resourceUsage().minorPageFault;

test('off until a command turns it on; LIFEBOAT_HUGE_BUFFERS=0 keeps it off', { skip }, () => {
  assert.equal(largeBuffer(4 * LARGE), undefined, 'off by default: the caller allocates as usual');
  const plain = Buffer.allocUnsafeSlow(2 * LARGE);
  assert.equal(freeLarge(plain.buffer as ArrayBuffer), false);
  assert.equal(useHugeBuffers({ LIFEBOAT_HUGE_BUFFERS: '0' }), false);
  assert.equal(largeBuffer(4 * LARGE), undefined);
});

test('hugeBuffer: made whether or not huge-page buffers were turned on, freed at once by freeLarge; not under 1 MiB, not with LIFEBOAT_HUGE_BUFFERS=0', { skip }, () => {
  assert.equal(largeBuffer(4 * LARGE), undefined, 'still off (the test above)');
  const b = hugeBuffer(3 * LARGE + 5, {})!;
  assert.ok(b);
  assert.equal(b.length, 3 * LARGE + 5);
  b.fill(9);
  assert.equal(b[3 * LARGE + 4], 9);
  const ab = b.buffer as ArrayBuffer;
  assert.equal(freeLarge(ab), true);
  assert.equal(ab.byteLength, 0);
  assert.equal(hugeBuffer(LARGE - 1, {}), undefined);
  assert.equal(hugeBuffer(4 * LARGE, { LIFEBOAT_HUGE_BUFFERS: '0' }), undefined);
  assert.equal(largeBuffer(4 * LARGE), undefined, 'and largeBuffer stays off');
});

test('large buffers: exactly the size asked for, usable, freed at once by freeLarge; small ones and foreign ones left alone', { skip }, () => {
  assert.equal(useHugeBuffers({}), true);
  assert.equal(largeBuffer(LARGE - 1), undefined, 'under 1 MiB: as usual');
  for (const size of [LARGE, LARGE + 1, 3 * LARGE + 12345, 8 * LARGE]) {
    const b = largeBuffer(size)!;
    assert.ok(b, `a buffer of ${size}`);
    assert.equal(b.length, size);
    assert.equal(b.byteOffset, 0);
    assert.equal(b.buffer.byteLength, size, 'its ArrayBuffer is the size asked for (the rest of its 2 MiB pages is not reachable)');
    b.fill(0xab);
    b[size - 1] = 7;
    assert.equal(b[0], 0xab);
    assert.equal(b[size - 1], 7);
    const ab = b.buffer as ArrayBuffer;
    assert.equal(freeLarge(ab), true);
    assert.equal(ab.byteLength, 0, 'detached: nothing can reach the unmapped memory');
    assert.equal(b.length, 0);
    assert.equal(freeLarge(ab), false, 'not twice');
  }
  const plain = Buffer.allocUnsafeSlow(2 * LARGE);
  plain.fill(1);
  assert.equal(freeLarge(plain.buffer as ArrayBuffer), false, 'a buffer it did not make is not touched');
  assert.equal(plain.length, 2 * LARGE);
  assert.equal(plain[LARGE], 1);
  // many made and freed: the memory is given back each time (not held until a collection)
  const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
  const before = rss();
  for (let i = 0; i < 200; i++) {
    const b = largeBuffer(3 * LARGE)!;
    b.fill(i);
    assert.equal(freeLarge(b.buffer as ArrayBuffer), true);
  }
  assert.ok(rss() - before < 64 * LARGE, `200 x 3 MiB made and freed: RSS grew by ${((rss() - before) / LARGE).toFixed(0)} MiB`);
});

test('a large buffer is filled in huge pages: a handful of page faults for 10 MiB, not 2,560', { skip: skip || (!thp && 'transparent huge pages are off on this machine') }, () => {
  assert.equal(useHugeBuffers({}), true);
  // a huge page can be missing for a moment (memory fragmented): the best of three tries counts
  let best = Infinity;
  for (let i = 0; i < 3 && best > 64; i++) {
    const b = largeBuffer(10 * LARGE)!; // over 8 MiB: never a kept mapping (native/mem.c), always a new one
    const f0 = faults();
    b.fill(1);
    best = Math.min(best, faults() - f0);
    freeLarge(b.buffer as ArrayBuffer);
  }
  assert.ok(best <= 64, `filling 10 MiB took ${best} page faults (4 KiB pages: 2,560)`);
});

/** Run `body` (an ES module's text, with hugeBuffer, largeBuffer, freeLarge, useHugeBuffers, LARGE in scope) in a child process: the kept mappings are per process. */
const child = (body: string): string => {
  const r = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', `const { hugeBuffer, largeBuffer, freeLarge, useHugeBuffers, LARGE } = await import(${JSON.stringify(new URL('./huge-buffer.js', import.meta.url).href)});\n${body}`],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
};

test('with huge-page buffers on, a freed mapping is reused by the next buffer of as many 2 MiB pages (not zeroed again); at most 4 kept', { skip }, () => {
  const out = JSON.parse(
    child(`
    const faults = () => process.resourceUsage().minorPageFault;
    const { readFileSync } = await import('node:fs');
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const o = { on: useHugeBuffers({}) };
    const a = largeBuffer(3 * LARGE);
    a.fill(0x5a);
    o.freedA = freeLarge(a.buffer);
    o.aLength = a.length;
    const f0 = faults();
    const b = largeBuffer(3 * LARGE + 100); // 2 huge pages, as a
    o.bLength = b.length;
    o.b0 = b[0];
    b.fill(1);
    o.refill = faults() - f0;
    const c = largeBuffer(3 * LARGE); // a's mapping is b's now: nothing kept of this size
    o.c0 = c[0];
    freeLarge(b.buffer);
    freeLarge(c.buffer);
    const before = rss();
    const many = Array.from({ length: 12 }, () => largeBuffer(7 * LARGE));
    for (const m of many) m.fill(2);
    o.freedMany = many.map((m) => freeLarge(m.buffer)).every(Boolean);
    o.grew = rss() - before;
    process.stdout.write(JSON.stringify(o));`),
  );
  assert.equal(out.on, true);
  assert.equal(out.freedA, true);
  assert.equal(out.aLength, 0, 'detached all the same');
  assert.equal(out.bLength, 3 * LARGE + 100);
  assert.equal(out.b0, 0x5a, 'the kept mapping, its bytes as they were (a new one is zeroed)');
  assert.ok(out.refill < 16, `refilling a kept mapping took ${out.refill} page faults`);
  assert.equal(out.c0, 0, 'a new mapping');
  assert.equal(out.freedMany, true);
  assert.ok(out.grew < 5 * 8 * LARGE, `12 x 8 MiB made and freed: RSS grew by ${(out.grew / LARGE).toFixed(0)} MiB (4 kept at most)`);
});

test('hugeBuffer while huge-page buffers are off keeps nothing: a freed mapping is given back', { skip }, () => {
  const out = child(`
    const a = hugeBuffer(3 * LARGE, {}); a.fill(0x5a); freeLarge(a.buffer);
    const b = hugeBuffer(3 * LARGE, {}); process.stdout.write(String(b[0]));`);
  assert.equal(out, '0', 'a new, zeroed mapping');
});
