import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { PackFileWriter } from './pack-file.js';
import { PackWriter, parsePackHeader } from './pack.js';
import { Repository } from './repository.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

const key = randomBytes(32);
const blobs = Array.from({ length: 20 }, (_, i) => randomBytes(1000 + i * 777));
const entry = (i: number) => ({ id: createHash('sha256').update(String(i)).digest('hex'), type: 'data' as const, rawLength: blobs[i]!.length - 28, compression: 0 as const });

async function tmp(): Promise<string> {
  return fsp.mkdtemp(path.join(os.tmpdir(), 'lb-packfile-'));
}

for (const unlinked of [false, true]) {
  test(`a pack built in a ${unlinked ? 'unlinked' : 'named'} temporary file has the bytes and id of an in-memory pack, with concurrent adds`, async () => {
    const dir = await tmp();
    try {
      const mem = new PackWriter();
      blobs.forEach((b, i) => mem.add(entry(i), b));
      const want = mem.finalize(key);
      const w = new PackFileWriter(dir, unlinked);
      // all adds at once: each takes its place synchronously, the writes finish in any order
      await Promise.all(blobs.map((b, i) => w.add(entry(i), b)));
      assert.equal(w.count, blobs.length);
      const got = await w.finalize(key);
      assert.equal(got.size, want.data.length);
      const bytes = unlinked ? await w.read() : await fsp.readFile(w.path);
      assert.equal(bytes.length, got.size);
      // same blob area and header (the header's seal has its own random nonce)
      const area = blobs.reduce((n, b) => n + b.length, 0);
      assert.ok(bytes.subarray(0, area).equals(want.data.subarray(0, area)), 'same blobs at the same offsets');
      assert.deepEqual(parsePackHeader(key, bytes, 'p'), parsePackHeader(key, want.data, 'p'));
      assert.deepEqual(got.blobs, want.blobs);
      assert.equal(createHash('sha256').update(bytes).digest('hex'), got.id, 'the id is the SHA-256 of the file');
      assert.deepEqual(await fsp.readdir(dir), unlinked ? [] : [path.basename(w.path)], unlinked ? 'an unlinked file has no name' : 'the named file is there until discarded');
      await w.discard();
      assert.deepEqual(await fsp.readdir(dir), [], 'discard removes the temporary file');
      await w.discard(); // idempotent
    } finally {
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
}

/** A local storage seen through a wrapper without saveFile/tempDir (like S3, rclone, sftp). */
function withoutFiles(inner: Storage): Storage {
  return new Proxy(inner, {
    get(target, prop, recv) {
      if (prop === 'saveFile' || prop === 'tempDir') return undefined;
      const v = Reflect.get(target, prop, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

for (const files of [true, false]) {
  test(`backup packs ${files ? 'published by rename (local)' : 'uploaded from an unlinked temporary file'}: stored complete, nothing left behind, the failed pack's file removed`, async () => {
    const dir = await tmp();
    const tmpDir = path.join(dir, 'tmp');
    await fsp.mkdir(tmpDir);
    const oldTmp = process.env.LIFEBOAT_TMPDIR;
    process.env.LIFEBOAT_TMPDIR = tmpDir;
    const local = new LocalStorage(path.join(dir, 'repo'));
    let saves = 0;
    let fileSaves = 0;
    const counted = new Proxy(files ? local : withoutFiles(local), {
      get(target, prop, recv) {
        const v = Reflect.get(target, prop, recv) as unknown;
        if (prop === 'save') return (t: string, n: string, d: Uint8Array) => (t === 'data' && saves++, local.save(t as 'data', n, d));
        if (prop === 'saveFile' && v) return (t: string, n: string, f: string, s: number) => (fileSaves++, local.saveFile(t as 'data', n, f, s));
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    try {
      const repo = await Repository.init(counted, 'pw', { packSize: 1024 * 1024 });
      const data = Array.from({ length: 24 }, () => randomBytes(200 * 1024));
      try {
        for (const d of data) await repo.saveBlob('data', Buffer.from(d));
        await repo.flush();
        // an unflushed pack of a failed backup: its temporary file goes with the repository
        await repo.saveBlob('data', randomBytes(200 * 1024));
      } finally {
        await repo.close();
      }
      const packs = await local.list('data');
      assert.ok(packs.length >= 4, `${packs.length} packs`);
      assert.equal(files ? fileSaves : saves, packs.length, 'every pack went through the expected path');
      assert.equal(files ? saves : fileSaves, 0);
      const names = (await fsp.readdir(path.join(dir, 'repo', 'data'))).filter((n) => n.startsWith('.tmp-'));
      assert.deepEqual(names, [], 'no temporary pack file left in the repository');
      assert.deepEqual(await fsp.readdir(tmpDir), [], 'no temporary pack file left in LIFEBOAT_TMPDIR');
      const repo2 = await Repository.open(local, 'pw');
      try {
        for (const d of data) {
          const { id } = await repo2.saveBlob('data', Buffer.from(d)); // already there: not stored again
          assert.ok((await repo2.loadBlob(id)).equals(d));
        }
        assert.equal(repo2.stats.blobsNew, 0);
      } finally {
        await repo2.close();
      }
    } finally {
      if (oldTmp === undefined) delete process.env.LIFEBOAT_TMPDIR;
      else process.env.LIFEBOAT_TMPDIR = oldTmp;
      await fsp.rm(dir, { recursive: true, force: true });
    }
  });
}

test('blobs added in one turn are written together, and a short write goes on where it stopped: the file has every byte', async () => {
  const dir = await tmp();
  // the real FileHandle class, its writev counted, every other call made to stop short (a third of the bytes asked for)
  const probe = await fsp.open(path.join(dir, 'probe'), 'w');
  const proto = Object.getPrototypeOf(probe) as { writev: (bufs: Uint8Array[], pos?: number) => Promise<{ bytesWritten: number; buffers: Uint8Array[] }> };
  await probe.close();
  const orig = proto.writev;
  let calls = 0;
  proto.writev = function (this: unknown, bufs: Uint8Array[], pos?: number) {
    if (++calls % 2 === 0) return orig.call(this, bufs, pos);
    const total = bufs.reduce((n, b) => n + b.length, 0);
    let want = Math.max(1, Math.floor(total / 3));
    const part: Uint8Array[] = [];
    for (const b of bufs) {
      if (want <= 0) break;
      part.push(b.subarray(0, Math.min(b.length, want)));
      want -= b.length;
    }
    return orig.call(this, part, pos);
  };
  try {
    const mem = new PackWriter();
    blobs.forEach((b, i) => mem.add(entry(i), b));
    const want = mem.finalize(key);
    const w = new PackFileWriter(dir, false);
    await Promise.all(blobs.map((b, i) => w.add(entry(i), b)));
    const afterAdds = calls;
    // 20 blobs in one turn: one write, stopped short and continued (not 20 writes)
    assert.ok(afterAdds >= 2 && afterAdds <= 4, `${afterAdds} writev calls for ${blobs.length} blobs`);
    const got = await w.finalize(key);
    const bytes = await fsp.readFile(w.path);
    assert.equal(bytes.length, got.size);
    const area = blobs.reduce((n, b) => n + b.length, 0);
    assert.ok(bytes.subarray(0, area).equals(want.data.subarray(0, area)), 'every blob at its offset');
    assert.deepEqual(parsePackHeader(key, bytes, 'p'), parsePackHeader(key, want.data, 'p'));
    assert.equal(createHash('sha256').update(bytes).digest('hex'), got.id);
    await w.discard();
  } finally {
    proto.writev = orig;
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('pack entries share hidden classes (memory per blob awaiting its index file) and keep the header key order', async () => {
  // %HaveSameMap: V8's own answer, no memory threshold (flags set before the probe function is compiled)
  const v8 = await import('node:v8');
  v8.setFlagsFromString('--allow-natives-syntax');
  const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
  const dir = await tmp();
  try {
    const w = new PackFileWriter(dir, true);
    const mem = new PackWriter();
    const sealed = Buffer.alloc(64);
    // entries built as Repository.addEncoded builds them (a fresh object per blob)
    for (let i = 0; i < 500; i++) {
      const e = { ...entry(i % 20), id: createHash('sha256').update(`m${i}`).digest('hex') };
      await w.add(e, sealed);
      mem.add(e, sealed);
    }
    for (const list of [w.blobs, mem.blobs]) {
      let shared = 0;
      for (let i = 1; i < list.length; i++) if (sameMap(list[i]!, list[i - 1]!)) shared++;
      assert.equal(shared, list.length - 1, 'every plain entry has the same hidden class');
    }
    // the header's JSON keeps the order it always had (plain, delta and sketched entries)
    const d = new PackWriter();
    d.add({ id: 'a', type: 'data', rawLength: 5, compression: 2, base: 'b', base2: 'c', sf: [1, 2] }, sealed);
    d.add({ id: 'e', type: 'tree', rawLength: 6, compression: 1 }, sealed);
    assert.deepEqual(
      d.blobs.map((b) => Object.keys(b)),
      [
        ['id', 'type', 'rawLength', 'compression', 'base', 'base2', 'sf', 'offset', 'length'],
        ['id', 'type', 'rawLength', 'compression', 'offset', 'length'],
      ],
    );
    await w.discard();
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
