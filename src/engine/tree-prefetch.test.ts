import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { TreePrefetch, type TreePos, precedes, treesAhead } from './tree-prefetch.js';
import { backupPaths } from './archiver.js';
import { restoreSnapshot } from './restorer.js';
import { LocalStorage } from '../storage/local.js';
import { Repository } from '../repo/repository.js';
import type { Tree, TreeNode } from '../repo/tree.js';
import { countTreeReads } from '../../test/helpers/tree-reads.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

const dirNode = (name: string, subtree: string): TreeNode => ({ name, type: 'dir', subtree, mode: 0o755, uid: 0, gid: 0, mtime: 0 }) as TreeNode;
const fileNode = (name: string): TreeNode => ({ name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: 0, content: [] }) as TreeNode;

/** A universe of trees by id; `fan(depth)` builds a full tree of the given fan-out, a file beside each directory. */
class Universe {
  readonly trees = new Map<string, Tree>();
  private n = 0;
  add(nodes: TreeNode[]): string {
    const id = `t${this.n++}`;
    this.trees.set(id, { nodes });
    return id;
  }
  fan(fanout: number, depth: number): string {
    const nodes: TreeNode[] = [fileNode('f')];
    if (depth > 0) for (let i = 0; i < fanout; i++) nodes.push(dirNode(`d${i}`, this.fan(fanout, depth - 1)));
    return this.add(nodes);
  }
  /** Every tree id in the walk's order (depth-first preorder). */
  order(root: string): string[] {
    const out = [root];
    for (const n of this.trees.get(root)!.nodes) if (n.type === 'dir') out.push(...this.order(n.subtree!));
    return out;
  }
}

/** A loader that answers after a few turns of the event loop, counting reads and the most at once. */
function slowLoader(u: Universe, failOn = new Set<string>()) {
  const s = { reads: [] as string[], inflight: 0, max: 0 };
  const load = async (id: string): Promise<Tree> => {
    s.reads.push(id);
    s.inflight++;
    s.max = Math.max(s.max, s.inflight);
    try {
      await new Promise((r) => setTimeout(r, 1));
      if (failOn.has(id)) throw new Error(`cannot read ${id}`);
      const t = u.trees.get(id);
      if (!t) throw new Error(`no tree ${id}`);
      return t;
    } finally {
      s.inflight--;
    }
  };
  return { s, load };
}

const childrenOf = (t: Tree) => t.nodes.flatMap((n, index) => (n.type === 'dir' ? [{ index, id: n.subtree!, ctx: undefined }] : []));

/** The restorer's walk: take each tree at its position, then its nodes in order (a turn of the event loop per file). */
async function walk(
  p: TreePrefetch<undefined>,
  id: string,
  pos: TreePos,
  seen: string[],
  opts: { skip?: (pos: TreePos) => boolean; onError?: (id: string, err: unknown) => void; sizes?: number[] } = {},
): Promise<void> {
  let t: Tree;
  try {
    t = await p.take(id, pos, undefined);
  } catch (err) {
    opts.onError?.(id, err);
    return;
  }
  opts.sizes?.push(p.size);
  seen.push(id);
  for (let i = 0; i < t.nodes.length; i++) {
    const n = t.nodes[i]!;
    if (n.type !== 'dir') {
      await new Promise((r) => setImmediate(r));
      continue;
    }
    const at = [...pos, i];
    if (opts.skip?.(at)) continue;
    await walk(p, n.subtree!, at, seen, opts);
  }
}

/** Run `fn`, then fail if a promise was rejected with no handler meanwhile (or just after). */
async function noUnhandledRejection(fn: () => Promise<void>): Promise<void> {
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown) => unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  try {
    await fn();
    await new Promise((r) => setTimeout(r, 5));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(unhandled, []);
}

test('precedes: depth-first preorder of positions', () => {
  assert.ok(precedes([], [0]));
  assert.ok(precedes([0], [0, 0]));
  assert.ok(precedes([0, 5, 9], [1]));
  assert.ok(precedes([1, 2], [1, 10]));
  assert.ok(!precedes([1], [1]));
  assert.ok(!precedes([1, 0], [1]));
  assert.ok(!precedes([2], [1, 9]));
});

test('TreePrefetch: every tree comes back in the walk order; after the root nearly all were read ahead, never more than the limit at once', async () => {
  const u = new Universe();
  const root = u.fan(4, 3); // 1 + 4 + 16 + 64 = 85 trees
  const { s, load } = slowLoader(u);
  const p = new TreePrefetch<undefined>(load, childrenOf, () => 100, { trees: 8, bytes: 1 << 20 });
  const seen: string[] = [];
  const sizes: number[] = [];
  await walk(p, root, [], seen, { sizes });
  assert.deepEqual(seen, u.order(root));
  assert.ok(p.hits >= 70, `${p.hits} of 84 trees read ahead`);
  assert.ok(Math.max(...sizes) <= 8, 'at most 8 trees held ahead');
  assert.ok(s.max <= 9, `${s.max} reads at once (8 ahead + the walk's own)`);
  assert.equal(s.reads.length, 85 + p.evicted, 'each tree read once, plus once more for each one evicted');
  assert.equal(p.size, 0, 'nothing held once the walk is over');
});

test('TreePrefetch: a full window gives way to nearer positions (a wide directory whose first child is deep)', async () => {
  const u = new Universe();
  let chain = u.add([fileNode('f')]);
  for (let i = 0; i < 12; i++) chain = u.add([fileNode('f'), dirNode('c', chain)]);
  const siblings = Array.from({ length: 20 }, (_, i) => dirNode(`s${i}`, u.add([fileNode('f')])));
  const root = u.add([dirNode('a', chain), ...siblings]);
  const { load } = slowLoader(u);
  const p = new TreePrefetch<undefined>(load, childrenOf, () => 100, { trees: 4, bytes: 1 << 20 });
  const seen: string[] = [];
  await walk(p, root, [], seen);
  assert.deepEqual(seen, u.order(root));
  assert.ok(p.evicted > 0, 'siblings read ahead were dropped for the deep chain');
  assert.ok(p.hits >= 28, `${p.hits} of 33 read ahead`);
});

test('TreePrefetch: the byte budget holds (one larger tree alone is still read ahead)', async () => {
  const u = new Universe();
  const root = u.fan(6, 2);
  const big = new Set(u.order(root).slice(3, 5));
  const sizeOf = (id: string) => (big.has(id) ? 10 << 20 : 1 << 20);
  let held = 0;
  let most = 0;
  const { load } = slowLoader(u);
  const p = new TreePrefetch<undefined>(load, childrenOf, sizeOf, { trees: 32, bytes: (5 << 20) / 2 });
  const probe = setInterval(() => {
    held = (p as unknown as { bytes: number }).bytes;
    most = Math.max(most, held);
  }, 0);
  try {
    const seen: string[] = [];
    const sizes: number[] = [];
    await walk(p, root, [], seen, { sizes });
    assert.deepEqual(seen, u.order(root));
    assert.ok(Math.max(...sizes) <= 2, 'at most two 1 MiB trees within 2.5 MiB');
    assert.ok(most <= 10 << 20, 'a 10 MiB tree only alone');
    assert.ok(p.hits > 20);
  } finally {
    clearInterval(probe);
  }
});

test('TreePrefetch: what the walk passes by is dropped; a failed read fails only its own position; no unhandled rejection', async () => {
  const u = new Universe();
  const root = u.fan(3, 3);
  const order = u.order(root);
  const bad = order[7]!;
  const { load } = slowLoader(u, new Set([bad]));
  await noUnhandledRejection(async () => {
    const p = new TreePrefetch<undefined>(load, childrenOf, () => 100, { trees: 16, bytes: 1 << 20 });
    const seen: string[] = [];
    const errors: string[] = [];
    // the subtree at [2] (the root's second directory: node 2) is not entered
    await walk(p, root, [], seen, { skip: (pos) => pos.length === 1 && pos[0] === 2, onError: (id, err) => errors.push(`${id}: ${(err as Error).message}`) });
    assert.deepEqual(errors, [`${bad}: cannot read ${bad}`]);
    const skipped = new Set(u.order(u.trees.get(root)!.nodes[2]!.subtree!));
    const failed = new Set(u.order(bad));
    assert.deepEqual(seen, order.filter((id) => !skipped.has(id) && !failed.has(id)));
    assert.equal(p.size, 0, 'nothing kept for positions the walk passed');
  });
});

test('TreePrefetch: a tree whose subtrees cannot be listed ahead is still walked (they are read when the walk gets there)', async () => {
  const u = new Universe();
  const root = u.fan(3, 2);
  const order = u.order(root);
  const odd = order[1]!; // the first directory below the root, read ahead
  const { load } = slowLoader(u);
  await noUnhandledRejection(async () => {
    const children = (t: Tree) => {
      if (t === u.trees.get(odd)) throw new Error('no list');
      return childrenOf(t);
    };
    const p = new TreePrefetch<undefined>(load, children, () => 100, { trees: 8, bytes: 1 << 20 });
    const seen: string[] = [];
    await walk(p, root, [], seen);
    assert.deepEqual(seen, order);
    assert.equal(p.hits, order.length - 1 - 3, 'all but the root and the three below the odd one were read ahead');
  });
});

test('TreePrefetch: one tree id at several positions is taken at each; with no trees ahead every read is the walk\'s own', async () => {
  const u = new Universe();
  const shared = u.fan(2, 1);
  const root = u.add([dirNode('a', shared), fileNode('f'), dirNode('b', shared), dirNode('c', shared)]);
  for (const limits of [treesAhead({}, 's3'), treesAhead({ LIFEBOAT_RESTORE_TREES_AHEAD: '0' }, 's3')]) {
    const { s, load } = slowLoader(u);
    const p = new TreePrefetch<undefined>(load, childrenOf, () => 100, limits);
    const seen: string[] = [];
    await walk(p, root, [], seen);
    assert.deepEqual(seen, u.order(root));
    if (limits.trees === 0) {
      assert.equal(p.hits, 0);
      assert.equal(s.max, 1, 'one read at a time');
    } else {
      assert.equal(limits.trees, 32);
      assert.equal(p.hits, seen.length - 1);
    }
  }
});

test('treesAhead: 32 trees ahead for a storage behind a network, none for a local one; LIFEBOAT_RESTORE_TREES_AHEAD for both', () => {
  const mib4 = 4 * 1024 * 1024;
  assert.deepEqual(treesAhead({}, 's3'), { trees: 32, bytes: mib4 });
  assert.deepEqual(treesAhead({}, 'sftp'), { trees: 32, bytes: mib4 });
  assert.deepEqual(treesAhead({}, 'local'), { trees: 0, bytes: mib4 });
  assert.equal(treesAhead({ LIFEBOAT_RESTORE_TREES_AHEAD: '8' }, 'local').trees, 8);
  assert.equal(treesAhead({ LIFEBOAT_RESTORE_TREES_AHEAD: '0' }, 's3').trees, 0);
  for (const bad of ['', '-1', '1.5', 'many']) assert.equal(treesAhead({ LIFEBOAT_RESTORE_TREES_AHEAD: bad }, 's3').trees, 32, `'${bad}' is ignored`);
});

test('restore: the walk reads the trees it will enter ahead when asked (a local repository: one at a time by default); the tree comes back whole', async () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'lb-tree-prefetch-'));
  const saved = process.env.LIFEBOAT_RESTORE_TREES_AHEAD;
  try {
    const data = path.join(tmp, 'data');
    for (let a = 0; a < 6; a++)
      for (let b = 0; b < 5; b++) {
        const d = path.join(data, `a${a}`, `b${b}`);
        mkdirSync(d, { recursive: true });
        writeFileSync(path.join(d, 'f'), `${a}/${b}\n`);
      }
    const repo = await Repository.init(new LocalStorage(path.join(tmp, 'repo')), 'pw');
    try {
      const r = await backupPaths(repo, { paths: [data] });
      const snap = await repo.loadSnapshot(r.snapshotId);
      const reads = countTreeReads(repo);
      for (const ahead of [undefined, '32', '0']) {
        if (ahead === undefined) delete process.env.LIFEBOAT_RESTORE_TREES_AHEAD;
        else process.env.LIFEBOAT_RESTORE_TREES_AHEAD = ahead;
        reads.most = 0;
        const out = path.join(tmp, `out-${ahead ?? 'default'}`);
        const sum = await restoreSnapshot(repo, snap, { target: out, subpath: data });
        assert.deepEqual(sum.errors, []);
        assert.equal(sum.dirs, 36);
        for (let a = 0; a < 6; a++) {
          assert.deepEqual(readdirSync(path.join(out, `a${a}`)).sort(), ['b0', 'b1', 'b2', 'b3', 'b4']);
          for (let b = 0; b < 5; b++) assert.equal(readFileSync(path.join(out, `a${a}`, `b${b}`, 'f'), 'utf8'), `${a}/${b}\n`);
        }
        if (ahead === '32') assert.ok(reads.most >= 4, `${reads.most} tree reads at once`);
        else assert.equal(reads.most, 1, 'no tree read ahead');
      }
    } finally {
      await repo.close();
    }
  } finally {
    if (saved === undefined) delete process.env.LIFEBOAT_RESTORE_TREES_AHEAD;
    else process.env.LIFEBOAT_RESTORE_TREES_AHEAD = saved;
    rmSync(tmp, { recursive: true, force: true });
  }
});
