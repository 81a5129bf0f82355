import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { lstatSync, promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { BlobCodec } from '../repo/codec.js';
import { blobId, newMasterKey } from '../repo/crypto.js';
import { WorkerPool } from '../repo/pool.js';
import { SMALL_FILES_WORKER, SMALL_FILE_MAX, STAT_FIELDS, SmallFileReader, packPaths, unpackPaths } from './small-files.js';

test('packPaths / unpackPaths: raw path bytes round-trip; malformed requests are refused', () => {
  const paths = [Buffer.from('/a/b'), Buffer.from([0x2f, 0x63, 0x61, 0x66, 0xe9]), Buffer.alloc(0), Buffer.from('/x')];
  const packed = packPaths(paths);
  assert.deepEqual(unpackPaths(packed), paths);
  assert.equal(unpackPaths({ pathBytes: packed.pathBytes, pathEnds: [3, 2] }), undefined);
  assert.equal(unpackPaths({ pathBytes: packed.pathBytes, pathEnds: [packed.pathBytes.length + 1] }), undefined);
  assert.equal(unpackPaths({ pathBytes: 'x', pathEnds: [] }), undefined);
});

test('SmallFileReader: content read, hashed and sealed in a worker; errors, growth and shrinking reported per file; lstat in batches', { timeout: 60_000 }, async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-smallfiles-'));
  const key = newMasterKey();
  const reader = new SmallFileReader(new WorkerPool(key, 3, 1, 'worker.js', SMALL_FILES_WORKER), true);
  try {
    const codec = new BlobCodec(key.encKey, 3);
    const files = [randomBytes(3000), Buffer.alloc(SMALL_FILE_MAX, 'text '), Buffer.alloc(0), randomBytes(1)];
    const names = files.map((_, i) => Buffer.from(path.join(dir, `f${i}`)));
    for (let i = 0; i < files.length; i++) await fsp.writeFile(names[i]!, files[i]!);
    await fsp.writeFile(path.join(dir, 'grew'), randomBytes(500));
    await fsp.writeFile(path.join(dir, 'shrank'), randomBytes(400));
    await fsp.symlink(names[0]!.toString(), path.join(dir, 'link'));
    execFileSync('mkfifo', [path.join(dir, 'fifo')]); // in the place of a file the scan saw: never waits for a writer
    const reads = await Promise.all([
      ...names.map((n, i) => reader.read(n, files[i]!.length)),
      reader.read(Buffer.from(path.join(dir, 'grew')), 499),
      reader.read(Buffer.from(path.join(dir, 'shrank')), 401),
      reader.read(Buffer.from(path.join(dir, 'missing')), 10),
      reader.read(Buffer.from(path.join(dir, 'link')), 10), // never follows a symlink
      reader.read(Buffer.from(path.join(dir, 'fifo')), 10),
    ]);
    for (let i = 0; i < files.length; i++) {
      const r = reads[i]!;
      assert.equal(r.kind, 'ok');
      if (r.kind !== 'ok') continue;
      assert.equal(r.size, files[i]!.length);
      if (files[i]!.length === 0) {
        assert.equal(r.blob, undefined);
        continue;
      }
      assert.equal(r.blob!.id, blobId(key.idKey, files[i]!));
      assert.deepEqual(codec.decode(r.blob!.sealed, r.blob!.compression, files[i]!.length, 'test'), files[i]);
    }
    assert.equal(reads[1]!.kind === 'ok' && reads[1]!.blob!.compression, 1, 'compressible content is compressed');
    assert.equal(reads[4]!.kind, 'grew');
    const shrank = reads[5]!;
    assert.ok(shrank.kind === 'ok' && shrank.size === 400);
    const missing = reads[6]!;
    assert.ok(missing.kind === 'error' && missing.error.code === 'ENOENT');
    const link = reads[7]!;
    assert.ok(link.kind === 'error' && link.error.code === 'ELOOP');
    assert.equal(reads[8]!.kind, 'grew', 'no regular file: read again (and reported) by the archiver\'s own path');

    // lstat: the worker runs by now, so these go to it; every field as lstat gives it
    await fsp.mkdir(path.join(dir, 'sub'));
    const statPaths = [...names, Buffer.from(path.join(dir, 'link')), Buffer.from(path.join(dir, 'sub')), Buffer.from(path.join(dir, 'missing'))];
    const stats = await reader.lstatMany(statPaths);
    for (let i = 0; i < statPaths.length - 1; i++) {
      const got = stats[i]!;
      assert.ok(!(got instanceof Error));
      const want = lstatSync(statPaths[i]!, { bigint: true });
      for (const f of STAT_FIELDS) assert.equal(got[f], want[f], `${f} of ${statPaths[i]}`);
      for (const m of ['isFile', 'isDirectory', 'isSymbolicLink', 'isFIFO', 'isCharacterDevice', 'isBlockDevice', 'isSocket'] as const) assert.equal(got[m](), want[m](), m);
    }
    const gone = stats[statPaths.length - 1]!;
    assert.ok(gone instanceof Error && (gone as NodeJS.ErrnoException).code === 'ENOENT');
  } finally {
    await reader.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('SmallFileReader: files that queue up while the worker is busy go in batches of at most 1 MiB, never one message of them all', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-smallfiles-'));
  const key = newMasterKey();
  const pool = new WorkerPool(key, 3, 1, 'worker.js', SMALL_FILES_WORKER);
  const reader = new SmallFileReader(pool, true);
  // the real pool; its messages recorded (the bytes of each read batch)
  const batches: number[] = [];
  const call = pool.call.bind(pool);
  pool.call = (<T>(msg: Record<string, unknown>, transfer?: ArrayBuffer[]) => {
    if (msg.op === 'read') batches.push((msg.sizes as number[]).reduce((a, b) => a + b, 0));
    return call<T>(msg, transfer);
  }) as typeof pool.call;
  try {
    const files = Array.from({ length: 80 }, (_, i) => Buffer.alloc(100_000, `file ${i} `));
    const names = files.map((_, i) => Buffer.from(path.join(dir, `f${i}`)));
    for (let i = 0; i < files.length; i++) await fsp.writeFile(names[i]!, files[i]!);
    // all queued in one turn: more than the batches allowed on their way at once
    const reads = await Promise.all(names.map((n, i) => reader.read(n, files[i]!.length)));
    reads.forEach((r, i) => assert.ok(r.kind === 'ok' && r.size === files[i]!.length && r.blob!.id === blobId(key.idKey, files[i]!)));
    assert.equal(batches.reduce((a, b) => a + b, 0), 80 * 100_000, 'every file read once');
    assert.ok(Math.max(...batches) <= 1024 * 1024, `batches of ${batches.join(', ')} bytes`);
  } finally {
    await reader.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('SmallFileReader: extended attributes of small files read in the workers, with the native check for none and without it', async (t) => {
  const xattr = await import('fs-xattr');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-smallfiles-xa-'));
  const saved = process.env.LIFEBOAT_NO_NATIVE;
  try {
    await fsp.writeFile(path.join(dir, 'with'), 'a');
    await fsp.writeFile(path.join(dir, 'without'), 'b');
    try {
      await xattr.setAttribute(path.join(dir, 'with'), 'user.color', 'blue');
    } catch (err) {
      t.skip(`extended attributes not supported here: ${(err as Error).message}`);
      return;
    }
    for (const noNative of [false, true]) {
      // a worker reads the environment it is started with
      if (noNative) process.env.LIFEBOAT_NO_NATIVE = '1';
      else delete process.env.LIFEBOAT_NO_NATIVE;
      const reader = new SmallFileReader(new WorkerPool(newMasterKey(), 3, 1, 'worker.js', SMALL_FILES_WORKER), true);
      try {
        const [w, wo] = await Promise.all([reader.read(Buffer.from(path.join(dir, 'with')), 1), reader.read(Buffer.from(path.join(dir, 'without')), 1)]);
        assert.ok(w!.kind === 'ok' && wo!.kind === 'ok');
        assert.deepEqual(w.kind === 'ok' && w.xattrs, [{ name: 'user.color', value: Buffer.from('blue').toString('base64') }], `noNative=${noNative}`);
        assert.equal(wo.kind === 'ok' && wo.xattrs, undefined);
      } finally {
        await reader.close();
      }
    }
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_NO_NATIVE;
    else process.env.LIFEBOAT_NO_NATIVE = saved;
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
