import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import zstd from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import { decodeRange } from './chunk-decode.js';
import { type ChunkBlob, verifyChunk } from './chunk-verify.js';
import { decodeChain } from './chain.js';
import { BlobCodec } from './codec.js';
import { blobId, seal } from './crypto.js';
import { NativeReadPool, codecNative } from './native-read-pool.js';

// The C read path (native/codec.c through NativeReadPool) against the JavaScript it stands in for
// (codec.ts in the decode worker): per blob the same plaintext and id, or the same error.
const addonFile = new URL('../../../native/build/Release/codec.node', import.meta.url).pathname;
const skip =
  process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addonFile) ? 'native/ did not build (no compiler): the decode worker is used' : false;

const encKey = randomBytes(32);
const idKey = randomBytes(32);
const codec = new BlobCodec(encKey, 3);

function pool(): NativeReadPool {
  const a = codecNative();
  assert.ok(a, `${addonFile} exists but did not load`);
  return new NativeReadPool(a, { encKey, idKey }, 2);
}

const text = (n: number, seed: number) => {
  let s = '';
  for (let i = 0; s.length < n; i++) s += `line ${seed} ${i} ${(i * 7919) % 1000}\n`;
  return Buffer.from(s.slice(0, n));
};

/** A chain of three versions of `size` bytes (a full root and two deltas), as Repository.chainMsg gives it. */
function chainOf(size: number, seed: number) {
  const v0 = text(size, seed);
  const v1 = Buffer.concat([v0.subarray(0, size >> 1), Buffer.from(`edit ${seed}`), v0.subarray((size >> 1) + 9)]);
  const v2 = Buffer.concat([Buffer.from(`top ${seed}`), v1.subarray(8)]);
  const e = [codec.encode(v0), codec.encode(v1, v0), codec.encode(v2, v1)];
  assert.deepEqual(e.map((x) => x.compression), [1, 2, 2]);
  return { last: v2, msg: { sealed: e.map((x) => x.sealed), compression: e.map((x) => x.compression), rawLength: [v0.length, v1.length, v2.length], what: ['blob 0', 'blob 1', 'blob 2'] } };
}

/** A chain decoded on `p`: its last level and id checked. */
async function decodeChainOf(p: NativeReadPool, c: ReturnType<typeof chainOf>): Promise<void> {
  const r = await p.decodeChain({ ...c.msg, sealed: c.msg.sealed.map((x) => Buffer.from(x)) });
  assert.ok(r.data.equals(c.last));
  assert.equal(r.id, blobId(idKey, c.last));
}

/** `f` run with the decoder's idle time (after which idle buffers are given back) set to `ms`, then set back. */
async function withIdleMs<T>(ms: number, f: () => Promise<T>): Promise<T> {
  const addon = codecNative()!;
  const was = addon.stats()[6]!;
  addon.idleMs(ms);
  try {
    return await f();
  } finally {
    addon.idleMs(was);
  }
}

/** A zstd frame without its content size (as a stream writes it). */
function frameNoSize(data: Buffer): Buffer {
  const c = new binding.CCtx();
  c.setParameter(binding.CParameter.contentSizeFlag, 0);
  const out = Buffer.alloc(data.length + 1024);
  const [, , ] = [0, 0, 0];
  const [ret, produced] = c.compressStream2(out, data, binding.EndDirective.end);
  assert.equal(ret, 0);
  return out.subarray(0, produced);
}

interface Case {
  name: string;
  sealed: Buffer;
  compression: 0 | 1 | 2;
  rawLength: number;
  dict?: Buffer | Buffer[];
}

/** Good and hostile sealed blobs: every error codec.ts can give, and some it should never crash on. */
function cases(): Case[] {
  const a = text(200_000, 1);
  const r = randomBytes(7000);
  const z = zstd.compress(a);
  const base = text(150_000, 2);
  const changed = Buffer.concat([base.subarray(0, 70_000), Buffer.from('an edit'), base.subarray(70_000)]);
  const delta = codec.encode(changed, base);
  const two = codec.encode(changed, base); // (decoded with the base given in two parts: the same dictionary)
  assert.equal(delta.compression, 2);
  const tampered = Buffer.from(seal(encKey, z));
  tampered[40]! ^= 1;
  const noSize = frameNoSize(a);
  const skippable = Buffer.alloc(16);
  skippable.writeUInt32LE(0x184d2a50, 0);
  skippable.writeUInt32LE(8, 4);
  const out: Case[] = [
    { name: 'compressed', sealed: seal(encKey, z), compression: 1, rawLength: a.length },
    { name: 'stored', sealed: seal(encKey, r), compression: 0, rawLength: r.length },
    { name: 'delta', sealed: delta.sealed, compression: 2, rawLength: changed.length, dict: base },
    { name: 'delta, wrong base', sealed: delta.sealed, compression: 2, rawLength: changed.length, dict: text(150_000, 3) },
    { name: 'delta, short base', sealed: delta.sealed, compression: 2, rawLength: changed.length, dict: base.subarray(0, 1000) },
    { name: 'delta without base', sealed: delta.sealed, compression: 2, rawLength: changed.length },
    { name: 'tampered', sealed: tampered, compression: 1, rawLength: a.length },
    { name: 'other key', sealed: seal(randomBytes(32), z), compression: 1, rawLength: a.length },
    { name: 'too short', sealed: randomBytes(27), compression: 1, rawLength: 100 },
    { name: 'empty', sealed: Buffer.alloc(0), compression: 0, rawLength: 0 },
    { name: 'garbage payload', sealed: seal(encKey, randomBytes(5000)), compression: 1, rawLength: 5000 },
    { name: 'empty payload', sealed: seal(encKey, Buffer.alloc(0)), compression: 1, rawLength: 10 },
    { name: 'empty stored', sealed: seal(encKey, Buffer.alloc(0)), compression: 0, rawLength: 0 },
    { name: 'declares more', sealed: seal(encKey, z), compression: 1, rawLength: a.length - 1 },
    { name: 'index says more', sealed: seal(encKey, z), compression: 1, rawLength: a.length + 1 },
    { name: 'no size, more than raw', sealed: seal(encKey, noSize), compression: 1, rawLength: 100_000 },
    { name: 'no size, fits', sealed: seal(encKey, noSize), compression: 1, rawLength: a.length },
    { name: 'no size, less than raw', sealed: seal(encKey, noSize), compression: 1, rawLength: a.length + 5 },
    { name: 'truncated frame', sealed: seal(encKey, z.subarray(0, z.length >> 1)), compression: 1, rawLength: a.length },
    { name: 'truncated frame, no size', sealed: seal(encKey, noSize.subarray(0, noSize.length - 3)), compression: 1, rawLength: a.length },
    { name: 'two frames', sealed: seal(encKey, Buffer.concat([z, zstd.compress(r)])), compression: 1, rawLength: a.length + r.length },
    { name: 'frame and garbage', sealed: seal(encKey, Buffer.concat([z, randomBytes(50)])), compression: 1, rawLength: a.length },
    { name: 'frame and zeros', sealed: seal(encKey, Buffer.concat([z, Buffer.alloc(9)])), compression: 1, rawLength: a.length },
    { name: 'skippable frame', sealed: seal(encKey, skippable), compression: 1, rawLength: 0 },
    { name: 'skippable then frame', sealed: seal(encKey, Buffer.concat([skippable, z])), compression: 1, rawLength: a.length },
    { name: 'stored, wrong length', sealed: seal(encKey, r), compression: 0, rawLength: r.length + 1 },
    { name: 'empty frame', sealed: seal(encKey, zstd.compress(Buffer.alloc(0))), compression: 1, rawLength: 0 },
    { name: 'delta as plain', sealed: delta.sealed, compression: 1, rawLength: changed.length },
    { name: 'plain as delta', sealed: seal(encKey, z), compression: 2, rawLength: a.length, dict: base },
    { name: 'delta on two bases', sealed: two.sealed, compression: 2, rawLength: changed.length, dict: [base.subarray(0, 60_000), base.subarray(60_000)] },
    { name: 'delta on two bases, swapped', sealed: two.sealed, compression: 2, rawLength: changed.length, dict: [base.subarray(60_000), base.subarray(0, 60_000)] },
    { name: 'delta on no base', sealed: delta.sealed, compression: 2, rawLength: changed.length, dict: [] },
  ];
  // payloads of several 64 KiB pieces (decodeId deciphers and decompresses piece by piece)
  const big = Buffer.concat([randomBytes(250_000), text(250_000, 5)]);
  const zb = zstd.compress(big);
  const nb = frameNoSize(big);
  assert.ok(zb.length > 3 * 65536);
  out.push(
    { name: 'large', sealed: seal(encKey, zb), compression: 1, rawLength: big.length },
    { name: 'large, truncated', sealed: seal(encKey, zb.subarray(0, 200_000)), compression: 1, rawLength: big.length },
    { name: 'large, no size, more than raw', sealed: seal(encKey, nb), compression: 1, rawLength: 270_000 },
    { name: 'large, no size, truncated', sealed: seal(encKey, nb.subarray(0, nb.length - 1)), compression: 1, rawLength: big.length },
    { name: 'large, then garbage', sealed: seal(encKey, Buffer.concat([zb, randomBytes(70_000)])), compression: 1, rawLength: big.length },
    { name: 'large, stored', sealed: seal(encKey, big), compression: 0, rawLength: big.length },
  );
  const tb = Buffer.from(seal(encKey, zb));
  tb[tb.length - 1]! ^= 1;
  out.push({ name: 'large, tag tampered', sealed: tb, compression: 1, rawLength: big.length });
  // garbage of every size around the seal's overhead
  for (const n of [28, 29, 40, 300]) out.push({ name: `random ${n}`, sealed: randomBytes(n), compression: 1, rawLength: 1000 });
  return out;
}

/** The JS path's outcome of a call: a value, or the error's name and message. */
function outcome<T>(f: () => T): T | { error: { name: string; message: string } } {
  try {
    return f();
  } catch (err) {
    const e = err as Error;
    return { error: { name: e.name, message: e.message } };
  }
}
async function outcomeAsync<T>(f: () => Promise<T>): Promise<T | { error: { name: string; message: string } }> {
  try {
    return await f();
  } catch (err) {
    const e = err as Error;
    return { error: { name: e.name, message: e.message } };
  }
}

function range(list: Case[]) {
  const parts: Buffer[] = [];
  let off = 0;
  const blobs = list.map((c) => {
    parts.push(c.sealed);
    const b = { offset: off, length: c.sealed.length, compression: c.compression, rawLength: c.rawLength, what: `blob ${c.name}` };
    off += c.sealed.length;
    return b;
  });
  return { chunk: Buffer.concat(parts), blobs };
}

test('native read pool: decodeRange gives every blob the plaintext, id or error the JavaScript gives', { skip }, async () => {
  const p = pool();
  const list = cases().filter((c) => !c.dict);
  const { chunk, blobs } = range(list);
  // and ranges outside the chunk
  blobs.push({ offset: chunk.length - 10, length: 11, compression: 1, rawLength: 5, what: 'blob outside' });
  blobs.push({ offset: -1, length: 5, compression: 1, rawLength: 5, what: 'blob before' });
  const js = decodeRange(codec, idKey, chunk, blobs);
  const c = await p.decodeRange(chunk, blobs);
  assert.equal(c.results.length, js.results.length);
  let ok = 0;
  c.results.forEach((r, i) => {
    // (where a plaintext lies in the slab may differ: the JavaScript packs the good ones only)
    const j = js.results[i]!;
    if ('id' in r && 'id' in j) {
      ok++;
      assert.equal(r.id, j.id, blobs[i]!.what);
      assert.ok(Buffer.from(c.slab, r.at, blobs[i]!.rawLength).equals(Buffer.from(js.slab, j.at, blobs[i]!.rawLength)), blobs[i]!.what);
    } else assert.deepEqual(r, j, blobs[i]!.what);
  });
  assert.ok(ok >= 6, `${ok} blobs decoded`);
  assert.ok(c.results.filter((r) => 'error' in r).length >= 15);
  // a given slab is the memory decoded into
  const slab = new ArrayBuffer(1 << 20);
  const again = await p.decodeRange(chunk, blobs.slice(0, 2), slab);
  assert.equal(again.slab, slab);
  await p.close();
});

test('native read pool: verifyChunk (with bases as a dictionary or as chains) gives the results the JavaScript gives', { skip }, async () => {
  const p = pool();
  const list = cases();
  const { chunk, blobs } = range(list);
  const jobs: ChunkBlob[] = blobs.map((b, i) => ({ ...b, ...(list[i]!.dict ? { dict: list[i]!.dict } : {}) }));
  // a delta whose base comes as a chain of two deltas on a root: root -> d1 -> d2 (the base) -> blob
  const root = text(120_000, 7);
  const v1 = Buffer.concat([root.subarray(0, 50_000), Buffer.from('one'), root.subarray(50_000)]);
  const v2 = Buffer.concat([v1.subarray(0, 90_000), Buffer.from('two'), v1.subarray(90_000)]);
  const v3 = Buffer.concat([v2.subarray(0, 10_000), Buffer.from('three'), v2.subarray(10_000)]);
  const e0 = codec.encode(root);
  const e1 = codec.encode(v1, root);
  const e2 = codec.encode(v2, v1);
  const e3 = codec.encode(v3, v2);
  const chain = { sealed: [e0.sealed, e1.sealed, e2.sealed], compression: [e0.compression, e1.compression, e2.compression], rawLength: [root.length, v1.length, v2.length], what: ['blob r', 'blob v1', 'blob v2'], noHash: true };
  // (other names: a base the dictionary already holds under its name is not decoded again, chunk-verify.ts)
  const broken = { ...chain, sealed: [e0.sealed, Buffer.from(e1.sealed).fill(7, 30, 40), e2.sealed], what: ['blob r2', 'blob v1 (broken)', 'blob v2 (on broken)'] };
  const shortBase = { ...chain, rawLength: [root.length, v1.length + 1, v2.length], what: ['blob r3', 'blob v1 (long)', 'blob v2 (on long)'] };
  const extra = Buffer.concat([chunk, e3.sealed]);
  const at = chunk.length;
  const d3 = { offset: at, length: e3.sealed.length, compression: e3.compression, rawLength: v3.length };
  jobs.push({ ...d3, what: 'blob v3', chains: [chain] });
  jobs.push({ ...d3, what: 'blob v3, broken base chain', chains: [broken] });
  jobs.push({ ...d3, what: 'blob v3, a level longer than declared', chains: [shortBase] });
  jobs.push({ ...d3, what: 'blob v3, two bases', chains: [chain, { ...chain, sealed: [e0.sealed], compression: [e0.compression], rawLength: [root.length], what: ['blob r'] }] });
  jobs.push({ ...d3, what: 'blob outside', offset: extra.length - 3 });
  const js = verifyChunk(codec, idKey, extra, jobs);
  const c = await p.verifyChunk(extra, jobs);
  assert.equal(c.results.length, jobs.length);
  c.results.forEach((r, i) => assert.deepEqual(r, js[i], jobs[i]!.what));
  assert.deepEqual(c.results[jobs.length - 5], { id: blobId(idKey, v3) });
  assert.match((c.results[jobs.length - 4] as { error: { message: string } }).error.message, /blob v1 \(broken\): authentication failed/);
  await p.close();
});

test('native read pool: verifyChunk proves the levels of a base chain asked for (ChainMsg.prove) whose hash is their id, and no other', { skip }, async () => {
  const p = pool();
  const root = text(120_000, 8);
  const v1 = Buffer.concat([root.subarray(0, 40_000), Buffer.from('one'), root.subarray(40_000)]);
  const v2 = Buffer.concat([v1.subarray(0, 80_000), Buffer.from('two'), v1.subarray(80_000)]);
  const v3 = Buffer.concat([v2.subarray(0, 20_000), Buffer.from('three'), v2.subarray(20_000)]);
  const [e0, e1, e2, e3] = [codec.encode(root), codec.encode(v1, root), codec.encode(v2, v1), codec.encode(v3, v2)];
  const ids = [root, v1, v2].map((b) => blobId(idKey, b));
  const chain = {
    sealed: [e0.sealed, e1.sealed, e2.sealed],
    compression: [e0.compression, e1.compression, e2.compression],
    rawLength: [root.length, v1.length, v2.length],
    what: ['blob r', 'blob v1', 'blob v2'],
    noHash: true,
    ids,
  };
  // (the sealed levels copied for each job: the pool frees those that own their memory once decoded, as the caller reads them anew)
  const job = (c: typeof chain & { prove?: boolean[] }, what = 'blob v3'): ChunkBlob => ({
    offset: 0,
    length: e3.sealed.length,
    compression: e3.compression,
    rawLength: v3.length,
    what,
    chains: [{ ...c, sealed: c.sealed.map((x) => Buffer.from(x)) }],
  });
  // every level asked: all three proven, the blob itself verified as before
  const all = await p.verifyChunk(e3.sealed, [job({ ...chain, prove: [true, true, true] })]);
  assert.deepEqual(all.results, [{ id: blobId(idKey, v3) }]);
  assert.deepEqual(all.proven?.slice().sort(), ids.slice().sort());
  // only the levels asked for; none when none are asked for (the restore and the JS path)
  assert.deepEqual((await p.verifyChunk(e3.sealed, [job({ ...chain, prove: [false, true, false] })])).proven, [ids[1]]);
  assert.equal((await p.verifyChunk(e3.sealed, [job(chain)])).proven, undefined);
  // a level whose hash is not the id it is said to be is not proven (the rest are)
  const wrong = { ...chain, ids: [ids[0]!, blobId(idKey, Buffer.from('other')), ids[2]!], prove: [true, true, true] };
  assert.deepEqual((await p.verifyChunk(e3.sealed, [job(wrong)])).proven?.slice().sort(), [ids[0]!, ids[2]!].sort());
  // a damaged level: it and the levels above it (skipped) are not proven, the root is
  const broken = { ...chain, sealed: [e0.sealed, Buffer.from(e1.sealed).fill(7, 30, 40), e2.sealed], what: ['blob r', 'blob v1 (broken)', 'blob v2'], prove: [true, true, true] };
  const b = await p.verifyChunk(e3.sealed, [job(broken)]);
  assert.match((b.results[0] as { error: { message: string } }).error.message, /blob v1 \(broken\): authentication failed/);
  assert.deepEqual(b.proven, [ids[0]]);
  await p.close();
});

test('native read pool: decode and decodeChain give the plaintext, id or error the JavaScript gives', { skip }, async () => {
  const p = pool();
  for (const c of cases()) {
    const js = outcome(() => {
      // (as the decode worker joins the bases: read-ops.ts)
      const dict = Array.isArray(c.dict) ? (c.dict.length === 1 ? c.dict[0] : Buffer.concat(c.dict)) : c.dict;
      const data = codec.decode(c.sealed, c.compression, c.rawLength, `blob ${c.name}`, dict);
      return { data, id: blobId(idKey, data) };
    });
    // (copies: the pool frees a sealed input that owns its memory once decoded, as WorkerPool transferred it)
    const n = await outcomeAsync(() => p.decode(Buffer.from(c.sealed), c.compression, c.rawLength, `blob ${c.name}`, c.dict));
    assert.deepEqual(n, js, c.name);
    // as the last level of a chain on a good root (decodeTo), and as the root
    const root = text(150_000, 2);
    const e0 = codec.encode(root);
    const msgs = [
      { sealed: [e0.sealed, c.sealed], compression: [e0.compression, c.compression], rawLength: [root.length, c.rawLength], what: ['blob root', `blob ${c.name}`] },
      { sealed: [c.sealed], compression: [c.compression], rawLength: [c.rawLength], what: [`blob ${c.name}`] },
    ];
    for (const m of msgs) {
      const jc = outcome(() => {
        const r = decodeChain(codec, idKey, m);
        return { data: Buffer.from(r.data), id: r.id };
      });
      const nc = await outcomeAsync(() => p.decodeChain({ ...m, sealed: m.sealed.map((x) => Buffer.from(x)) }));
      assert.deepEqual(nc, jc, `${c.name} (chain of ${m.sealed.length})`);
    }
  }
  // a sealed input that owns its memory is freed once decoded (detached, as a transfer leaves it); a view of a larger buffer is not
  const a = text(100_000, 9);
  const e = codec.encode(a);
  const owned = Buffer.alloc(e.sealed.length);
  e.sealed.copy(owned);
  const r = await p.decode(owned, e.compression, a.length, 'blob owned');
  assert.ok(r.data.equals(a));
  assert.equal(owned.length, 0, 'the sealed input was freed');
  // a base for the read cache comes back in a SharedArrayBuffer (as from the decode worker), unhashed if asked
  const sh = await p.decode(Buffer.from(e.sealed), e.compression, a.length, 'blob shared', undefined, { shared: true, hash: false });
  assert.ok(sh.data.equals(a));
  assert.ok(sh.data.buffer instanceof SharedArrayBuffer);
  assert.equal(sh.id, undefined);
  const big = Buffer.concat([e.sealed, Buffer.alloc(10)]);
  const view = big.subarray(0, e.sealed.length);
  assert.ok((await p.decode(view, e.compression, a.length, 'blob in a view')).data.equals(a));
  assert.equal(view.length, e.sealed.length);
  await p.close();
});

test('restore and check --read-data give the same results with the C codec and with the decode worker (LIFEBOAT_NATIVE_READ=0)', { skip }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-ncodec-'));
  try {
    const cli = new URL('../cli/main.js', import.meta.url).pathname;
    const src = path.join(dir, 'src');
    mkdirSync(path.join(src, 'sub'), { recursive: true });
    writeFileSync(path.join(src, 'text.txt'), text(3_000_000, 1));
    writeFileSync(path.join(src, 'random.bin'), randomBytes(2_500_000));
    for (let i = 0; i < 40; i++) writeFileSync(path.join(src, 'sub', `f${i}`), text(1000 + i * 900, i));
    const repo = path.join(dir, 'repo');
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw' };
    const run = (args: string[], extra: NodeJS.ProcessEnv = {}) => {
      try {
        return { code: 0, out: execFileSync(process.execPath, [cli, ...args], { env: { ...env, ...extra }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
      } catch (err) {
        const e = err as { status: number; stdout: string; stderr: string };
        return { code: e.status, out: e.stdout + e.stderr };
      }
    };
    run(['init', '-q', '-r', repo]);
    // a second version of the text file: delta blobs on the first
    run(['backup', '-q', '-r', repo, src]);
    writeFileSync(path.join(src, 'text.txt'), Buffer.concat([text(1_500_000, 1), Buffer.from('changed'), text(3_000_000, 1).subarray(1_500_000)]));
    run(['backup', '-q', '-r', repo, src]);
    const files = (root: string): Map<string, string> => {
      const m = new Map<string, string>();
      const walk = (d: string) => {
        for (const n of readdirSync(d)) {
          const p = path.join(d, n);
          if (statSync(p).isDirectory()) walk(p);
          else m.set(path.relative(root, p), readFileSync(p).toString('base64'));
        }
      };
      walk(root);
      return m;
    };
    const restored = (mode: string) => {
      const out = path.join(dir, `out-${mode}`);
      const r = run(['restore', 'latest', '-q', '-r', repo, '--target', out], { LIFEBOAT_NATIVE_READ: mode });
      assert.equal(r.code, 0, r.out);
      return files(path.join(out, src));
    };
    const want = files(src);
    assert.deepEqual(restored('1'), want);
    assert.deepEqual(restored('0'), want);
    const check = (mode: string) => run(['check', '--read-data', '-r', repo], { LIFEBOAT_NATIVE_READ: mode });
    const good = check('1');
    assert.equal(good.code, 0, good.out);
    assert.deepEqual(good, check('0'));
    // a damaged pack: the same findings both ways
    const packs: string[] = [];
    const walk = (d: string) => {
      for (const n of readdirSync(d)) {
        const p = path.join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (statSync(p).size > 1_000_000) packs.push(p);
      }
    };
    walk(path.join(repo, 'data'));
    assert.ok(packs.length > 0);
    const b = readFileSync(packs[0]!);
    b[1000]! ^= 0x55;
    writeFileSync(packs[0]!, b);
    const bad = check('1');
    assert.notEqual(bad.code, 0, bad.out);
    assert.match(bad.out, /damaged/);
    assert.deepEqual(bad, check('0'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('native/codec.c: steps with random indexes, offsets, lengths and kinds never read or write outside their buffers; each answers a code', { skip }, async () => {
  const addon = codecNative()!;
  const ctx = addon.open(encKey, idKey);
  const a = text(50_000, 4);
  const e = codec.encode(a);
  const bufs = [Buffer.from(e.sealed), Buffer.alloc(60_000), randomBytes(100), new ArrayBuffer(70_000), Buffer.alloc(0)];
  const pick = (xs: number[]) => xs[Math.floor(Math.random() * xs.length)]!;
  const num = () => pick([-5, -4, -3, -2, -1, 0, 1, 5, 27, 28, 99, 100, e.sealed.length, a.length, 60_000, 70_000, 2 ** 31, 2 ** 53, -0.5, 1.5, NaN, Infinity]);
  for (let round = 0; round < 300; round++) {
    const n = 1 + Math.floor(Math.random() * 6);
    const steps = new Float64Array(n * 12);
    for (let k = 0; k < steps.length; k++) steps[k] = num();
    for (let i = 0; i < n; i++) {
      steps[i * 12 + 3] = pick([-3, -2, -1, 0, 1, 2, 3, 0.5]);
      steps[i * 12 + 10] = pick([0, 1, 2, 3, 4, 7, 8, -1]);
      steps[i * 12 + 11] = pick([-1, 0, 1]);
    }
    const status = new Float64Array(n * 2).fill(-1);
    const ids = Buffer.alloc(n * 32);
    await new Promise<void>((resolve) => addon.run(ctx, bufs, steps, status, ids, () => resolve()));
    for (let i = 0; i < n; i++) assert.ok(Number.isInteger(status[2 * i]) && status[2 * i]! >= 0 && status[2 * i]! <= 9, `step ${i}: ${status[2 * i]}`);
  }
  // a well-formed step still decodes
  const status = new Float64Array(2);
  const ids = Buffer.alloc(32);
  const out = Buffer.alloc(a.length);
  const steps = Float64Array.from([0, 0, e.sealed.length, e.compression, a.length, 1, 0, -1, 0, 0, 1, -1]);
  await new Promise<void>((resolve) => addon.run(ctx, [Buffer.from(e.sealed), out], steps, status, ids, () => resolve()));
  assert.equal(status[0], 0);
  assert.ok(out.equals(a));
  assert.equal(ids.toString('hex'), blobId(idKey, a));
  // a source range past its buffer's end, a destination past its end, a dictionary past its end, a buffer index past the list
  const bad = [
    [0, 1, e.sealed.length, e.compression, a.length, 1, 0, -1, 0, 0, 1, -1],
    [0, 0, e.sealed.length, e.compression, a.length, 1, 1, -1, 0, 0, 1, -1],
    [0, 0, e.sealed.length, 2, a.length, 1, 0, 1, 10, a.length, 1, -1],
    [2, 0, e.sealed.length, e.compression, a.length, 1, 0, -1, 0, 0, 1, -1],
  ];
  const codes = new Float64Array(bad.length * 2);
  await new Promise<void>((resolve) => addon.run(ctx, [Buffer.from(e.sealed), out], Float64Array.from(bad.flat()), codes, Buffer.alloc(32 * bad.length), () => resolve()));
  assert.deepEqual([codes[0], codes[2], codes[4], codes[6]], [1, 9, 1, 1], 'out of range: S_RANGE (1) or S_OUTLEN (9)');
  // arguments of the wrong shape are refused
  assert.throws(() => addon.run(ctx, bufs, new Float64Array(5), new Float64Array(2), Buffer.alloc(32), () => {}), TypeError);
  assert.throws(() => addon.run(ctx, bufs, new Float64Array(12), new Float64Array(1), Buffer.alloc(32), () => {}), TypeError);
  assert.throws(() => addon.run({}, bufs, new Float64Array(12), new Float64Array(2), Buffer.alloc(32), () => {}), TypeError);
});

test('native/codec.c: jobs take their buffers from a few decoder states, a larger joined dictionary from the spares (not mapped again per job); a job starts with them empty', { skip }, () =>
  // (counts of buffers mapped: no idle buffers given back because the machine paused between two jobs)
  withIdleMs(3_600_000, async () => {
    const addon = codecNative()!;
    const [, , keep, spare] = Array.from(addon.stats()) as [number, number, number, number];
    /** A two-base delta whose joined dictionary is `size` bytes. */
    const twoBase = (size: number, seed: number) => {
      const half = Math.floor(size / 2);
      const b1 = text(half, seed);
      const b2 = text(half, seed + 1);
      const joined = Buffer.concat([b1, b2]);
      const changed = Buffer.concat([joined.subarray(0, 1000), Buffer.from('an edit'), joined.subarray(half - 200_000, half + 200_000)]);
      const d = codec.encode(changed, joined);
      assert.equal(d.compression, 2);
      return { b1, b2, joined, changed, sealed: d.sealed };
    };
    const p = pool(); // 2 jobs at once
    const decodeOf = (t: ReturnType<typeof twoBase>) => async () => {
      const r = await p.decode(Buffer.from(t.sealed), 2, t.changed.length, 'blob joined', [t.b1, t.b2]);
      assert.ok(r.data.equals(t.changed));
    };
    // most of KEEP: each state keeps it
    const small = decodeOf(twoBase(Math.floor(keep * 0.9), 11));
    await Promise.all([small(), small()]);
    const [made0, maps0] = addon.stats();
    for (let round = 0; round < 6; round++) await Promise.all([small(), small(), small(), small()]);
    const [made1, maps1] = addon.stats();
    // 24 jobs, at most 2 at once: at most one more state, and no buffer mapped per job
    assert.ok(made1! - made0! <= 1, `states made: ${made1! - made0!}`);
    assert.ok(maps1! - maps0! <= 4, `buffers mapped for 24 jobs: ${maps1! - maps0!}`);
    // over KEEP but under SPARE: given back after each job and taken by the next
    assert.ok(spare > keep, 'SPARE over KEEP');
    const large = decodeOf(twoBase(Math.floor((keep + spare) / 2), 21));
    await large();
    const [, maps2] = addon.stats();
    for (let round = 0; round < 8; round++) await large();
    const [, maps3] = addon.stats();
    assert.ok(maps3! - maps2! <= 1, `buffers mapped for 8 jobs with a dictionary over KEEP: ${maps3! - maps2!}`);
    await p.close();
    // a job naming the joined dictionary (-3) without joining it first finds it empty: nothing of an earlier job's
    const t = twoBase(200_000, 31);
    const ctx = addon.open(encKey, idKey);
    const out = Buffer.alloc(t.changed.length);
    const steps = Float64Array.from([
      ...[0, 0, t.b1.length, -2, t.joined.length, -1, 0, -1, 0, 0, 0, 0],
      ...[1, 0, t.b2.length, -2, 0, -1, t.b1.length, -1, 0, 0, 0, 0],
      ...[2, 0, t.sealed.length, 2, t.changed.length, 3, 0, -3, 0, t.joined.length, 0, 0],
    ]);
    const st = new Float64Array(6);
    await new Promise<void>((resolve) => addon.run(ctx, [t.b1, t.b2, Buffer.from(t.sealed), out], steps, st, Buffer.alloc(3 * 32), () => resolve()));
    assert.deepEqual(Array.from(st).filter((_, k) => k % 2 === 0), [0, 0, 0]);
    assert.ok(out.equals(t.changed));
    const st2 = new Float64Array(2);
    const lone = Float64Array.from([0, 0, t.sealed.length, 2, t.changed.length, 1, 0, -3, 0, t.joined.length, 0, -1]);
    await new Promise<void>((resolve) => addon.run(ctx, [Buffer.from(t.sealed), out], lone, st2, Buffer.alloc(32), () => resolve()));
    assert.equal(st2[0], 1, 'the joined dictionary of an earlier job: S_RANGE');
  }));

test('native/codec.c: a chain whose levels are over KEEP sets the state’s own level buffers aside, not free: the small chains after it map none', { skip }, () =>
  // (counts of buffers mapped: no idle buffers given back because the machine paused between two jobs)
  withIdleMs(3_600_000, async () => {
    const addon = codecNative()!;
    const [, , keep] = Array.from(addon.stats()) as [number, number, number, number];
    const small = chainOf(Math.floor(keep * 0.7), 41); // the levels fit the state's own buffers
    const large = chainOf(Math.floor(keep * 1.4), 42); // they do not: two buffers over KEEP
    const p = pool();
    const run = (c: typeof small) => decodeChainOf(p, c);
    // one after the other: one state (the last one given back is taken first)
    await run(small);
    await run(large);
    await run(small);
    const [, maps0] = addon.stats();
    for (let round = 0; round < 6; round++) {
      await run(large);
      await run(small);
      await run(small);
    }
    const [, maps1] = addon.stats();
    // At most one per round: a large chain's second buffer over KEEP when the spares are taken (earlier tests
    // in this process leave larger ones there). Freed after each large chain, the state's own buffers were
    // mapped again by the small chain after it, two more per round: 18.
    assert.ok(maps1! - maps0! <= 6, `buffers mapped for 6 rounds of a large chain and two small ones: ${maps1! - maps0!}`);
    await p.close();
  }));

test('native/codec.c: an idle decoder state\'s buffers and the spares are given back once unused for the idle time (a second state made for two jobs at once does not keep its chain levels for the rest of the command); the next jobs decode as before', { skip }, async () => {
  const addon = codecNative()!;
  const [, , keep] = Array.from(addon.stats()) as [number, number, number, number];
  const chains = [51, 52, 53, 54].map((seed) => chainOf(Math.floor(keep * 0.7), seed));
  const large = chainOf(Math.floor(keep * 1.4), 55); // levels over KEEP: given to the spares after the job
  const tiny = chainOf(100_000, 56);
  const p = pool(); // 2 jobs at once
  /** Bytes given back so far: idle states' buffers, spares. */
  const aged = () => [addon.stats()[4]!, addon.stats()[5]!];
  /** The bytes given back by a job run once the others have been idle for 60 ms: [states', spares']. */
  const after = async (): Promise<number[]> => {
    const before = aged();
    await new Promise((r) => setTimeout(r, 60));
    await decodeChainOf(p, tiny);
    return aged().map((x, k) => x - before[k]!);
  };
  /** Jobs 2 at a time until two idle decoder states hold chain levels (the pool's threads may take them one after the other). */
  const twoHold = async () => {
    for (let round = 0; round < 100 && addon.stats()[7]! < 2; round++) await Promise.all(chains.map((c) => decodeChainOf(p, c)));
    assert.ok(addon.stats()[7]! >= 2, 'two idle decoder states hold buffers');
  };
  try {
    // a long idle time: nothing given back
    await withIdleMs(3_600_000, async () => {
      await decodeChainOf(p, large);
      assert.deepEqual(await after(), [0, 0], 'the spares are kept');
      await twoHold();
      assert.deepEqual(await after(), [0, 0], "the other state's buffers are kept");
    });
    // 20 ms: the large chain's spares, then the other state's levels (two of 0.7 KEEP at least) are given
    // back after the next job; the states decode again with new buffers
    await withIdleMs(20, async () => {
      await decodeChainOf(p, large);
      const [, spares] = await after();
      assert.ok(spares! >= 1.4 * keep, `bytes of the spares given back: ${spares}`);
      await twoHold();
      const [states] = await after();
      assert.ok(states! >= 2 * 0.7 * keep, `bytes of the idle state's buffers given back: ${states}`);
      assert.equal(addon.stats()[7], 1, 'only the state that ran the last job holds buffers');
      await Promise.all([...chains, large].map((c) => decodeChainOf(p, c)));
    });
  } finally {
    await p.close();
  }
});
