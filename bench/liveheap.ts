/**
 * Live JavaScript heap of a file backup (issue 18): first backup and unchanged
 * re-backup of a directory, in-process, with a forced GC every second; prints
 * the peaks. Garbage not yet collected is excluded (unlike peak RSS).
 *
 *   npx tsc -p tsconfig.json && node --expose-gc dist/bench/liveheap.js <source dir> [scratch repo dir]
 */
import { rmSync } from 'node:fs';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with node --expose-gc');
const [src, repoDir = '/tmp/lifeboat-liveheap'] = process.argv.slice(2);
if (!src) throw new Error('usage: node --expose-gc dist/bench/liveheap.js <source dir> [scratch repo dir]');
rmSync(repoDir, { recursive: true, force: true });
const repo = await Repository.init(new LocalStorage(repoDir), 'bench');
let peak = 0;
const sample = () => {
  gc();
  peak = Math.max(peak, process.memoryUsage().heapUsed);
};
const timer = setInterval(sample, 1000);
await backupPaths(repo, { paths: [src] });
sample();
const first = peak;
peak = 0;
await backupPaths(repo, { paths: [src] });
sample();
clearInterval(timer);
const out = { src, blobs: repo.index.size, indexBytes: repo.index.memoryBytes, firstBackupPeakLiveMB: +(first / 1e6).toFixed(1), rebackupPeakLiveMB: +(peak / 1e6).toFixed(1) };
process.stdout.write(JSON.stringify(out) + '\n');
await repo.close();
rmSync(repoDir, { recursive: true, force: true });
