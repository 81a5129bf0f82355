/**
 * PostgreSQL PITR benchmark (issue 18): Lifeboat vs pgBackRest on one private
 * pgbench cluster, same run, same machine.
 *
 *   - base backup: time, throughput (cluster size / wall time), peak RSS
 *   - archive_command per 16 MiB segment under pgbench load: median and p90
 *     wall ms (what PostgreSQL's archiver waits for), peak RSS;
 *     Lifeboat synchronous (`wal-push`) and spooled (`wal-push --spool`, plus the
 *     spool worker's own per-segment time); pgBackRest synchronous and
 *     `--archive-async`
 *   - restore_command per segment during recovery (`wal-fetch`, `wal-fetch
 *     --spool` with prefetch; pgBackRest archive-get sync and async) and the
 *     recovery time per replayed segment (server start to end of recovery)
 *
 *   npm run build && node dist/bench/pitr.js [--scale 30] [--segments 8] [--dir /tmp/lb-bench-pitr] [--keep]
 *   node dist/bench/pitr.js --base-only [--runs 3] [--scale 30] [--before /path/to/old/dist/src/cli/main.js]
 *
 * --base-only: per run, a first base backup into a fresh repository by each
 * tool (Lifeboat, pgBackRest full), then a second Lifeboat base backup into the
 * same repository (it has a parent: deltas), the same two with the direct read of
 * the data directory (`--data-dir`); medians of wall s, CPU s
 * (user + sys) and peak RSS; writes bench/results/pitr-base.md. --before adds
 * the same two Lifeboat steps with another build's CLI, interleaved (before/after).
 *
 * Needs root (the cluster runs as the postgres OS user, as in test/helpers/pgcluster.ts)
 * and pgbackrest (bench/setup.sh installs it); without pgbackrest its columns say n/a.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chownToPostgres, createCluster, type PgCluster } from '../test/helpers/pgcluster.js';

const args = process.argv.slice(2);
const opt = (n: string, d: string) => (args.includes(`--${n}`) ? args[args.indexOf(`--${n}`) + 1]! : d);
const SCALE = Number(opt('scale', '30'));
const SEGMENTS = Number(opt('segments', '8'));
const DIR = opt('dir', '/tmp/lb-bench-pitr');
const BASE_ONLY = args.includes('--base-only');
const RUNS = Number(opt('runs', '3'));
const BEFORE = opt('before', '');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.join(ROOT, 'dist/src/cli/main.js');
const NODE = process.execPath;
/** The spool's shell fast path (bin/lifeboat-wal), as documented for archive_command / restore_command. */
const LBWAL = `LIFEBOAT_NODE=${process.execPath} ${path.join(ROOT, 'bin/lifeboat-wal')}`;
/**
 * A build's command as users run it: its checkout's bin/lifeboat (node with the launcher's flags and
 * malloc settings: one arena, huge pages), for `main` = that checkout's dist/src/cli/main.js; plain
 * node where there is no launcher. `env` first, so it also works after a wrapper (the timer) and in
 * archive_command / restore_command. LB_BENCH_NODE_ARGS: node's flags instead of the launcher's.
 */
function lifeboatCmd(main: string): string {
  const bin = path.resolve(path.dirname(main), '../../../bin/lifeboat');
  const flags = process.env.LB_BENCH_NODE_ARGS;
  if (!existsSync(bin)) return `${NODE} ${flags ?? ''} ${main}`;
  return `env LIFEBOAT_NODE=${process.execPath}${flags !== undefined ? ` LIFEBOAT_NODE_FLAGS='${flags}'` : ''} ${bin}`;
}
const LB = lifeboatCmd(CLI);
const hasPgbr = spawnSync('sh', ['-c', 'command -v pgbackrest']).status === 0;
delete process.env.LIFEBOAT_TEST_SCRYPT_N; // the real key derivation cost

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function asPg(cmd: string): { ms: number; rssKb: number; cpuS: number; out: string } {
  const rss = path.join(DIR, `rss.${process.pid}`);
  const t0 = Date.now();
  const r = spawnSync('runuser', ['-u', 'postgres', '--', '/usr/bin/time', '-f', '%U %S %M', '-o', rss, 'bash', '-o', 'pipefail', '-c', cmd], { encoding: 'utf8', cwd: DIR });
  const ms = Date.now() - t0;
  if (r.status !== 0) throw new Error(`${cmd}: exit ${r.status}: ${(r.stderr + r.stdout).slice(-1500)}`);
  const [u, sys, m] = readFileSync(rss, 'utf8').trim().split('\n').pop()!.split(' ').map(Number);
  return { ms, rssKb: m!, cpuS: u! + sys!, out: r.stdout };
}

interface Timed {
  name: string;
  ms: number;
  rssKb: number;
  rc: number;
}
function readTimed(log: string): Timed[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [name, ms, rss, rc] = l.split(' ');
      return { name: name!, ms: Number(ms), rssKb: Number(rss), rc: Number(rc) };
    });
}
const isSeg = (n: string) => /^[0-9A-F]{24}$/.test(n);
function pct(a: number[], p: number): number {
  if (!a.length) return NaN;
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}
const med = (a: number[]) => pct(a, 50);

/** The wrapper PostgreSQL runs: logs "<name> <wall ms> <peak RSS KB> <exit code>" per call. */
function writeTimer(): string {
  const f = path.join(DIR, 'timed.sh');
  writeFileSync(
    f,
    `#!/bin/bash
log=$1; name=$2; shift 2
s=$(date +%s%N)
/usr/bin/time -f "%M" -o "$log.$$" "$@"; rc=$?
e=$(date +%s%N)
echo "$name $(( (e-s)/1000000 )) $(tail -1 "$log.$$") $rc" >> "$log"
rm -f "$log.$$"
exit $rc
`,
  );
  chmodSync(f, 0o755);
  return f;
}

async function setArchiveCommand(c: PgCluster, cmd: string): Promise<void> {
  await c.query(`ALTER SYSTEM SET archive_command = ${q(cmd)}`);
  await c.query('SELECT pg_reload_conf()');
  await sleep(500);
}

async function walFile(c: PgCluster): Promise<string> {
  return (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_current_wal_lsn()) AS f')).rows[0]!.f;
}
const segNo = (n: string) => parseInt(n.slice(8, 16), 16) * 256 + parseInt(n.slice(16, 24), 16);

/** Generate `n` segments of WAL (bulk inserts on top of the pgbench load), switch, wait until all are archived. */
async function generate(c: PgCluster, n: number, extraWait: () => boolean = () => true): Promise<string[]> {
  const start = await walFile(c);
  while (segNo(await walFile(c)) < segNo(start) + n) {
    await c.query("INSERT INTO filler SELECT g, repeat(md5(g::text), 7) FROM generate_series(1, 40000) g");
  }
  const last = (await c.query<{ f: string }>('SELECT pg_walfile_name(pg_switch_wal()) AS f')).rows[0]!.f;
  const deadline = Date.now() + 20 * 60_000;
  for (;;) {
    const a = (await c.query<{ last: string | null; failed: string }>('SELECT last_archived_wal AS last, failed_count::text AS failed FROM pg_stat_archiver')).rows[0]!;
    if (a.last && a.last.length === 24 && segNo(a.last) >= segNo(last) && extraWait()) break;
    if (Date.now() > deadline) throw new Error(`archiving did not catch up (last archived ${a.last}, want ${last}, failed ${a.failed}); see ${c.log}`);
    await sleep(200);
  }
  const names: string[] = [];
  for (let s = segNo(start); s <= segNo(last); s++) names.push(start.slice(0, 8) + (s >> 8).toString(16).toUpperCase().padStart(8, '0') + (s & 255).toString(16).toUpperCase().padStart(8, '0'));
  return names;
}

function startLoad(c: PgCluster): () => void {
  const child = spawn('pgbench', ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'postgres', '-c', '2', '-j', '1', '-T', '36000', '-n', 'postgres'], { stdio: 'ignore' });
  child.on('error', () => {});
  return () => child.kill('SIGINT');
}

/** Restore-and-replay: start `data` with `restoreCommand`, wait for the end of recovery. */
async function recover(data: string, restoreCommand: string, log: string): Promise<{ s: number; segments: number; fetch: Timed[] }> {
  const t0 = Date.now();
  const c = await createCluster({ existingData: data, settings: { restore_command: restoreCommand, archive_mode: 'off', hot_standby: 'on' } });
  try {
    for (;;) {
      const r = await c.query<{ rec: boolean }>('SELECT pg_is_in_recovery() AS rec').catch(() => undefined);
      if (r && !r.rows[0]!.rec) break;
      if (Date.now() - t0 > 30 * 60_000) throw new Error(`recovery did not finish; see ${c.log}`);
      await sleep(100);
    }
    const s = (Date.now() - t0) / 1000;
    const fetch = readTimed(log).filter((t) => isSeg(t.name) && t.rc === 0);
    return { s, segments: fetch.length, fetch };
  } finally {
    await c.stop();
  }
}

function writePgbrConf(conf: string, pgbrRepo: string, c: PgCluster): void {
  writeFileSync(
    conf,
    [
      '[global]',
      `repo1-path=${pgbrRepo}`,
      'repo1-cipher-type=aes-256-cbc',
      `repo1-cipher-pass=bench-cipher-${process.pid}`,
      'compress-type=zst',
      'compress-level=3',
      `log-path=${path.join(DIR, 'pgbr-log')}`,
      `lock-path=${path.join(DIR, 'pgbr-lock')}`,
      `spool-path=${path.join(DIR, 'pgbr-spool')}`,
      'log-level-console=warn',
      'log-level-file=info',
      'start-fast=y',
      'repo1-retention-full=2',
      '',
      '[bench]',
      `pg1-path=${c.data}`,
      `pg1-port=${c.port}`,
      `pg1-socket-path=${c.dir}`,
      'pg1-user=postgres',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
}

function freshDir(p: string): string {
  rmSync(p, { recursive: true, force: true });
  mkdirSync(p, { recursive: true, mode: 0o700 });
  return p;
}

/** --base-only: base backups of both tools, interleaved, RUNS times; medians. */
async function baseOnly(c: PgCluster, size: number, pw: string, timer: string): Promise<void> {
  const res: Record<string, Array<{ ms: number; cpuS: number; rssKb: number; added?: number }>> = {
    'lb-first': [],
    'lb-second': [],
    'direct-first': [],
    'direct-second': [],
    'before-first': [],
    'before-second': [],
    br: [],
  };
  // [label, CLI, extra base-backup arguments]: pg_basebackup, the direct read of the data directory (--data-dir), an older build
  const clis: Array<[string, string, string]> = [['lb', LB, ''], ['direct', LB, `--data-dir ${c.data}`], ...(BEFORE ? [['before', lifeboatCmd(BEFORE), ''] as [string, string, string]] : [])];
  const br = (conf: string) => `pgbackrest --config=${conf} --stanza=bench`;
  await setArchiveCommand(c, '/bin/true');
  const stopLoad = startLoad(c);
  try {
    for (let i = 0; i < RUNS; i++) {
      for (const [tag, cli, bbArgs] of clis) {
        const lbRepo = path.join(DIR, `lb-repo-${i}`);
        asPg(`${cli} init -q --repo ${lbRepo} --password-file ${pw}`);
        const lbCommon = `--repo ${lbRepo} --password-file ${pw}`;
        for (const step of ['first', 'second'] as const) {
          const r = asPg(`${cli} pg base-backup --port ${c.port} ${bbArgs} ${lbCommon} --json`);
          const added = Number(/"data_added":(\d+)/.exec(r.out)?.[1] ?? NaN);
          res[`${tag}-${step}`]!.push({ ...r, added });
          process.stderr.write(`run ${i + 1} ${tag} ${step}: ${(r.ms / 1000).toFixed(1)} s, ${r.cpuS.toFixed(1)} CPU s, ${(r.rssKb / 1024).toFixed(0)} MiB\n`);
        }
        rmSync(lbRepo, { recursive: true, force: true });
      }
      if (hasPgbr) {
        const conf = path.join(DIR, `pgbackrest-${i}.conf`);
        const pgbrRepo = path.join(DIR, `pgbr-repo-${i}`);
        for (const d of [`pgbr-repo-${i}`, 'pgbr-log', 'pgbr-lock', 'pgbr-spool']) mkdirSync(path.join(DIR, d), { recursive: true, mode: 0o750 });
        writePgbrConf(conf, pgbrRepo, c);
        await chownToPostgres(DIR);
        asPg(`${br(conf)} stanza-create`);
        await setArchiveCommand(c, `${br(conf)} archive-push %p`);
        const r = asPg(`${br(conf)} --type=full backup`);
        res.br!.push({ ...r, added: Number(spawnSync('du', ['-sb', path.join(pgbrRepo, 'backup')], { encoding: 'utf8' }).stdout.split('\t')[0]) });
        process.stderr.write(`run ${i + 1} pgbackrest: ${(r.ms / 1000).toFixed(1)} s, ${r.cpuS.toFixed(1)} CPU s, ${(r.rssKb / 1024).toFixed(0)} MiB\n`);
        await setArchiveCommand(c, '/bin/true');
        rmSync(pgbrRepo, { recursive: true, force: true });
      }
    }
  } finally {
    stopLoad();
  }
  void timer;
  const cell = (a: Array<{ ms: number; cpuS: number; rssKb: number; added?: number }>) => {
    if (!a.length) return 'n/a';
    const ms = med(a.map((x) => x.ms));
    const added = med(a.map((x) => x.added ?? NaN));
    return (
      `${(ms / 1000).toFixed(1)} s (${(size / 1e6 / (ms / 1000)).toFixed(0)} MB/s), ${med(a.map((x) => x.cpuS)).toFixed(1)} CPU s, ${(med(a.map((x) => x.rssKb)) / 1024).toFixed(0)} MiB RSS` +
      `${Number.isFinite(added) ? `, ${(added / 1e6).toFixed(1)} MB stored` : ''} (runs: ${a.map((x) => (x.ms / 1000).toFixed(1)).join(', ')} s)`
    );
  };
  const out = [
    `# PostgreSQL base backup: Lifeboat vs pgBackRest, pgbench -s ${SCALE} (${(size / 1e6).toFixed(0)} MB cluster), median of ${RUNS}`,
    '',
    `Command: \`node dist/bench/pitr.js --base-only --runs ${RUNS} --scale ${SCALE}${BEFORE ? ` --before ${BEFORE}` : ''}\` · ${new Date().toISOString()} · ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores, load average after the run ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
    '',
    '| step | wall (cluster MB / s), CPU s (user + sys), peak RSS, bytes added to the repository |',
    '|---|---|',
    `| Lifeboat, first base backup (empty repository) | ${cell(res['lb-first']!)} |`,
    `| Lifeboat, second base backup (parent: deltas) | ${cell(res['lb-second']!)} |`,
    `| Lifeboat direct (\`--data-dir\`: pg_backup_start/stop, no pg_basebackup), first base backup | ${cell(res['direct-first']!)} |`,
    `| Lifeboat direct, second base backup | ${cell(res['direct-second']!)} |`,
    ...(BEFORE
      ? [`| Lifeboat before (${BEFORE}), first base backup | ${cell(res['before-first']!)} |`, `| Lifeboat before, second base backup | ${cell(res['before-second']!)} |`]
      : []),
    `| pgBackRest 2.45, full backup (empty repository) | ${cell(res.br!)} |`,
    '',
    'Under a pgbench -c 2 load, tools interleaved per run; Lifeboat as users run it, through bin/lifeboat. CPU and RSS include child processes (pg_basebackup; pgBackRest\'s own), not the server\'s walsender. pgBackRest: zstd 3, aes-256-cbc, process-max 1; Lifeboat: zstd 3, AES-256-GCM.',
    '',
  ].join('\n');
  process.stdout.write(out);
  mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
  writeFileSync(path.join(ROOT, 'bench/results/pitr-base.md'), out);
}

async function main(): Promise<void> {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  chmodSync(DIR, 0o755);
  const timer = writeTimer();
  const pw = path.join(DIR, 'pw');
  writeFileSync(pw, 'bench-password-' + process.pid + '\n', { mode: 0o600 });
  const lbRepo = path.join(DIR, 'lb-repo');
  const lbSpool = path.join(DIR, 'lb-spool');
  const lbFetchSpool = path.join(DIR, 'lb-fetch-spool');
  const pgbrConf = path.join(DIR, 'pgbackrest.conf');
  const logs = (n: string) => path.join(DIR, `${n}.log`);
  await chownToPostgres(DIR);

  const c = await createCluster({ settings: { archive_mode: 'on', archive_command: '/bin/true', max_wal_size: '4GB', checkpoint_timeout: '30min' } });
  const rows: Record<string, Record<string, string>> = {};
  const put = (step: string, col: string, v: string) => ((rows[step] ??= {})[col] = v);
  let stopLoad = () => {};
  try {
    const tInit = Date.now();
    const init = spawnSync('pgbench', ['-h', '127.0.0.1', '-p', String(c.port), '-U', 'postgres', '-i', '-q', '-s', String(SCALE), 'postgres'], { encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`pgbench -i: ${init.stderr}`);
    await c.query('CREATE TABLE filler (id int, pad text)');
    await c.query('CHECKPOINT');
    const size = Number((await c.query<{ s: string }>('SELECT sum(pg_database_size(oid))::text AS s FROM pg_database')).rows[0]!.s);
    process.stderr.write(`cluster ready: ${(size / 1e6).toFixed(0)} MB (pgbench -i -s ${SCALE} took ${((Date.now() - tInit) / 1000).toFixed(0)} s)\n`);
    const bb = (ms: number, rssKb: number) => `${(ms / 1000).toFixed(1)} s (${(size / 1e6 / (ms / 1000)).toFixed(0)} MB/s), ${(rssKb / 1024).toFixed(0)} MiB RSS`;
    if (BASE_ONLY) {
      await baseOnly(c, size, pw, timer);
      return;
    }

    // ------------------------------------------------------------------ Lifeboat
    asPg(`${LB} init -q --repo ${lbRepo} --password-file ${pw}`);
    const lbCommon = `--repo ${lbRepo} --password-file ${pw}`;
    await setArchiveCommand(c, `${timer} ${logs('lb-push-sync')} %f ${LB} wal-push %p ${lbCommon} -q`);
    stopLoad = startLoad(c);
    const lbBb = asPg(`${LB} pg base-backup --port ${c.port} ${lbCommon} -q`);
    put('base backup', 'lb', bb(lbBb.ms, lbBb.rssKb));
    process.stderr.write(`lifeboat base backup ${bb(lbBb.ms, lbBb.rssKb)}\n`);
    await generate(c, SEGMENTS);
    await setArchiveCommand(c, `${timer} ${logs('lb-push-spool')} %f env ${LBWAL} wal-push %p ${lbCommon} --spool ${lbSpool} -q`);
    await generate(c, SEGMENTS, () => {
      try {
        return readdirSync(path.join(lbSpool, 'push')).filter(isSeg).length === 0;
      } catch {
        return false;
      }
    });
    stopLoad();
    const pushSync = readTimed(logs('lb-push-sync')).filter((t) => isSeg(t.name) && t.rc === 0);
    const pushSpool = readTimed(logs('lb-push-spool')).filter((t) => isSeg(t.name) && t.rc === 0);
    const workerMs = [...readFileSync(path.join(lbSpool, 'worker.log'), 'utf8').matchAll(/pushed [0-9A-F]{24} \(stored.* in (\d+) ms/g)].map((m) => Number(m[1]));
    const pushCell = (t: Timed[]) => `${med(t.map((x) => x.ms))} (p90 ${pct(t.map((x) => x.ms), 90)}), n=${t.length}`;
    const rssCell = (t: Timed[]) => `${(med(t.map((x) => x.rssKb)) / 1024).toFixed(0)} MiB (max ${(Math.max(...t.map((x) => x.rssKb)) / 1024).toFixed(0)})`;
    put('archive_command per segment under load, median ms', 'lb-sync', pushCell(pushSync));
    put('archive_command per segment under load, median ms', 'lb-async', pushCell(pushSpool));
    put('archive_command peak RSS, median (max)', 'lb-sync', rssCell(pushSync));
    put('archive_command peak RSS, median (max)', 'lb-async', rssCell(pushSpool));
    put('background worker per segment, median ms', 'lb-async', `${med(workerMs)} (p90 ${pct(workerMs, 90)})`);
    process.stderr.write(`lifeboat push: sync ${pushCell(pushSync)}; spool ${pushCell(pushSpool)}; worker ${med(workerMs)} ms\n`);

    for (const mode of ['sync', 'async'] as const) {
      const data = path.join(DIR, `lb-restore-${mode}`);
      rmSync(data, { recursive: true, force: true });
      const rs = asPg(`${LB} pg restore latest --to ${data} --archive-mode off ${lbCommon} -q`);
      const log = logs(`lb-fetch-${mode}`);
      const spoolOpt = mode === 'async' ? ` --spool ${lbFetchSpool} --idle 5` : '';
      const r = await recover(data, `${timer} ${log} %f ${mode === 'async' ? `env ${LBWAL}` : `${LB}`} wal-fetch %f %p ${lbCommon} -q${spoolOpt}`, log);
      const col = `lb-${mode}`;
      put('restore of the base backup (files)', col, `${(rs.ms / 1000).toFixed(1)} s`);
      put('restore_command per segment, median ms', col, `${med(r.fetch.map((x) => x.ms))} (p90 ${pct(r.fetch.map((x) => x.ms), 90)}), n=${r.segments}`);
      put('recovery time per replayed segment', col, `${(r.s / Math.max(1, r.segments)).toFixed(2)} s (${r.s.toFixed(1)} s / ${r.segments})`);
      process.stderr.write(`lifeboat recovery ${mode}: ${r.s.toFixed(1)} s for ${r.segments} segments\n`);
      rmSync(data, { recursive: true, force: true });
    }

    // ------------------------------------------------------------------ pgBackRest
    if (hasPgbr) {
      const pgbrRepo = path.join(DIR, 'pgbr-repo');
      for (const d of ['pgbr-repo', 'pgbr-log', 'pgbr-lock', 'pgbr-spool']) mkdirSync(path.join(DIR, d), { recursive: true, mode: 0o750 });
      writePgbrConf(pgbrConf, pgbrRepo, c);
      await chownToPostgres(DIR);
      const br = `pgbackrest --config=${pgbrConf} --stanza=bench`;
      asPg(`${br} stanza-create`);
      await setArchiveCommand(c, `${timer} ${logs('br-push-sync')} %f ${br} archive-push %p`);
      stopLoad = startLoad(c);
      const brBb = asPg(`${br} --type=full backup`);
      put('base backup', 'br', bb(brBb.ms, brBb.rssKb));
      process.stderr.write(`pgbackrest base backup ${bb(brBb.ms, brBb.rssKb)}\n`);
      await generate(c, SEGMENTS);
      await setArchiveCommand(c, `${timer} ${logs('br-push-async')} %f ${br} --archive-async --process-max=2 archive-push %p`);
      await generate(c, SEGMENTS);
      stopLoad();
      const bSync = readTimed(logs('br-push-sync')).filter((t) => isSeg(t.name) && t.rc === 0);
      const bAsync = readTimed(logs('br-push-async')).filter((t) => isSeg(t.name) && t.rc === 0);
      put('archive_command per segment under load, median ms', 'br-sync', pushCell(bSync));
      put('archive_command per segment under load, median ms', 'br-async', pushCell(bAsync));
      put('archive_command peak RSS, median (max)', 'br-sync', rssCell(bSync));
      put('archive_command peak RSS, median (max)', 'br-async', rssCell(bAsync));
      process.stderr.write(`pgbackrest push: sync ${pushCell(bSync)}; async ${pushCell(bAsync)}\n`);
      for (const mode of ['sync', 'async'] as const) {
        const data = freshDir(path.join(DIR, `br-restore-${mode}`));
        await chownToPostgres(data);
        const rs = asPg(`${br} --pg1-path=${data} restore`);
        const log = logs(`br-fetch-${mode}`);
        const r = await recover(data, `${timer} ${log} %f ${br} --pg1-path=${data}${mode === 'async' ? ' --archive-async --process-max=2' : ''} archive-get %f "%p"`, log);
        const col = `br-${mode}`;
        put('restore of the base backup (files)', col, `${(rs.ms / 1000).toFixed(1)} s`);
        put('restore_command per segment, median ms', col, `${med(r.fetch.map((x) => x.ms))} (p90 ${pct(r.fetch.map((x) => x.ms), 90)}), n=${r.segments}`);
        put('recovery time per replayed segment', col, `${(r.s / Math.max(1, r.segments)).toFixed(2)} s (${r.s.toFixed(1)} s / ${r.segments})`);
        process.stderr.write(`pgbackrest recovery ${mode}: ${r.s.toFixed(1)} s for ${r.segments} segments\n`);
        rmSync(data, { recursive: true, force: true });
      }
    }

    const cols: Array<[string, string]> = [
      ['lb-sync', 'Lifeboat, synchronous'],
      ['lb-async', 'Lifeboat `--spool` (bin/lifeboat-wal)'],
      ['br-sync', 'pgBackRest 2.45, synchronous'],
      ['br-async', 'pgBackRest, `--archive-async`'],
    ];
    const cell = (step: string, col: string) => rows[step]?.[col] ?? rows[step]?.[col.slice(0, 2)] ?? (col.startsWith('br') && !hasPgbr ? 'n/a' : '–');
    const md = [
      `# PostgreSQL PITR: Lifeboat vs pgBackRest, pgbench -s ${SCALE} (${(size / 1e6).toFixed(0)} MB cluster), ${SEGMENTS} segments per archive mode`,
      '',
      `Command: \`node dist/bench/pitr.js --scale ${SCALE} --segments ${SEGMENTS}\` · ${new Date().toISOString()} · ${spawnSync('nproc', { encoding: 'utf8' }).stdout.trim()} cores, load average before the run ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
      '',
      `| step | ${cols.map((c) => c[1]).join(' | ')} |`,
      `|---|${cols.map(() => '---').join('|')}|`,
      ...Object.keys(rows).map((step) => `| ${step} | ${cols.map(([k]) => cell(step, k)).join(' | ')} |`),
      '',
      'Base backups are the same operation in both columns of a tool (one per tool). archive_command and restore_command are timed by a wrapper around the real command',
      '(wall ms from fork to exit, what PostgreSQL waits for; peak RSS of that process). pgBackRest: zstd level 3, aes-256-cbc, process-max 2 in async mode;',
      'Lifeboat: zstd level 3, AES-256-GCM. Lifeboat `--spool` returns once the segment is fsynced in the local spool (the spool is part of the RPO, docs/pitr.md);',
      'the worker pushes it to the repository in the background (its per-segment time is the "background worker" row). pgBackRest async returns once its',
      'background process has pushed the segment (it pushes ahead from pg_wal/archive_status). Recovery: server start to end of recovery, divided by the segments fetched.',
    ];
    const out = md.join('\n') + '\n';
    process.stdout.write(out);
    mkdirSync(path.join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(path.join(ROOT, 'bench/results/pitr.md'), out);
  } finally {
    stopLoad();
    await c.stop();
    if (!args.includes('--keep')) rmSync(DIR, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
