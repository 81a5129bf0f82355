import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import zstd from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import type { DCtx } from 'zstd-napi/binding.js';
import { tmpDir, runCliMeasured, type MeasuredResult } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { BlobCodec } from '../src/repo/codec.js';
import { newMasterKey, seal, sha256 } from '../src/repo/crypto.js';
import { WorkerPool } from '../src/repo/pool.js';
import type { Worker } from 'node:worker_threads';
import { PackWriter, type PackBlob } from '../src/repo/pack.js';
import type { TreeNode } from '../src/repo/tree.js';

/**
 * Hostile repositories, built for real with the project's own writer code
 * (PackWriter, sealJson, BlobCodec, writeIndexFile) plus crafted zstd frames.
 * Every case must end, through the real CLI, in exit 5 with the damaged
 * object named, within seconds and bounded memory, and must not leave a
 * 0-byte or partial file for the damaged file while the intact file restores.
 */
const PW = 'hostile-pw';
const env = { LIFEBOAT_PASSWORD: PW };
const KILL_MS = 45_000;

/** A zstd frame of `bytes` zeros written by the streaming compressor: no content size in its header. */
const bombs = new Map<number, Buffer>();
function zeroBomb(bytes: number): Buffer {
  const cached = bombs.get(bytes);
  if (cached) return cached;
  const cctx = new binding.CCtx();
  const zeros = Buffer.alloc(1 << 20);
  const dst = Buffer.allocUnsafe(binding.cStreamOutSize());
  const out: Buffer[] = [];
  for (let fed = 0; fed < bytes; fed += zeros.length) {
    let src = zeros.subarray(0, Math.min(zeros.length, bytes - fed));
    while (src.length > 0) {
      const [, produced, consumed] = cctx.compressStream2(dst, src, binding.EndDirective.continue);
      if (produced) out.push(Buffer.from(dst.subarray(0, produced)));
      src = src.subarray(consumed);
    }
  }
  for (;;) {
    const [left, produced] = cctx.compressStream2(dst, Buffer.alloc(0), binding.EndDirective.end);
    if (produced) out.push(Buffer.from(dst.subarray(0, produced)));
    if (left === 0) break;
  }
  const frame = Buffer.concat(out);
  assert.equal(binding.getFrameContentSize(frame), null, 'the bomb frame must not declare its content size');
  bombs.set(bytes, frame);
  return frame;
}

const fakeId = () => randomBytes(32).toString('hex');

function fileNode(name: string, content: string[], sizes: number[]): TreeNode {
  return { name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: Date.now(), size: sizes.reduce((a, b) => a + b, 0), content, sizes };
}

interface Built {
  dir: string;
  repoDir: string;
  good: Buffer;
  snapshot: string;
  cleanup: () => void;
}

type Craft = (repo: Repository) => Promise<{ content: string[]; sizes: number[] }>;

/** Fresh repository with an intact file good.bin and a damaged file bad.bin whose chunks `craft` writes. */
async function build(craft: Craft): Promise<Built> {
  const t = tmpDir('lb-hostile-');
  const repoDir = path.join(t.dir, 'repo');
  const repo = await Repository.init(new LocalStorage(repoDir), PW, { packSize: 1024 * 1024 });
  try {
    const good = randomBytes(150_000);
    const { id: goodId } = await repo.saveBlob('data', Buffer.from(good));
    await repo.flush();
    const bad = await craft(repo);
    const tree = await repo.saveTree({ nodes: [fileNode('good.bin', [goodId], [good.length]), fileNode('bad.bin', bad.content, bad.sizes)] });
    await repo.flush();
    const snapshot = await repo.saveSnapshot({ time: new Date().toISOString(), tree, paths: ['/hostile'], tags: [] });
    return { dir: t.dir, repoDir, good, snapshot, cleanup: t.cleanup };
  } finally {
    await repo.close();
  }
}

/** Write one pack holding `blobs` (sealed as given) and an index file listing it (entries optionally altered). */
async function writePack(
  repo: Repository,
  blobs: Array<{ entry: Omit<PackBlob, 'offset' | 'length'>; sealed: Buffer }>,
  alter: (b: PackBlob) => PackBlob = (b) => b,
): Promise<{ id: string; size: number; blobs: PackBlob[] }> {
  const pw = new PackWriter();
  for (const b of blobs) pw.add(b.entry, b.sealed);
  const { id, data, blobs: written } = pw.finalize(repo.key.encKey);
  await repo.storage.save('data', id, data);
  await repo.writeIndexFile([{ id, blobs: written.map((b) => alter({ ...b })) }]);
  return { id, size: data.length, blobs: written };
}

function report(name: string, cmd: string, r: MeasuredResult): void {
  // Measured numbers for the report (stdout of the test runner).
  console.log(`# hostile ${name} / ${cmd}: exit=${r.code} signal=${r.signal} killed=${r.killed} ms=${r.ms} peakRssMb=${r.peakRssMb}`);
  for (const line of r.stderr.split('\n').filter((l) => l.startsWith('error:')).slice(0, 3)) console.log(`#   ${line.slice(0, 300)}`);
}

function assertClean(name: string, r: MeasuredResult, names: string[], why?: RegExp): void {
  assert.equal(r.killed, false, `${name}: hung and was killed after ${KILL_MS} ms`);
  assert.equal(r.code, 5, `${name}: exit ${r.code} (signal ${r.signal}), stderr: ${r.stderr.slice(0, 2000)}`);
  assert.ok(r.ms < 30_000, `${name}: took ${r.ms} ms`);
  assert.ok(r.peakRssMb < 1024, `${name}: peak RSS ${r.peakRssMb} MiB`);
  assert.ok(
    names.some((n) => r.stderr.includes(n)),
    `${name}: the error names none of ${names.map((n) => n.slice(0, 12)).join(', ')}: ${r.stderr.slice(0, 2000)}`,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, `${name}: stack trace on stderr`);
  if (why) assert.match(r.stderr, why, `${name}: the error does not say why`);
}

async function restoreCase(name: string, b: Built, names: string[], why?: RegExp): Promise<void> {
  const target = path.join(b.dir, 'out');
  const r = await runCliMeasured(['restore', b.snapshot, '--repo', b.repoDir, '--target', target], { env, killAfterMs: KILL_MS });
  report(name, 'restore', r);
  assertClean(`${name} (restore)`, r, names, why);
  // The intact file is restored; nothing is left under the damaged file's name.
  assert.deepEqual(await fsp.readFile(path.join(target, 'good.bin')), b.good);
  const leftovers = (await fsp.readdir(target, { recursive: true })).filter((f) => String(f).includes('bad.bin'));
  assert.deepEqual(leftovers, [], `${name}: restore left ${leftovers.join(', ')} behind`);
}

async function checkCase(name: string, b: Built, names: string[], why?: RegExp, args = ['--read-data']): Promise<void> {
  const r = await runCliMeasured(['check', ...args, '--repo', b.repoDir], { env, killAfterMs: KILL_MS });
  report(name, `check ${args.join(' ')}`, r);
  assertClean(`${name} (check ${args.join(' ')})`, r, names, why);
}

test('delta cycle (A based on B, B based on A): refused with the blobs named', { timeout: 3 * 60_000 }, async () => {
  const a = fakeId();
  const bb = fakeId();
  const b = await build(async (repo) => {
    const sealed = () => seal(repo.key.encKey, zstd.compress(randomBytes(1000))); // within rawLength + seal: only the cycle is wrong
    await writePack(repo, [
      { entry: { id: a, type: 'data', rawLength: 5000, compression: 2, base: bb }, sealed: sealed() },
      { entry: { id: bb, type: 'data', rawLength: 5000, compression: 2, base: a }, sealed: sealed() },
    ]);
    return { content: [a], sizes: [5000] };
  });
  try {
    await restoreCase('delta-cycle', b, [a, bb], /cycle/);
    await checkCase('delta-cycle', b, [a, bb], /cycle/);
    await checkCase('delta-cycle', b, [a, bb], /cycle/, []);
  } finally {
    b.cleanup();
  }
});

test('delta base whose stored content is not what its id says (authentic seal, same length): the base is named', { timeout: 3 * 60_000 }, async () => {
  // Restore and check decode delta bases without hashing them (the blob built on a base is hashed);
  // when that hash fails, the chain is re-read with every base checked, so the error names the base.
  const line = (i: number) => `row ${i}\t${(i * 7919) % 100003}\tsome text\n`;
  const P = Buffer.from(Array.from({ length: 4000 }, (_, i) => line(i)).join('').slice(0, 100_000));
  const Q = Buffer.from(Array.from({ length: 4000 }, (_, i) => line(i + 17)).join('').slice(0, 100_000));
  const T = Buffer.from(P);
  T.write('CHANGED', 50_000);
  let baseId = '';
  let topId = '';
  const b = await build(async (repo) => {
    const codec = new BlobCodec(repo.key.encKey, 3);
    baseId = repo.blobId(P);
    topId = repo.blobId(T);
    const delta = codec.encode(T, P);
    assert.equal(delta.compression, 2, 'the crafted blob is a real delta');
    await writePack(repo, [
      // the base's id is P's, its sealed payload is Q's (authentic: written with the key)
      { entry: { id: baseId, type: 'data', rawLength: Q.length, compression: 1 }, sealed: codec.encode(Q).sealed },
      { entry: { id: topId, type: 'data', rawLength: T.length, compression: 2, base: baseId }, sealed: delta.sealed },
    ]);
    return { content: [topId], sizes: [T.length] };
  });
  try {
    await restoreCase('wrong-base-content', b, [baseId], /does not match its id/);
    await checkCase('wrong-base-content', b, [baseId], /does not match its id/);
  } finally {
    b.cleanup();
  }
});

test('delta chain deeper than the format maximum (100 real deltas): refused', { timeout: 3 * 60_000 }, async () => {
  let top = '';
  const b = await build(async (repo) => {
    const codec = new BlobCodec(repo.key.encKey, 3);
    // Real deltas: version i+1 of a 20 KB block is version i with a few bytes changed, stored against version i.
    let data = randomBytes(20_000);
    const blobs: Array<{ entry: Omit<PackBlob, 'offset' | 'length'>; sealed: Buffer }> = [];
    let prevId = repo.blobId(data);
    blobs.push({ entry: { id: prevId, type: 'data', rawLength: data.length, compression: 0 }, sealed: seal(repo.key.encKey, data) });
    for (let i = 0; i < 100; i++) {
      const next = Buffer.from(data);
      randomBytes(8).copy(next, (i * 97) % (next.length - 8));
      const enc = codec.encode(next, data);
      assert.equal(enc.compression, 2);
      const id = repo.blobId(next);
      blobs.push({ entry: { id, type: 'data', rawLength: next.length, compression: 2, base: prevId }, sealed: enc.sealed });
      prevId = id;
      data = next;
    }
    await writePack(repo, blobs);
    top = prevId;
    return { content: [top], sizes: [20_000] };
  });
  try {
    await restoreCase('deep-chain', b, [top], /more than the format maximum of 64/);
    await checkCase('deep-chain', b, [top], /more than the format maximum of 64/);
    await checkCase('deep-chain', b, [top], /more than the format maximum of 64/, []);
  } finally {
    b.cleanup();
  }
});

test('delta lattice (two bases per level, 40 levels, valid): restores and checks without exponential work', { timeout: 3 * 60_000 }, async () => {
  let top = '';
  let expected = Buffer.alloc(0);
  const t = tmpDir('lb-hostile-');
  try {
    const repoDir = path.join(t.dir, 'repo');
    const repo = await Repository.init(new LocalStorage(repoDir), PW, { packSize: 1024 * 1024 });
    const codec = new BlobCodec(repo.key.encKey, 3);
    let x = randomBytes(6000);
    let y = randomBytes(6000);
    const blobs: Array<{ entry: Omit<PackBlob, 'offset' | 'length'>; sealed: Buffer }> = [];
    let xId = repo.blobId(x);
    let yId = repo.blobId(y);
    blobs.push({ entry: { id: xId, type: 'data', rawLength: x.length, compression: 0 }, sealed: seal(repo.key.encKey, x) });
    blobs.push({ entry: { id: yId, type: 'data', rawLength: y.length, compression: 0 }, sealed: seal(repo.key.encKey, y) });
    for (let i = 0; i < 40; i++) {
      // Each level's two blobs are deltas against both blobs of the level below: 2^40 paths, 80 blobs.
      const dict = Buffer.concat([x, y]);
      const nx = Buffer.concat([x.subarray(0, 3000), y.subarray(3000)]);
      randomBytes(4).copy(nx, i * 50);
      const ny = Buffer.concat([y.subarray(0, 3000), x.subarray(3000)]);
      randomBytes(4).copy(ny, i * 50);
      const ex = codec.encode(nx, dict);
      const ey = codec.encode(ny, dict);
      assert.equal(ex.compression, 2);
      assert.equal(ey.compression, 2);
      const nxId = repo.blobId(nx);
      const nyId = repo.blobId(ny);
      blobs.push({ entry: { id: nxId, type: 'data', rawLength: nx.length, compression: 2, base: xId, base2: yId }, sealed: ex.sealed });
      blobs.push({ entry: { id: nyId, type: 'data', rawLength: ny.length, compression: 2, base: xId, base2: yId }, sealed: ey.sealed });
      [x, y, xId, yId] = [nx, ny, nxId, nyId];
    }
    await writePack(repo, blobs);
    top = xId;
    expected = x;
    const tree = await repo.saveTree({ nodes: [fileNode('lattice.bin', [top], [x.length])] });
    await repo.flush();
    const snapshot = await repo.saveSnapshot({ time: new Date().toISOString(), tree, paths: ['/hostile'], tags: [] });
    await repo.close();
    const target = path.join(t.dir, 'out');
    const r = await runCliMeasured(['restore', snapshot, '--repo', repoDir, '--target', target], { env, killAfterMs: KILL_MS });
    report('delta-lattice', 'restore', r);
    assert.equal(r.killed, false, 'delta lattice: hung');
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.ms < 30_000 && r.peakRssMb < 1024, `${r.ms} ms, ${r.peakRssMb} MiB`);
    assert.deepEqual(await fsp.readFile(path.join(target, 'lattice.bin')), expected);
    // check --read-data too: a delta's bases decoded for it alone (Repository.ownedBases) stop at a few decodes
    const c = await runCliMeasured(['check', '--read-data', '--repo', repoDir], { env, killAfterMs: KILL_MS });
    report('delta-lattice', 'check', c);
    assert.equal(c.killed, false, 'delta lattice: check hung');
    assert.equal(c.code, 0, c.stderr);
    assert.ok(c.ms < 30_000 && c.peakRssMb < 1024, `${c.ms} ms, ${c.peakRssMb} MiB`);
  } finally {
    t.cleanup();
  }
});

test('decompression bomb decoded in a worker (2 GiB of zeros, declared 1 MiB): stopped at the declared length', { timeout: 3 * 60_000 }, async () => {
  const id = fakeId();
  const b = await build(async (repo) => {
    await writePack(repo, [{ entry: { id, type: 'data', rawLength: 1 << 20, compression: 1 }, sealed: seal(repo.key.encKey, zeroBomb(2 * 1024 ** 3)) }]);
    return { content: [id], sizes: [1 << 20] };
  });
  try {
    await restoreCase('bomb-worker', b, [id], /decompresses to more than the 1048576 bytes allowed/);
    await checkCase('bomb-worker', b, [id], /decompresses to more than the 1048576 bytes allowed/);
  } finally {
    b.cleanup();
  }
});

test('decompression bomb decoded on the main thread (1 GiB of zeros, declared 60000 bytes): stopped', { timeout: 3 * 60_000 }, async () => {
  const id = fakeId();
  const b = await build(async (repo) => {
    const frame = zeroBomb(1024 ** 3);
    assert.ok(frame.length + 28 <= 60_000);
    await writePack(repo, [{ entry: { id, type: 'data', rawLength: 60_000, compression: 1 }, sealed: seal(repo.key.encKey, frame) }]);
    return { content: [id], sizes: [60_000] };
  });
  try {
    await restoreCase('bomb-main', b, [id], /decompresses to more than the 60000 bytes allowed/);
    await checkCase('bomb-main', b, [id], /decompresses to more than the 60000 bytes allowed/);
  } finally {
    b.cleanup();
  }
});

test('decompression bomb with declared raw length 100 (65 KB frame): impossible entry refused', { timeout: 3 * 60_000 }, async () => {
  const id = fakeId();
  const b = await build(async (repo) => {
    await writePack(repo, [{ entry: { id, type: 'data', rawLength: 100, compression: 1 }, sealed: seal(repo.key.encKey, zeroBomb(2 * 1024 ** 3)) }]);
    return { content: [id], sizes: [100] };
  });
  try {
    await restoreCase('bomb-100', b, [id], /exceeds rawLength 100/);
    await checkCase('bomb-100', b, [id], /exceeds rawLength 100/);
    await checkCase('bomb-100', b, [id], /exceeds rawLength 100/, []);
  } finally {
    b.cleanup();
  }
});

for (const [label, alter, why] of [
  ['index entry with length 3 GiB', (e: PackBlob) => ({ ...e, length: 3 * 1024 ** 3 }), /length 3221225472 exceeds rawLength/],
  ['index entry with offset 1e12', (e: PackBlob) => ({ ...e, offset: 1e12 }), /beyond the largest possible pack/],
  ['index entry past the end of its pack (within format limits)', (e: PackBlob) => ({ ...e, offset: e.offset + 4096 }), /beyond the end|index entries are damaged/],
] as const) {
  test(`${label}: refused before any read`, { timeout: 3 * 60_000 }, async () => {
    const data = randomBytes(3000);
    let id = '';
    let pack = '';
    const b = await build(async (repo) => {
      id = repo.blobId(data);
      ({ id: pack } = await writePack(
        repo,
        [{ entry: { id, type: 'data', rawLength: data.length, compression: 0 }, sealed: seal(repo.key.encKey, data) }],
        (e) => (e.id === id ? alter(e) : e),
      ));
      return { content: [id], sizes: [data.length] };
    });
    try {
      await restoreCase(label, b, [id], why);
      await checkCase(label, b, [id], why);
      await checkCase(label, b, [id], why, []);
      // prune must not take the pack of an impossible entry for garbage: the pack itself may be intact.
      const r = await runCliMeasured(['prune', '--repo', b.repoDir], { env, killAfterMs: KILL_MS });
      report(label, 'prune', r);
      if (!label.includes('past the end')) assert.equal(r.code, 5, r.stderr); // refused: an index entry is impossible
      await fsp.access(path.join(b.repoDir, 'data', pack.slice(0, 2), pack));
    } finally {
      b.cleanup();
    }
  });
}

test('sealed JSON bombs (snapshot and index file, 2 GiB of zeros): refused by name', { timeout: 3 * 60_000 }, async () => {
  let snapName = '';
  let indexName = '';
  const b = await build(async (repo) => {
    const body = (frame: Buffer) => seal(repo.key.encKey, Buffer.concat([Buffer.from([1]), frame]));
    const snap = body(zeroBomb(2 * 1024 ** 3));
    snapName = sha256(snap);
    await repo.storage.save('snapshot', snapName, snap);
    const idx = body(zeroBomb(1024 ** 3 + 4096));
    indexName = sha256(idx);
    await repo.storage.save('index', indexName, idx);
    return { content: [], sizes: [] };
  });
  try {
    await checkCase('json-bomb', b, [snapName], /snapshot .*more than the 67108864 bytes allowed/, []);
    await checkCase('json-bomb', b, [indexName], /index .*more than the 536870912 bytes allowed/, []);
  } finally {
    b.cleanup();
  }
});

test('a 1.5 GiB key file is refused by its size, not read', { timeout: 3 * 60_000 }, async () => {
  const b = await build(async () => ({ content: [], sizes: [] }));
  try {
    const name = '0'.repeat(64);
    const fh = await fsp.open(path.join(b.repoDir, 'keys', name), 'w');
    await fh.truncate(1.5 * 1024 ** 3); // sparse: costs no disk
    await fh.close();
    // A wrong password makes every key file be tried, whatever the listing order.
    const r = await runCliMeasured(['snapshots', '--repo', b.repoDir], { env: { LIFEBOAT_PASSWORD: 'not-the-password' }, killAfterMs: KILL_MS });
    report('key-file-1.5GiB', 'snapshots (wrong password)', r);
    assert.equal(r.killed, false);
    assert.ok(r.code === 12 || (r.code === 5 && r.stderr.includes(name)), `exit ${r.code}: ${r.stderr}`);
    assert.ok(r.peakRssMb < 1024 && r.ms < 30_000, `${r.ms} ms, ${r.peakRssMb} MiB`);
    const ok = await runCliMeasured(['snapshots', '--repo', b.repoDir], { env, killAfterMs: KILL_MS });
    report('key-file-1.5GiB', 'snapshots', ok);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(ok.peakRssMb < 1024, `${ok.peakRssMb} MiB`);
  } finally {
    b.cleanup();
  }
});

test('a decoding worker thread that dies fails only its jobs and is replaced (later jobs do not hang)', { timeout: 60_000 }, async () => {
  const pool = new WorkerPool(newMasterKey(), 3, 1);
  const within = <T>(p: Promise<T>, what: string) =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within 20 s`)), 20_000).unref())]);
  // Idle workers are unref'ed: when the decode finishes before terminate(), nothing else would keep
  // the event loop alive while the test awaits the worker's exit (the test, not the pool, would end early).
  const keepAlive = setInterval(() => {}, 1000);
  try {
    const data = randomBytes(100_000);
    const enc = await pool.encode(Buffer.from(data));
    const dead = (pool as unknown as { workers: Worker[] }).workers[0]!;
    const pending = pool.decode(Buffer.from(enc.sealed), enc.compression, data.length, 'blob x');
    await dead.terminate();
    await within(
      pending.then(
        () => {},
        (err: Error) => assert.match(err.message, /worker thread failed/),
      ),
      'job of the dead worker',
    );
    const r = await within(pool.decode(Buffer.from(enc.sealed), enc.compression, data.length, 'blob x'), 'job after the worker died');
    assert.deepEqual(r.data, data);
  } finally {
    clearInterval(keepAlive);
    await pool.close();
  }
});
