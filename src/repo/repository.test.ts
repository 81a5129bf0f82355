import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import { objectPath, type FileType, type Storage } from '../storage/types.js';
import { Repository } from './repository.js';
import { ContentWriter } from './content.js';
import type { Chunker } from './chunker.js';
import { codecNative } from './native-read-pool.js';
import { encodeNative } from './native-encode-pool.js';
import { requireAddon } from '../util/native.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

/** A storage whose data uploads wait until the test lets them through. */
function gatedStorage(inner: Storage): { storage: Storage; waiting: () => number; openGate: () => void } {
  let open = false;
  const queue: Array<() => void> = [];
  const storage = new Proxy(inner, {
    get(target, prop, recv) {
      if (prop === 'save') {
        return async (type: FileType, name: string, data: Uint8Array) => {
          if (type === 'data' && !open) await new Promise<void>((r) => queue.push(r));
          return target.save(type, name, data);
        };
      }
      if (prop === 'saveFile' && target.saveFile) {
        return async (type: FileType, name: string, file: string, size: number) => {
          if (type === 'data' && !open) await new Promise<void>((r) => queue.push(r));
          return target.saveFile!(type, name, file, size);
        };
      }
      const v = Reflect.get(target, prop, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  return {
    storage,
    waiting: () => queue.length,
    openGate: () => {
      open = true;
      for (const r of queue.splice(0)) r();
    },
  };
}

test('saveBlob waits while the sealed packs waiting for upload are at their bound (memory bounded whatever the storage speed)', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-backpressure-'));
  try {
    const g = gatedStorage(new LocalStorage(dir));
    const repo = await Repository.init(g.storage, 'pw', { packSize: 1024 * 1024 });
    try {
      // 40 MiB of incompressible 256 KiB blobs: 40 packs of 1 MiB if nothing held them back
      let taken = 0;
      const saver = (async () => {
        for (let i = 0; i < 160; i++) {
          await repo.saveBlob('data', randomBytes(256 * 1024));
          taken++;
        }
      })();
      // let the saver run as far as it can while no upload completes
      for (let i = 0; i < 200 && taken < 160; i++) await new Promise((r) => setTimeout(r, 5));
      const stalledAt = taken;
      assert.ok(g.waiting() <= 3, `at most 3 sealed packs wait for the storage, not ${g.waiting()}`);
      // what was taken: the packs waiting, the one being filled and the in-flight budget (4 MiB)
      assert.ok(stalledAt * 256 * 1024 <= 10 * 1024 * 1024, `the saver stopped after ${stalledAt} blobs (${(stalledAt / 4).toFixed(1)} MiB)`);
      assert.ok(stalledAt < 160);
      g.openGate();
      await saver;
      await repo.flush();
      assert.equal(taken, 160);
      assert.equal(repo.stats.blobsNew, 160);
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a finished ContentWriter gives its chunker window back: the next file reuses it, and the content is stored intact', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-windows-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      const a = randomBytes(3 * 1024 * 1024);
      const b = randomBytes(2 * 1024 * 1024 + 17);
      const w1 = new ContentWriter(repo);
      const win = (w1 as unknown as { chunker: Chunker }).chunker.writable().buffer;
      await w1.write(a);
      const ca = await w1.finish();
      const w2 = new ContentWriter(repo);
      assert.ok((w2 as unknown as { chunker: Chunker }).chunker.writable().buffer === win, 'the second writer reuses the window');
      await w2.write(b);
      const cb = await w2.finish();
      // a third writer while none was given back gets a window of its own
      const w3 = new ContentWriter(repo);
      const w4 = new ContentWriter(repo);
      assert.ok((w4 as unknown as { chunker: Chunker }).chunker.writable().buffer !== (w3 as unknown as { chunker: Chunker }).chunker.writable().buffer);
      await repo.flush();
      const read = async (ids: string[]) => Buffer.concat(await Promise.all(ids.map((id) => repo.loadBlob(id))));
      assert.deepEqual(await read(ca.content), a);
      assert.deepEqual(await read(cb.content), b);
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

/** Text rows; each version rewrites a few (a daily dump's chunk). */
function dumpRows(n: number, version: number): Buffer {
  const lines: string[] = [];
  for (let i = 0; i < n; i++) lines.push(`(${i}, 'name ${i}', ${i % 89 === version % 89 && version > 0 ? version * 1000 + i : i * 7}, '${'f'.repeat(i % 50)}'),`);
  return Buffer.from(lines.join('\n'));
}

/** Stores each blob in a pack of its own (flushed), as a delta on the bases given. */
function flushedSaver(repo: Repository): (data: Buffer, bases: string[]) => Promise<string> {
  return async (data, bases) => {
    const { id } = await repo.saveBlob('data', Buffer.from(data), bases.length ? { deltaBases: bases } : {});
    await repo.flush();
    return id;
  };
}

/** Delta chains (each version on the one before), stored one after the other: their ids. */
async function saveChains(save: (data: Buffer, bases: string[]) => Promise<string>, ...chains: Buffer[][]): Promise<string[][]> {
  const ids: string[][] = [];
  for (const chain of chains) {
    const c: string[] = [];
    for (const [i, v] of chain.entries()) c.push(await save(v, i > 0 ? [c[i - 1]!] : []));
    ids.push(c);
  }
  return ids;
}

test('a blob on two bases that are delta chains themselves reads back exactly; each base level by level through the cache (shared with the neighbours), not in one go', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-chain2-'));
  try {
    const a = [0, 1, 2].map((v) => dumpRows(9000, v));
    const b = [0, 1].map((v) => dumpRows(9000, v + 40).subarray(100));
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    const save = flushedSaver(repo);
    let ia: string[] = [];
    let ib: string[] = [];
    let x: Buffer;
    let ix: string;
    try {
      [ia, ib] = (await saveChains(save, a, b)) as [string[], string[]];
      // straddles the two: the end of a[2] and the start of b[1]
      x = Buffer.concat([a[2]!.subarray(a[2]!.length >> 1), b[1]!.subarray(0, b[1]!.length >> 1)]);
      ix = await save(x, [ia[2]!, ib[1]!]);
      const e = repo.indexEntry(ix)!;
      assert.equal(e.compression, 2);
      assert.ok(e.base && e.base2, 'stored on two bases');
    } finally {
      await repo.close();
    }
    const r = await Repository.open(new LocalStorage(dir), 'pw');
    try {
      assert.deepEqual(await r.loadBlob(ix), x);
      assert.equal(r.chainReads, 0, "the bases' chains are read level by level (cached), not in one go");
      assert.ok(r.indexEntry(ia[1]!) && r.indexEntry(ib[0]!), 'the chains exist');
    } finally {
      await r.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('deltas on two bases too large for the read cache, restored (loadOwnedBlob) side by side: one load per base, shared, freed once the last decode is done; a damaged base fails and holds nothing', { skip: !codecNative() && 'native addons not built' }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-own2-'));
  try {
    // ~1.1 MB each: more than a quarter of the 4 MiB base cache, which keeps none such
    const a = [0, 1].map((v) => dumpRows(20000, v));
    const b = [0, 1].map((v) => dumpRows(20000, v + 40).subarray(100));
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    const save = flushedSaver(repo);
    let ia: string[] = [];
    let ib: string[] = [];
    const xs: Buffer[] = [];
    const ix: string[] = [];
    try {
      [ia, ib] = (await saveChains(save, a, b)) as [string[], string[]];
      for (const cut of [2, 3]) {
        // the end of a[1] and the start of b[1], cut in two places
        const x = Buffer.concat([a[1]!.subarray(a[1]!.length - Math.floor(a[1]!.length / cut)), b[1]!.subarray(0, Math.floor(b[1]!.length / cut))]);
        xs.push(x);
        ix.push(await save(x, [ia[1]!, ib[1]!]));
        const e = repo.indexEntry(ix.at(-1)!)!;
        assert.ok(e.compression === 2 && e.base && e.base2, 'stored on two bases');
      }
      assert.equal(repo.indexEntry(ia[1]!)!.compression, 2, 'the bases are deltas themselves');
    } finally {
      await repo.close();
    }
    const r = await Repository.open(new LocalStorage(dir), 'pw');
    const ownBases = (r as unknown as { ownBases: Map<string, unknown> }).ownBases;
    try {
      const got = await Promise.all(ix.map((id) => r.loadOwnedBlob(id)));
      assert.deepEqual(got[0], xs[0]);
      assert.deepEqual(got[1], xs[1]);
      // a[0], a[1], b[0], b[1]: each loaded once for both restores, then freed
      assert.equal(r.ownBaseLoads, 4, 'one load per base, shared by the two decodes');
      assert.equal(r.released, 4, 'every private base is freed once both decodes are done');
      assert.equal(ownBases.size, 0, 'nothing held after');
      assert.ok(got.every((g) => g.byteLength > 0), "the restored plaintexts are the caller's, not freed");
      // a base's bytes damaged (in place: the pack may be open already): the load fails loudly, and no private base is left behind
      const eb = r.indexEntry(ib[1]!)!;
      const fh = await fsp.open(path.join(dir, objectPath('data', eb.pack)), 'r+');
      await fh.write(randomBytes(64), 0, 64, eb.offset + 40);
      await fh.close();
      await assert.rejects(r.loadOwnedBlob(ix[0]!), /delta base is unreadable/);
      assert.equal(ownBases.size, 0, 'nothing held after a failed load');
    } finally {
      await r.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('loadOwnedBlob: every blob, a small compressible one decoded on this thread too, comes back in memory of its own that release() frees', { skip: !codecNative() && 'native addons not built' }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-owned-'));
  try {
    const r = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      // sizes under and over Node's 4 KiB pooled allocations, compressible (zstd) and not (stored)
      const blobs = [100, 3000, 5000, 70000].flatMap((n) => [Buffer.from('row\n'.repeat(n / 4)), randomBytes(n)]);
      const ids: string[] = [];
      for (const b of blobs) ids.push((await r.saveBlob('data', b)).id);
      await r.flush();
      for (const [i, id] of ids.entries()) {
        const before = r.released;
        const got = await r.loadOwnedBlob(id);
        assert.deepEqual(got, blobs[i]);
        r.release(got);
        assert.equal(r.released - before, 1, `blob ${i} (${blobs[i]!.length} bytes) is freed`);
        assert.equal(got.byteLength, 0);
      }
    } finally {
      await r.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a delta chain (day 3 on day 2 on day 1 on day 0) is written by the encode worker from each base\'s sealed chain, reads back exactly in one go on the main thread and in a worker; a damaged blob in the middle fails loudly and is named', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-chain-'));
  try {
    const versions = [0, 1, 2, 3].map((v) => dumpRows(12000, v));
    const ids: string[] = [];
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    repo.inlineUpTo(0); // encoded in a worker: each base goes there as its sealed chain
    try {
      for (const [i, v] of versions.entries()) {
        const { id } = await repo.saveBlob('data', Buffer.from(v), i > 0 ? { deltaBases: [ids[i - 1]!] } : {});
        await repo.flush(); // each version's base is stored (and indexed) before the next
        ids.push(id);
      }
      for (const [i, id] of ids.entries()) {
        const e = repo.indexEntry(id)!;
        assert.equal(e.compression, i === 0 ? 1 : 2, `version ${i}`);
        assert.equal(e.depth, i);
      }
    } finally {
      await repo.close();
    }
    for (const inline of [true, false]) {
      const r = await Repository.open(new LocalStorage(dir), 'pw');
      try {
        // decoded in a worker (or the C read pool), or on this thread (codec.ts, chain.ts decodeChain)
        r.inlineUpTo(inline ? 64 * 1024 * 1024 : 0);
        assert.deepEqual(await r.loadBlob(ids[3]!), versions[3]);
        assert.deepEqual(await r.loadBlob(ids[2]!), versions[2]);
        assert.equal(r.chainReads, 2, 'both read in one go (readChain)');
        assert.equal(r.workersStarted > 0, !inline);
      } finally {
        await r.close();
      }
    }
    {
      // without inlineUpTo, the chain goes to the C read pool from its first byte (decodeInline): no inline budget first
      const r = await Repository.open(new LocalStorage(dir), 'pw');
      try {
        assert.deepEqual(await r.loadBlob(ids[3]!), versions[3]);
        assert.equal(r.workersStarted > 0, codecNative() !== undefined);
      } finally {
        await r.close();
      }
    }
    // flip a byte of day 1's sealed blob: day 3 (built on it through day 2) must not come back
    const e1 = await (async () => {
      const r = await Repository.open(new LocalStorage(dir), 'pw');
      try {
        return r.indexEntry(ids[1]!)!;
      } finally {
        await r.close();
      }
    })();
    const packFile = path.join(dir, 'data', e1.pack.slice(0, 2), e1.pack);
    const fh = await fsp.open(packFile, 'r+');
    try {
      const b = Buffer.alloc(1);
      await fh.read(b, 0, 1, e1.offset + 20);
      b[0]! ^= 0x40;
      await fh.write(b, 0, 1, e1.offset + 20);
    } finally {
      await fh.close();
    }
    for (const inline of [true, false]) {
      const r = await Repository.open(new LocalStorage(dir), 'pw');
      try {
        r.inlineUpTo(inline ? 64 * 1024 * 1024 : 0);
        await assert.rejects(r.loadBlob(ids[3]!), (err: Error) => err.name === 'IntegrityError' && err.message.includes(ids[1]!));
        assert.deepEqual(await r.loadBlob(ids[0]!), versions[0]);
      } finally {
        await r.close();
      }
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('the delta search finds a base by sketch and stores the new blob with the same sketch, on this thread (C sketch) or in a worker', async () => {
  const { SketchIndex, superFeaturesJs } = await import('./sketch.js');
  const { sketchInline } = await import('./repository.js');
  const { bytesNative } = await import('./native.js');
  // with the C helpers loaded, the default is the sketch on this thread
  assert.equal(sketchInline(), bytesNative() !== undefined);
  const lines: string[] = [];
  for (let i = 0; i < 12000; i++) lines.push(`${i}\tuser-${(i * 7919) % 10007}\t${'x'.repeat(i % 13)}\t${(i * 31) % 997}`);
  const parent = Buffer.from(lines.join('\n'));
  // rows inserted at the start (every offset moves) and a few rows changed
  const changed = lines.map((l, i) => (i % 500 === 7 ? `${l}-changed` : l));
  const child = Buffer.from(['new row 1', 'new row 2', ...changed].join('\n'));
  for (const mode of ['1', '0']) {
    const prev = process.env.LIFEBOAT_SKETCH_INLINE;
    process.env.LIFEBOAT_SKETCH_INLINE = mode;
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-sketch-'));
    try {
      const repo = await Repository.init(new LocalStorage(dir), 'pw');
      try {
        const { id: pid } = await repo.saveBlob('data', Buffer.from(parent));
        await repo.flush();
        const idx = new SketchIndex();
        idx.add(pid, repo.indexEntry(pid)?.sf);
        assert.ok(idx.size > 0, "the parent blob has a sketch");
        let learned: string | undefined;
        // no offset guess: a base can only come from the sketch
        const { id } = await repo.saveBlob('data', Buffer.from(child), { similar: idx, onSimilar: (b) => (learned = b), deltaBases: [] });
        await repo.flush();
        const e = repo.indexEntry(id)!;
        assert.equal(learned, pid, `mode ${mode}: base found by sketch`);
        assert.equal(e.compression, 2, `mode ${mode}: stored as a delta`);
        assert.equal(e.base, pid);
        assert.deepEqual(e.sf, superFeaturesJs(child), `mode ${mode}: the blob's sketch is recorded`);
        assert.ok(e.length < child.length / 20, `mode ${mode}: delta of ${e.length} bytes`);
        assert.deepEqual(await repo.loadBlob(id), child);
      } finally {
        await repo.close();
      }
    } finally {
      if (prev === undefined) delete process.env.LIFEBOAT_SKETCH_INLINE;
      else process.env.LIFEBOAT_SKETCH_INLINE = prev;
      await fsp.rm(dir, { recursive: true, force: true });
    }
  }
});

test('beside the C encoder, a delta base is decoded in the C read pool and no encode worker thread is started, even once the read pool has run', { skip: !(codecNative() && encodeNative()) && 'native addons not built' }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-basepool-'));
  try {
    const versions = [0, 1, 2].map((v) => dumpRows(12000, v));
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      assert.ok(repo.nativeEncoder, 'the C encoder is in use');
      repo.inlineUpTo(0); // every decode goes to the read pool (as once a backup's inline budget is spent)
      const ids: string[] = [];
      for (const [i, v] of versions.entries()) {
        const { id } = await repo.saveBlob('data', Buffer.from(v), i > 0 ? { deltaBases: [ids[i - 1]!] } : {});
        await repo.flush();
        ids.push(id);
        if (i === 0) assert.deepEqual(await repo.loadBlob(id, { noCache: true }), versions[0]); // the read pool has run
      }
      assert.ok(repo.workersStarted > 0, 'the read pool ran');
      assert.equal(repo.encodeWorkersStarted, 0, 'no encode worker thread beside the C encoder');
      for (const [i, id] of ids.entries()) assert.equal(repo.indexEntry(id)!.compression, i === 0 ? 1 : 2, `version ${i} is a delta on the one before`);
      for (const [i, id] of ids.entries()) assert.deepEqual(await repo.loadBlob(id, { noCache: true }), versions[i]);
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

/** `data` in a buffer of its own (a whole ArrayBuffer, as a chunker's chunk). */
function own(data: Buffer): Buffer {
  const b = Buffer.allocUnsafeSlow(data.length);
  data.copy(b);
  return b;
}

test('a chunk its caller gives up (saveBlob owned) and a delta base no cache keeps are freed once encoded, not left to the collector; what was stored reads back', { skip: !(codecNative() && encodeNative()) && 'native addons not built' }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-owned-'));
  try {
    // ~1.1 MB each: a base larger than a quarter of the 2 MiB base cache, which keeps none such
    const [v0, v1, v2] = [0, 1, 2].map((v) => dumpRows(20000, v));
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    try {
      assert.ok(repo.nativeEncoder, 'the C encoder is in use');
      const first = own(v0!);
      const { id: id0 } = await repo.saveBlob('data', first);
      await repo.flush();
      assert.equal(first.byteLength, v0!.length, 'a chunk not given up is left alone');
      const before = repo.released;
      const c1 = own(v1!);
      const r1 = await repo.saveBlob('data', c1, { deltaBases: [id0], owned: true });
      await repo.flush();
      assert.equal(repo.indexEntry(r1.id)!.compression, 2, 'stored as a delta on the first');
      assert.equal(c1.byteLength, 0, 'the chunk is freed once encoded');
      assert.equal(repo.released - before, 2, 'the chunk and its base are freed');
      assert.deepEqual(await repo.loadBlob(r1.id, { noCache: true }), v1);
      assert.deepEqual(await repo.loadBlob(id0, { noCache: true }), v0);
      // a chunk the repository has already: freed at once
      const again = own(v1!);
      const dup = await repo.saveBlob('data', again, { owned: true });
      assert.equal(dup.isNew, false);
      assert.equal(again.byteLength, 0, 'a duplicate chunk given up is freed');
      // a delta on a delta, the chunk not given up: its base (decoded from the chain) is freed, the chunk is not
      const c2 = own(v2!);
      const r2 = await repo.saveBlob('data', c2, { deltaBases: [r1.id] });
      await repo.flush();
      assert.equal(c2.byteLength, v2!.length);
      assert.equal(repo.indexEntry(r2.id)!.compression, 2);
      assert.deepEqual(await repo.loadBlob(r2.id, { noCache: true }), v2);
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

const noHuge = typeof requireAddon<{ hugeBuffer?: unknown }>('mem')?.hugeBuffer === 'function' ? false : 'native/mem.c did not build';

test('the two bases of a delta are joined into one buffer in huge pages, on the heap with LIFEBOAT_HUGE_BUFFERS=0; the blob reads back exactly either way', { skip: noHuge }, async () => {
  const saved = process.env.LIFEBOAT_HUGE_BUFFERS;
  try {
    for (const off of [false, true]) {
      const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-repo-join-'));
      try {
        // bases of ~0.9 MB each: joined, 1 MiB or more (util/huge-buffer.ts LARGE)
        const a = [0, 1].map((v) => dumpRows(20000, v));
        const b = [0, 1].map((v) => dumpRows(20000, v + 40).subarray(100));
        const x = Buffer.concat([a[1]!.subarray(a[1]!.length >> 1), b[1]!.subarray(0, b[1]!.length >> 1)]);
        const repo = await Repository.init(new LocalStorage(dir), 'pw');
        let ix: string;
        try {
          const save = flushedSaver(repo);
          const [ia, ib] = (await saveChains(save, a, b)) as [string[], string[]];
          process.env.LIFEBOAT_HUGE_BUFFERS = off ? '0' : '';
          const before = { ...repo.basesJoined };
          ix = await save(x, [ia[1]!, ib[1]!]);
          const e = repo.indexEntry(ix)!;
          assert.ok(e.compression === 2 && e.base && e.base2, 'stored on two bases');
          assert.deepEqual({ huge: repo.basesJoined.huge - before.huge, heap: repo.basesJoined.heap - before.heap }, off ? { huge: 0, heap: 1 } : { huge: 1, heap: 0 });
        } finally {
          await repo.close();
        }
        const r = await Repository.open(new LocalStorage(dir), 'pw');
        try {
          assert.deepEqual(await r.loadBlob(ix), x);
        } finally {
          await r.close();
        }
      } finally {
        await fsp.rm(dir, { recursive: true, force: true });
      }
    }
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_HUGE_BUFFERS;
    else process.env.LIFEBOAT_HUGE_BUFFERS = saved;
  }
});

test('sealIndexFile: the JSON sealJson({ v: 1, packs }) seals, its size declared in the zstd frame, made one pack at a time', async () => {
  const { sealIndexFile, sealJson, openJsonBytes } = await import('./repository.js');
  const { open } = await import('./crypto.js');
  const zb = (await import('zstd-napi/binding.js')).default;
  const key = randomBytes(32);
  const hex = () => randomBytes(32).toString('hex');
  const packs = Array.from({ length: 300 }, (_, p) => ({
    id: hex(),
    blobs: Array.from({ length: 100 }, (_, b) => ({
      id: hex(),
      type: (b % 10 === 0 ? 'tree' : 'data') as 'tree' | 'data',
      offset: b * 1000,
      length: 900 + b,
      rawLength: 2000 + p,
      compression: (b % 3) as 0 | 1 | 2,
      ...(b % 7 === 0 ? { base: hex() } : {}),
      ...(b % 21 === 0 ? { base2: hex() } : {}),
      ...(b % 5 === 0 ? { sf: [1, 2, 3, b, p] } : {}),
    })),
  }));
  const whole = JSON.stringify({ v: 1, packs });
  // no string as long as the whole text is made (JSON.stringify watched)
  const stringify = JSON.stringify;
  let longest = 0;
  JSON.stringify = ((...a: Parameters<typeof JSON.stringify>) => {
    const r = stringify(...a);
    longest = Math.max(longest, r?.length ?? 0);
    return r;
  }) as typeof JSON.stringify;
  let sealed: Buffer;
  try {
    sealed = sealIndexFile(key, packs);
  } finally {
    JSON.stringify = stringify;
  }
  assert.ok(longest < whole.length / 50, `the longest string made was ${longest} characters of ${whole.length}`);
  assert.equal(openJsonBytes(key, sealed, 'index').toString(), whole);
  const body = open(key, sealed, 'index');
  assert.equal(body[0], 1, 'zstd');
  assert.equal(zb.getFrameContentSize(body.subarray(1)), Buffer.byteLength(whole), 'the frame declares the size');
  // what sealJson made reads back the same (the two are interchangeable)
  assert.equal(openJsonBytes(key, sealJson(key, { v: 1, packs }, true), 'index').toString(), whole);
  assert.equal(openJsonBytes(key, sealIndexFile(key, []), 'index').toString(), '{"v":1,"packs":[]}');
  // and twice in a row (the compression context is reused)
  assert.equal(openJsonBytes(key, sealIndexFile(key, packs.slice(0, 3)), 'index').toString(), JSON.stringify({ v: 1, packs: packs.slice(0, 3) }));
});

test('the index is read with its files deciphered in place and each buffer freed once the next is made from it', { skip: codecNative() ? false : 'no C codec: buffers are left to the collector' }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-index-inplace-'));
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    const ids: string[] = [];
    for (let i = 0; i < 3000; i++) ids.push((await repo.saveBlob('data', Buffer.from(`blob ${i}\n`))).id);
    await repo.flush();
    const loaded: Buffer[] = [];
    class Watching extends LocalStorage {
      override async load(type: FileType, name: string, range?: { offset: number; length: number }): Promise<Buffer> {
        const b = await super.load(type, name, range);
        if (type === 'index') loaded.push(b);
        return b;
      }
    }
    const opened = await Repository.open(new Watching(dir), 'pw');
    assert.equal(loaded.length, 1);
    assert.equal(loaded[0]!.byteLength, 0, 'the sealed index file was not freed');
    assert.equal(opened.index.size, 3000);
    for (const id of ids) assert.equal((await opened.loadBlob(id)).toString().startsWith('blob '), true);
    // a damaged file is still reported as such (and the repository still opens)
    const f = (await fsp.readdir(path.join(dir, 'index')))[0]!;
    const p = path.join(dir, 'index', f);
    const bytes = await fsp.readFile(p);
    bytes[100]! ^= 1;
    await fsp.rm(p);
    const renamed = createHash('sha256').update(bytes).digest('hex');
    await fsp.writeFile(path.join(dir, 'index', renamed), bytes);
    const damaged = await Repository.open(new LocalStorage(dir), 'pw');
    assert.match(String((damaged.indexErrors.get(renamed) as Error | undefined)?.message), /authentication failed/);
    assert.equal(damaged.index.size, 0);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('open passes over a key file under the same password that wraps another master key (left by an init that lost the race to write the config); a damaged config is still named', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-orphan-key-'));
  try {
    const storage = new LocalStorage(dir);
    const repo = await Repository.init(storage, 'pw');
    const { createKeyFile } = await import('./keys.js');
    const { newMasterKey } = await import('./crypto.js');
    const orphan = await createKeyFile(storage, 'pw', newMasterKey());
    // the orphan is listed first, whatever the directory's order
    const first = Object.create(storage) as LocalStorage;
    first.list = async (type) => (await storage.list(type)).sort((a, b) => (a.name === orphan ? -1 : b.name === orphan ? 1 : 0));
    assert.equal((await first.list('key'))[0]!.name, orphan);
    const again = await Repository.open(first, 'pw');
    assert.equal(again.config.id, repo.config.id);
    assert.equal(again.keyName, repo.keyName);
    assert.notEqual(again.keyName, orphan);
    await again.close();
    // a wrong password is still a wrong password, and a damaged config is still reported as the config's damage
    await assert.rejects(Repository.open(first, 'nope'), /wrong password|no key/i);
    const cfgPath = path.join(dir, objectPath('config', ''));
    const bytes = await fsp.readFile(cfgPath);
    bytes[bytes.length - 1]! ^= 1;
    await fsp.writeFile(cfgPath, bytes);
    await assert.rejects(Repository.open(first, 'pw'), /config: authentication failed/);
    await repo.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('init reads its config back: on a storage whose create-only write does not refuse (an S3 server ignoring If-None-Match), of two inits at once the one overwritten loses', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-init-race-'));
  try {
    const storage = new LocalStorage(dir);
    // both inits' config writes are held until both have arrived, then written one after the other, each "winning"
    const arrived: Array<() => Promise<void>> = [];
    let bothIn!: () => void;
    const gate = new Promise<void>((r) => (bothIn = r));
    const lax = Object.create(storage) as LocalStorage;
    lax.saveNew = async (type, name, data) => {
      arrived.push(() => storage.save(type, name, data));
      if (arrived.length === 2) {
        for (const write of arrived) await write();
        bothIn();
      }
      await gate;
      return true;
    };
    const { RepositoryExistsError } = await import('./repository.js');
    const settled = await Promise.allSettled([Repository.init(lax, 'pw'), Repository.init(lax, 'pw')]);
    const won = settled.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
    const lost = settled.flatMap((x) => (x.status === 'rejected' ? [x.reason as unknown] : []));
    assert.equal(won.length, 1, 'exactly one init wins');
    assert.ok(lost[0] instanceof RepositoryExistsError, String(lost[0]));
    // the winner's master key is the one the config is sealed with, and the loser's key file is gone
    const opened = await Repository.open(storage, 'pw');
    assert.equal(opened.config.id, won[0]!.config.id);
    assert.deepEqual(opened.key, won[0]!.key);
    assert.equal((await storage.list('key')).length, 1);
    await opened.close();
    await won[0]!.close();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
