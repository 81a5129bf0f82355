import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { Repository } from '../repo/repository.js';
import { BlobCodec } from '../repo/codec.js';
import { PackWriter, type PackBlob } from '../repo/pack.js';
import { InlineVerifier, type PackHasher, ProvenBlobs, RangeBuffers, dictReclaimer, readPackData } from './read-pack.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

/** A repository with one pack of many blobs (small, large, compressible, random): more than one range and a header past the tail read. */
async function onePack(): Promise<{ dir: string; repo: Repository; pack: string; size: number; file: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-'));
  const repo = await Repository.init(new LocalStorage(dir), 'pw');
  for (let i = 0; i < 1500; i++) await repo.saveBlob('data', randomBytes(i % 100 === 0 ? 300_000 : 1000 + (i % 7) * 300));
  for (let i = 0; i < 20; i++) await repo.saveBlob('data', Buffer.alloc(200_000, i));
  await repo.flush();
  const packs = await repo.storage.list('data');
  assert.equal(packs.length, 1);
  const { name: pack, size } = packs[0]!;
  return { dir, repo, pack, size, file: path.join(dir, 'data', pack.slice(0, 2), pack) };
}

/** `inner` with some of its members replaced (the others bound to it). */
function storageWith(inner: Storage, patch: Partial<Storage>): Storage {
  return new Proxy(inner, {
    get(target, prop, recv) {
      if (prop in patch) return patch[prop as keyof Storage];
      const v = Reflect.get(target, prop, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** The same storage without loadInto (as a backend that does not offer it). */
const withoutLoadInto = (inner: Storage): Storage => storageWith(inner, { loadInto: undefined });

test('readPackData: an intact pack verifies, read in ranges, with or without loadInto; damage is found and named', async () => {
  const p = await onePack();
  try {
    const buffers = new RangeBuffers();
    const ok = await readPackData(p.repo, p.pack, p.size, buffers);
    assert.deepEqual({ hashOk: ok.hashOk, headerError: ok.headerError, damaged: ok.damaged, bytesRead: ok.bytesRead }, { hashOk: true, headerError: undefined, damaged: [], bytesRead: p.size });
    const again = await readPackData(p.repo, p.pack, p.size, buffers); // reusing the buffers handed back
    assert.deepEqual(again.damaged, []);
    assert.equal(again.hashOk, true);
    const here = await readPackData(p.repo, p.pack, p.size, buffers, new InlineVerifier(p.repo, true));
    assert.deepEqual({ hashOk: here.hashOk, damaged: here.damaged, bytesRead: here.bytesRead }, { hashOk: true, damaged: [], bytesRead: p.size });
    const other = await Repository.open(withoutLoadInto(new LocalStorage(p.dir)), 'pw');
    const plain = await readPackData(other, p.pack, p.size);
    assert.deepEqual({ hashOk: plain.hashOk, damaged: plain.damaged, bytesRead: plain.bytesRead }, { hashOk: true, damaged: [], bytesRead: p.size });
    await other.close();

    // one flipped bit inside a blob near the middle: the pack hash fails and exactly that blob is named
    const buf = await fsp.readFile(p.file);
    const victim = [...p.repo.index.inPack(p.pack)].map(([id, e]) => ({ id, e })).sort((a, b) => a.e.offset - b.e.offset)[700]!;
    buf[victim.e.offset + 40]! ^= 1;
    await fsp.writeFile(p.file, buf);
    const bad = await readPackData(p.repo, p.pack, p.size, buffers);
    assert.equal(bad.hashOk, false);
    assert.equal(bad.headerError, undefined);
    assert.deepEqual(bad.damaged.map(([id]) => id), [victim.id]);
    assert.match(bad.damaged[0]![1], /authentication failed/);
    // verified on this thread instead of the worker: the same findings, every range here
    const inline = new InlineVerifier(p.repo, true);
    const badHere = await readPackData(p.repo, p.pack, p.size, buffers, inline);
    assert.deepEqual({ hashOk: badHere.hashOk, damaged: badHere.damaged, bytesRead: badHere.bytesRead }, { hashOk: false, damaged: bad.damaged, bytesRead: p.size });
    assert.ok(inline.ranges > 1);
    buf[victim.e.offset + 40]! ^= 1;

    // a damaged header: reported as the pack's problem, no blob decoded, the hash still computed over every byte
    buf[buf.length - 10]! ^= 1;
    await fsp.writeFile(p.file, buf);
    const hdr = await readPackData(p.repo, p.pack, p.size, buffers);
    assert.equal(hdr.hashOk, false);
    assert.match(String(hdr.headerError), /header: authentication failed/);
    assert.deepEqual(hdr.damaged, []);
    assert.equal(hdr.bytesRead, p.size);
  } finally {
    await p.repo.close();
    await fsp.rm(p.dir, { recursive: true, force: true });
  }
});

test('readPackData with loadInto: the blob area is read into the reused buffers alone (the tail\'s part of the last ranges copied from it, not loaded again); blobs in the tail and across its start verify, and damage there is found and named', async () => {
  const p = await onePack();
  try {
    const loads: Array<{ offset: number; length: number }> = [];
    const into: Array<{ offset: number; target: Uint8Array }> = [];
    const inner = p.repo.storage;
    const counting = storageWith(inner, {
      load: (type, name, range) => {
        if (name === p.pack && range) loads.push(range);
        return inner.load(type, name, range);
      },
      loadInto: (type, name, offset, t) => {
        if (name === p.pack) into.push({ offset, target: t });
        return inner.loadInto!(type, name, offset, t);
      },
    });
    const repo = await Repository.open(counting, 'pw');
    const buf = await fsp.readFile(p.file);
    const headerStart = p.size - 4 - buf.readUInt32LE(p.size - 4);
    const tailStart = p.size - 256 * 1024;
    const byOffset = [...repo.index.inPack(p.pack)].map(([id, e]) => ({ id, e })).sort((a, b) => a.e.offset - b.e.offset);
    const across = byOffset.find((x) => x.e.offset < tailStart && x.e.offset + x.e.length > tailStart);
    const inTail = byOffset[byOffset.length - 1]!;
    assert.ok(across && inTail.e.offset > tailStart, 'a blob across the tail\'s start and one inside the tail');
    const buffers = new RangeBuffers();
    const ok = await readPackData(repo, p.pack, p.size, buffers);
    assert.deepEqual({ hashOk: ok.hashOk, damaged: ok.damaged, bytesRead: ok.bytesRead }, { hashOk: true, damaged: [], bytesRead: p.size });
    // nothing of the blob area before the tail loaded into a buffer of its own (only a header starting before the tail would be)
    assert.ok(loads.every((r) => r.offset >= Math.min(headerStart, tailStart)), JSON.stringify({ loads, headerStart, tailStart }));
    // the tail read into the buffers' tail buffer, handed back for the next pack
    const tailRead = into.find((x) => x.offset === tailStart && x.target.length === p.size - tailStart);
    assert.ok(tailRead, 'the tail is read into a buffer of the RangeBuffers');
    assert.equal(buffers.takeTail(1000).buffer, tailRead.target.buffer);

    for (const victim of [across, inTail]) {
      // (across: a byte of it in the tail's part)
      const at = victim === across ? tailStart + Math.min(3, across.e.offset + across.e.length - tailStart - 1) : victim.e.offset + 40;
      buf[at]! ^= 1;
      await fsp.writeFile(p.file, buf);
      const bad = await readPackData(repo, p.pack, p.size, new RangeBuffers());
      assert.equal(bad.hashOk, false);
      assert.deepEqual(bad.damaged.map(([id]) => id), [victim.id]);
      assert.match(bad.damaged[0]![1], /authentication failed/);
      buf[at]! ^= 1;
      await fsp.writeFile(p.file, buf);
    }
    await repo.close();
  } finally {
    await p.repo.close();
    await fsp.rm(p.dir, { recursive: true, force: true });
  }
});

/** Text rows; `v` changes a few of them (the versions of a changed file's chunk). */
function rows(n: number, v: number, seed = 0): Buffer {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`row ${seed} ${i} ${(i * 7919 + (i % 50 === v ? v : 0)) % 100003} ${'y'.repeat(i % 30)}`);
  return Buffer.from(out.join('\n'));
}

/** Every pack of `order` read with one ProvenBlobs, in that order: what each read found, and the ProvenBlobs. */
async function readInOrder(r: Repository, order: Array<{ id: string; size: number }>, forward: boolean) {
  const proven = new ProvenBlobs(r, order.map((p) => p.id), undefined, forward);
  const found: Array<{ hashOk: boolean; damaged: Array<[string, string]> }> = [];
  for (const p of order) {
    const x = await readPackData(r, p.id, p.size, new RangeBuffers(), undefined, undefined, proven);
    found.push({ hashOk: x.hashOk, damaged: x.damaged });
  }
  return { proven, found };
}

/**
 * A repository of delta blobs in packs as `layout` groups them: v0 and other (full), v1 (a delta on v0),
 * top (on v1), top2 (on v1 and other) and top3 (on top2: a base not on a single-base chain, loaded
 * through the read cache). Opened anew (the index read from its files).
 */
async function deltaRepo(dir: string, layout: Array<Array<'v0' | 'other' | 'v1' | 'top' | 'top2' | 'top3'>>) {
  const repo = await Repository.init(new LocalStorage(dir), 'pw');
  const codec = new BlobCodec(repo.key.encKey, 3);
  const v0 = rows(6000, 0);
  const v1 = rows(6000, 1);
  const other = rows(5000, 0, 7);
  const top = Buffer.concat([rows(6000, 2), other.subarray(0, 50_000)]);
  const top2 = Buffer.concat([top, Buffer.from('2')]);
  const top3 = Buffer.concat([top2, Buffer.from('3')]);
  const plain = { v0, v1, other, top, top2, top3 };
  const id = Object.fromEntries(Object.entries(plain).map(([k, b]) => [k, repo.blobId(b)])) as Record<keyof typeof plain, string>;
  const bases: Record<keyof typeof plain, string[]> = { v0: [], other: [], v1: [id.v0], top: [id.v1], top2: [id.v1, id.other], top3: [id.top2] };
  const enc = {
    v0: codec.encode(v0),
    other: codec.encode(other),
    v1: codec.encode(v1, v0),
    top: codec.encode(top, v1),
    top2: codec.encode(top2, Buffer.concat([v1, other])),
    top3: codec.encode(top3, top2),
  };
  for (const k of ['v1', 'top', 'top2', 'top3'] as const) assert.equal(enc[k].compression, 2);
  const packs: Array<{ id: string; size: number; blobs: PackBlob[] }> = [];
  for (const names of layout) {
    const pw = new PackWriter();
    for (const k of names) {
      const [b0, b1] = bases[k];
      pw.add({ id: id[k], type: 'data', rawLength: plain[k].length, compression: enc[k].compression, ...(b0 ? { base: b0 } : {}), ...(b1 ? { base2: b1 } : {}) }, enc[k].sealed);
    }
    const { id: packId, data, blobs: written } = pw.finalize(repo.key.encKey);
    await repo.storage.save('data', packId, data);
    packs.push({ id: packId, size: data.length, blobs: written });
  }
  await repo.writeIndexFile(packs.map((p) => ({ id: p.id, blobs: p.blobs })));
  await repo.close();
  const r = await Repository.open(new LocalStorage(dir), 'pw');
  /** Flips a byte near the end of blob `k` in its pack. */
  const damage = async (k: keyof typeof plain) => {
    const pk = packs.find((p) => p.blobs.some((b) => b.id === id[k]))!;
    const file = path.join(dir, 'data', pk.id.slice(0, 2), pk.id);
    const buf = await fsp.readFile(file);
    const at = pk.blobs.find((b) => b.id === id[k])!;
    buf[at.offset + at.length - 30]! ^= 1;
    await fsp.writeFile(file, buf);
    return pk.id;
  };
  return { repo: r, id, packs, damage };
}

test('readPackData: delta blobs (one base, two bases, a base that is a delta) verify from their bases\' sealed chains, nothing cached; a damaged base fails the blobs built on it, named', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-delta-'));
  const { repo: r, id, packs, damage } = await deltaRepo(dir, [
    ['v0', 'other'],
    ['v1', 'top', 'top2'],
  ]);
  const cached = () => (r as unknown as { cache: { size: number } }).cache.size;
  try {
    const dp = packs[1]!;
    for (const inline of [undefined, new InlineVerifier(r, true)]) {
      const ok = await readPackData(r, dp.id, dp.size, new RangeBuffers(), inline);
      assert.deepEqual({ hashOk: ok.hashOk, damaged: ok.damaged }, { hashOk: true, damaged: [] });
      assert.equal(cached(), 0, 'the bases went as sealed chains: none decoded into the read cache');
    }
    // v0 damaged in its pack: v0 itself, v1 (a delta on it) and both tops (on v1) fail; the tops' messages name v0
    const bp = await damage('v0');
    for (const inline of [undefined, new InlineVerifier(r, true)]) {
      const bad = await readPackData(r, dp.id, dp.size, new RangeBuffers(), inline);
      assert.equal(bad.hashOk, true);
      assert.deepEqual(bad.damaged.map(([x]) => x).sort(), [id.v1, id.top, id.top2].sort());
      for (const [, msg] of bad.damaged) assert.match(msg, new RegExp(`blob ${id.v0} in pack ${bp}: authentication failed`));
    }
  } finally {
    await r.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readPackData with ProvenBlobs: bases proven while the deeper pack is read are not decoded again in their own packs; a damaged base is never proven and is found in its pack', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-proven-'));
  const { repo: r, id, packs, damage } = await deltaRepo(dir, [['v0', 'other'], ['v1'], ['top', 'top2']]);
  try {
    const [bp, mp, tp] = packs as [(typeof packs)[0], (typeof packs)[0], (typeof packs)[0]];
    const native = !!r.readPool.native;
    const order = [tp, mp, bp];
    const run = () => readInOrder(r, order, false);
    const ok = await run();
    assert.deepEqual(ok.found, order.map(() => ({ hashOk: true, damaged: [] })));
    // (the C codec proves; the decode worker does not, and every blob is decoded in its pack)
    assert.equal(ok.proven.skipped, native ? 3 : 0, 'v1, v0 and other proven by the tops\' chains');
    assert.equal(ok.proven.size, 0);

    // v1 damaged in its pack: the tops fail naming it; v1 is not proven, so its own pack decodes it and names it
    await damage('v1');
    const bad = await run();
    assert.deepEqual(bad.found[0]!.damaged.map(([x]) => x).sort(), [id.top, id.top2].sort());
    assert.equal(bad.found[1]!.hashOk, false);
    assert.deepEqual(bad.found[1]!.damaged.map(([x]) => x), [id.v1]);
    assert.match(bad.found[1]!.damaged[0]![1], /authentication failed/);
    assert.deepEqual(bad.found[2], { hashOk: true, damaged: [] });
    // v0 is proven (the root, before the damaged level); other is not (in top2's job its chain comes after v1's, which failed)
    assert.equal(bad.proven.skipped, native ? 1 : 0);
  } finally {
    await r.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readPackData: a delta whose base has two bases verifies from bases decoded for it alone (C codec: nothing cached, each freed once its job is done; else through the read cache, counted towards its collections); a damaged base two levels down fails it, named', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-dict-'));
  const { repo: r, id, packs, damage } = await deltaRepo(dir, [['v0', 'other'], ['v1', 'top', 'top2'], ['top3']]);
  const cached = () => (r as unknown as { cache: { size: number } }).cache.size;
  const native = !!r.readPool.native;
  try {
    const tp = packs[2]!;
    const dropped = dictReclaimer.totalDropped;
    const released = r.released;
    const ok = await readPackData(r, tp.id, tp.size, new RangeBuffers());
    assert.deepEqual({ hashOk: ok.hashOk, damaged: ok.damaged }, { hashOk: true, damaged: [] });
    if (native) {
      assert.equal(cached(), 0, 'no base went through the read cache');
      assert.equal(r.released - released, 3, "v1 and other (top2's bases) once top2 was decoded, then top2 (top3's dictionary) once top3 was verified");
      assert.equal(dictReclaimer.totalDropped, dropped);
    } else {
      assert.equal(dictReclaimer.totalDropped - dropped, rows(6000, 2).length + 50_000 + 1, 'top2, the dictionary of top3');
    }
    // other (a base of top2) damaged: top3 fails, named after it; v1, decoded beside it, is freed all the same
    const bp = await damage('other');
    (r as unknown as { cache: { clear(): void } }).cache.clear();
    const released2 = r.released;
    const bad = await readPackData(r, tp.id, tp.size, new RangeBuffers());
    assert.equal(bad.hashOk, true);
    assert.deepEqual(
      bad.damaged.map(([x]) => x),
      [id.top3],
    );
    assert.match(bad.damaged[0]![1], new RegExp(`blob ${id.other} in pack ${bp}: authentication failed`));
    if (native) {
      assert.equal(r.released - released2, 1, 'v1');
      assert.equal(cached(), 0);
    }
  } finally {
    await r.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('ProvenBlobs: only blobs of packs not read yet are wanted, at most max kept; one is taken only where its pack\'s header puts it where the index does, once', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-proven2-'));
  const { repo: r, id, packs } = await deltaRepo(dir, [['v0', 'other'], ['v1'], ['top', 'top2']]);
  try {
    const [bp, mp] = packs as [(typeof packs)[0], (typeof packs)[0]];
    const pr = new ProvenBlobs(r, [bp.id, mp.id], 2);
    assert.equal(pr.wanted(id.v0), true);
    assert.equal(pr.wanted(id.top), false, 'its pack is not to be read');
    pr.started(mp.id);
    assert.equal(pr.wanted(id.v1), false, 'its pack was read already');
    pr.add([id.v0, id.other, id.v1]);
    assert.equal(pr.size, 2, 'no more than max');
    assert.equal(pr.wanted(id.v0), false, 'proven already');
    const v0 = bp.blobs.find((b) => b.id === id.v0)!;
    assert.equal(pr.take(mp.id, v0), false, 'another pack');
    assert.equal(pr.take(bp.id, { ...v0, offset: v0.offset + 1 }), false, 'another place');
    assert.equal(pr.take(bp.id, { ...v0, length: v0.length - 1 }), false, 'another length');
    assert.equal(pr.take(bp.id, v0), true);
    assert.equal(pr.take(bp.id, v0), false, 'once');
    assert.equal(pr.skipped, 1);
  } finally {
    await r.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readPackData: a range\'s buffer is read into again only after the pack hash has taken its bytes', async () => {
  // The pack's SHA-256 runs on the thread pool beside the decodes; the buffer goes back to be reused once hashed.
  // Here the hash takes its bytes late (20 ms after each update) and a handed-back buffer is scribbled on at once,
  // as the next read into it would: a buffer handed back before it was hashed gives a wrong pack hash.
  const p = await onePack();
  try {
    class LateHash implements PackHasher {
      private readonly h = createHash('sha256');
      private last: Promise<void> = Promise.resolve();
      update(b: Uint8Array): void {
        this.last = this.last.then(() => new Promise<void>((r) => setTimeout(() => (this.h.update(b), r()), 20)));
      }
      flushed(): Promise<void> {
        return this.last;
      }
      async digest(): Promise<string> {
        await this.last;
        return this.h.digest('hex');
      }
    }
    class Scribbled extends RangeBuffers {
      given = 0;
      override give(ab: ArrayBuffer | undefined): void {
        if (ab) {
          new Uint8Array(ab).fill(0xee);
          this.given++;
        }
        super.give(ab);
      }
    }
    for (const inline of [undefined, new InlineVerifier(p.repo, true)]) {
      const buffers = new Scribbled();
      const r = await readPackData(p.repo, p.pack, p.size, buffers, inline, () => new LateHash());
      assert.ok(buffers.given >= 2, `ranges handed back: ${buffers.given}`);
      assert.deepEqual({ hashOk: r.hashOk, damaged: r.damaged }, { hashOk: true, damaged: [] });
    }
  } finally {
    await p.repo.close();
    await fsp.rm(p.dir, { recursive: true, force: true });
  }
});

test('readPackData with ProvenBlobs.forward: deltas on a root are verified from the root\'s bytes as its pack is read (their chains never read from the root again) and then not decoded in their own packs; damage anywhere on the chain is still found, named', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-forward-'));
  const { repo: r, id, packs, damage } = await deltaRepo(dir, [['v0', 'other'], ['v1'], ['top', 'top2']]);
  try {
    const [bp, mp, tp] = packs as [(typeof packs)[0], (typeof packs)[0], (typeof packs)[0]];
    const order = [bp, mp, tp];
    const paths = new ProvenBlobs(r, order.map((p) => p.id), undefined, true);
    // top2 has two bases: not verified forward (its bases' chains are read in its own pack)
    assert.deepEqual(paths.forward(id.v0), [[id.v1, id.top]]);
    assert.deepEqual(paths.forward(id.other), []);
    paths.started(mp.id);
    assert.deepEqual(paths.forward(id.v0), [], "v1's pack was read already");
    assert.deepEqual(new ProvenBlobs(r, order.map((p) => p.id)).forward(id.v0), [], 'not asked for');
    if (!r.readPool.native) return; // (forward needs the C codec's chain jobs)

    // every load of a blob's own bytes (the packs' tails, which hold these small packs whole, are the rest)
    const storage = r.storage as Storage & { load: Storage['load'] };
    const load = storage.load.bind(storage);
    const loads: Array<[string, number]> = [];
    storage.load = (async (kind: string, name: string, range?: { offset: number; length: number }) => {
      if (range && !(range.offset === 0 && range.length === packs.find((p) => p.id === name)?.size)) loads.push([name, range.offset]);
      return load(kind as 'data', name, range);
    }) as Storage['load'];
    const run = () => {
      loads.length = 0;
      return readInOrder(r, order, true);
    };
    const at = (k: 'v0' | 'v1' | 'top' | 'other') => {
      const p = packs.find((x) => x.blobs.some((b) => b.id === id[k]))!;
      return [p.id, p.blobs.find((b) => b.id === id[k])!.offset] as [string, number];
    };
    const ok = await run();
    assert.deepEqual(ok.found, order.map(() => ({ hashOk: true, damaged: [] })));
    assert.equal(ok.proven.skipped, 3, 'v0 (the root, proven on the way), v1 and top: each decoded once, in one forward job');
    assert.equal(ok.proven.size, 0);
    // v1 and top read alone (their own bytes), v0 not for them (forward took it from its range): once, in top2's chains with v1 and other
    const seen = (k: 'v0' | 'v1' | 'top' | 'other') => loads.filter(([n, o]) => n === at(k)[0] && o === at(k)[1]).length;
    assert.deepEqual({ v0: seen('v0'), v1: seen('v1'), top: seen('top'), other: seen('other') }, { v0: 1, v1: 2, top: 1, other: 1 });

    // a damaged delta on the chain: the root is still proven, the damaged level is found in its own pack and so are those built on it
    await damage('v1');
    const bad = await run();
    assert.deepEqual(bad.found[0], { hashOk: true, damaged: [] });
    assert.equal(bad.found[1]!.hashOk, false);
    assert.deepEqual(bad.found[1]!.damaged.map(([x]) => x), [id.v1]);
    assert.match(bad.found[1]!.damaged[0]![1], /authentication failed/);
    assert.deepEqual(bad.found[2]!.damaged.map(([x]) => x).sort(), [id.top, id.top2].sort());
    assert.equal(bad.proven.skipped, 1, 'v0 alone');
  } finally {
    await r.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readPackData with ProvenBlobs.forward: a damaged root proves nothing and is found in its own pack; the deltas on it fail, named after it', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-forward2-'));
  const { repo: r, id, packs, damage } = await deltaRepo(dir, [['v0', 'other'], ['v1'], ['top', 'top2']]);
  try {
    const order = packs;
    const bp = await damage('v0');
    const { proven, found } = await readInOrder(r, order, true);
    assert.equal(found[0]!.hashOk, false);
    assert.deepEqual(found[0]!.damaged.map(([x]) => x), [id.v0]);
    assert.deepEqual(found[1]!.damaged.map(([x]) => x), [id.v1]);
    assert.match(found[1]!.damaged[0]![1], new RegExp(`blob ${id.v0} in pack ${bp}: authentication failed`));
    assert.deepEqual(found[2]!.damaged.map(([x]) => x).sort(), [id.top, id.top2].sort());
    assert.equal(proven.skipped, 0);
  } finally {
    await r.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
