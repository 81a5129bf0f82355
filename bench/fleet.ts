/**
 * High-availability scheduling under load (issue 17, item 5).
 *
 *   npm run bench:fleet -- [--agents 3] [--jobs 50] [--every 30] [--duration 120] [--lease 10s] [--pg postgres://postgres@127.0.0.1:5432] [--keep]
 *
 * Starts --agents real `lifeboat daemon` processes sharing a fresh PostgreSQL
 * database as their catalog and one local repository. Each agent's config has
 * the same --jobs jobs, all `runOn: any`, each on a second-level schedule
 * (every --every seconds, job i at second offset i mod --every, so the fleet
 * fires jobs/every slots a second; each slot is contended by every agent).
 * The jobs are tiny command sources (`echo`, one source per job), so the catalog, not the backup,
 * is what is measured; the repository's key is made with scrypt N=1024
 * (LIFEBOAT_TEST_SCRYPT_N) so each run's key derivation does not eat the CPU.
 *
 * Half-way through, one agent is killed with SIGKILL at a moment it holds an
 * unfinished slot; its slots are taken over by the others after the lease.
 *
 * Reports:
 *   - catalog transactions per second (pg_stat_database xact_commit +
 *     xact_rollback of the bench database over the window: every statement
 *     of every agent: slot claims, run records, the monitor's reads), and
 *     the slot calls per second counted by the agents (their `slots:` log lines);
 *   - claim latency: p50 and p99 per agent per minute (the agents' log
 *     lines); the report gives the worst p99 of any agent and minute;
 *   - missed slots (fired in the window, no claim), duplicated slots (more
 *     than one snapshot tagged with one job's slot), failed slots;
 *   - takeover time: database time from the kill to the takeover of each
 *     slot the killed agent held.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { expectedSlots } from '../src/ops/slot-report.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const AGENTS = Number(opt('agents', '3'));
const JOBS = Number(opt('jobs', '50'));
const EVERY = Number(opt('every', '30'));
const DURATION_S = Number(opt('duration', '120'));
const LEASE = opt('lease', '10s');
const PG_BASE = opt('pg', 'postgres://postgres@127.0.0.1:5432');
const KEEP = args.includes('--keep');
if (!(EVERY >= 1 && EVERY <= 59 && JOBS >= 1 && AGENTS >= 2 && DURATION_S >= 10)) {
  console.error('usage: --agents >= 2, --jobs >= 1, --every 1..59 seconds, --duration >= 10 seconds');
  process.exit(2);
}
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.resolve(ROOT, 'dist/src/cli/main.js');
const PW = 'fleet-bench';
const ENV = { ...process.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_TEST_SCRYPT_N: '1024' };

async function q(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResultRow[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows;
  } finally {
    await c.end();
  }
}

interface Agent {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<void>;
}

function startAgent(config: string, name: string): Agent {
  const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', config], {
    env: { ...ENV, LIFEBOAT_AGENT_ID: name },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const a: Agent = { name, child, log: '', exited: new Promise((r) => child.on('close', () => r())) };
  child.stderr!.on('data', (d: Buffer) => (a.log += d.toString()));
  return a;
}

function scheduleOf(i: number): string {
  return `${i % EVERY}-59/${EVERY} * * * * *`;
}

async function main(): Promise<void> {
  const db = `lb_bench_fleet_${randomBytes(4).toString('hex')}`;
  await q(`${PG_BASE}/postgres`, `CREATE DATABASE "${db}"`);
  const url = `${PG_BASE}/${db}`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-fleet-'));
  const agents: Agent[] = [];
  try {
    const jobs = Array.from({ length: JOBS }, (_, i) => `j${String(i).padStart(3, '0')}`);
    const config = path.join(dir, 'lifeboat.yaml');
    writeFileSync(
      config,
      `repositories:\n  main: { location: ./repo }\nsources:\n` +
        jobs.map((j) => `  ${j}: { kind: command, command: "echo ${j}" }\n`).join('') +
        `jobs:\n` +
        jobs.map((j, i) => `  ${j}: { source: ${j}, schedule: "${scheduleOf(i)}", runOn: any, retries: 0, catchUp: false }\n`).join('') +
        `daemon: { catalog: "${url}", concurrency: 4, shutdownGrace: 2s, slots: { lease: ${LEASE}, missedAfter: 30s } }\n`,
    );
    const init = spawnSync(process.execPath, [CLI, 'init', '--repo', path.join(dir, 'repo')], { env: ENV, encoding: 'utf8' });
    if (init.status !== 0) throw new Error(`init failed: ${init.stderr}`);

    for (let i = 0; i < AGENTS; i++) agents.push(startAgent(config, `agent${i + 1}`));
    for (const end = Date.now() + 60_000; !agents.every((a) => /daemon started/.test(a.log)); ) {
      if (Date.now() > end) throw new Error(`agents did not start:\n${agents.map((a) => a.log).join('\n')}`);
      await sleep(200);
    }
    const statSql = `SELECT xact_commit + xact_rollback AS x, now() AS t FROM pg_stat_database WHERE datname = $1`;
    const from = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
    await sleep(from.getTime() - Date.now());
    const s0 = (await q(url, statSql, [db]))[0]!;
    console.log(`${AGENTS} agents, ${JOBS} runOn: any jobs every ${EVERY} s (${(JOBS / EVERY).toFixed(1)} slots/s), lease ${LEASE}, ${DURATION_S} s from ${from.toISOString()}`);

    // half-way: kill -9 an agent while it holds an unfinished slot
    await sleep((DURATION_S * 1000) / 2);
    const victim = agents[0]!;
    const victimId = (): Promise<pg.QueryResultRow[]> =>
      q(url, `SELECT job, slot, lease_until FROM lifeboat.job_slots WHERE agent_id LIKE $1 AND finished_at IS NULL`, [`${victim.name}/%`]);
    for (const end = Date.now() + 30_000; (await victimId()).length === 0 && Date.now() < end; ) await sleep(5);
    victim.child.kill('SIGKILL');
    const killedAt = (await q(url, 'SELECT now() AS t'))[0]!.t as Date;
    await victim.exited;
    const orphans = await victimId();
    console.log(`killed ${victim.name} (pid ${victim.child.pid}) holding ${orphans.length} unfinished slot(s) at ${killedAt.toISOString()}`);

    await sleep(Math.max(0, from.getTime() + DURATION_S * 1000 - Date.now()));
    const s1 = (await q(url, statSql, [db]))[0]!;
    const to = new Date();
    // let the window's last slots finish, then stop the survivors (they log their final slot statistics)
    await sleep(5_000);
    for (const a of agents.slice(1)) a.child.kill('SIGTERM');
    await Promise.all(agents.map((a) => a.exited));

    const rows = await q(url, `SELECT job, slot, agent_id, claimed_at, finished_at, result, takeovers, taken_over_at FROM lifeboat.job_slots WHERE slot >= $1 AND slot < $2`, [from, to]);
    const byKey = new Map(rows.map((r) => [`${r.job} ${(r.slot as Date).toISOString()}`, r]));
    let expected = 0;
    const missed: string[] = [];
    for (const [i, j] of jobs.entries()) {
      for (const s of expectedSlots(scheduleOf(i), from, to)) {
        expected++;
        if (!byKey.has(`${j} ${s.toISOString()}`)) missed.push(`${j} ${s.toISOString()}`);
      }
    }
    const unfinished = rows.filter((r) => !r.finished_at).length;
    const failed = rows.filter((r) => r.finished_at && !/^(success|partial)\b/.test(String(r.result))).length;
    const late = rows.filter((r) => (r.claimed_at as Date).getTime() - (r.slot as Date).getTime() > 30_000).length;
    const claimDelay = rows.map((r) => (r.claimed_at as Date).getTime() - (r.slot as Date).getTime()).sort((a, b) => a - b);

    // duplicates: snapshots per (job, slot)
    const snaps = spawnSync(process.execPath, [CLI, 'snapshots', '--repo', path.join(dir, 'repo'), '--json'], { env: ENV, encoding: 'utf8', maxBuffer: 1 << 30 });
    if (snaps.status !== 0) throw new Error(`snapshots failed: ${snaps.stderr}`);
    const perSlot = new Map<string, number>();
    for (const s of JSON.parse(snaps.stdout) as Array<{ tags: string[] }>) {
      const job = s.tags.find((t) => t.startsWith('job:'))?.slice(4);
      const slot = s.tags.find((t) => t.startsWith('slot:'))?.slice(5);
      if (job && slot) perSlot.set(`${job} ${slot}`, (perSlot.get(`${job} ${slot}`) ?? 0) + 1);
    }
    const duplicated = [...perSlot.values()].filter((n) => n > 1).length;

    const taken = orphans.map((o) => {
      const r = byKey.get(`${o.job} ${(o.slot as Date).toISOString()}`) ?? rows.find((x) => x.job === o.job && (x.slot as Date).getTime() === (o.slot as Date).getTime());
      return r?.taken_over_at ? ((r.taken_over_at as Date).getTime() - killedAt.getTime()) / 1000 : NaN;
    });
    // the agents' own counts: "slots: N claims (W won), T takeovers, Q catalog calls, E errors; claim latency p50 X ms, p99 Y ms, max Z ms"
    let calls = 0;
    let claims = 0;
    let errors = 0;
    const p99s: number[] = [];
    const p50s: number[] = [];
    for (const a of agents) {
      for (const m of a.log.matchAll(/slots: (\d+) claims \((\d+) won\), (\d+) takeovers, (\d+) catalog calls, (\d+) errors; claim latency p50 ([\d.]+) ms, p99 ([\d.]+) ms/g)) {
        claims += Number(m[1]);
        calls += Number(m[4]);
        errors += Number(m[5]);
        p50s.push(Number(m[6]));
        p99s.push(Number(m[7]));
      }
    }
    const secs = ((s1.t as Date).getTime() - (s0.t as Date).getTime()) / 1000;
    const result = {
      agents: AGENTS,
      jobs: JOBS,
      everySeconds: EVERY,
      lease: LEASE,
      durationSeconds: Math.round(secs),
      slotsExpected: expected,
      slotsClaimed: rows.length,
      missed: missed.length,
      duplicated,
      failed,
      unfinished,
      late,
      catalogTransactionsPerSecond: Math.round((Number(s1.x) - Number(s0.x)) / secs),
      slotCallsPerSecondLogged: Math.round(calls / secs),
      claimsLogged: claims,
      slotCallErrors: errors,
      claimLatencyMs: { p50Median: p50s.length ? [...p50s].sort((a, b) => a - b)[Math.floor(p50s.length / 2)] : null, p99Worst: p99s.length ? Math.max(...p99s) : null },
      claimDelayAfterFireMs: { p50: claimDelay[Math.floor(claimDelay.length / 2)] ?? null, p99: claimDelay[Math.ceil(claimDelay.length * 0.99) - 1] ?? null },
      killed: { agent: victim.name, heldSlots: orphans.length, takeoverSeconds: taken },
    };
    console.log(JSON.stringify(result, null, 2));
    const failures = [...new Set(rows.filter((r) => r.finished_at && !/^(success|partial)\b/.test(String(r.result))).map((r) => String(r.result)))];
    if (failures.length) console.log(`failed slots' results (first 5 distinct): ${failures.slice(0, 5).join(' | ')}`);
    if (missed.length) console.log(`missed (first 10): ${missed.slice(0, 10).join(', ')}`);
    if (missed.length || duplicated) process.exitCode = 1;
  } finally {
    for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    if (!KEEP) {
      rmSync(dir, { recursive: true, force: true });
      await q(`${PG_BASE}/postgres`, `DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => {});
    } else console.log(`kept ${dir} and database ${db}`);
  }
}

await main();
