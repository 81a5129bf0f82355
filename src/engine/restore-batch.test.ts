import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Repository } from '../repo/repository.js';
import { Repository as RepositoryClass } from '../repo/repository.js';
import { TempFile } from './file-writer.js';
import { type BatchFile, RestoreBatcher } from './restore-batch.js';

const addonFile = fileURLToPath(new URL('../../../native/build/Release/codec.node', import.meta.url));
const noAddon =
  process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addonFile) ? 'native/ did not build (no compiler): nothing to free early' : false;

/**
 * A restore's loose loads (delta chunks: one repository load each) are freed once written
 * (Repository.release), not left to the collector: a delta-chain dump's restore held ~40 MB
 * more peak RSS without it. Each plaintext must be released exactly once, and only after every
 * write of it finished: the stub's release wipes the buffer, as freeing it would.
 */
test('RestoreBatcher releases each loose-loaded chunk once, after it is written everywhere', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-rbatch-'));
  try {
    // a: large (written through the thread pool), b: small (written in place); a is used twice
    const content: Record<string, Buffer> = { a: Buffer.alloc(300_000, 0x61), b: Buffer.alloc(1000, 0x62) };
    const loaded = new Map<Buffer, string>();
    const released: string[] = [];
    const repo = {
      fullBlobLocation: () => undefined, // every chunk a loose load (as a delta chunk is)
      packBytes: async () => 0,
      loadOwnedBlob: async (id: string) => {
        const b = Buffer.from(content[id]!);
        loaded.set(b, id);
        return b;
      },
      release: (b: Buffer) => {
        released.push(loaded.get(b) ?? '?');
        b.fill(0); // what freeing it would do to a write still in flight
      },
    } as unknown as Repository;
    const file = (name: string, ids: string[]): { f: BatchFile; dst: string } => {
      const dst = join(dir, name);
      let at = 0;
      const pieces = ids.map((id) => {
        const p = [[at, content[id]!.length] as const];
        at += content[id]!.length;
        return p;
      });
      return {
        dst,
        f: {
          what: name,
          content: ids,
          sizes: ids.map((id) => content[id]!.length),
          pieces,
          open: () => TempFile.create(Buffer.from(dir)),
          finish: (tf) => tf.publish(Buffer.from(dst)),
        },
      };
    };
    const files = [file('one', ['a', 'b']), file('two', ['b', 'a', 'a'])];
    const batcher = new RestoreBatcher(repo, { written: () => {}, dropped: () => {} });
    const done: Array<Promise<void>> = [];
    for (const { f } of files) done.push((await batcher.add(f)).done);
    await batcher.drain();
    await Promise.all(done);
    assert.deepEqual(released.sort(), ['a', 'b']);
    for (const { f, dst } of files) {
      assert.deepEqual(readFileSync(dst), Buffer.concat(f.content.map((id) => content[id]!)), f.what);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Repository.release frees a whole buffer at once (C codec), leaves views and shared memory alone; without the addon it does nothing', { skip: noAddon }, () => {
  const release = (b: Buffer, self = { released: 0 }) => {
    RepositoryClass.prototype.release.call(self as unknown as Repository, b);
    return self.released;
  };
  const whole = Buffer.allocUnsafeSlow(100_000);
  assert.equal(release(whole), 1);
  assert.equal(whole.byteLength, 0);
  assert.equal(whole.buffer.byteLength, 0);
  const big = Buffer.allocUnsafeSlow(100_000);
  const view = big.subarray(10, 1000);
  assert.equal(release(view), 0);
  assert.equal(big.byteLength, 100_000);
  const shared = Buffer.from(new SharedArrayBuffer(1000));
  assert.equal(release(shared), 0);
  assert.equal(shared.byteLength, 1000);
  const saved = process.env.LIFEBOAT_NO_NATIVE;
  process.env.LIFEBOAT_NO_NATIVE = '1';
  try {
    const kept = Buffer.allocUnsafeSlow(100_000);
    assert.equal(release(kept), 0);
    assert.equal(kept.byteLength, 100_000);
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_NO_NATIVE;
    else process.env.LIFEBOAT_NO_NATIVE = saved;
  }
});

/**
 * Ranged reads go into READS (3) read buffers reused from read to read, not a new buffer per
 * read (each a fresh mapping the kernel zeroes: ~730 in a 1.2 GB restore). The decode is told
 * the chunk is kept (not freed or handed to a worker); a buffer whose read failed is never
 * handed out again (a read given up on at a deadline might still write into it).
 */
test('RestoreBatcher reuses its read buffers: at most 3 for many reads, and never one whose read failed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lb-rbatch-'));
  try {
    const MiB = 1024 * 1024;
    // 12 blobs of 1.5 MiB, 1 MiB apart in one pack: each is a ranged read of its own
    const n = 12;
    const size = 1.5 * MiB;
    const blobs = Array.from({ length: n }, (_, i) => ({ id: `b${i}`, offset: i * (size + MiB), bytes: Buffer.alloc(size, 0x41 + i) }));
    const pack = Buffer.alloc(n * (size + MiB));
    for (const b of blobs) b.bytes.copy(pack, b.offset);
    const into = new Set<ArrayBuffer | undefined>();
    const failed = new Set<ArrayBuffer>();
    let reads = 0;
    const kept: boolean[] = [];
    const repo = {
      fullBlobLocation: (id: string) => {
        const b = blobs.find((x) => x.id === id)!;
        return { pack: 'p', offset: b.offset, length: size, compression: 0, rawLength: size };
      },
      packBytes: async () => pack.length,
      readPackRange: async (_p: string, start: number, end: number, buf?: Buffer) => {
        assert.ok(buf && buf.length >= end - start, 'every ranged read gets a buffer to read into');
        assert.ok(!failed.has(buf.buffer as ArrayBuffer), 'a buffer whose read failed is handed out again');
        into.add(buf.buffer as ArrayBuffer);
        await new Promise((r) => setImmediate(r));
        if (reads++ === 4) {
          buf.fill(0xee); // a failed read may leave anything behind
          failed.add(buf.buffer as ArrayBuffer);
          throw new Error('storage gave up');
        }
        pack.copy(buf, 0, start, end);
        return buf.subarray(0, end - start);
      },
      decodeRange: async (chunk: Buffer, bs: Array<{ offset: number; length: number }>, _slabs: unknown, keep: boolean) => {
        kept.push(keep);
        await new Promise((r) => setImmediate(r));
        const out = bs.map((b) => Buffer.from(chunk.subarray(b.offset, b.offset + b.length))); // copied out, as the decode does
        return { blobs: out, slab: new ArrayBuffer(0) };
      },
    } as unknown as Repository;
    const files = blobs.map((b) => {
      const dst = join(dir, b.id);
      const f: BatchFile = {
        what: b.id,
        content: [b.id],
        sizes: [size],
        pieces: [[[0, size]]],
        open: () => TempFile.create(Buffer.from(dir)),
        finish: (tf) => tf.publish(Buffer.from(dst)),
      };
      return { f, dst, b };
    });
    const batcher = new RestoreBatcher(repo, { written: () => {}, dropped: () => {} });
    const done: Array<Promise<void>> = [];
    for (const { f } of files) {
      const d = (await batcher.add(f)).done;
      d.catch(() => {}); // looked at below
      done.push(d);
    }
    await batcher.drain();
    const results = await Promise.allSettled(done);
    assert.equal(reads, n);
    assert.equal(results.filter((r) => r.status === 'rejected').length, 1, 'the file of the failed read fails, and only it');
    for (let i = 0; i < n; i++) {
      if (results[i]!.status === 'rejected') continue;
      assert.deepEqual(readFileSync(files[i]!.dst), files[i]!.b.bytes, files[i]!.b.id);
    }
    assert.ok(kept.length === n - 1 && kept.every((k) => k), 'the decode is told the chunk is kept');
    // 3 reads in flight at most: 3 buffers, and one more for the one the failed read took out of use
    assert.ok(into.size <= 4, `${into.size} read buffers for ${n} reads`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
