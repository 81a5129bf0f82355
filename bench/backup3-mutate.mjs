// Deterministic ~5% change of a tree: every 20th regular file (sorted paths) gets 4 KiB
// overwritten in its middle; every 10th file of >= 1 MiB gets 64 KiB overwritten and 4 KiB inserted.
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
const root = process.argv[2];
const files = [];
async function walk(d) { for (const e of (await fsp.readdir(d, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) { const p = path.join(d, e.name); if (e.isDirectory()) await walk(p); else if (e.isFile()) files.push(p); } }
await walk(root);
const bytes = (n, seed) => { const out = Buffer.alloc(n); let off = 0, c = 0; while (off < n) off += createHash('sha256').update(seed + ':' + c++).digest().copy(out, off); return out; };
let changed = 0, big = 0, chBytes = 0;
for (let i = 0; i < files.length; i++) {
  const f = files[i]; const st = await fsp.stat(f);
  if (st.size >= 1 << 20 && i % 10 === 3) {
    const d = await fsp.readFile(f); const at = Math.floor(d.length / 3);
    const out = Buffer.concat([d.subarray(0, at), bytes(4096, f + 'ins'), bytes(65536, f + 'ow'), d.subarray(at + 65536)]);
    await fsp.writeFile(f, out); big++; chBytes += st.size;
  } else if (i % 20 === 7 && st.size > 0) {
    const fh = await fsp.open(f, 'r+'); const n = Math.min(4096, st.size); await fh.write(bytes(n, f), 0, n, Math.floor((st.size - n) / 2)); await fh.close(); changed++; chBytes += st.size;
  }
}
console.log(`changed ${changed} files in place, ${big} large files; ${(chBytes / 1e6).toFixed(1)} MB of files touched of ${files.length} files`);
