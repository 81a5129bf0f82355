// Per-call cost of two things a restore's main thread does for every file: decoding a tree
// (repo/tree.ts decodeTree: JSON.parse and validation) and turning a chunk id into the index's key
// (repo/hex-id.ts decodeHexId). A restore runs its main thread without V8's optimizing compiler
// (util/jit.ts), so run this as it does:
//   node --no-opt bench/tree-decode.mjs [CHECKOUT...]      (each CHECKOUT's dist/, built; default: this one)
// and without --no-opt for the optimized figures. Prints µs per tree node and per id, best of 5 rounds.
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const checkouts = process.argv.length > 2 ? process.argv.slice(2) : [here];

const nodes = [];
for (let i = 0; i < 1000; i++) {
  nodes.push({ name: `lib-${i}.so.${i % 7}`, type: 'file', mode: 0o644, mtime: 1_700_000_000_000, mtimeNs: '1700000000123456789', size: 4096 + i, uid: 0, gid: 0, content: [randomBytes(32).toString('hex')], sizes: [4096 + i] });
}
const tree = Buffer.from(JSON.stringify({ v: 2, nodes }));
const ids = Array.from({ length: 20000 }, () => randomBytes(32).toString('hex'));

const best = (fn, per) => {
  let min = Infinity;
  for (let r = 0; r < 5; r++) {
    const t = performance.now();
    fn();
    min = Math.min(min, performance.now() - t);
  }
  return ((min * 1000) / per).toFixed(2);
};

for (const dir of checkouts) {
  const { decodeTree } = await import(path.join(dir, 'dist/src/repo/tree.js'));
  const { decodeHexId } = await import(path.join(dir, 'dist/src/repo/hex-id.js'));
  const out = Buffer.alloc(32);
  const treeUs = best(() => {
    for (let r = 0; r < 20; r++) decodeTree(tree, 'bench');
  }, 20 * nodes.length);
  const idUs = best(() => {
    for (const id of ids) if (!decodeHexId(id, out)) throw new Error('refused');
  }, ids.length);
  console.log(`${dir}: decodeTree ${treeUs} µs a node, decodeHexId ${idUs} µs an id`);
}
