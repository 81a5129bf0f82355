import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { tmpDir, textBytes, Rng } from './helpers/tmp.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';
import { backupStream, restoreStream } from '../src/sources/stream.js';

/**
 * The backup's encode in C (native/encode.c, repo/native-encode-pool.ts) against the encode
 * worker (LIFEBOAT_NATIVE_ENCODE=0): two copies of one freshly made repository (the same keys
 * and chunker) back up the same tree and the same daily dump chain, one with each encoder; the
 * index entries (ids, types, sizes, compression kinds, delta bases, sketches, sealed lengths)
 * must be the same, each restores the source byte for byte, and each is read by the other
 * configuration. The C encoder starts no worker thread.
 */
const addonFile = new URL('../../native/build/Release/zdelta.node', import.meta.url).pathname;
const skip = process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addonFile) ? 'native/ did not build' : false;

async function withEnv<T>(env: Record<string, string | undefined>, f: () => Promise<T>): Promise<T> {
  const old: Record<string, string | undefined> = {};
  for (const k of Object.keys(env)) {
    old[k] = process.env[k];
    if (env[k] === undefined) delete process.env[k];
    else process.env[k] = env[k];
  }
  try {
    return await f();
  } finally {
    for (const k of Object.keys(old)) {
      if (old[k] === undefined) delete process.env[k];
      else process.env[k] = old[k];
    }
  }
}

/** Every index entry, comparable: sorted by id. */
function entries(repo: Repository): string[] {
  const out: string[] = [];
  for (const [id, e] of repo.index.values()) {
    out.push(JSON.stringify({ id, type: e.type, raw: e.rawLength, len: e.length, comp: e.compression, base: e.base, base2: e.base2, sf: e.sf }));
  }
  return out.sort();
}

async function makeTree(dir: string): Promise<void> {
  const rng = new Rng(11);
  await fsp.mkdir(path.join(dir, 'small'), { recursive: true });
  for (let i = 0; i < 300; i++) await fsp.writeFile(path.join(dir, 'small', `f${i}.txt`), textBytes(50 + ((i * 997) % 9000), rng));
  for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(dir, 'small', `r${i}.bin`), randomBytes(100 + i * 5000));
  for (let i = 0; i < 4; i++) await fsp.writeFile(path.join(dir, 'small', `mid${i}.txt`), textBytes(70_000 + i * 100_000, rng));
  await fsp.writeFile(path.join(dir, 'empty'), '');
  await fsp.writeFile(path.join(dir, 'big.txt'), textBytes(3_000_000, rng));
  await fsp.writeFile(path.join(dir, 'big.bin'), randomBytes(2_000_000));
  await fsp.symlink('big.txt', path.join(dir, 'link'));
}

/** Day `d` of a dump: the rows of day 0 with a few changed each day, and new rows at the end. */
function dump(d: number): Buffer {
  const rng = new Rng(7);
  const rows: string[] = [];
  for (let i = 0; i < 60_000; i++) rows.push(`INSERT INTO t VALUES (${i}, '${textBytes(40, rng).toString('latin1')}', ${(i * 7919) % 100003});`);
  for (let k = 1; k <= d; k++) {
    for (let j = 0; j < 30; j++) rows[(k * 7907 + j * 1931) % rows.length] = `UPDATE t SET v = ${k * 1000 + j} WHERE id = ${j}; -- day ${k}`;
    for (let j = 0; j < 500; j++) rows.push(`INSERT INTO t VALUES (${100_000 * k + j}, 'day ${k} row ${j}', ${j});`);
  }
  return Buffer.from(rows.join('\n') + '\n');
}

test('backups with the C encoder and with the encode worker: the same index entries, the same restores, each read by the other', { skip }, async () => {
  process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
  const t = tmpDir('lb-nencode-');
  try {
    const data = path.join(t.dir, 'data');
    await makeTree(data);
    const repoA = path.join(t.dir, 'repo-native');
    const repoB = path.join(t.dir, 'repo-worker');
    (await Repository.init(new LocalStorage(repoA), 'pw', { compressionLevel: 3 })).close();
    cpSync(repoA, repoB, { recursive: true });
    const days = [0, 1, 2, 3].map(dump);

    const run = async (dir: string, env: Record<string, string | undefined>) =>
      withEnv(env, async () => {
        let repo = await Repository.open(new LocalStorage(dir), 'pw');
        const first = await backupPaths(repo, { paths: [data] });
        let subtree = (await repo.loadSnapshot(first.snapshotId)).tree;
        for (const part of data.split('/').filter(Boolean)) subtree = (await repo.loadTree(subtree)).nodes.find((n) => n.name === part)!.subtree!;
        const workers = repo.workersStarted;
        const native = !!repo.nativeEncoder;
        await repo.close();
        for (const d of days) {
          repo = await Repository.open(new LocalStorage(dir), 'pw');
          await backupStream(repo, Readable.from([d.subarray(0, 1 << 20), d.subarray(1 << 20)]), { filename: 'dump.sql' });
          await repo.close();
        }
        repo = await Repository.open(new LocalStorage(dir), 'pw');
        const e = entries(repo);
        await repo.close();
        return { workers, native, e, subtree };
      });
    const a = await run(repoA, { LIFEBOAT_NATIVE_ENCODE: undefined });
    const b = await run(repoB, { LIFEBOAT_NATIVE_ENCODE: '0' });
    assert.ok(a.native, 'the C encoder loaded');
    assert.equal(a.workers, 0, 'the C encoder started no worker thread');
    assert.ok(!b.native && b.workers > 0, 'LIFEBOAT_NATIVE_ENCODE=0: the encode worker');
    // data blobs: the same entries; trees: as many, and the same tree for the backed-up directory
    // (the root's ancestors and the dump snapshots' trees hold times that differ between the runs)
    const data_ = (e: string[]) => e.filter((x) => x.includes('"type":"data"'));
    assert.deepEqual(data_(a.e), data_(b.e), 'the same index entries');
    assert.equal(a.e.length, b.e.length);
    assert.equal(a.subtree, b.subtree, 'the same tree for the data');
    const kinds = new Set(a.e.map((x) => (JSON.parse(x) as { comp: number }).comp));
    assert.deepEqual([...kinds].sort(), [0, 1, 2], 'stored, compressed and delta blobs all written');
    assert.ok(a.e.some((x) => (JSON.parse(x) as { sf?: number[] }).sf), 'sketches written');

    // each repository restored by the C read path and by the JavaScript one (LIFEBOAT_NO_NATIVE=1)
    for (const [dir, env] of [
      [repoA, { LIFEBOAT_NO_NATIVE: '1' }],
      [repoB, { LIFEBOAT_NO_NATIVE: undefined }],
      [repoA, { LIFEBOAT_NO_NATIVE: undefined }],
    ] as const) {
      await withEnv(env, async () => {
        const repo = await Repository.open(new LocalStorage(dir), 'pw');
        const snaps = (await repo.listSnapshots()).sort((x, y) => x.time.localeCompare(y.time));
        assert.equal(snaps.length, 5);
        const out = path.join(t.dir, 'out');
        await fsp.rm(out, { recursive: true, force: true });
        const s = await restoreSnapshot(repo, snaps[0]!, { target: out, subpath: data });
        assert.deepEqual(s.errors, []);
        for (const f of ['big.txt', 'big.bin', 'empty', 'small/f7.txt', 'small/r19.bin', 'small/mid3.txt']) {
          assert.deepEqual(await fsp.readFile(path.join(out, f)), await fsp.readFile(path.join(data, f)), `${dir}: ${f}`);
        }
        assert.equal((await fsp.readdir(path.join(out, 'small'))).length, 324);
        assert.equal(await fsp.readlink(path.join(out, 'link')), 'big.txt');
        for (const [i, snap] of snaps.slice(1).entries()) {
          const chunks: Buffer[] = [];
          for await (const c of await restoreStream(repo, snap.id)) chunks.push(c as Buffer);
          assert.ok(Buffer.concat(chunks).equals(days[i]!), `${dir}: dump day ${i}`);
        }
        await repo.close();
      });
    }
  } finally {
    t.cleanup();
  }
});
