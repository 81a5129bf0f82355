/**
 * PostgreSQL benchmark (issue 7): a pgbench database, backed up daily for N days
 * with 1% of the account rows updated between backups.
 *   - time to back up: Lifeboat (pg_dump -Fc --compress=0 streamed into the repository)
 *     vs the usual script `pg_dump -Fc | gzip > file`
 *   - storage after N daily backups: Lifeboat vs restic (same dump via stdin) vs N gzip files
 *   - restore time into a fresh database: Lifeboat (restore --stdout | pg_restore) vs gunzip | pg_restore
 *
 *   npm run build && node dist/bench/pg.js [--scale 50] [--days 7] [--dir /tmp/lifeboat-bench-pg]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const SCALE = Number(opt('scale', '50'));
const DAYS = Number(opt('days', '7'));
const DIR = opt('dir', '/tmp/lifeboat-bench-pg');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench', RESTIC_PASSWORD: 'bench', PGHOST: '127.0.0.1', PGUSER: 'postgres' };
const DB = `lb_bench_pg_${process.pid}`;

function run(cmd: string): number {
  const t0 = Date.now();
  const r = spawnSync('bash', ['-o', 'pipefail', '-c', cmd], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr.toString().slice(-800)}`);
  return (Date.now() - t0) / 1000;
}
function du(p: string): number {
  if (!existsSync(p)) return 0;
  let t = 0;
  for (const e of readdirSync(p, { withFileTypes: true, recursive: true })) if (e.isFile()) t += statSync(path.join(e.parentPath, e.name)).size;
  return t;
}
const hasRestic = spawnSync('sh', ['-c', 'command -v restic']).status === 0;

function main(): void {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const lb = path.join(DIR, 'lifeboat');
  const rr = path.join(DIR, 'restic');
  run(`node ${CLI} init -q --repo ${lb}`);
  if (hasRestic) run(`restic init -q -r ${rr} --repository-version 2`);
  run(`psql -d postgres -qc "CREATE DATABASE ${DB}"`);
  const rows: string[] = [];
  try {
    const tInit = run(`pgbench -i -q -s ${SCALE} ${DB}`);
    const dbSize = Number(spawnSync('psql', ['-d', DB, '-Atc', `SELECT pg_database_size('${DB}')`], { env }).stdout.toString().trim());
    let gzipTotal = 0;
    const t = { lb: [] as number[], restic: [] as number[], gzip: [] as number[] };
    const added = { lb: [] as number[], restic: [] as number[] };
    for (let day = 0; day < DAYS; day++) {
      if (day) run(`psql -d ${DB} -qc "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = ${day}"`);
      let before = du(lb);
      t.lb.push(run(`node ${CLI} backup -q --repo ${lb} --stdin-from-command "pg_dump -Fc --compress=0 ${DB}" --stdin-filename ${DB}.pgdump`));
      added.lb.push(du(lb) - before);
      if (hasRestic) {
        before = du(rr);
        t.restic.push(run(`pg_dump -Fc --compress=0 ${DB} | restic -q -r ${rr} backup --compression auto --stdin --stdin-filename ${DB}.pgdump`));
        added.restic.push(du(rr) - before);
      }
      const gz = path.join(DIR, `day${day}.pgdump.gz`);
      t.gzip.push(run(`pg_dump -Fc ${DB} | gzip > ${gz}`));
      gzipTotal += statSync(gz).size;
      process.stderr.write(`day ${day + 1}/${DAYS}: lifeboat ${t.lb[day]}s +${(added.lb[day]! / 1e6).toFixed(1)} MB; gzip ${t.gzip[day]}s ${(statSync(gz).size / 1e6).toFixed(1)} MB\n`);
    }
    // restore into fresh databases
    run(`psql -d postgres -qc "CREATE DATABASE ${DB}_r1"`);
    run(`psql -d postgres -qc "CREATE DATABASE ${DB}_r2"`);
    const tLbRestore = run(`node ${CLI} restore latest -q --repo ${lb} --stdout | pg_restore -d ${DB}_r1`);
    const tGzRestore = run(`gunzip -c ${path.join(DIR, `day${DAYS - 1}.pgdump.gz`)} | pg_restore -d ${DB}_r2`);
    const count = (db: string) => spawnSync('psql', ['-d', db, '-Atc', 'SELECT sum(abalance), count(*) FROM pgbench_accounts'], { env }).stdout.toString().trim();
    const same = count(DB) === count(`${DB}_r1`) && count(DB) === count(`${DB}_r2`);
    const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    rows.push(
      `# PostgreSQL benchmark: pgbench -s ${SCALE} (${(dbSize / 1e6).toFixed(0)} MB database), ${DAYS} daily backups, 1% of accounts updated per day`,
      '',
      `Command: \`node dist/bench/pg.js --scale ${SCALE} --days ${DAYS}\` · ${new Date().toISOString()} · pgbench -i took ${tInit.toFixed(0)} s`,
      '',
      '| | Lifeboat | restic | pg_dump -Fc \\| gzip |',
      '|---|---|---|---|',
      `| first backup (s) | ${t.lb[0]!.toFixed(1)} | ${t.restic[0]?.toFixed(1) ?? 'n/a'} | ${t.gzip[0]!.toFixed(1)} |`,
      `| median daily backup (s) | ${med(t.lb.slice(1)).toFixed(1)} | ${t.restic.length ? med(t.restic.slice(1)).toFixed(1) : 'n/a'} | ${med(t.gzip.slice(1)).toFixed(1)} |`,
      `| first backup stored (MB) | ${(added.lb[0]! / 1e6).toFixed(1)} | ${added.restic.length ? (added.restic[0]! / 1e6).toFixed(1) : 'n/a'} | ${(gzipTotal / DAYS / 1e6).toFixed(1)} (avg file) |`,
      `| median daily increment (MB) | ${(med(added.lb.slice(1)) / 1e6).toFixed(2)} | ${added.restic.length ? (med(added.restic.slice(1)) / 1e6).toFixed(2) : 'n/a'} | ${(gzipTotal / DAYS / 1e6).toFixed(1)} |`,
      `| storage after ${DAYS} days (MB) | ${(du(lb) / 1e6).toFixed(1)} | ${hasRestic ? (du(rr) / 1e6).toFixed(1) : 'n/a'} | ${(gzipTotal / 1e6).toFixed(1)} |`,
      `| restore into a fresh database (s) | ${tLbRestore.toFixed(1)} | | ${tGzRestore.toFixed(1)} |`,
      '',
      `Restored databases match the source (sum and count of pgbench_accounts): ${same ? 'yes' : 'NO'}`,
    );
  } finally {
    for (const d of [DB, `${DB}_r1`, `${DB}_r2`]) spawnSync('psql', ['-d', 'postgres', '-qc', `DROP DATABASE IF EXISTS ${d}`], { env });
    rmSync(DIR, { recursive: true, force: true });
  }
  const md = rows.join('\n') + '\n';
  process.stdout.write(md);
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/pg.md'), md);
}

main();
