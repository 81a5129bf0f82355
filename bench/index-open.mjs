// One cold Repository.loadIndex of a repository in this process (issue 18, "Opening the index"): wall and CPU ms,
// blobs, heap after. Run it in fresh processes, interleaving builds:
//   LIFEBOAT_PASSWORD=... node --max-semi-space-size=4 bench/index-open.mjs REPO_DIR [BUILD_DIR (default: this checkout)]
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const [dir, build = path.join(path.dirname(fileURLToPath(import.meta.url)), '..')] = process.argv.slice(2);
if (!dir || !process.env.LIFEBOAT_PASSWORD) {
  process.stderr.write('usage: LIFEBOAT_PASSWORD=... node bench/index-open.mjs REPO_DIR [BUILD_DIR]\n');
  process.exit(2);
}
const load = (p) => import(pathToFileURL(path.join(path.resolve(build), 'dist/src', p)).href);
const { Repository } = await load('repo/repository.js');
const { LocalStorage } = await load('storage/local.js');
const repo = await Repository.open(new LocalStorage(dir), process.env.LIFEBOAT_PASSWORD, { loadIndex: false });
const t0 = performance.now();
const c0 = process.cpuUsage();
await repo.loadIndex();
const c = process.cpuUsage(c0);
process.stdout.write(
  JSON.stringify({ ms: +(performance.now() - t0).toFixed(1), cpuMs: +((c.user + c.system) / 1000).toFixed(1), blobs: repo.index.size, heapMB: +(process.memoryUsage().heapUsed / 2 ** 20).toFixed(1) }) + '\n',
);
await repo.close();
