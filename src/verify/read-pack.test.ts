import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { Repository } from '../repo/repository.js';
import { BlobCodec } from '../repo/codec.js';
import { PackWriter, type PackBlob } from '../repo/pack.js';
import { InlineVerifier, type PackHasher, RangeBuffers, readPackData } from './read-pack.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

/** A repository with one pack of many blobs (small, large, compressible, random): more than one range and a header past the tail read. */
async function onePack(): Promise<{ dir: string; repo: Repository; pack: string; size: number; file: string }> {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-'));
  const repo = await Repository.init(new LocalStorage(dir), 'pw');
  for (let i = 0; i < 1500; i++) await repo.saveBlob('data', randomBytes(i % 100 === 0 ? 300_000 : 1000 + (i % 7) * 300));
  for (let i = 0; i < 20; i++) await repo.saveBlob('data', Buffer.alloc(200_000, i));
  await repo.flush();
  const packs = await repo.storage.list('data');
  assert.equal(packs.length, 1);
  const { name: pack, size } = packs[0]!;
  return { dir, repo, pack, size, file: path.join(dir, 'data', pack.slice(0, 2), pack) };
}

/** The same storage without loadInto (as a backend that does not offer it). */
function withoutLoadInto(inner: Storage): Storage {
  return new Proxy(inner, {
    get(target, prop, recv) {
      if (prop === 'loadInto') return undefined;
      const v = Reflect.get(target, prop, recv) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

test('readPackData: an intact pack verifies, read in ranges, with or without loadInto; damage is found and named', async () => {
  const p = await onePack();
  try {
    const buffers = new RangeBuffers();
    const ok = await readPackData(p.repo, p.pack, p.size, buffers);
    assert.deepEqual({ hashOk: ok.hashOk, headerError: ok.headerError, damaged: ok.damaged, bytesRead: ok.bytesRead }, { hashOk: true, headerError: undefined, damaged: [], bytesRead: p.size });
    const again = await readPackData(p.repo, p.pack, p.size, buffers); // reusing the buffers handed back
    assert.deepEqual(again.damaged, []);
    assert.equal(again.hashOk, true);
    const here = await readPackData(p.repo, p.pack, p.size, buffers, new InlineVerifier(p.repo, true));
    assert.deepEqual({ hashOk: here.hashOk, damaged: here.damaged, bytesRead: here.bytesRead }, { hashOk: true, damaged: [], bytesRead: p.size });
    const other = await Repository.open(withoutLoadInto(new LocalStorage(p.dir)), 'pw');
    const plain = await readPackData(other, p.pack, p.size);
    assert.deepEqual({ hashOk: plain.hashOk, damaged: plain.damaged, bytesRead: plain.bytesRead }, { hashOk: true, damaged: [], bytesRead: p.size });
    await other.close();

    // one flipped bit inside a blob near the middle: the pack hash fails and exactly that blob is named
    const buf = await fsp.readFile(p.file);
    const victim = [...p.repo.index.inPack(p.pack)].map(([id, e]) => ({ id, e })).sort((a, b) => a.e.offset - b.e.offset)[700]!;
    buf[victim.e.offset + 40]! ^= 1;
    await fsp.writeFile(p.file, buf);
    const bad = await readPackData(p.repo, p.pack, p.size, buffers);
    assert.equal(bad.hashOk, false);
    assert.equal(bad.headerError, undefined);
    assert.deepEqual(bad.damaged.map(([id]) => id), [victim.id]);
    assert.match(bad.damaged[0]![1], /authentication failed/);
    // verified on this thread instead of the worker: the same findings, every range here
    const inline = new InlineVerifier(p.repo, true);
    const badHere = await readPackData(p.repo, p.pack, p.size, buffers, inline);
    assert.deepEqual({ hashOk: badHere.hashOk, damaged: badHere.damaged, bytesRead: badHere.bytesRead }, { hashOk: false, damaged: bad.damaged, bytesRead: p.size });
    assert.ok(inline.ranges > 1);
    buf[victim.e.offset + 40]! ^= 1;

    // a damaged header: reported as the pack's problem, no blob decoded, the hash still computed over every byte
    buf[buf.length - 10]! ^= 1;
    await fsp.writeFile(p.file, buf);
    const hdr = await readPackData(p.repo, p.pack, p.size, buffers);
    assert.equal(hdr.hashOk, false);
    assert.match(String(hdr.headerError), /header: authentication failed/);
    assert.deepEqual(hdr.damaged, []);
    assert.equal(hdr.bytesRead, p.size);
  } finally {
    await p.repo.close();
    await fsp.rm(p.dir, { recursive: true, force: true });
  }
});

/** Text rows; `v` changes a few of them (the versions of a changed file's chunk). */
function rows(n: number, v: number, seed = 0): Buffer {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(`row ${seed} ${i} ${(i * 7919 + (i % 50 === v ? v : 0)) % 100003} ${'y'.repeat(i % 30)}`);
  return Buffer.from(out.join('\n'));
}

test('readPackData: delta blobs (one base, two bases, a base that is a delta) verify from their bases\' sealed chains, nothing cached; a damaged base fails the blobs built on it, named', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-read-pack-delta-'));
  const repo = await Repository.init(new LocalStorage(dir), 'pw');
  try {
    const codec = new BlobCodec(repo.key.encKey, 3);
    const v0 = rows(6000, 0);
    const v1 = rows(6000, 1);
    const other = rows(5000, 0, 7);
    const top = Buffer.concat([rows(6000, 2), other.subarray(0, 50_000)]);
    const top2 = Buffer.concat([top, Buffer.from('2')]);
    const [id0, id1, idO, idT1, idT2] = [v0, v1, other, top, top2].map((b) => repo.blobId(b));
    const entry = (id: string, data: Buffer, enc: { compression: 0 | 1 | 2 }, bases: string[] = []) => ({
      id,
      type: 'data' as const,
      rawLength: data.length,
      compression: enc.compression,
      ...(bases[0] ? { base: bases[0] } : {}),
      ...(bases[1] ? { base2: bases[1] } : {}),
    });
    const e1 = codec.encode(v1, v0);
    const eT1 = codec.encode(top, v1);
    const eT2 = codec.encode(top2, Buffer.concat([v1, other]));
    for (const e of [e1, eT1, eT2]) assert.equal(e.compression, 2);
    const e0 = codec.encode(v0);
    const eO = codec.encode(other);
    const basePack = new PackWriter();
    basePack.add(entry(id0!, v0, e0), e0.sealed);
    basePack.add(entry(idO!, other, eO), eO.sealed);
    const deltaPack = new PackWriter();
    deltaPack.add(entry(id1!, v1, e1, [id0!]), e1.sealed);
    deltaPack.add(entry(idT1!, top, eT1, [id1!]), eT1.sealed);
    deltaPack.add(entry(idT2!, top2, eT2, [id1!, idO!]), eT2.sealed);
    const packs: Array<{ id: string; size: number; blobs: PackBlob[] }> = [];
    for (const pw of [basePack, deltaPack]) {
      const { id, data, blobs: written } = pw.finalize(repo.key.encKey);
      await repo.storage.save('data', id, data);
      packs.push({ id, size: data.length, blobs: written });
    }
    await repo.writeIndexFile(packs.map((p) => ({ id: p.id, blobs: p.blobs })));
    const r = await Repository.open(new LocalStorage(dir), 'pw');
    const cached = () => (r as unknown as { cache: { size: number } }).cache.size;
    try {
      const [bp, dp] = packs as [(typeof packs)[0], (typeof packs)[0]];
      for (const inline of [undefined, new InlineVerifier(r, true)]) {
        const ok = await readPackData(r, dp.id, dp.size, new RangeBuffers(), inline);
        assert.deepEqual({ hashOk: ok.hashOk, damaged: ok.damaged }, { hashOk: true, damaged: [] });
        assert.equal(cached(), 0, 'the bases went as sealed chains: none decoded into the read cache');
      }
      // v0 damaged in its pack: v0 itself, v1 (a delta on it) and both tops (on v1) fail; the tops' messages name v0
      const file = path.join(dir, 'data', bp.id.slice(0, 2), bp.id);
      const buf = await fsp.readFile(file);
      const at = bp.blobs.find((b) => b.id === id0)!;
      buf[at.offset + at.length - 30]! ^= 1;
      await fsp.writeFile(file, buf);
      for (const inline of [undefined, new InlineVerifier(r, true)]) {
        const bad = await readPackData(r, dp.id, dp.size, new RangeBuffers(), inline);
        assert.equal(bad.hashOk, true);
        assert.deepEqual(bad.damaged.map(([id]) => id).sort(), [id1!, idT1!, idT2!].sort());
        for (const [, msg] of bad.damaged) assert.match(msg, new RegExp(`blob ${id0} in pack ${bp.id}: authentication failed`));
      }
    } finally {
      await r.close();
    }
  } finally {
    await repo.close();
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('readPackData: a range\'s buffer is read into again only after the pack hash has taken its bytes', async () => {
  // The pack's SHA-256 runs on the thread pool beside the decodes; the buffer goes back to be reused once hashed.
  // Here the hash takes its bytes late (20 ms after each update) and a handed-back buffer is scribbled on at once,
  // as the next read into it would: a buffer handed back before it was hashed gives a wrong pack hash.
  const p = await onePack();
  try {
    class LateHash implements PackHasher {
      private readonly h = createHash('sha256');
      private last: Promise<void> = Promise.resolve();
      update(b: Uint8Array): void {
        this.last = this.last.then(() => new Promise<void>((r) => setTimeout(() => (this.h.update(b), r()), 20)));
      }
      flushed(): Promise<void> {
        return this.last;
      }
      async digest(): Promise<string> {
        await this.last;
        return this.h.digest('hex');
      }
    }
    class Scribbled extends RangeBuffers {
      given = 0;
      override give(ab: ArrayBuffer | undefined): void {
        if (ab) {
          new Uint8Array(ab).fill(0xee);
          this.given++;
        }
        super.give(ab);
      }
    }
    for (const inline of [undefined, new InlineVerifier(p.repo, true)]) {
      const buffers = new Scribbled();
      const r = await readPackData(p.repo, p.pack, p.size, buffers, inline, () => new LateHash());
      assert.ok(buffers.given >= 2, `ranges handed back: ${buffers.given}`);
      assert.deepEqual({ hashOk: r.hashOk, damaged: r.damaged }, { hashOk: true, damaged: [] });
    }
  } finally {
    await p.repo.close();
    await fsp.rm(p.dir, { recursive: true, force: true });
  }
});
