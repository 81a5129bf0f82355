import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { tmpDir, Rng, textBytes } from './helpers/tmp.js';
import { engineSuite, readAll } from './helpers/engine-suite.js';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';
import { backupStream, restoreStream } from '../src/sources/stream.js';
import { checkRepository } from '../src/verify/check.js';
import { prune, repairIndex } from '../src/repo/prune.js';
import { IntegrityError } from '../src/errors.js';

engineSuite('local', async (dir) => ({ storage: () => new LocalStorage(dir), packDir: path.join(dir, 'data') }));

describe('corruption is detected and reported by name (local)', () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir();
  });
  after(() => t.cleanup());

  async function setup(name: string) {
    const dir = path.join(t.dir, name);
    const repo = await Repository.init(new LocalStorage(dir), 'pw', { packSize: 1024 * 1024 });
    const a = path.join(t.dir, `${name}-a`);
    const b = path.join(t.dir, `${name}-b`);
    await fsp.mkdir(a, { recursive: true });
    await fsp.mkdir(b, { recursive: true });
    await fsp.writeFile(path.join(a, 'one.bin'), randomBytes(3 * 1024 * 1024));
    await fsp.writeFile(path.join(b, 'two.bin'), randomBytes(3 * 1024 * 1024));
    const sa = (await backupPaths(repo, { paths: [a] })).snapshotId;
    const sb = (await backupPaths(repo, { paths: [b] })).snapshotId;
    // find a data pack used only by snapshot a
    const snapA = await repo.loadSnapshot(sa);
    const tree = await repo.loadTree(snapA.tree);
    let node = tree.nodes[0]!;
    while (node.type === 'dir') node = (await repo.loadTree(node.subtree!)).nodes[0]!;
    const pack = repo.indexEntry(node.content![0]!)!.pack;
    await repo.close();
    return { dir, sa, sb, pack, a, b, packFile: path.join(dir, 'data', pack.slice(0, 2), pack) };
  }

  test('bit flip in a pack: check --read-data names the pack and the affected snapshot; others restore', async () => {
    const s = await setup('flip');
    const buf = await fsp.readFile(s.packFile);
    buf[1000] ^= 0x01;
    await fsp.writeFile(s.packFile, buf);
    const repo = await Repository.open(new LocalStorage(s.dir), 'pw');
    const quick = await checkRepository(repo, {});
    assert.equal(quick.ok, true, 'structure check does not read data');
    const r = await checkRepository(repo, { readData: true });
    assert.equal(r.ok, false);
    const p = r.problems.find((x) => x.kind === 'pack' && x.object === s.pack);
    assert.ok(p, JSON.stringify(r.problems));
    assert.deepEqual(p.snapshots, [s.sa]);
    // unaffected snapshot restores and verifies
    const snapB = await repo.loadSnapshot(s.sb);
    const out = path.join(t.dir, 'flip-out');
    const rs = await restoreSnapshot(repo, snapB, { target: out });
    assert.deepEqual(rs.errors, []);
    assert.ok((await fsp.readFile(path.join(out, s.b, 'two.bin'))).equals(await fsp.readFile(path.join(s.b, 'two.bin'))));
    // affected snapshot: restore reports the damage loudly and leaves no wrong file behind
    const out2 = path.join(t.dir, 'flip-out2');
    const rs2 = await restoreSnapshot(repo, await repo.loadSnapshot(s.sa), { target: out2 });
    assert.equal(rs2.errors.length, 1);
    assert.match(rs2.errors[0]!.message, /authentication failed|hash mismatch/);
    await assert.rejects(fsp.access(path.join(out2, s.a, 'one.bin')));
    await repo.close();
  });

  test('truncated pack and deleted pack are reported', async () => {
    const s = await setup('trunc');
    const st = await fsp.stat(s.packFile);
    await fsp.truncate(s.packFile, Math.floor(st.size / 2));
    let repo = await Repository.open(new LocalStorage(s.dir), 'pw');
    let r = await checkRepository(repo, {});
    assert.ok(r.problems.some((p) => p.kind === 'pack' && p.object === s.pack && /truncated/.test(p.message)), JSON.stringify(r.problems));
    await repo.close();
    await fsp.rm(s.packFile);
    repo = await Repository.open(new LocalStorage(s.dir), 'pw');
    r = await checkRepository(repo, { readData: true });
    const p = r.problems.find((x) => x.kind === 'pack' && x.object === s.pack);
    assert.ok(p && /missing/.test(p.message));
    assert.deepEqual(p.snapshots, [s.sa]);
    await repo.close();
  });

  test('deleted index file: reported; unaffected snapshots still restore; repair index recovers', async () => {
    const s = await setup('idx');
    const idxDir = path.join(s.dir, 'index');
    const files = await fsp.readdir(idxDir);
    assert.equal(files.length, 2);
    // remove the index written by the first backup (it lists snapshot a's packs)
    const repo0 = await Repository.open(new LocalStorage(s.dir), 'pw');
    const victim = [...repo0.index.files].find(([, packs]) => packs.includes(s.pack))![0];
    await repo0.close();
    await fsp.rm(path.join(idxDir, victim));
    let repo = await Repository.open(new LocalStorage(s.dir), 'pw');
    const r = await checkRepository(repo, {});
    assert.equal(r.ok, false);
    assert.ok(r.problems.some((p) => p.snapshots?.includes(s.sa)), JSON.stringify(r.problems));
    assert.ok(!r.problems.some((p) => p.snapshots?.includes(s.sb)));
    const rs = await restoreSnapshot(repo, await repo.loadSnapshot(s.sb), { target: path.join(t.dir, 'idx-out') });
    assert.deepEqual(rs.errors, []);
    await repairIndex(repo);
    await repo.close();
    repo = await Repository.open(new LocalStorage(s.dir), 'pw');
    assert.deepEqual((await checkRepository(repo, { readData: true })).problems, []);
    await repo.close();
  });

  test('damaged index file is skipped on open and reported by check', async () => {
    const s = await setup('idxflip');
    const idxDir = path.join(s.dir, 'index');
    const f = (await fsp.readdir(idxDir))[0]!;
    const buf = await fsp.readFile(path.join(idxDir, f));
    buf[buf.length - 3] ^= 0xff;
    await fsp.writeFile(path.join(idxDir, f), buf);
    const repo = await Repository.open(new LocalStorage(s.dir), 'pw');
    assert.equal(repo.indexErrors.size, 1);
    const r = await checkRepository(repo, {});
    assert.ok(r.problems.some((p) => p.kind === 'index' && p.object === f));
    await assert.rejects(prune(repo), /refusing to prune/);
    await repo.close();
  });

  test('a pack copied from another repository is rejected', async () => {
    const s1 = await setup('foreign1');
    const s2 = await setup('foreign2');
    // overwrite repo 1's pack with a pack of repo 2 under the same name
    await fsp.copyFile(s2.packFile, s1.packFile);
    const repo = await Repository.open(new LocalStorage(s1.dir), 'pw');
    const r = await checkRepository(repo, { readData: true });
    assert.ok(r.problems.some((p) => p.kind === 'pack' && p.object === s1.pack), JSON.stringify(r.problems));
    await assert.rejects(repo.loadBlob([...repo.index.values()].find(([, e]) => e.pack === s1.pack)![0]), IntegrityError);
    await repo.close();
  });

  test('corrupted delta base is reported for every dependent snapshot', async () => {
    const dir = path.join(t.dir, 'deltabase');
    const repo = await Repository.init(new LocalStorage(dir), 'pw', { packSize: 1024 * 1024 });
    const rng = new Rng(9);
    const base = textBytes(3 * 1024 * 1024, rng);
    const ids: string[] = [];
    for (let v = 0; v < 3; v++) {
      const d = Buffer.from(base);
      for (let i = v * 7; i < d.length; i += 40_000) d[i] = 0x41 + v;
      ids.push((await backupStream(repo, Readable.from([d]), { filename: 'x.sql' })).snapshotId);
    }
    const first = await repo.loadSnapshot(ids[0]!);
    const chunk = (await repo.loadTree(first.tree)).nodes[0]!.content![0]!;
    const e = repo.indexEntry(chunk)!;
    await repo.close();
    const pf = path.join(dir, 'data', e.pack.slice(0, 2), e.pack);
    const buf = await fsp.readFile(pf);
    buf[e.offset + 20] ^= 0x80;
    await fsp.writeFile(pf, buf);
    const repo2 = await Repository.open(new LocalStorage(dir), 'pw');
    const r = await checkRepository(repo2, { readData: true });
    const affected = new Set(r.problems.flatMap((p) => p.snapshots ?? []));
    for (const id of ids) assert.ok(affected.has(id), `snapshot ${id.slice(0, 8)} not reported`);
    await assert.rejects(readAll(await restoreStream(repo2, ids[2]!)), IntegrityError);
    await repo2.close();
  });

  test('check --read-data of a delta chain reads the deepest deltas\' packs first: the bases are proven on the way, not decoded again', async () => {
    const dir = path.join(t.dir, 'deltachain');
    const repo = await Repository.init(new LocalStorage(dir), 'pw', { packSize: 1024 * 1024 });
    const rng = new Rng(11);
    const d = textBytes(3 * 1024 * 1024, rng);
    for (let v = 0; v < 4; v++) {
      for (let i = v * 11; i < d.length; i += 50_000) d[i] = 0x41 + v;
      await backupStream(repo, Readable.from([Buffer.from(d)]), { filename: 'x.sql' });
    }
    const deepest = Math.max(...[...repo.index.deltas()].map(([, e]) => e.depth));
    assert.ok(deepest >= 3, `a chain of ${deepest + 1} levels`);
    const native = !!repo.readPool.native;
    await repo.close();
    const repo2 = await Repository.open(new LocalStorage(dir), 'pw');
    try {
      const r = await checkRepository(repo2, { readData: true });
      assert.deepEqual(r.problems, []);
      assert.equal(r.packsRead, r.packs);
      // (the C codec proves bases; the decode worker decodes every blob in its own pack)
      if (native) assert.ok((r.blobsProven ?? 0) >= 6, `${r.blobsProven} blobs proven`);
      else assert.equal(r.blobsProven, 0);
    } finally {
      await repo2.close();
    }
  });
});

test('1 GiB file with 1% of bytes changed in scattered places adds only a few percent', async () => {
  const t = tmpDir();
  try {
    const file = path.join(t.dir, 'disk.img');
    const size = 1024 * 1024 * 1024;
    const fh = await fsp.open(file, 'w');
    for (let off = 0; off < size; off += 64 * 1024 * 1024) await fh.write(randomBytes(64 * 1024 * 1024));
    await fh.close();
    const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
    const r1 = await backupPaths(repo, { paths: [file] });
    // change 1% of the bytes: 1000 scattered runs of ~10.7 KB
    const fh2 = await fsp.open(file, 'r+');
    const rng = new Rng(4);
    for (let i = 0; i < 1000; i++) await fh2.write(randomBytes(10737), 0, 10737, rng.int(size - 10737));
    await fh2.close();
    const r2 = await backupPaths(repo, { paths: [file] });
    const pct = (100 * r2.summary.dataAdded) / r1.summary.dataAdded;
    console.log(`# 1 GiB file, 1% scattered change: first backup added ${r1.summary.dataAdded} B, second ${r2.summary.dataAdded} B (${pct.toFixed(2)}%), ${r2.summary.blobsDelta} delta blobs`);
    assert.ok(pct < 5, `second backup added ${pct.toFixed(2)}% of the first`);
    // and the changed file restores exactly
    const snap = await repo.findSnapshot('latest');
    const out = path.join(t.dir, 'out');
    const rs = await restoreSnapshot(repo, snap, { target: out });
    assert.deepEqual(rs.errors, []);
    const h = async (p: string) => createHash('sha256').update(await fsp.readFile(p)).digest('hex');
    assert.equal(await h(path.join(out, file)), await h(file));
    await repo.close();
  } finally {
    t.cleanup();
  }
});

test('delta bases are found by content when inserted rows shift every offset', async () => {
  const t = tmpDir();
  try {
    const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
    const rng = new Rng(12);
    const lines = textBytes(16 * 1024 * 1024, rng).toString().split('\n');
    const v0 = Buffer.from(lines.join('\n'));
    const r0 = await backupStream(repo, Readable.from([v0]), { filename: 'db.sql' });
    // insert 3 MB of new rows at the start (every later offset moves) and update 1% of the old rows
    const inserted = textBytes(3 * 1024 * 1024, new Rng(99)).toString().split('\n').map((l) => `new\t${l}`);
    for (let i = 0; i < lines.length; i += 100) lines[i] = `${i}\tupdated ${rng.int(1e9)}`;
    const v1 = Buffer.from([...inserted, ...lines].join('\n'));
    const r1 = await backupStream(repo, Readable.from([v1]), { filename: 'db.sql' });
    // the inserted rows compress to roughly a quarter of their size; the updated rows must be cheap deltas
    const insertedCost = r0.summary.dataAdded * (3 / 16);
    console.log(`# shifted dump: first ${r0.summary.dataAdded} B, second ${r1.summary.dataAdded} B (${r1.summary.blobsDelta} deltas of ${r1.summary.blobsNew} new blobs)`);
    // ~3 chunks are wholly new rows; chunks straddling the insertion point only partly match one base
    assert.ok(r1.summary.blobsDelta >= r1.summary.blobsNew - 6, `only ${r1.summary.blobsDelta} of ${r1.summary.blobsNew} stored as deltas`);
    // offset-only base choice misses almost every base here (~90% of a full backup); by content it stays small
    assert.ok(r1.summary.dataAdded < insertedCost + r0.summary.dataAdded * 0.25, `second backup added ${r1.summary.dataAdded}`);
    assert.ok((await readAll(await restoreStream(repo, r1.snapshotId))).equals(v1));
    await repo.close();
  } finally {
    t.cleanup();
  }
});
