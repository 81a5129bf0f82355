/**
 * Lifeboat vs restic vs borg on the same machine and data, in one run (issue 7).
 *
 *   bash bench/setup.sh && npm run bench -- [--scale 1] [--reps 3] [--quick] [--dir /tmp/lifeboat-bench] [--settle 61] [--keep]
 *
 * Dataset (seeded, reproducible; --scale 1 = about 1.3 GiB): large random files,
 * large compressible text/log files, thousands of small files, a realistic
 * many-small-files set copied from /usr/share, /usr/lib and /usr/include
 * (sorted walk, regular readable files only, 300 MB at scale 1), plus a SQL
 * dump (~300 MB at scale 1, bench/restore-data.mjs: each day about 1% of rows updated, 0.5% inserted,
 * 0.2% deleted). Steps per tool, each repetition with fresh repositories:
 *   (1) first backup  (2) unchanged re-backup  (3) re-backup after changing 5%
 *   (4) full restore  (5) the daily dump backup, days 1-3 after day 0: speed and bytes added
 *   (6) restore of the day-3 dump (the end of the delta chain), compared with the dump
 *   (7) check --read-data
 * Lifeboat runs as users run it, through bin/lifeboat (LIFEBOAT_CLI=path/to/main.js runs that with node).
 * Wall time, throughput, CPU seconds per GB (user + system, GNU time %U + %S),
 * peak RSS (GNU time %M), repository size; median of reps.
 * Results: bench/results/latest.md and latest.json.
 *
 * --keep: the data, the dumps and the last repetition's repositories stay in --dir (for bench/env-ab.sh).
 * --settle S: the full restore starts S seconds (61 by default, 0 with --quick) after the bench last removed
 * files, after a sync. On ext4 without a journal every new inode skips the inodes freed in the last 60 s (360
 * while their inode table block is dirty: the kernel's `recently_deleted`), and the bench removes a tree of
 * 25k files (the last tool's restore, the rebuilt dataset) seconds before each restore: such a restore measured
 * the filesystem's search through those inodes, differently run by run, not the tool (docs/benchmarks.md).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { MB, type Measure, benchEnv as env, copyRealFiles, du, has, median, timed, writeFile } from './util.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const QUICK = args.includes('--quick');
const KEEP = args.includes('--keep');
const SCALE = Number(opt('scale', QUICK ? '0.02' : '1'));
const REPS = Number(opt('reps', QUICK ? '1' : '3'));
const DIR = opt('dir', '/tmp/lifeboat-bench');
const SETTLE_DEFAULT = QUICK ? 0 : 61;
const SETTLE_S = Number(opt('settle', String(SETTLE_DEFAULT)));
if (!(SETTLE_S >= 0)) throw new Error('--settle: a number of seconds, 0 or more');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The command that runs Lifeboat: the checkout's launcher (node with its flags), or node on LIFEBOAT_CLI. */
const LB = process.env.LIFEBOAT_CLI ? `node ${path.resolve(ROOT, process.env.LIFEBOAT_CLI)}` : path.join(ROOT, 'bin/lifeboat');
const DUMP_DAYS = 4;
/** Real files copied into the dataset (many small files: the common case of a file backup). */
const REAL_SOURCES = ['/usr/share', '/usr/lib', '/usr/include'];

/** When the bench last removed files (see --settle). */
let lastRemoval = 0;
function remove(p: string): void {
  rmSync(p, { recursive: true, force: true });
  lastRemoval = Date.now();
}
/** Wait until SETTLE_S seconds have passed since the last removal, the removed inodes written back first. */
function settle(): void {
  if (SETTLE_S === 0) return;
  spawnSync('sync');
  const wait = lastRemoval + SETTLE_S * 1000 - Date.now();
  if (wait > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, wait);
}

/** Seeded byte stream (SHA-256 counter mode): incompressible, reproducible. */
function randomBytesSeeded(seed: string, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let off = 0;
  for (let i = 0; off < n; i++) off += createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off);
  return out;
}
function textBytes(seed: number, n: number): Buffer {
  let s = seed >>> 0;
  const r = () => ((s = (s ^ (s << 13)) >>> 0), (s = (s ^ (s >>> 17)) >>> 0), (s = (s ^ (s << 5)) >>> 0), s / 2 ** 32);
  const words = ['GET', 'POST', '/api/v1/items', '/login', 'user', 'session', 'ok', 'error', 'timeout', 'cache', 'hit', 'miss'];
  const parts: string[] = [];
  let len = 0;
  let i = 0;
  while (len < n) {
    const line = `2026-11-${String(1 + (i % 28)).padStart(2, '0')}T12:${String(i % 60).padStart(2, '0')}:00Z ${words[Math.floor(r() * 12)]} ${words[Math.floor(r() * 12)]} id=${Math.floor(r() * 1e6)} ms=${Math.floor(r() * 900)}\n`;
    parts.push(line);
    len += line.length;
    i++;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}
function makeDataset(dir: string): number {
  remove(dir);
  const big = Math.round(350 * MB * SCALE);
  for (let i = 0; i < 4; i++) writeFile(path.join(dir, `random/r${i}.bin`), randomBytesSeeded(`r${i}`, Math.round(big / 4)));
  for (let i = 0; i < 4; i++) writeFile(path.join(dir, `logs/app${i}.log`), textBytes(i + 1, Math.round(big / 4)));
  const small = Math.max(50, Math.round(5000 * SCALE));
  for (let i = 0; i < small; i++) {
    const size = 1024 + ((i * 7919) % (63 * 1024));
    writeFile(path.join(dir, `small/d${i % 50}/f${i}.${i % 2 ? 'txt' : 'bin'}`), i % 2 ? textBytes(i, size) : randomBytesSeeded(`s${i}`, size));
  }
  copyRealFiles(REAL_SOURCES, path.join(dir, 'real'), Math.round(300 * MB * SCALE));
  return du(dir);
}

/** Change 5% of the data: overwrite scattered ranges in the large files, add and delete a few files. */
function mutate(dir: string, total: number): void {
  const budget = total * 0.05;
  let done = 0;
  const files = ['random/r0.bin', 'random/r1.bin', 'logs/app0.log', 'logs/app1.log'].map((f) => path.join(dir, f));
  for (let k = 0; done < budget * 0.8; k++) {
    const f = files[k % files.length]!;
    const size = statSync(f).size;
    const len = 64 * 1024;
    const fd = openSync(f, 'r+');
    writeSync(fd, randomBytesSeeded(`m${k}`, len), 0, len, (k * 7_777_777) % Math.max(1, size - len));
    closeSync(fd);
    done += len;
  }
  for (let i = 0; done < budget; i++) {
    const b = randomBytesSeeded(`new${i}`, 256 * 1024);
    writeFile(path.join(dir, `new/n${i}.bin`), b);
    done += b.length;
  }
  remove(path.join(dir, 'small/d1'));
}

/** Day `day` of the daily dump (bench/restore-data.mjs, as bench/steps-all.sh uses it): its size in bytes. */
function makeDump(file: string, day: number): number {
  const r = spawnSync('node', [path.join(ROOT, 'bench/restore-data.mjs'), 'dumpday', file, String(SCALE), String(day)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench/restore-data.mjs dumpday ${day} failed: ${r.stderr}`);
  return statSync(file).size;
}

interface Tool {
  name: string;
  init(repo: string): string;
  backup(repo: string, src: string, i: number): string;
  backupStdin(repo: string, file: string, i: number): string;
  restore(repo: string, target: string): string;
  /** Where restore() puts the file of a --stdin backup. */
  stdinFile(target: string): string;
  check(repo: string): string;
}
const tools: Tool[] = [
  {
    name: 'lifeboat',
    init: (r) => `${LB} init -q --repo ${r}`,
    backup: (r, s) => `${LB} backup -q --repo ${r} ${s}`,
    backupStdin: (r, f) => `${LB} backup -q --repo ${r} --stdin --stdin-filename dump.sql < ${f}`,
    restore: (r, t) => `${LB} restore latest -q --repo ${r} --target ${t}`,
    stdinFile: (t) => path.join(t, 'dump.sql'),
    check: (r) => `${LB} check -q --read-data --repo ${r}`,
  },
];
if (has('restic')) {
  tools.push({
    name: 'restic',
    init: (r) => `restic init -q -r ${r} --repository-version 2`,
    backup: (r, s) => `restic -q -r ${r} backup --compression auto ${s}`,
    backupStdin: (r, f) => `restic -q -r ${r} backup --compression auto --stdin --stdin-filename dump.sql < ${f}`,
    restore: (r, t) => `restic -q -r ${r} restore latest --target ${t}`,
    stdinFile: (t) => path.join(t, 'dump.sql'),
    check: (r) => `restic -q -r ${r} check --read-data`,
  });
}
if (has('borg')) {
  for (const comp of ['lz4', 'zstd,3']) {
    tools.push({
      name: `borg ${comp}`,
      init: (r) => `borg init -e repokey ${r}`,
      backup: (r, s, i) => `borg create --compression ${comp} ${r}::a${i} ${s}`,
      backupStdin: (r, f, i) => `borg create --compression ${comp} ${r}::d${i} - < ${f}`,
      restore: (r, t) => `mkdir -p ${t} && cd ${t} && borg extract ${r}::$(borg list --last 1 --short ${r})`,
      stdinFile: (t) => path.join(t, 'stdin'),
      check: (r) => `borg check --verify-data ${r}`,
    });
  }
}

const STEPS = ['1 first backup', '2 unchanged re-backup', '3 re-backup after 5% change', '4 full restore', '5 daily dump backup (days 1-3)', '6 dump restore (day 3, end of chain)', '7 check --read-data'] as const;
type Row = { ms: number; mbps: number; rssMb: number; cpuSPerGb: number; repoMb: number; addedMb?: number };

function main(): void {
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time is missing: run bash bench/setup.sh');
  remove(DIR);
  mkdirSync(DIR, { recursive: true });
  const results: Record<string, Record<string, Row[]>> = {};
  // the dumps of days 0..DUMP_DAYS-1, made once (the same for every tool)
  const dumps: Array<{ file: string; size: number }> = [];
  for (let d = 0; d < DUMP_DAYS; d++) {
    const file = path.join(DIR, `dump${d}.sql`);
    dumps.push({ file, size: makeDump(file, d) });
  }
  const dumpSize = dumps[DUMP_DAYS - 1]!.size;
  for (let rep = 0; rep < REPS; rep++) {
    const data = path.join(DIR, 'data');
    const total = makeDataset(data);
    for (const t of tools) {
      // every tool sees identical data: rebuild the dataset before each tool
      makeDataset(data);
      // the dataset (and, before the first tool, the dumps) written back before the tool starts: without
      // it the first backup ran beside the kernel's writeback of the ~1.2 GB the bench had just written,
      // which took ~0.7 s (10%) from Lifeboat's and ~0.4 s (4%) from restic's (medians of 4 and 2 runs;
      // docs/benchmarks.md, "The first backup beside the writeback of the bench's own data")
      spawnSync('sync');
      const repo = path.join(DIR, `repo-${t.name.replace(/\W+/g, '-')}`);
      remove(repo);
      spawnSync('sh', ['-c', t.init(repo)], { env, stdio: 'ignore' });
      const r = (results[t.name] ??= {});
      const add = (step: string, m: Measure, bytes: number, extra: Partial<Row> = {}) =>
        (r[step] ??= []).push({ ms: m.ms, mbps: bytes / MB / (m.ms / 1000), rssMb: m.rssKb / 1024, cpuSPerGb: m.cpuS / (bytes / 1e9), repoMb: du(repo) / MB, ...extra });
      add(STEPS[0], timed(t.backup(repo, data, 1)), total);
      add(STEPS[1], timed(t.backup(repo, data, 2)), total);
      mutate(data, total);
      const total2 = du(data);
      const before3 = du(repo);
      const m3 = timed(t.backup(repo, data, 3));
      add(STEPS[2], m3, total2, { addedMb: (du(repo) - before3) / MB });
      const target = path.join(DIR, 'restore');
      remove(target);
      settle();
      add(STEPS[3], timed(t.restore(repo, target)), total2);
      remove(target);
      timed(t.backupStdin(repo, dumps[0]!.file, 10));
      for (let d = 1; d < DUMP_DAYS; d++) {
        const before5 = du(repo);
        const m5 = timed(t.backupStdin(repo, dumps[d]!.file, 10 + d));
        add(STEPS[4], m5, dumps[d]!.size, { addedMb: (du(repo) - before5) / MB });
      }
      add(STEPS[5], timed(t.restore(repo, target)), dumpSize);
      if (spawnSync('cmp', ['-s', t.stdinFile(target), dumps[DUMP_DAYS - 1]!.file]).status !== 0) throw new Error(`${t.name}: the restored day-${DUMP_DAYS - 1} dump differs from the dump`);
      remove(target);
      add(STEPS[6], timed(t.check(repo)), du(repo));
      if (!(KEEP && rep === REPS - 1)) remove(repo);
      process.stderr.write(`rep ${rep + 1}/${REPS}: ${t.name} done\n`);
    }
  }
  // report
  const cpu = os.cpus()[0]?.model ?? '?';
  const version = (cmd: string) => spawnSync('sh', ['-c', cmd], { env }).stdout?.toString().trim().split('\n')[0] ?? 'n/a';
  const lines = [
    `# Benchmark: Lifeboat vs restic vs borg`,
    '',
    `${new Date().toISOString()} · ${os.cpus().length} cores (${cpu}) · ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB · scale ${SCALE} (${(du(path.join(DIR, 'data')) / MB).toFixed(0)} MB files, ${(dumpSize / MB).toFixed(0)} MB dump) · median of ${REPS} rep(s) · warm page cache for every tool`,
    `Versions: ${version(`${LB} --version`)} (lifeboat), ${version('restic version')}, ${version('borg --version')}. Command: \`npm run bench -- --scale ${SCALE} --reps ${REPS}${QUICK ? ' --quick' : ''}${SETTLE_S !== SETTLE_DEFAULT ? ` --settle ${SETTLE_S}` : ''}\`; the full restore starts ${SETTLE_S} s after the bench's last removal of files (--settle)`,
    '',
    '| step | tool | wall s | MB/s | CPU s/GB | peak RSS MB | repo MB | added MB | vs restic | vs borg zstd,3 |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  const json: Record<string, unknown> = { scale: SCALE, reps: REPS, cpu, cores: os.cpus().length, results: {} };
  for (const step of STEPS) {
    const med = (tool: string, k: keyof Row) => median((results[tool]?.[step] ?? []).map((x) => x[k] as number));
    for (const t of tools) {
      // speed for every step (the other tool's wall time over Lifeboat's: the same work, whatever each tool stores;
      // check's MB/s are of each tool's own repository, so a smaller repository read as slower); for the daily dump
      // also the bytes it added against the other tool's
      const ratio = (other: string) => {
        if (!results[other]) return 'n/a';
        const speed = `${(med(other, 'ms') / med('lifeboat', 'ms')).toFixed(2)}x speed`;
        return step.startsWith('5') ? `${speed}, ${(med('lifeboat', 'addedMb') / med(other, 'addedMb')).toFixed(2)}x bytes` : speed;
      };
      const added = med(t.name, 'addedMb');
      lines.push(
        `| ${step} | ${t.name} | ${(med(t.name, 'ms') / 1000).toFixed(2)} | ${med(t.name, 'mbps').toFixed(0)} | ${med(t.name, 'cpuSPerGb').toFixed(1)} | ${med(t.name, 'rssMb').toFixed(0)} | ${med(t.name, 'repoMb').toFixed(0)} | ${Number.isNaN(added) ? '' : added.toFixed(2)} | ${t.name === 'lifeboat' ? ratio('restic') : ''} | ${t.name === 'lifeboat' ? ratio('borg zstd,3') : ''} |`,
      );
      (json.results as Record<string, unknown>)[`${step} / ${t.name}`] = results[t.name]?.[step];
    }
  }
  const md = lines.join('\n') + '\n';
  process.stdout.write(md);
  const out = path.join(ROOT, 'bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, QUICK ? 'quick.md' : 'latest.md'), md);
  writeFileSync(path.join(out, QUICK ? 'quick.json' : 'latest.json'), JSON.stringify(json, null, 2));
  if (KEEP) process.stderr.write(`kept: ${DIR} (data, dump0-${DUMP_DAYS - 1}.sql, repo-*)\n`);
  else rmSync(DIR, { recursive: true, force: true });
}

main();
