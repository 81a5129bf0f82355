import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { tmpdir } from 'node:os';
import { countFullCollections } from '../../test/helpers/gc-count.js';
import { LocalStorage } from '../storage/local.js';
import { Repository } from './repository.js';
import { collectUsedBlobs } from './walk.js';

test('a walk runs a full collection whenever the heap grew by LIFEBOAT_WALK_HEAP_GC_MB (0: never), and finds the same blobs', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-walk-gc-'));
  const saved = process.env.LIFEBOAT_WALK_HEAP_GC_MB;
  try {
    const repo = await Repository.init(new LocalStorage(dir), 'pw');
    const dirs = [];
    for (let d = 0; d < 120; d++) {
      const nodes = [];
      for (let f = 0; f < 20; f++) {
        const { id } = await repo.saveBlob('data', Buffer.from(`dir ${d} file ${f}\n`));
        nodes.push({ name: `f${f}`, type: 'file' as const, mode: 0o644, uid: 0, gid: 0, mtime: 1, ctime: 1, size: 16, content: [id] });
      }
      dirs.push({ name: `d${d}`, type: 'dir' as const, mode: 0o755, uid: 0, gid: 0, mtime: 1, ctime: 1, size: 0, subtree: await repo.saveTree({ nodes }) });
    }
    const root = await repo.saveTree({ nodes: dirs });
    await repo.flush();

    // A visitor whose garbage lives a while (as a walk's trees and nodes do, past a few minor collections): the heap grows.
    const walk = async (capMb: string) => {
      process.env.LIFEBOAT_WALK_HEAP_GC_MB = capMb;
      const count = countFullCollections();
      let held: unknown[] = [];
      const used = await collectUsedBlobs(repo, [root], (id, err) => assert.fail(`${id}: ${String(err)}`), () => {
        held.push(Array.from({ length: 400 }, (_, i) => ({ i, s: `node ${i}` })));
        if (held.length >= 400) held = [];
      });
      return { majors: await count.stop(), size: used.size };
    };
    const capped = await walk('1');
    const uncapped = await walk('0');
    assert.equal(capped.size, 1 + 120 + 120 * 20);
    assert.equal(uncapped.size, capped.size);
    assert.ok(capped.majors >= 5, `full collections with a 1 MiB cap: ${capped.majors} (without: ${uncapped.majors})`);
    assert.ok(capped.majors > uncapped.majors + 3, `full collections with a 1 MiB cap: ${capped.majors}, without: ${uncapped.majors}`);
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_WALK_HEAP_GC_MB;
    else process.env.LIFEBOAT_WALK_HEAP_GC_MB = saved;
    rmSync(dir, { recursive: true, force: true });
  }
});
