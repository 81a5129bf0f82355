/**
 * MySQL/MariaDB binlog archive RPO (issue 14): how far the archive in the
 * repository lags the primary under a steady write load, for
 *   - the streaming archiver (`lifeboat mysql binlog-archive SRC --flush-interval F`)
 *   - the one-shot mode run every I seconds (`lifeboat mysql binlog-archive SRC --once`, as from cron)
 * A private mariadbd (log_bin on) gets one committed INSERT every 100 ms; for
 * every commit we note its binlog file and end position (SHOW MASTER STATUS on
 * the same connection), then the moment that file appears in the repository
 * (entry listed) — the lag of that commit; for the streaming mode also the
 * moment the spool file reached the commit's position (the local copy's lag).
 *
 *   npm run build && node dist/bench/mysql-rpo.js [--seconds 40] [--interval 5] [--dir /tmp/lifeboat-bench-myrpo]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { promises as fsp, statSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { Repository } from '../src/repo/repository.js';
import { LocalStorage } from '../src/storage/local.js';
import { loadBinlogObject } from '../src/repo/binlog.js';
import { startScratchMysql } from '../src/sources/mysql/scratch.js';

const args = process.argv.slice(2);
const opt = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const SECONDS = Number(opt('seconds', '40'));
const INTERVAL = Number(opt('interval', '5'));
const DIR = opt('dir', '/tmp/lifeboat-bench-myrpo');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function main(): Promise<void> {
  await fsp.rm(DIR, { recursive: true, force: true });
  await fsp.mkdir(DIR, { recursive: true });
  const server = await startScratchMysql({ dir: path.join(DIR, 'mysqld'), logBin: true });
  const cfg = path.join(DIR, 'lifeboat.yaml');
  await fsp.writeFile(
    cfg,
    `repositories:\n  main: { location: ./repo, autoInit: true }\nsources:\n  shop:\n    kind: mysql\n    host: 127.0.0.1\n    port: ${server.port}\n    user: root\n    database: shop\n    binlog: { spoolDir: ./spool }\n`,
  );
  const conn = await mysql.createConnection({ host: '127.0.0.1', port: server.port, user: 'root' });
  await conn.query('CREATE DATABASE shop');
  await conn.query('CREATE TABLE shop.items (id INT PRIMARY KEY, label VARCHAR(100), at DATETIME(6))');
  const r = spawnSync(process.execPath, [CLI, 'backup', '--config', cfg, '--source', 'shop'], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const repo = await Repository.open(new LocalStorage(path.join(DIR, 'repo')), 'bench', { loadIndex: false });
  let id = 0;

  async function measure(mode: 'stream' | 'once'): Promise<void> {
    const known = new Set((await repo.storage.list('binlog')).map((o) => o.name));
    const archivedAt = new Map<string, number>();
    const commits: Array<{ t: number; file: string; pos: number; spoolAt?: number }> = [];
    let child: ChildProcess | undefined;
    let stop = false;
    const end = Date.now() + SECONDS * 1000;
    const pending = () => commits.some((c) => !archivedAt.has(c.file));
    if (mode === 'stream') {
      child = spawn(process.execPath, [CLI, 'mysql', 'binlog-archive', 'shop', '--config', cfg, '--flush-interval', `${INTERVAL}s`], { env, stdio: 'ignore' });
    }
    const onceLoop = (async () => {
      if (mode !== 'once') return;
      while (!stop || pending()) {
        if (stop && Date.now() > end + 120_000) break;
        const t0 = Date.now();
        await new Promise((res) => spawn(process.execPath, [CLI, 'mysql', 'binlog-archive', 'shop', '--config', cfg, '--once'], { env, stdio: 'ignore' }).on('close', res));
        await sleep(Math.max(0, INTERVAL * 1000 - (Date.now() - t0)));
      }
    })();
    const watch = (async () => {
      while (!stop || pending()) {
        for (const o of await repo.storage.list('binlog')) {
          if (known.has(o.name)) continue;
          known.add(o.name);
          const e = await loadBinlogObject(repo, o.name);
          archivedAt.set(e.name, Date.now());
        }
        if (mode === 'stream') {
          for (const c of commits) {
            if (c.spoolAt !== undefined) continue;
            try {
              if (statSync(path.join(DIR, 'spool', c.file)).size >= c.pos) c.spoolAt = Date.now();
            } catch {
              if (archivedAt.has(c.file)) c.spoolAt = archivedAt.get(c.file)!; // already archived and removed from the spool
            }
          }
        }
        await sleep(mode === 'stream' ? 20 : 100);
        if (stop && Date.now() > end + 120_000) break;
      }
    })();
    while (Date.now() < end) {
      await conn.query('INSERT INTO shop.items VALUES (?, ?, NOW(6))', [++id, `row ${id}`]);
      const t = Date.now();
      const [rows] = await conn.query('SHOW MASTER STATUS');
      const s = (rows as Array<{ File: string; Position: number }>)[0]!;
      commits.push({ t, file: s.File, pos: Number(s.Position) });
      await sleep(100);
    }
    stop = true;
    await onceLoop;
    await watch;
    child?.kill('SIGTERM');
    const lags = commits.filter((c) => archivedAt.has(c.file)).map((c) => (archivedAt.get(c.file)! - c.t) / 1000);
    const spool = commits.filter((c) => c.spoolAt !== undefined).map((c) => (c.spoolAt! - c.t) / 1000);
    const f = (x: number) => x.toFixed(2);
    console.log(
      `${mode === 'stream' ? `streaming, --flush-interval ${INTERVAL}s` : `--once every ${INTERVAL}s`}: ${commits.length} commits, ` +
        `repository lag median ${f(pct(lags, 50))} s, p95 ${f(pct(lags, 95))} s, max ${f(Math.max(...lags))} s` +
        (spool.length ? `; spool lag median ${f(pct(spool, 50))} s, p95 ${f(pct(spool, 95))} s, max ${f(Math.max(...spool))} s` : '') +
        (lags.length < commits.length ? ` (${commits.length - lags.length} not archived)` : ''),
    );
  }

  try {
    await measure('stream');
    await measure('once');
  } finally {
    await conn.end();
    await repo.close();
    await server.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
