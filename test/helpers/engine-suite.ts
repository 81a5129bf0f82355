import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { tmpDir, makeTree, describeTree, Rng, textBytes } from './tmp.js';
import { Repository } from '../../src/repo/repository.js';
import { backupPaths } from '../../src/engine/archiver.js';
import { restoreSnapshot } from '../../src/engine/restorer.js';
import { backupStream, restoreStream } from '../../src/sources/stream.js';
import { checkRepository } from '../../src/verify/check.js';
import { prune } from '../../src/repo/prune.js';
import { createKeyFile } from '../../src/repo/keys.js';
import { WrongPasswordError, NoRepositoryError, LockError } from '../../src/errors.js';
import type { Storage } from '../../src/storage/types.js';

export async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for (const e of await fsp.readdir(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) total += (await fsp.stat(path.join(e.parentPath, e.name))).size;
  }
  return total;
}

export async function readAll(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Run the engine suite against a storage factory (local here; S3 in storage-s3 tests). */
export function engineSuite(name: string, makeStorage: (dir: string) => Promise<{ storage: () => Storage; packDir?: string }>): void {
  describe(`repository engine (${name})`, () => {
    let t: ReturnType<typeof tmpDir>;
    before(() => {
      t = tmpDir();
    });
    after(() => t.cleanup());

    test('round trip of a generated tree: content and metadata byte for byte', async () => {
      const src = path.join(t.dir, 'src-rt');
      await makeTree(src, { files: 2500, seed: 1 });
      // a multi-chunk file and a file exactly at the small-file threshold
      await fsp.writeFile(path.join(src, 'big.bin'), new Rng(7).bytes(5 * 1024 * 1024 + 123));
      await fsp.writeFile(path.join(src, 'edge.bin'), new Rng(8).bytes(512 * 1024));
      const { storage } = await makeStorage(path.join(t.dir, 'repo-rt'));
      const repo = await Repository.init(storage(), 'secret');
      const r = await backupPaths(repo, { paths: [src] });
      assert.equal(r.summary.errors, 0);
      assert.ok(r.summary.filesNew > 2000, `files: ${r.summary.filesNew}`);
      await repo.close();

      const repo2 = await Repository.open(storage(), 'secret');
      const snap = await repo2.findSnapshot('latest');
      const out = path.join(t.dir, 'out-rt');
      const rs = await restoreSnapshot(repo2, snap, { target: out });
      assert.deepEqual(rs.errors, []);
      assert.equal(rs.verified, rs.files);
      const a = await describeTree(src);
      const b = await describeTree(path.join(out, src));
      assert.equal(b.size, a.size);
      for (const [k, v] of a) assert.deepEqual(b.get(k), v, `entry ${k}`);

      // sub-path restore
      const out2 = path.join(t.dir, 'out-sub');
      const sub = [...a.entries()].find(([, v]) => v.type === 'dir')![0];
      await restoreSnapshot(repo2, snap, { target: out2, subpath: path.join(src, sub) });
      const c = await describeTree(out2);
      for (const [k, v] of c) assert.deepEqual(v, a.get(`${sub}/${k}`), `sub entry ${k}`);
      const check = await checkRepository(repo2, { readData: true });
      assert.deepEqual(check.problems, []);
      await repo2.close();
    });

    test('dedup: a second backup of the same data adds < 1%, unchanged files are not re-read', async () => {
      const src = path.join(t.dir, 'src-dd');
      await makeTree(src, { files: 300, seed: 2, maxSize: 256 * 1024 });
      const { storage, packDir } = await makeStorage(path.join(t.dir, 'repo-dd'));
      const repo = await Repository.init(storage(), 'pw');
      const r1 = await backupPaths(repo, { paths: [src] });
      const r2 = await backupPaths(repo, { paths: [src] });
      assert.equal(r2.summary.bytesRead, 0, 'unchanged files must not be re-read');
      assert.ok(r2.summary.filesUnmodified > 250);
      assert.ok(r2.summary.dataAdded < r1.summary.dataAdded * 0.01, `second backup added ${r2.summary.dataAdded}`);
      // the same content under another path is deduplicated too
      const copy = path.join(t.dir, 'src-dd-copy');
      await fsp.cp(src, copy, { recursive: true });
      const r3 = await backupPaths(repo, { paths: [copy] });
      assert.ok(r3.summary.bytesRead > 0);
      assert.ok(r3.summary.dataAdded < r1.summary.dataAdded * 0.01, `copy added ${r3.summary.dataAdded}`);
      if (packDir) assert.ok((await dirSize(packDir)) < r1.summary.dataAdded * 1.05);
      await repo.close();
    });

    test('delta blobs: 10 versions of a dump with 1% of lines changed, chains bounded, all restore', async () => {
      const { storage } = await makeStorage(path.join(t.dir, 'repo-delta'));
      const repo = await Repository.init(storage(), 'pw');
      const rng = new Rng(3);
      const lines = textBytes(12 * 1024 * 1024, rng).toString().split('\n');
      const versions: Buffer[] = [];
      const ids: string[] = [];
      let firstAdded = 0;
      let laterAdded = 0;
      for (let v = 0; v < 10; v++) {
        if (v > 0) for (let i = v; i < lines.length; i += 100) lines[i] = `${i}\tupdated v${v} ${rng.int(1e9)}`;
        const data = Buffer.from(lines.join('\n'));
        versions.push(data);
        const r = await backupStream(repo, Readable.from([data]), { filename: 'db.sql', source: { kind: 'command', name: 'db' } });
        ids.push(r.snapshotId);
        if (v === 0) firstAdded = r.summary.dataAdded;
        else {
          assert.ok(r.summary.blobsDelta > 0, `version ${v} stored no deltas`);
          // A version whose chain is at max depth is stored against the chain's root (more changes
          // accumulated), and a chunk whose delta against that root is over 40% of the root is stored
          // in full as a new root (roots renewed, repo/repository.ts chooseBases). Here every chunk
          // changes in every version, so the chains advance in step and may all renew in one version
          // (which chunk gets which base depends on timing: under CI's load one version stored 61% of
          // the first). A single version may cost up to a fresh copy, never more; the average must
          // stay small (below).
          assert.ok(r.summary.dataAdded < firstAdded, `version ${v} added ${r.summary.dataAdded} vs first ${firstAdded}`);
          laterAdded += r.summary.dataAdded;
        }
      }
      assert.ok(laterAdded / 9 < firstAdded * 0.15, `versions 1-9 added ${laterAdded} in total vs first ${firstAdded}`);
      for (const [, e] of repo.index.values()) assert.ok(e.depth <= repo.config.maxDeltaDepth, `depth ${e.depth}`);
      for (let v = 0; v < 10; v++) {
        const got = await readAll(await restoreStream(repo, ids[v]!));
        assert.ok(got.equals(versions[v]!), `version ${v} differs after restore`);
      }
      // forget the oldest versions and prune: bases still needed by kept deltas must survive
      for (const id of ids.slice(0, 7)) await repo.removeSnapshot(id);
      await repo.close();
      const repo2 = await Repository.open(storage(), 'pw');
      const pr = await prune(repo2, { maxUnusedFraction: 0 });
      assert.ok(pr.blobsRemoved > 0, 'prune removed nothing');
      await repo2.close();
      const repo3 = await Repository.open(storage(), 'pw');
      for (let v = 7; v < 10; v++) {
        const got = await readAll(await restoreStream(repo3, ids[v]!));
        assert.ok(got.equals(versions[v]!), `version ${v} differs after prune`);
      }
      assert.deepEqual((await checkRepository(repo3, { readData: true })).problems, []);
      await repo3.close();
    });

    test('wrong password, missing repository, second init refused', async () => {
      const { storage } = await makeStorage(path.join(t.dir, 'repo-pw'));
      await assert.rejects(Repository.open(storage(), 'x'), NoRepositoryError);
      const repo = await Repository.init(storage(), 'right');
      await repo.close();
      await assert.rejects(Repository.open(storage(), 'wrong'), WrongPasswordError);
      await assert.rejects(Repository.init(storage(), 'right'), /already exists/);
      // several keys: a second password opens the same repository
      const r = await Repository.open(storage(), 'right');
      await createKeyFile(r.storage, 'second', r.key);
      await r.close();
      const r2 = await Repository.open(storage(), 'second');
      assert.equal(r2.config.id, r.config.id);
      await r2.close();
    });

    test('locks: exclusive lock excludes shared and exclusive', async () => {
      const { storage } = await makeStorage(path.join(t.dir, 'repo-lock'));
      const repo = await Repository.init(storage(), 'pw');
      const ex = await repo.lock(true, 'prune');
      await assert.rejects(repo.lock(false, 'backup'), LockError);
      await assert.rejects(repo.lock(true, 'prune'), LockError);
      await ex.release();
      const sh1 = await repo.lock(false, 'backup');
      const sh2 = await repo.lock(false, 'backup');
      await assert.rejects(repo.lock(true, 'prune'), LockError);
      await sh1.release();
      await sh2.release();
      const ex2 = await repo.lock(true, 'prune');
      await ex2.release();
      await repo.close();
    });
  });
}

