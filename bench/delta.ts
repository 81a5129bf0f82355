/**
 * Delta-blob benchmark (issue 8): what a daily database dump costs when 1% of
 * its rows changed, Lifeboat vs restic vs borg, and 30 daily versions vs 30
 * gzip dumps. Also a real PostgreSQL database (pgbench) dumped with pg_dump.
 *
 *   npm run build && node dist/bench/delta.js [--size-mb 189] [--versions 30] [--pgbench-scale 20] [--no-pg] [--dir /tmp/lifeboat-bench-delta]
 *
 * Needs restic and borg (bash bench/setup.sh installs them); a tool that is
 * missing is reported as n/a. Results: bench/results/delta.md and .json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { xorshift32 as rng } from '../src/util/xorshift.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const SIZE = Number(opt('size-mb', '189')) * 1e6;
const VERSIONS = Number(opt('versions', '30'));
const PG_SCALE = Number(opt('pgbench-scale', '20'));
const DIR = opt('dir', '/tmp/lifeboat-bench-delta');
const NO_PG = args.includes('--no-pg');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const env = { ...process.env, LIFEBOAT_PASSWORD: 'bench', RESTIC_PASSWORD: 'bench', BORG_PASSPHRASE: 'bench', BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes', BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes' };

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}
function du(p: string): number {
  if (!existsSync(p)) return 0;
  let total = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.isFile()) total += statSync(f).size;
    }
  };
  walk(p);
  return total;
}
function sh(cmd: string, input?: string): void {
  const r = spawnSync('sh', ['-c', cmd], { env, stdio: [input ? 'pipe' : 'ignore', 'ignore', 'pipe'], ...(input ? { input } : {}) });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr?.toString().slice(-500)}`);
}

/** A pg_dump-like SQL text dump: COPY blocks of rows. `day` changes 1% of rows (every 100th, shifted by day). */
async function writeDump(file: string, day: number): Promise<number> {
  const out = createWriteStream(file);
  const r = rng(42);
  const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
  let written = 0;
  let row = 0;
  let buf = 'COPY public.accounts (id, name, email, balance, created_at, note) FROM stdin;\n';
  while (written < SIZE) {
    const id = row++;
    const n = names[Math.floor(r() * names.length)]!;
    const bal = Math.floor(r() * 1e6);
    const t = 1_700_000_000 + Math.floor(r() * 5e7);
    const note = r().toString(36).slice(2, 12);
    let balance = bal;
    for (let d = 1; d <= day; d++) if ((id + d) % 100 === 0) balance = bal + d * 7; // 1% of rows updated per day
    buf += `${id}\t${n}\t${n}.${id}@example.com\t${balance}\t${new Date(t * 1000).toISOString()}\t${note}\n`;
    if (buf.length > 1 << 20) {
      written += buf.length;
      if (!out.write(buf)) await once(out, 'drain');
      buf = '';
    }
  }
  buf += '\\.\n';
  out.end(buf);
  await once(out, 'finish');
  return statSync(file).size;
}

interface Tool {
  name: string;
  init(repo: string): void;
  backup(repo: string, file: string, name: string, i: number): void;
}
const tools: Tool[] = [
  {
    name: 'lifeboat',
    init: (repo) => sh(`node ${CLI} init --repo ${repo} -q`),
    backup: (repo, file, name) => sh(`node ${CLI} backup --repo ${repo} -q --stdin --stdin-filename ${name} < ${file}`),
  },
];
if (has('restic')) {
  tools.push({
    name: 'restic',
    init: (repo) => sh(`restic init -q -r ${repo} --repository-version 2`),
    backup: (repo, file, name) => sh(`restic -q -r ${repo} backup --compression auto --stdin --stdin-filename ${name} < ${file}`),
  });
}
if (has('borg')) {
  tools.push({
    name: 'borg zstd,3',
    init: (repo) => sh(`borg init -e repokey ${repo}`),
    backup: (repo, file, _name, i) => sh(`borg create --compression zstd,3 ${repo}::v${i} - < ${file}`),
  });
}

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  const lines: string[] = [];
  const json: Record<string, unknown> = { date: new Date().toISOString(), sizeMb: SIZE / 1e6, versions: VERSIONS, tools: tools.map((t) => t.name) };
  const dump = path.join(DIR, 'dump.sql');
  const repos = Object.fromEntries(tools.map((t) => [t.name, path.join(DIR, t.name.replace(/\W+/g, '-'))]));
  for (const t of tools) t.init(repos[t.name]!);

  const series: Record<string, number[]> = Object.fromEntries(tools.map((t) => [t.name, []]));
  const timing: Record<string, number[]> = Object.fromEntries(tools.map((t) => [t.name, []]));
  let gzipTotal = 0;
  let dumpSize = 0;
  for (let day = 0; day < VERSIONS; day++) {
    dumpSize = await writeDump(dump, day);
    gzipTotal += Number(execFileSync('sh', ['-c', `gzip -6 -c ${dump} | wc -c`]).toString().trim());
    for (const t of tools) {
      const before = du(repos[t.name]!);
      const t0 = Date.now();
      t.backup(repos[t.name]!, dump, 'dump.sql', day);
      timing[t.name]!.push(Date.now() - t0);
      series[t.name]!.push(du(repos[t.name]!) - before);
    }
    process.stderr.write(`day ${day + 1}/${VERSIONS}: ${tools.map((t) => `${t.name} +${(series[t.name]![day]! / 1e6).toFixed(2)} MB`).join(', ')}\n`);
  }
  const gzipOne = Number(execFileSync('sh', ['-c', `gzip -6 -c ${dump} | wc -c`]).toString().trim());
  lines.push(`# Delta benchmark: ${(dumpSize / 1e6).toFixed(0)} MB SQL dump, 1% of rows changed per day, ${VERSIONS} versions`, '');
  lines.push(`Machine: ${execFileSync('nproc').toString().trim()} cores; ${new Date().toISOString()}. Command: \`node dist/bench/delta.js --size-mb ${SIZE / 1e6} --versions ${VERSIONS}\``, '');
  lines.push('| tool | first backup | 2nd backup adds | 2nd as % of dump | median daily add | total after all versions | first backup MB/s | median daily MB/s |', '|---|---|---|---|---|---|---|---|');
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
  for (const t of tools) {
    const s = series[t.name]!;
    const total = du(repos[t.name]!);
    lines.push(
      `| ${t.name} | ${(s[0]! / 1e6).toFixed(1)} MB | ${((s[1] ?? 0) / 1e6).toFixed(2)} MB | ${(((s[1] ?? 0) / dumpSize) * 100).toFixed(2)}% | ${(med(s.slice(1)) / 1e6).toFixed(2)} MB | ${(total / 1e6).toFixed(1)} MB | ${(dumpSize / 1e6 / (timing[t.name]![0]! / 1000)).toFixed(0)} | ${(dumpSize / 1e6 / (med(timing[t.name]!.slice(1)) / 1000)).toFixed(0)} |`,
    );
    json[t.name] = { added: s, totalBytes: total, ms: timing[t.name] };
  }
  lines.push(`| gzip -6 per day | ${(gzipOne / 1e6).toFixed(1)} MB | ${(gzipOne / 1e6).toFixed(1)} MB | ${((gzipOne / dumpSize) * 100).toFixed(1)}% | ${(gzipOne / 1e6).toFixed(1)} MB | ${(gzipTotal / 1e6).toFixed(1)} MB | | |`);
  json.gzipTotal = gzipTotal;
  if (tools[0] && tools.find((t) => t.name === 'restic')) {
    const l = series.lifeboat![1] ?? 0;
    const r = series.restic![1] ?? 1;
    lines.push('', `Second backup, Lifeboat/restic bytes added: ${(l / r).toFixed(3)}`);
  }
  lines.push(`Total after ${VERSIONS} versions, Lifeboat vs ${VERSIONS} gzip dumps: ${((du(repos.lifeboat!) / gzipTotal) * 100).toFixed(1)}%`);

  if (!NO_PG && has('pgbench') && has('pg_dump')) {
    const db = `lb_bench_${process.pid}`;
    const psql = (sql: string) => sh(`psql -h 127.0.0.1 -U postgres -d ${db} -qc "${sql}"`);
    sh(`psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE ${db}"`);
    try {
      sh(`pgbench -h 127.0.0.1 -U postgres -i -q -s ${PG_SCALE} ${db}`);
      const pgRepos = Object.fromEntries(tools.map((t) => [t.name, path.join(DIR, 'pg-' + t.name.replace(/\W+/g, '-'))]));
      for (const t of tools) t.init(pgRepos[t.name]!);
      const added: Record<string, number[]> = Object.fromEntries(tools.map((t) => [t.name, []]));
      let pgDumpSize = 0;
      for (let day = 0; day < 2; day++) {
        if (day) psql(`UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 100 = ${day}`);
        sh(`pg_dump -h 127.0.0.1 -U postgres -Fc --compress=0 -f ${dump} ${db}`);
        pgDumpSize = statSync(dump).size;
        for (const t of tools) {
          const before = du(pgRepos[t.name]!);
          t.backup(pgRepos[t.name]!, dump, 'db.pgdump', day);
          added[t.name]!.push(du(pgRepos[t.name]!) - before);
        }
      }
      lines.push('', `## PostgreSQL pgbench -s ${PG_SCALE}: pg_dump -Fc --compress=0 of ${(pgDumpSize / 1e6).toFixed(0)} MB, 1% of pgbench_accounts rows updated`, '');
      lines.push('| tool | first backup | second backup adds | % of dump |', '|---|---|---|---|');
      for (const t of tools) {
        const a = added[t.name]!;
        lines.push(`| ${t.name} | ${(a[0]! / 1e6).toFixed(1)} MB | ${(a[1]! / 1e6).toFixed(2)} MB | ${((a[1]! / pgDumpSize) * 100).toFixed(2)}% |`);
      }
      json.pgbench = { scale: PG_SCALE, dumpSize: pgDumpSize, added };
    } finally {
      sh(`psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS ${db}"`);
    }
  }
  const md = lines.join('\n') + '\n';
  process.stdout.write(md);
  const resDir = path.join(ROOT, 'bench/results');
  mkdirSync(resDir, { recursive: true });
  writeFileSync(path.join(resDir, 'delta.md'), md);
  writeFileSync(path.join(resDir, 'delta.json'), JSON.stringify(json, null, 2));
  rmSync(DIR, { recursive: true, force: true });
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${(err as Error).stack}\n`);
  process.exitCode = 1;
});
void createReadStream;
