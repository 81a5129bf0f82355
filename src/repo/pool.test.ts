import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { WorkerPool } from './pool.js';
import { BlobCodec } from './codec.js';
import { blobId, newMasterKey } from './crypto.js';

function text(n: number): Buffer {
  const lines: string[] = [];
  for (let i = 0, len = 0; len < n; i++) {
    const l = `row ${i}\tcustomer-${(i * 31) % 997}\tshipped\n`;
    lines.push(l);
    len += l.length;
  }
  return Buffer.from(lines.join('')).subarray(0, n);
}

test('encodeBatch: many blobs in one message decode back; the sketch only for compressible data', async () => {
  const key = newMasterKey();
  const pool = new WorkerPool(key, 3, 1);
  try {
    const inputs = [randomBytes(100_000), text(100_000), Buffer.alloc(0), text(3000), randomBytes(70_000)];
    const copies = inputs.map((b) => Buffer.from(b)); // the originals are transferred
    const out = await pool.encodeBatch(inputs.map((data) => ({ data, sketch: true })));
    assert.equal(out.length, inputs.length);
    const codec = new BlobCodec(key.encKey, 3);
    out.forEach((r, i) => {
      assert.ok(!(r instanceof Error), String(r));
      const dec = codec.decode(r.sealed, r.compression, copies[i]!.length, `item ${i}`);
      assert.equal(blobId(key.idKey, dec), blobId(key.idKey, copies[i]!));
    });
    const ok = out as Array<{ compression: number; sf?: number[] }>;
    // random data is stored as is and gets no sketch; compressible text gets one
    assert.equal(ok[0]!.compression, 0);
    assert.equal(ok[0]!.sf, undefined);
    assert.equal(ok[4]!.sf, undefined);
    assert.equal(ok[1]!.compression, 1);
    assert.equal(ok[1]!.sf?.length, 12);
    // a plain encode asks for the sketch the same way
    const single = await pool.encode(randomBytes(100_000), undefined, true);
    assert.equal(single.sf, undefined);
    const single2 = await pool.encode(text(100_000), undefined, true);
    assert.equal(single2.sf?.length, 12);
  } finally {
    await pool.close();
  }
});

test('close() lets the jobs in flight finish, then ends the threads (a failed restore leaves its read-ahead running)', async () => {
  const key = newMasterKey();
  const codec = new BlobCodec(key.encKey, 3);
  for (const script of ['worker.js', 'decode-worker.js'] as const) {
    const pool = new WorkerPool(key, 3, 2, script);
    const plain = Array.from({ length: 12 }, (_, i) => text(200_000 + i * 1000));
    const sealed = plain.map((p) => codec.encode(p));
    const jobs = sealed.map((s, i) => pool.decode(s.sealed, s.compression, plain[i]!.length, `blob ${i}`));
    await pool.close(); // nobody awaited the decodes: they must still settle, with their data
    const out = await Promise.all(jobs);
    out.forEach((r, i) => assert.ok(r.data.equals(plain[i]!), `${script}: job ${i} returned wrong data`));
    await assert.rejects(pool.decode(sealed[0]!.sealed, sealed[0]!.compression, plain[0]!.length, 'late'), /worker pool is closed/);
  }
});

test('workers start on demand: none before the first job, one for jobs one at a time, more only when all started ones are busy', async () => {
  const key = newMasterKey();
  const pool = new WorkerPool(key, 3, 3);
  try {
    assert.equal(pool.size, 3);
    assert.equal(pool.started, 0);
    const codec = new BlobCodec(key.encKey, 3);
    for (let i = 0; i < 3; i++) {
      const data = text(80_000 + i);
      const r = await pool.encode(Buffer.from(data));
      assert.equal(blobId(key.idKey, codec.decode(r.sealed, r.compression, data.length, 'one')), blobId(key.idKey, data));
    }
    assert.equal(pool.started, 1);
    const many = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.encode(text(90_000 + i))));
    assert.equal(many.length, 6);
    assert.equal(pool.started, 3);
  } finally {
    await pool.close();
  }
});

test('decode: jobs sent to the workers are bounded by bytes (input + dictionary + output), all still answered', async () => {
  const key = newMasterKey();
  const pool = new WorkerPool(key, 3, 1, 'decode-worker.js');
  try {
    const codec = new BlobCodec(key.encKey, 3);
    const raw = Array.from({ length: 8 }, () => randomBytes(3 * 1024 * 1024));
    // each job costs about 6 MiB (3 MiB sealed + 3 MiB output): at most 2 fit in the 12 MiB budget
    const jobs = raw.map((r, i) => {
      const e = codec.encode(r);
      return pool.decode(e.sealed, e.compression, r.length, `blob ${i}`).then((d) => {
        peak = Math.max(peak, pool.jobsInFlight);
        return d;
      });
    });
    let peak = 0;
    await new Promise((r) => setImmediate(r));
    peak = Math.max(peak, pool.jobsInFlight);
    const out = await Promise.all(jobs);
    out.forEach((d, i) => assert.equal(d.id, blobId(key.idKey, raw[i]!)));
    assert.ok(peak >= 1 && peak <= 2, `at most 2 decode jobs in flight, saw ${peak}`);
    assert.equal(pool.jobsInFlight, 0);
  } finally {
    await pool.close();
  }
});

test('a job whose buffer was already handed to a worker fails at once with a clear error (Node would drop the message and the job wait forever); the pool still works and closes', { timeout: 20_000 }, async () => {
  const pool = new WorkerPool(newMasterKey(), 3, 1);
  try {
    const data = Buffer.from(text(100_000)); // a buffer of its own
    await pool.encode(data); // transferred: data is now detached
    assert.equal(data.buffer.byteLength, 0);
    await assert.rejects(pool.encode(data), /worker job encode could not be handed to a worker thread: .*detached/);
    assert.equal(pool.jobsInFlight, 0);
    const again = await pool.encode(text(50_000));
    assert.equal(again.compression, 1);
  } finally {
    await pool.close();
  }
});
