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
