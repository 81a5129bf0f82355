import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { LocalStorage } from '../storage/local.js';
import type { Storage } from '../storage/types.js';
import { Repository } from '../repo/repository.js';
import { InlineVerifier, RangeBuffers, readPackData } from './read-pack.js';

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
