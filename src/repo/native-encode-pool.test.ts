import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { BlobCodec } from './codec.js';
import { blobId, open } from './crypto.js';
import { NativeEncodePool, encodeNative } from './native-encode-pool.js';
import { superFeaturesJs } from './sketch.js';

// The C encode (native/encode.c through NativeEncodePool) against the JavaScript it stands in for
// (codec.ts BlobCodec.encode in the encode worker): per blob the same compression kind and the
// same payload before sealing (the nonces are random either way), and the JS codec decodes it.
const addonFile = new URL('../../../native/build/Release/zdelta.node', import.meta.url).pathname;
const skip =
  process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addonFile) ? 'native/ did not build (no compiler): the encode worker is used' : false;

const encKey = randomBytes(32);
const idKey = randomBytes(32);

function pool(level: number): NativeEncodePool {
  const a = encodeNative();
  assert.ok(a, `${addonFile} exists but did not load`);
  return new NativeEncodePool(a, { encKey, idKey }, level, 2);
}

const text = (n: number, seed: number) => {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `line ${seed} ${i} ${(i * 7919) % 1000}\n`;
  return Buffer.from(s.slice(0, n));
};

/** `base` with a few edits (a new version of a chunk). */
function edited(base: Buffer, edits: number, seed: number): Buffer {
  const b = Buffer.from(base);
  for (let k = 0; k < edits; k++) {
    const at = (seed * 7919 + k * 104729) % Math.max(1, b.length - 64);
    randomBytes(48).copy(b, at);
  }
  return b;
}

/** Cases: [name, data, dict]. */
function cases(): Array<[string, Buffer, Buffer | undefined]> {
  const t1 = text(1 << 20, 1);
  const t4 = text(4 << 20, 2);
  const r1 = randomBytes(1 << 20);
  const mixed = Buffer.concat([text(96 * 1024, 3), randomBytes(64 * 1024), text(96 * 1024, 4)]);
  const big = Buffer.concat([text(1536 * 1024, 5), text(1536 * 1024, 6)]);
  const tiny: Array<[string, Buffer, Buffer | undefined]> = [];
  for (const n of [0, 1, 2, 15, 16, 17, 100, 4095, 4096, 65535, 65536, 65537]) {
    tiny.push([`text ${n}`, text(n, n), undefined]);
    tiny.push([`random ${n}`, randomBytes(n), undefined]);
    tiny.push([`text ${n} + base`, text(n, n), text(n + 10, n)]);
    tiny.push([`random ${n} + random base`, randomBytes(n), randomBytes(n)]);
  }
  return [
    ...tiny,
    ['text 1 MiB', t1, undefined],
    ['text 4 MiB', t4, undefined],
    ['random 1 MiB', r1, undefined],
    ['zeros 1 MiB', Buffer.alloc(1 << 20), undefined],
    ['mixed', mixed, undefined],
    ['random mostly, compressible middle', Buffer.concat([randomBytes(200_000), Buffer.alloc(8192), randomBytes(200_000)]), undefined],
    ['text 1 MiB, edited, its base', edited(t1, 5, 1), t1],
    ['text 1 MiB, heavily edited, its base', edited(t1, 4000, 2), t1],
    ['text 1 MiB, unrelated base', t1, text(1 << 20, 99)],
    ['random 1 MiB, edited, its base', edited(r1, 3, 3), r1],
    ['random 1 MiB, unrelated random base', randomBytes(1 << 20), randomBytes(1 << 20)],
    ['random 1 MiB, empty base', r1, Buffer.alloc(0)],
    ['text 4 MiB, edited, its base (tuned: base > 2 MiB)', edited(t4, 20, 4), t4],
    ['two bases (3 MiB)', edited(big.subarray(0, 1 << 20), 10, 5), big],
    ['base with the zstd dictionary magic', edited(t1, 5, 6), Buffer.concat([Buffer.from([0x37, 0xa4, 0x30, 0xec]), t1])],
    ['half new text, its base', Buffer.concat([t1.subarray(0, 1 << 19), text(1 << 19, 7)]), t1],
  ];
}

for (const level of [3, 1, 4, 9]) {
  test(`C encode equals codec.ts encode: level ${level}, text/random/empty/tiny/4 MiB, with and without bases`, { skip }, async () => {
    const p = pool(level);
    const js = new BlobCodec(encKey, level);
    const kinds = new Set<number>();
    for (const [name, data, dict] of cases()) {
      // (a base starting with zstd's dictionary magic: on the tuned path zstd reads it as a formatted
      // dictionary and refuses it; both encoders then compress the blob plainly, neither fails)
      const want = js.encode(data, dict);
      if (dict && dict.length >= 4 && dict.readUInt32LE(0) === 0xec30a437 && (level > 4 || dict.length > 2 << 20)) assert.notEqual(want.compression, 2, `${name}: no delta`);
      const got = await p.encode(data, dict);
      assert.equal(got.compression, want.compression, `${name}: compression`);
      assert.deepEqual(open(encKey, got.sealed, name), open(encKey, want.sealed, name), `${name}: payload`);
      assert.equal(got.sealed.length, want.sealed.length, `${name}: sealed length`);
      assert.notDeepEqual(got.sealed.subarray(0, 12), want.sealed.subarray(0, 12), `${name}: a nonce of its own`);
      assert.deepEqual(js.decode(got.sealed, got.compression, data.length, name, dict), data, `${name}: decodes`);
      kinds.add(got.compression);
    }
    assert.deepEqual([...kinds].sort(), [0, 1, 2], 'every compression kind was exercised');
  });
}

test('C encodeBatch: ids, sketches only for compressible blobs, in order; LIFEBOAT_NO_ZDELTA=1 as the JS', { skip }, async () => {
  const p = pool(3);
  const js = new BlobCodec(encKey, 3);
  const items = [text(70_000, 1), randomBytes(70_000), Buffer.alloc(0), text(10, 2), text(200_000, 3)];
  const r = await p.encodeBatch(
    items.map((data) => ({ data, sketch: true })),
    true,
  );
  assert.equal(r.length, items.length);
  r.forEach((x, i) => {
    assert.ok(!(x instanceof Error));
    const data = items[i]!;
    const want = js.encode(data);
    assert.equal(x.compression, want.compression);
    assert.deepEqual(open(encKey, x.sealed, 'b'), open(encKey, want.sealed, 'b'));
    assert.equal(x.id, blobId(idKey, data));
    assert.deepEqual(x.sf, data.length >= 64 * 1024 && x.compression !== 0 ? superFeaturesJs(data) : undefined);
  });
  // the C delta off: zstd's match finder alone, as codec.ts without the zdelta addon
  const t = text(1 << 20, 8);
  const d = edited(t, 5, 8);
  const old = process.env.LIFEBOAT_NO_ZDELTA;
  process.env.LIFEBOAT_NO_ZDELTA = '1';
  try {
    const want = js.encode(d, t);
    const got = await p.encode(d, t);
    assert.equal(got.compression, 2);
    assert.deepEqual(open(encKey, got.sealed, 'nz'), open(encKey, want.sealed, 'nz'));
  } finally {
    if (old === undefined) delete process.env.LIFEBOAT_NO_ZDELTA;
    else process.env.LIFEBOAT_NO_ZDELTA = old;
  }
});

test('C encode: hostile or invalid arguments are refused with a TypeError, never a crash', { skip }, async () => {
  const a = encodeNative()!;
  const k32 = randomBytes(32);
  const cb = () => {};
  for (const args of [[], [k32], [k32, k32], [k32, k32, 0], [k32, k32, 20], [k32, k32, 1.5], [k32.subarray(1), k32, 3], [k32, 'x', 3], [k32, k32, '3'], [new Float64Array(4), k32, 3]]) {
    assert.throws(() => (a.encOpen as (...x: unknown[]) => unknown)(...args), TypeError, JSON.stringify(args.map(String)));
  }
  const ctx = a.encOpen(k32, k32, 3);
  const d = Buffer.from('abc');
  const bad: unknown[][] = [
    [],
    [ctx],
    [{}, [d], [undefined], new Uint8Array(1), cb],
    [k32, [d], [undefined], new Uint8Array(1), cb],
    [ctx, d, [undefined], new Uint8Array(1), cb],
    [ctx, [d], [undefined, undefined], new Uint8Array(1), cb],
    [ctx, [d], [undefined], new Uint8Array(2), cb],
    [ctx, [d], [undefined], new Uint8Array(1), 'cb'],
    [ctx, ['abc'], [undefined], new Uint8Array(1), cb],
    [ctx, [123], [undefined], new Uint8Array(1), cb],
    [ctx, [new Float64Array(2)], [undefined], new Uint8Array(1), cb],
    [ctx, [d], ['base'], new Uint8Array(1), cb],
    [ctx, [d], [{}], new Uint8Array(1), cb],
    [ctx, [d], [undefined], new Uint8Array([8]), cb],
    [ctx, [d], [undefined], new Float64Array(1), cb],
    [ctx, [d], [undefined], [0], cb],
  ];
  for (const args of bad) assert.throws(() => (a.encRun as (...x: unknown[]) => unknown)(...args), TypeError);
  // a sparse array (holes) and null dictionaries
  assert.throws(() => a.encRun(ctx, new Array(2) as Uint8Array[], [undefined, undefined], new Uint8Array(2), cb), TypeError);
  const r = await new Promise<unknown[]>((res) => a.encRun(ctx, [d, d], [null as unknown as undefined, undefined], new Uint8Array(2), res));
  assert.equal(r.length, 2);
  // nothing queued by the refused calls: an empty job still completes
  const e = await new Promise<unknown[]>((res) => a.encRun(ctx, [], [], new Uint8Array(0), res));
  assert.deepEqual(e, []);
});

test('C readFiles: read, id, encode and sketch per file as the worker does; errors, growth, empty files, a FIFO in the place of a file; hostile arguments refused', { skip, timeout: 30_000 }, async () => {
  const p = pool(3);
  const js = new BlobCodec(encKey, 3);
  const dir = mkdtempSync(path.join(tmpdir(), 'nencode-files-'));
  try {
    const f = (name: string, data: Buffer) => {
      writeFileSync(path.join(dir, name), data);
      return data;
    };
    const t100 = f('t100', text(100_000, 1));
    const r100 = f('r100', randomBytes(100_000));
    const small = f('small', text(300, 2));
    f('empty', Buffer.alloc(0));
    f('grown', text(5000, 3));
    symlinkSync(path.join(dir, 'small'), path.join(dir, 'link'));
    // a FIFO where the scan saw a regular file (replaced since): the open must not wait for a writer
    // (nobody writes: it would block a pool thread and the backup for good); the caller's path reads it again
    execFileSync('mkfifo', [path.join(dir, 'fifo')]);
    const names = ['t100', 'r100', 'small', 'empty', 'grown', 'link', 'missing', 'fifo'];
    const sizes = [100_000, 100_000, 300, 0, 4000, 300, 10, 10];
    const r = await p.readFiles(
      names.map((n) => Buffer.from(path.join(dir, n))),
      sizes,
      64 * 1024,
    );
    for (const [i, data] of [t100, r100, small].entries()) {
      const x = r[i]!;
      assert.ok(!(x instanceof Error) && x.kind === 'ok' && x.blob, names[i]);
      assert.equal(x.size, data.length);
      assert.equal(x.xattrs, false);
      const want = js.encode(data);
      assert.equal(x.blob.compression, want.compression);
      assert.deepEqual(open(encKey, x.blob.sealed, 'f'), open(encKey, want.sealed, 'f'));
      assert.equal(x.blob.id, blobId(idKey, data));
      assert.deepEqual(x.blob.sf, data.length >= 64 * 1024 && want.compression !== 0 ? superFeaturesJs(data) : undefined, `${names[i]}: sketch`);
    }
    assert.deepEqual(r[3], { kind: 'ok', size: 0, xattrs: false });
    assert.deepEqual(r[4], { kind: 'grew' });
    assert.deepEqual(r[5], { kind: 'error', errno: 40, syscall: 'open' }); // ELOOP: a symbolic link is never followed
    assert.deepEqual(r[6], { kind: 'error', errno: 2, syscall: 'open' }); // ENOENT
    assert.deepEqual(r[7], { kind: 'grew' }); // no regular file: read again (and reported) by the archiver's own path
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const a = encodeNative()!;
  const ctx = a.encOpen(encKey, idKey, 3);
  const cb = () => {};
  const P = Buffer.from('/nonexistent');
  const bad: unknown[][] = [
    [],
    [ctx, [P], new Float64Array([1]), new Uint8Array(1)],
    [{}, [P], new Float64Array([1]), new Uint8Array(1), cb],
    [ctx, P, new Float64Array([1]), new Uint8Array(1), cb],
    [ctx, ['/x'], new Float64Array([1]), new Uint8Array(1), cb],
    [ctx, [Buffer.alloc(0)], new Float64Array([1]), new Uint8Array(1), cb],
    [ctx, [Buffer.from('/a\0b')], new Float64Array([1]), new Uint8Array(1), cb],
    [ctx, [P], new Float64Array([-1]), new Uint8Array(1), cb],
    [ctx, [P], new Float64Array([1.5]), new Uint8Array(1), cb],
    [ctx, [P], new Float64Array([NaN]), new Uint8Array(1), cb],
    [ctx, [P], new Float64Array([2 ** 40]), new Uint8Array(1), cb],
    [ctx, [P], new Float64Array([1, 2]), new Uint8Array(1), cb],
    [ctx, [P], [1], new Uint8Array(1), cb],
    [ctx, [P], new Float64Array([1]), new Uint8Array([2]), cb],
    [ctx, [P], new Float64Array([1]), new Uint8Array([8]), cb],
    [ctx, [P], new Float64Array([1]), new Uint8Array(2), cb],
  ];
  for (const args of bad) assert.throws(() => (a.encFiles as (...x: unknown[]) => unknown)(...args), TypeError);
});

test('C encode: sealed outputs come from kept blocks once freed (no new mapping per blob), bounded, and never carry stale bytes', { skip }, async () => {
  const p = pool(3);
  const js = new BlobCodec(encKey, 3);
  const a = encodeNative()!;
  const [, , reused0, mapped0] = a.encStats();
  // sizes a backup's chunks have (incompressible: the sealed output is the whole plaintext), largest first so smaller
  // ones land in blocks that held more; then some in parallel
  const sizes = [1_500_000, 1_200_000, 900_000, 700_000, 520_000, 1_100_000, 800_000, 650_000];
  const check = async (data: Buffer) => {
    const r = await p.encode(data);
    assert.equal(r.compression, 0);
    assert.equal(r.sealed.length, data.length + 28, 'exactly nonce + body + tag: nothing of a block\'s earlier contents');
    assert.deepEqual(js.decode(r.sealed, r.compression, data.length, 'b'), data);
  };
  for (let round = 0; round < 3; round++) for (const n of sizes) await check(randomBytes(n));
  await Promise.all(sizes.map((n) => check(randomBytes(n))));
  // compressible ones (zstd output shorter than the block) as well
  for (let i = 0; i < 4; i++) {
    const data = text(1_000_000, 40 + i);
    const r = await p.encode(data);
    assert.equal(r.compression, 1);
    assert.deepEqual(js.decode(r.sealed, r.compression, data.length, 'c'), data);
  }
  const [kept, keptBytes, reused, mapped] = a.encStats();
  const n = sizes.length * 4 + 4;
  assert.ok(reused - reused0 >= n - 2 * sizes.length, `outputs in kept blocks: ${reused - reused0} of ${n} (${mapped - mapped0} new mappings)`);
  assert.ok(mapped - mapped0 <= 2 * sizes.length, `new mappings: ${mapped - mapped0}`);
  assert.ok(kept <= 8 && keptBytes <= 8 << 20, `kept ${kept} blocks, ${keptBytes} bytes`);
  assert.ok(kept >= 1, 'a freed block is kept');
});

test('C encode: an idle state keeps no zstd context sized for one large delta (the C delta asks for no stream buffers; the tuned delta frees its context)', { skip }, () => {
  // in a child process: the states are per process, and the tests above leave theirs behind
  const mod = new URL('./native-encode-pool.js', import.meta.url).href;
  const script = `
    import { randomBytes } from 'node:crypto';
    import { NativeEncodePool, encodeNative } from ${JSON.stringify(mod)};
    const a = encodeNative();
    const p = new NativeEncodePool(a, { encKey: randomBytes(32), idKey: randomBytes(32) }, 3, 1);
    let s = '';
    for (let i = 0; s.length < 4 << 20; i++) s += 'line ' + i + ' ' + ((i * 7919) % 100000) + '\\n';
    const base = Buffer.from(s.slice(0, 4 << 20));
    const data = Buffer.from(base);
    for (let k = 0; k < 40; k++) randomBytes(48).copy(data, (k * 104729 * 7) % (data.length - 64));
    const out = {};
    out.zdelta = (await p.encode(data, base)).compression;
    out.afterZdelta = a.encStats()[4];
    out.scratchAfterZdelta = a.encStats()[5];
    // 4 KiB inserted near the start: every match after it is off the diagonal and out of the near
    // probes' reach, so the C delta builds the base's hash table (2 MiB for a 4 MiB base)
    const shifted = Buffer.concat([data.subarray(0, 4096), randomBytes(4096), data.subarray(4096, data.length - 4096)]);
    out.buildsBefore = a.encStats()[7];
    out.shifted = (await p.encode(shifted, base)).compression;
    out.scratchAfterShifted = a.encStats()[5];
    out.buildsAfter = a.encStats()[7];
    out.peak = a.encStats()[6];
    process.env.LIFEBOAT_NO_ZDELTA = '1';
    out.tuned = (await p.encode(data, base)).compression;
    out.afterTuned = a.encStats()[4];
    await p.close();
    process.stdout.write(JSON.stringify(out));
  `;
  const r = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })) as Record<string, number>;
  assert.equal(r.zdelta, 2, 'stored as a delta by the C delta');
  assert.equal(r.tuned, 2, 'stored as a delta by the tuned zstd path (a 4 MiB base: over EN_FAST_DICT)');
  // a 4 MiB input: a stream's input window alone is 4 MiB + a block; the tuned delta's tables for a 4 MiB base ~5 MB
  assert.ok(r.afterZdelta! < 2 << 20, `zstd contexts held after the C delta of 4 MiB: ${r.afterZdelta} bytes`);
  assert.ok(r.afterTuned! < 2 << 20, `zstd contexts held after the tuned delta of 4 MiB: ${r.afterTuned} bytes`);
  // the C delta's own scratch (its check's 4 MiB output, its frame buffer, the base's 2 MiB hash table) given back
  // after a chunk over 2 MiB: a long stream's states met the largest chunks in time and each kept ~6 MB for good
  assert.equal(r.shifted, 2, 'the shifted chunk stored as a delta too');
  assert.ok(r.scratchAfterZdelta! <= 2 << 20, `C delta scratch held after a 4 MiB delta: ${r.scratchAfterZdelta} bytes`);
  assert.ok(r.scratchAfterShifted! <= 2 << 20, `C delta scratch held after a 4 MiB delta through the hash table: ${r.scratchAfterShifted} bytes`);
  // within the call: the base's 2 MiB hash table is freed once the matches are found, before the frame
  // (compressBound: ~4 MiB) and the check's 4 MiB output are allocated; held together they came to ~10 MiB
  assert.equal(r.buildsAfter! - r.buildsBefore!, 1, 'the shifted chunk built the base hash table');
  assert.ok(r.peak! < 9 << 20, `most C delta scratch a state held at once: ${r.peak} bytes`);
});
