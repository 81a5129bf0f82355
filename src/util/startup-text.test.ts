import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { requireAddon } from './native.js';
import { SETTLE_AT_MS, releaseStartupText, releaseStartupTextEvery, startupTextReleases } from './startup-text.js';

// native/mem.c dropExecutableText, in a child process (its own mappings): the executable's
// read-only pages leave its RSS, the mappings with pages of their own (the writable segment, the
// relocated read-only data) keep them, and everything afterwards still works: code and data come
// back from the page cache as they were. (Dropping the relocated data too crashes the child.)
const skip =
  typeof requireAddon<{ dropExecutableText?: unknown }>('mem')?.dropExecutableText === 'function' && existsSync('/proc/self/smaps') ? false : 'native/mem.c did not build, or no /proc';
const mod = new URL('./startup-text.js', import.meta.url).href;

interface Mapping {
  range: string;
  perms: string;
  rss: number;
  anon: number;
}

const probe = `
import { readFileSync, realpathSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { gzipSync, gunzipSync } from 'node:zlib';
import { Worker } from 'node:worker_threads';
import { dropExecutableText, startupTextReleases } from ${JSON.stringify(mod)};
const exe = realpathSync('/proc/self/exe');
// the executable's mappings: range, permissions, resident and private kB
function maps() {
  const out = [];
  let cur;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
    const h = /^([0-9a-f]+-[0-9a-f]+) (\\S+) \\S+ \\S+ \\d+\\s+(.*)$/.exec(line);
    if (h) { cur = h[3] === exe ? { range: h[1], perms: h[2], rss: 0, anon: 0 } : undefined; if (cur) out.push(cur); continue; }
    const f = /^(Rss|Anonymous):\\s+(\\d+) kB/.exec(line);
    if (cur && f) cur[f[1] === 'Rss' ? 'rss' : 'anon'] = Number(f[2]);
  }
  return out;
}
// touch much of the executable first: parser, compilers, crypto, zlib
for (let i = 0; i < 2000; i++) new Function('a', 'return a + ' + i)(i);
createHash('sha512').update('x').digest();
gzipSync(Buffer.alloc(1 << 16));
const before = maps();
const kB = dropExecutableText();
const after = maps();
// and then work that needs them again: new code compiled and optimized, crypto, zlib, a worker thread, collections
const data = Buffer.alloc(8 << 20);
for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
const sha = createHash('sha256').update(data).digest('hex');
const round = gunzipSync(gzipSync(data)).equals(data);
let sum = 0;
const f = new Function('n', 'let s = 0; for (let i = 0; i < n; i++) s = (s + i * i) % 1000003; return s;');
for (let i = 0; i < 200; i++) sum = f(20000);
const fromWorker = await new Promise((resolve, reject) => {
  const w = new Worker("const { parentPort } = require('node:worker_threads'); parentPort.postMessage(require('node:crypto').createHash('sha1').update('lifeboat').digest('hex'));", { eval: true, execArgv: [] });
  w.once('message', resolve);
  w.once('error', reject);
});
globalThis.gc?.();
process.stdout.write(JSON.stringify({ before, after, kB, sha, round, sum, fromWorker, releases: startupTextReleases() }));
`;

function run(env: NodeJS.ProcessEnv = {}) {
  const out = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', probe], { env: { ...process.env, ...env }, encoding: 'utf8' });
  return JSON.parse(out) as { before: Mapping[]; after: Mapping[]; kB: number; sha: string; round: boolean; sum: number; fromWorker: string; releases: { releases: number; kB: number } };
}

function expected() {
  const data = Buffer.alloc(8 << 20);
  for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(Math.imul(i, 2654435761) >>> 0, i);
  let s = 0;
  for (let i = 0; i < 20000; i++) s = (s + i * i) % 1000003;
  return { sha: createHash('sha256').update(data).digest('hex'), sum: s, fromWorker: createHash('sha1').update('lifeboat').digest('hex') };
}

test("dropExecutableText: the executable's read-only pages leave the RSS, its pages of its own stay, and the process works on", { skip }, () => {
  const r = run({ LIFEBOAT_RELEASE_TEXT: '' });
  const rss = (m: Mapping[], pick: (x: Mapping) => boolean) => m.filter(pick).reduce((a, x) => a + x.rss, 0);
  const readOnly = (x: Mapping) => x.perms[1] === '-' && x.anon === 0;
  const before = rss(r.before, readOnly);
  const after = rss(r.after, readOnly);
  assert.ok(before > 8 * 1024, `the executable's read-only pages were resident before: ${before} kB`);
  assert.ok(r.kB >= before * 0.9, `gave back ${r.kB} kB of address range, ${before} kB resident`);
  // (5.9 of 33.8 MB here; 8.7 under AddressSanitizer, whose runtime maps more back before the count)
  assert.ok(after < before / 3, `resident after: ${after} kB of ${before}`);
  // the mappings with pages of their own (the writable segment, relocated read-only data) are left as they were
  const own = r.before.filter((x) => x.anon > 0);
  assert.ok(own.length >= 1, 'the executable has mappings with pages of its own');
  for (const m of own) {
    const a = r.after.find((x) => x.range === m.range);
    assert.ok(a && a.rss >= m.rss && a.anon >= m.anon, `${m.range} ${m.perms} kept (${JSON.stringify(m)} -> ${JSON.stringify(a)})`);
  }
  const want = expected();
  assert.equal(r.sha, want.sha);
  assert.equal(r.round, true);
  assert.equal(r.sum, want.sum);
  assert.equal(r.fromWorker, want.fromWorker);
  assert.deepEqual({ ...r.releases, ms: 0 }, { releases: 1, kB: r.kB, ms: 0 });
});

test('LIFEBOAT_RELEASE_TEXT=0: nothing dropped', { skip }, () => {
  const r = run({ LIFEBOAT_RELEASE_TEXT: '0' });
  assert.equal(r.kB, -1);
  assert.deepEqual(r.releases, { releases: 0, kB: 0, ms: 0 });
  const ro = (m: Mapping[]) => m.filter((x) => x.perms[1] === '-' && x.anon === 0).reduce((a, x) => a + x.rss, 0);
  assert.ok(ro(r.after) >= ro(r.before) * 0.9, `${ro(r.before)} -> ${ro(r.after)} kB`);
  assert.equal(r.sha, expected().sha);
});

test('releaseStartupTextEvery: drops now and at each interval until stopped; with LIFEBOAT_RELEASE_TEXT=0 never', { skip }, async () => {
  const at = () => startupTextReleases().releases;
  const before = at();
  const stop = releaseStartupTextEvery({ LIFEBOAT_RELEASE_TEXT_EVERY_MS: '10' });
  assert.equal(at(), before + 1, 'one drop at once');
  await new Promise((r) => setTimeout(r, 100));
  stop();
  const stopped = at();
  assert.ok(stopped >= before + 3, `${stopped - before} drops in 100 ms`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(at(), stopped, 'none after stop()');

  const off = releaseStartupTextEvery({ LIFEBOAT_RELEASE_TEXT: '0', LIFEBOAT_RELEASE_TEXT_EVERY_MS: '10' });
  await new Promise((r) => setTimeout(r, 50));
  off();
  assert.equal(at(), stopped);
});

test('releaseStartupText: drops now and at each point of its schedule, once; a call while one is underway adds none', { skip }, async () => {
  const at = () => startupTextReleases().releases;
  const waitFor = async (n: number) => {
    const t0 = Date.now();
    while (at() < n && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 5));
  };
  const before = at();
  releaseStartupText({}, [40, 400]);
  assert.equal(at(), before + 1, 'one drop at once');
  releaseStartupText({}, [40, 400]);
  assert.equal(at(), before + 1, 'a second call while the first is underway: no drop of its own');
  await waitFor(before + 2);
  // (at least: on a stalled machine the third may have come too by the time this looks)
  assert.ok(at() >= before + 2, 'the second drop, at 40 ms');
  await waitFor(before + 3);
  assert.equal(at(), before + 3, 'the third, at 400 ms');
  await new Promise((r) => setTimeout(r, 450));
  assert.equal(at(), before + 3, 'and no more');
  // a new schedule once that one is over; with LIFEBOAT_RELEASE_TEXT=0 none
  releaseStartupText({ LIFEBOAT_RELEASE_TEXT: '0' }, [10]);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(at(), before + 3);
  releaseStartupText({}, [10]);
  await waitFor(before + 5);
  assert.equal(at(), before + 5);
  // the commands' schedule drops once early, before a short command's peak (~0.5 s into a dump's
  // restore), and once later for the compilations that follow (see SETTLE_AT_MS)
  assert.ok(SETTLE_AT_MS.length >= 2 && SETTLE_AT_MS[0]! <= 200 && SETTLE_AT_MS[SETTLE_AT_MS.length - 1]! >= 400, JSON.stringify(SETTLE_AT_MS));
});
