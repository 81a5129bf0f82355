/**
 * Throughput of each storage backend for a backup and a restore of the same
 * data (default 500 MB: 50 files of 10 MB, incompressible, so the backend and
 * not the compressor is measured): local directory, S3 (the s3rver test server
 * on loopback), rclone (local remote through `rclone serve restic --stdio`) and
 * SFTP (rclone sftp remote against a throwaway sshd on loopback).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/storage-backends.js [MB] [backend...]
 *
 * Prints one line per backend and phase: MB/s and seconds; docs/benchmarks.md
 * keeps the numbers.
 */
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { once } from 'node:events';
import { tmpDir } from '../test/helpers/tmp.js';
import { startS3Server, s3Location } from '../test/helpers/s3server.js';
import { rcloneLocation, useRcloneEnv } from '../test/helpers/rclone.js';
import { startSshd } from '../test/helpers/sshd.js';
import { openStorage, type OpenStorageOptions } from '../src/storage/open.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';

const MB = 1024 * 1024;
const totalMb = Number(process.argv[2] ?? 500);
const only = process.argv.slice(3);

async function makeData(dir: string): Promise<number> {
  mkdirSync(dir, { recursive: true });
  const files = Math.max(1, Math.round(totalMb / 10));
  let bytes = 0;
  for (let i = 0; i < files; i++) {
    const ws = createWriteStream(path.join(dir, `f${i}.bin`));
    for (let j = 0; j < 10; j++) {
      if (!ws.write(randomBytes(MB))) await once(ws, 'drain');
      bytes += MB;
    }
    ws.end();
    await once(ws, 'finish');
  }
  return bytes;
}

async function run(name: string, location: string, opts: OpenStorageOptions, src: string, bytes: number, t: { dir: string }): Promise<void> {
  const repo = await Repository.init(openStorage(location, opts), 'bench');
  let t0 = performance.now();
  const r = await backupPaths(repo, { paths: [src] });
  const backupS = (performance.now() - t0) / 1000;
  const up = repo.storage.transferred?.().bytesUploaded ?? 0;
  await repo.close();
  if (r.summary.errors) throw new Error(`${name}: backup errors`);
  const out = path.join(t.dir, `out-${name}`);
  const repo2 = await Repository.open(openStorage(location, opts), 'bench');
  t0 = performance.now();
  const rs = await restoreSnapshot(repo2, await repo2.findSnapshot('latest'), { target: out });
  const restoreS = (performance.now() - t0) / 1000;
  const down = repo2.storage.transferred?.().bytesDownloaded ?? 0;
  await repo2.close();
  if (rs.errors.length) throw new Error(`${name}: restore errors`);
  rmSync(out, { recursive: true, force: true });
  const mbs = (s: number) => (bytes / MB / s).toFixed(1);
  console.log(
    `${name.padEnd(7)} backup  ${backupS.toFixed(1).padStart(6)} s  ${mbs(backupS).padStart(6)} MB/s  (uploaded ${(up / MB).toFixed(0)} MiB)`,
  );
  console.log(
    `${name.padEnd(7)} restore ${restoreS.toFixed(1).padStart(6)} s  ${mbs(restoreS).padStart(6)} MB/s  (downloaded ${(down / MB).toFixed(0)} MiB)`,
  );
}

const t = tmpDir('lb-bench-storage-');
try {
  const src = path.join(t.dir, 'src');
  const bytes = await makeData(src);
  console.log(`data: ${(bytes / MB).toFixed(0)} MiB in ${Math.round(bytes / MB / 10)} files (random)`);
  const want = (n: string) => only.length === 0 || only.includes(n);
  if (want('local')) await run('local', path.join(t.dir, 'repo-local'), {}, src, bytes, t);
  if (want('s3')) {
    const srv = await startS3Server();
    try {
      const loc = s3Location(srv, 'bench');
      await run('s3', loc.location, loc.opts, src, bytes, t);
    } finally {
      await srv.stop();
    }
  }
  if (want('rclone')) {
    useRcloneEnv();
    await run('rclone', rcloneLocation(path.join(t.dir, 'repo-rclone')), {}, src, bytes, t);
  }
  if (want('sftp')) {
    const sshd = await startSshd();
    try {
      await run(
        'sftp',
        `sftp://${sshd.user}@127.0.0.1:${sshd.port}${path.join(t.dir, 'repo-sftp')}`,
        { sftp: { keyFile: sshd.keyFile, knownHostsFile: sshd.knownHostsFile } },
        src,
        bytes,
        t,
      );
    } finally {
      await sshd.stop();
    }
  }
} finally {
  t.cleanup();
}
