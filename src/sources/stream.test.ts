import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import { Repository } from '../repo/repository.js';
import { LocalStorage } from '../storage/local.js';
import { PassThrough } from 'node:stream';
import { countFullCollections } from '../../test/helpers/gc-count.js';
import { spawnTool } from './proc.js';
import { StreamSha256 } from '../util/stream-hash.js';
import { heapTrimStats } from '../util/heap-trim.js';
import { FileInput, StreamMeter, backupStream, restoreStream, stdinInput, streamChunks, streamHeapWatch } from './stream.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

test('standard input from a file is read into the chunker from where it stands, hashed and stored whole; an abort stops the reads and writes no snapshot', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-stream-fileinput-'));
  try {
    const file = path.join(dir, 'dump.bin');
    // several 1 MiB reads, a short last one; then a second version with a few bytes changed (a parent: deltas)
    const v1 = Buffer.concat([randomBytes(3 << 20), Buffer.from('row\n'.repeat(600_000)), randomBytes(777)]);
    const v2 = Buffer.from(v1);
    for (let at = 100_000; at < v2.length; at += 1_000_003) v2[at] = v2[at]! ^ 0xff;
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      const skipped = 4321;
      for (const v of [v1, v2]) {
        await fsp.writeFile(file, v);
        const fh = await fsp.open(file, 'r');
        try {
          await fh.read(Buffer.alloc(skipped), 0, skipped, null); // the shell left the file here
          const input = stdinInput(fh.fd);
          assert.ok(input instanceof FileInput, 'a regular file is read as a file');
          let seen = 0;
          const r = await backupStream(repo, input, { filename: 'dump.bin', onBytes: (n) => (seen += n) });
          const want = v.subarray(skipped);
          assert.deepEqual(r.stream, { bytes: want.length, sha256: sha256(want) });
          assert.equal(seen, want.length, 'every byte read is reported');
          const back: Buffer[] = [];
          for await (const b of await restoreStream(repo, r.snapshotId)) back.push(b as Buffer);
          assert.ok(Buffer.concat(back).equals(want), 'restored bytes');
          if (v === v2) assert.ok(r.summary.blobsDelta > 0 && r.parent, 'the second version is stored as deltas on the first');
        } finally {
          await fh.close();
        }
      }
      const fh = await fsp.open(file, 'r');
      try {
        const ac = new AbortController();
        await assert.rejects(
          backupStream(repo, new FileInput(fh.fd), { filename: 'other.bin', signal: ac.signal, onBytes: () => ac.abort(new Error('stopped by the test')) }),
          (e: unknown) => e instanceof LifeboatError && e.exitCode === 130 && /backup aborted: stopped by the test; no snapshot was written/.test(e.message),
        );
        const { bytesRead } = await fh.read(Buffer.alloc(4 << 20), 0, 4 << 20, null);
        assert.ok(bytesRead > 0, 'the reads stopped before the end of the file');
      } finally {
        await fh.close();
      }
      assert.equal((await repo.listSnapshots()).length, 2, 'no snapshot of the aborted backup');
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test("a tool's stdout read as it is: each piece is freed once the chunker and the stream hash are past it, and what is stored and hashed is the stream; a transformed stream's pieces are left alone", async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-stream-pieces-'));
  try {
    const file = path.join(dir, 'dump.bin');
    const data = Buffer.concat([randomBytes(8 << 20), Buffer.from('a row of a table\n'.repeat(700_000)), randomBytes(12345)]);
    await fsp.writeFile(file, data);
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      const pieces = Math.ceil(data.length / 65536); // a pipe's reads are at most 64 KiB
      for (const transform of [false, true]) {
        const run = spawnTool('/bin/cat', [file], { tool: 'cat', ...(transform ? { transform: new PassThrough() } : {}) });
        const before = repo.released;
        const r = await backupStream(repo, run.stream, { filename: `dump${transform ? 2 : 1}.bin`, finalize: async () => void (await run.done) });
        assert.deepEqual(r.stream, { bytes: data.length, sha256: sha256(data) }, 'the digest of the stream as it was read');
        const back: Buffer[] = [];
        for await (const b of await restoreStream(repo, r.snapshotId)) back.push(b as Buffer);
        assert.ok(Buffer.concat(back).equals(data), 'restored bytes');
        const freed = repo.released - before;
        // besides the pieces, the chunks (about 1 MiB each) are freed once encoded
        if (transform) assert.ok(freed < pieces / 4, `a transformed stream's pieces are left to the collector (${freed} freed)`);
        else assert.ok(freed >= pieces / 2, `most of the ${pieces} pieces are freed (${freed})`);
      }
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a stream backup runs a full collection whenever the heap grew by LIFEBOAT_STREAM_HEAP_GC_MB (default 8; 0: never)', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-stream-heap-gc-'));
  const saved = process.env.LIFEBOAT_STREAM_HEAP_GC_MB;
  try {
    assert.equal(streamHeapWatch({}) !== undefined, true, 'on by default');
    assert.equal(streamHeapWatch({ LIFEBOAT_STREAM_HEAP_GC_MB: '0' }), undefined, '0: no watch');
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      const data = Buffer.from('a row of a table, then some more of its columns\n'.repeat(500_000)); // ~24 MiB
      // onBytes keeps garbage a while, as a stream's pieces and their bookkeeping live past a few minor collections
      const run = async (capMb: string, name: string) => {
        process.env.LIFEBOAT_STREAM_HEAP_GC_MB = capMb;
        const count = countFullCollections(true);
        let held: unknown[] = [];
        const input = new PassThrough();
        const done = backupStream(repo, input, {
          filename: name,
          parent: 'none',
          onBytes: () => {
            held.push(Array.from({ length: 400 }, (_, i) => ({ i, s: `row ${i}` })));
            if (held.length >= 200) held = [];
          },
        });
        for (let at = 0; at < data.length; at += 65536) {
          if (!input.write(data.subarray(at, at + 65536))) await new Promise((r) => input.once('drain', r));
        }
        input.end();
        let r;
        try {
          r = await done;
        } finally {
          await count.stop();
        }
        assert.deepEqual(r.stream, { bytes: data.length, sha256: sha256(data) });
        return count.stop();
      };
      const capped = await run('1', 'capped.txt');
      const uncapped = await run('0', 'uncapped.txt');
      assert.ok(capped >= 5, `full collections asked for with a 1 MiB cap: ${capped}`);
      assert.equal(uncapped, 0, 'LIFEBOAT_STREAM_HEAP_GC_MB=0: none asked for');
    } finally {
      await repo.close();
    }
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_STREAM_HEAP_GC_MB;
    else process.env.LIFEBOAT_STREAM_HEAP_GC_MB = saved;
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

/** A stream hash that reports no more bytes hashed than the test lets it. */
class GatedHash extends StreamSha256 {
  gate = 0;
  override get hashedBytes(): number {
    return Math.min(super.hashedBytes, this.gate);
  }
}

test("a stream backup trims the C heap every 100 ms while it stores (LIFEBOAT_TRIM_MS: another interval, 0: none) and stops the trims when it ends", async (t) => {
  if (!heapTrimStats()) return t.skip('no native helper');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-stream-trim-'));
  const saved = process.env.LIFEBOAT_TRIM_MS;
  try {
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    /** A stream that takes ~400 ms to arrive; the trims' interval seen while it is stored, and the trims run meanwhile. */
    const slowBackup = async (name: string) => {
      const input = new PassThrough();
      const before = heapTrimStats()!.runs;
      let during = -1;
      const done = backupStream(repo, input, { filename: name, onBytes: () => (during = Math.max(during, heapTrimStats()!.intervalMs)) });
      for (let i = 0; i < 4; i++) {
        input.write(randomBytes(256 << 10));
        await new Promise((r) => setTimeout(r, 100));
      }
      input.end(randomBytes(1000));
      await done;
      return { during, runs: heapTrimStats()!.runs - before, after: heapTrimStats()!.intervalMs };
    };
    delete process.env.LIFEBOAT_TRIM_MS;
    const byDefault = await slowBackup('a.bin');
    assert.equal(byDefault.during, 100, 'trims every 100 ms while the stream is stored');
    assert.ok(byDefault.runs >= 2, `trims ran while it was stored: ${byDefault.runs}`);
    assert.equal(byDefault.after, 0, 'stopped when the backup ended');
    process.env.LIFEBOAT_TRIM_MS = '0';
    const none = await slowBackup('b.bin');
    assert.deepEqual(none, { during: 0, runs: 0, after: 0 }, 'LIFEBOAT_TRIM_MS=0: no trims');
    process.env.LIFEBOAT_TRIM_MS = '50';
    assert.equal((await slowBackup('c.bin')).during, 50, 'LIFEBOAT_TRIM_MS sets the interval');
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_TRIM_MS;
    else process.env.LIFEBOAT_TRIM_MS = saved;
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('StreamMeter frees a piece only once both the chunker and the stream hash are past it', async () => {
  const freed: Buffer[] = [];
  const hash = new GatedHash();
  const meter = new StreamMeter(1 << 20, { may: () => true, release: (p) => void freed.push(p) }, hash);
  const pieces = [Buffer.alloc(1000, 1), Buffer.alloc(2000, 2), Buffer.alloc(3000, 3)];
  for (const p of pieces) meter.write(p);
  meter.end();
  const passed: Buffer[] = [];
  for await (const b of meter) passed.push(b as Buffer);
  assert.deepEqual(passed, pieces, 'passed on as they came');
  await hash.flushed();
  meter.consumed(1000);
  assert.equal(freed.length, 0, 'the chunker is past the first piece, the hash is not');
  hash.gate = 3000;
  meter.consumed(0);
  assert.deepEqual(freed, [pieces[0]], 'both past the first piece');
  meter.consumed(1999);
  assert.equal(freed.length, 1, 'the chunker is not past the second piece');
  meter.consumed(1);
  assert.deepEqual(freed, pieces.slice(0, 2));
  meter.consumed(3000);
  assert.equal(freed.length, 2, 'the hash is not past the third piece');
  hash.gate = Infinity;
  meter.consumed(0);
  assert.deepEqual(freed, pieces);
  assert.equal((await meter.digest()).bytes, 6000);
});

test('a stream restore passes each chunk on only once the stream hash is past it (the consumer may overwrite it), and with `owned` the consumer frees each chunk; a wrong recorded digest fails at the end', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-stream-chunks-'));
  try {
    const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
    try {
      // many chunks: the hash runs on the thread pool and lags behind the loads (32 MiB of random bytes: ~32 chunks of
      // 1 MiB on average; with 12 MiB, the repository's own chunker cut 8 or fewer now and then)
      const data = Buffer.concat([randomBytes(32 << 20), Buffer.from('row\n'.repeat(2_000_000))]);
      const input = new PassThrough();
      const done = backupStream(repo, input, { filename: 'dump.bin' });
      for (let at = 0; at < data.length; at += 1 << 20) input.write(data.subarray(at, at + (1 << 20)));
      input.end();
      const r = await done;
      assert.equal(r.stream?.sha256, sha256(data));
      for (const owned of [false, true]) {
        const released = repo.released;
        const chunks = await streamChunks(repo, r.snapshotId, { owned });
        const h = createHash('sha256');
        let n = 0;
        for await (const b of chunks) {
          h.update(b);
          n++;
          // the consumer is done with it: overwritten (a hash still to read it would see zeros), or freed
          if (owned) repo.release(b);
          else b.fill(0);
        }
        assert.ok(n > 8, `chunks: ${n}`);
        assert.equal(h.digest('hex'), sha256(data), 'the restored stream');
        if (owned) assert.equal(repo.released - released, n, 'every chunk was the consumer’s to free');
        else assert.equal(repo.released, released);
      }
      // a digest that does not match what is stored: the last chunk is held back and the restore fails
      const { id: _id, ...snap } = await repo.loadSnapshot(r.snapshotId);
      const bad = await repo.saveSnapshot({ ...snap, stream: { bytes: data.length, sha256: sha256(Buffer.from('other')) } });
      const got: Buffer[] = [];
      await assert.rejects(
        (async () => {
          for await (const b of await restoreStream(repo, bad)) got.push(b as Buffer);
        })(),
        /SHA-256 of the restored stream differs from the one recorded at backup time/,
      );
      assert.ok(Buffer.concat(got).length < data.length, 'the end of a wrong stream is never passed on');
    } finally {
      await repo.close();
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
