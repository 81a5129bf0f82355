import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LifeboatError } from '../errors.js';
import { Repository } from '../repo/repository.js';
import { LocalStorage } from '../storage/local.js';
import { FileInput, backupStream, restoreStream, stdinInput } from './stream.js';

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
