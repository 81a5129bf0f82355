import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import { hmacSha256Async } from '../util/stream-hash.js';
import { BaseFinder, ContentWriter, readContent, storeReads } from './content.js';
import { Repository } from './repository.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

const blobIdAsyncAvailable = () => hmacSha256Async(Buffer.alloc(32), Buffer.alloc(1)) !== undefined;

const parent = { content: ['a', 'b', 'c', 'd'], sizes: [100, 200, 100, 50] };

test('BaseFinder: the parent chunk at a position, clamped to the last', () => {
  const f = new BaseFinder(parent);
  assert.equal(f.at(0), 'a');
  assert.equal(f.at(99), 'a');
  assert.equal(f.at(100), 'b');
  assert.equal(f.at(399), 'c');
  assert.equal(f.at(10_000), 'd');
  assert.equal(f.parentStart('c'), 300);
  assert.equal(f.parentStart('zzz'), undefined);
});

test('BaseFinder: the two parent chunks overlapping a range the most, in stream order', () => {
  const f = new BaseFinder(parent);
  assert.deepEqual(f.covering(50, 150), ['a', 'b']);
  assert.deepEqual(f.covering(120, 280), ['b']);
  // three overlapping chunks: c (100 bytes) and b (90) beat d (40)
  assert.deepEqual(f.covering(210, 440), ['b', 'c']);
  assert.deepEqual(new BaseFinder({ content: [], sizes: [] }).covering(0, 10), []);
});

test('BaseFinder: one base when a single parent chunk covers nearly all of the range', () => {
  const f = new BaseFinder(parent);
  // b covers 195 of 205 bytes (95%): c is not worth loading
  assert.deepEqual(f.covering(105, 310), ['b']);
  // b covers 150 of 170 bytes (88%): both
  assert.deepEqual(f.covering(150, 320), ['b', 'c']);
});

test('ContentWriter: chunk ids computed on the thread pool (blobIdAsync) give the same content, in order, as ids on the main thread', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-content-async-id-'));
  try {
    // 7 MiB of random data, a repeat of its first 3 MiB (chunks found again: not new) and a small tail
    const a = randomBytes(7 << 20);
    const stream = Buffer.concat([a, a.subarray(0, 3 << 20), randomBytes(1000)]);
    const runs: Array<{ content: string[]; sizes: number[]; asyncIds: number; given: number }> = [];
    // one repository (the chunker's boundaries and the ids depend on its keys): thread-pool ids
    // first, when every chunk is new, then ids on the main thread for the same stream
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      const orig = repo.blobIdAsync.bind(repo);
      const save = repo.saveBlob.bind(repo);
      for (const native of [true, false]) {
        let asyncIds = 0;
        let given = 0;
        repo.blobIdAsync = (data) => {
          const p = native ? orig(data) : undefined;
          if (p) asyncIds++;
          return p;
        };
        repo.saveBlob = (type, data, opts = {}) => {
          if (opts.id !== undefined) {
            given++;
            assert.equal(opts.id, repo.blobId(data), 'the id given is the keyed hash of the chunk');
          }
          return save(type, data, opts);
        };
        const w = new ContentWriter(repo, undefined, { asyncIds: true });
        // pieces of uneven sizes, as a stream delivers them
        for (let at = 0; at < stream.length; ) {
          const n = Math.min(stream.length - at, 300_000 + (at % 7) * 100_000);
          await w.write(stream.subarray(at, at + n));
          at += n;
        }
        const c = await w.finish();
        await repo.flush();
        assert.equal(c.size, stream.length);
        let off = 0;
        const want = c.sizes.map((n) => repo.blobId(stream.subarray(off, (off += n))));
        assert.deepEqual(c.content, want, `native ${native}: every chunk's id, in stream order`);
        runs.push({ content: c.content, sizes: c.sizes, asyncIds, given });
      }
    } finally {
      await repo.close();
    }
    const [nat, js] = runs;
    assert.equal(js!.asyncIds, 0);
    if (blobIdAsyncAvailable()) {
      assert.ok(nat!.asyncIds >= 5, `ids on the thread pool: ${nat!.asyncIds}`);
      assert.equal(nat!.given, nat!.asyncIds);
    }
    assert.deepEqual(nat!.content, js!.content);
    assert.deepEqual(nat!.sizes, js!.sizes);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('storeReads: read straight into the chunker window; a piece shown to `seen` stays as read until its promise resolves (a slow hash sees the stream exactly)', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-content-reads-'));
  try {
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      // 24 MiB: the 9 MiB window slides its current chunk to the front several times
      const src = randomBytes(24 << 20);
      let at = 0;
      const read = async (into: Buffer): Promise<number> => {
        const n = Math.min(into.length, 1 << 20, src.length - at);
        src.copy(into, 0, at, at + n);
        at += n;
        return n;
      };
      const h = createHash('sha256');
      let seen = 0;
      const slowHash = (piece: Buffer) =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            h.update(piece);
            seen += piece.length;
            resolve();
          }, 25),
        );
      const r = await storeReads(repo, read, undefined, slowHash);
      await repo.flush();
      assert.equal(r.size, src.length);
      assert.equal(seen, src.length);
      assert.equal(h.digest('hex'), createHash('sha256').update(src).digest('hex'), 'every piece was seen as it was read');
      const back: Buffer[] = [];
      for await (const b of readContent(repo, r.content)) back.push(b);
      assert.ok(Buffer.concat(back).equals(src), 'stored as read');
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
