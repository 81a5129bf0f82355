// Restore from S3 behind a slow link (issue 18, "Trees read ahead"): the tests' S3 server
// (test/helpers/s3server.ts) behind their TCP proxy with LAT ms added to every forwarded piece, a
// tree of DIRS x 15 directories with 3 small files each, backed up once, then restored REPS times
// with each LIFEBOAT_RESTORE_TREES_AHEAD value (interleaved), every restore compared with the source;
// then `prune --dry-run` and `stats` (walks of every tree) timed REPS times each.
//   npm run build && LAT=5 node bench/restore-remote.mjs      # DIRS=20 REPS=3 AHEAD=0,32 by default
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { startS3Server, s3Location } = await import(path.join(ROOT, 'dist/test/helpers/s3server.js'));
const { startFaultProxy } = await import(path.join(ROOT, 'dist/test/helpers/faultproxy.js'));
const LAT = Number(process.env.LAT ?? 5);
const DIRS = Number(process.env.DIRS ?? 20);
const REPS = Number(process.env.REPS ?? 3);
const AHEAD = (process.env.AHEAD ?? '0,32').split(',');

const work = mkdtempSync(path.join(os.tmpdir(), 'lb-restore-remote-'));
const srv = await startS3Server();
const proxy = await startFaultProxy({ target: { port: Number(new URL(srv.endpoint).port) }, rate: 0, latencyMs: LAT });
try {
  const loc = s3Location({ ...srv, endpoint: `http://127.0.0.1:${proxy.port}` }, 'repo');
  const env = { ...process.env, ...loc.env, LIFEBOAT_PASSWORD: 'bench' };
  const src = path.join(work, 'src');
  for (let a = 0; a < DIRS; a++)
    for (let b = 0; b < 15; b++) {
      const d = path.join(src, `d${a}`, `e${b}`);
      mkdirSync(d, { recursive: true });
      for (let f = 0; f < 3; f++) writeFileSync(path.join(d, `f${f}`), `file ${a} ${b} ${f}\n`.repeat(50));
    }
  // the S3 server runs in this process: the commands run asynchronously
  const lb = (args, extra = {}) =>
    new Promise((resolve, reject) => {
      const t = process.hrtime.bigint();
      const c = spawn(path.join(ROOT, 'bin/lifeboat'), args, { env: { ...env, ...extra }, stdio: ['ignore', 'ignore', 'inherit'] });
      c.on('exit', (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - t) / 1e9) : reject(new Error(`lifeboat ${args[0]} exited ${code}`))));
    });
  await lb(['init', '--repo', loc.location]);
  console.log(`latency ${LAT} ms per forwarded piece, ${DIRS * 16 + 1} directories, ${DIRS * 45} files; backup ${(await lb(['backup', '-q', '--repo', loc.location, src])).toFixed(2)} s`);
  const walls = Object.fromEntries(AHEAD.map((a) => [a, []]));
  for (let rep = 0; rep < REPS; rep++)
    for (const ahead of AHEAD) {
      const out = path.join(work, 'out');
      rmSync(out, { recursive: true, force: true });
      walls[ahead].push(await lb(['restore', 'latest', '-q', '--repo', loc.location, '--target', out], { LIFEBOAT_RESTORE_TREES_AHEAD: ahead }));
      if (spawnSync('diff', ['-r', '--no-dereference', src, path.join(out, src)]).status !== 0) throw new Error('the restored tree differs from the source');
    }
  const median = (v) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)];
  for (const a of AHEAD) console.log(`LIFEBOAT_RESTORE_TREES_AHEAD=${a}: restore median ${median(walls[a]).toFixed(2)} s (${walls[a].map((x) => x.toFixed(2)).join(', ')})`);
  for (const cmd of [['prune', '--dry-run'], ['stats']]) {
    const w = [];
    for (let rep = 0; rep < REPS; rep++) w.push(await lb([...cmd, '-q', '--repo', loc.location]));
    console.log(`${cmd.join(' ')}: median ${median(w).toFixed(2)} s (${w.map((x) => x.toFixed(2)).join(', ')})`);
  }
} finally {
  await proxy.close();
  await srv.stop();
  rmSync(work, { recursive: true, force: true });
}
