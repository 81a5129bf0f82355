import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { tmpDir, runCli, CLI } from './helpers/tmp.js';
import { PG, pgCreateDb, pgDropDb, uniqueName } from './helpers/db.js';
import { parseConfig } from '../src/config/load.js';
import { expectedSlots } from '../src/ops/slot-report.js';

/**
 * High-availability scheduling (jobs with runOn: any): real `lifeboat daemon`
 * processes sharing one PostgreSQL catalog (a fresh database per test) and one
 * repository; an agent is killed with SIGKILL.
 */

const PW = 'ha-slots-pw';
const ENV = { ...process.env, LIFEBOAT_PASSWORD: PW, LIFEBOAT_TEST_SCRYPT_N: '1024' };

interface Agent {
  child: ChildProcess;
  log: () => string;
  exited: Promise<number | null>;
}

function startAgent(config: string, name: string): Agent {
  const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', config], {
    env: { ...ENV, LIFEBOAT_AGENT_ID: name },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr!.on('data', (d: Buffer) => (log += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
  return { child, log: () => log, exited };
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, logs: () => string): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}\n${logs()}`);
    await sleep(100);
  }
}

async function stopAgents(agents: Agent[]): Promise<void> {
  for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGTERM');
  await Promise.all(
    agents.map(async (a) => {
      const t = setTimeout(() => a.child.kill('SIGKILL'), 30_000);
      await a.exited;
      clearTimeout(t);
    }),
  );
}

async function setup(jobsYaml: string, lease: string): Promise<{ dir: string; config: string; db: string; url: string; cleanup: () => Promise<void> }> {
  const t = tmpDir();
  const db = uniqueName('lb_ha_');
  await pgCreateDb(db);
  const url = `postgres://${PG.user}@${PG.host}:${PG.port}/${db}`;
  const config = path.join(t.dir, 'lifeboat.yaml');
  await fsp.writeFile(
    config,
    `repositories:\n  main: { location: ./repo }\n` +
      `sources:\n  tick: { kind: command, command: "echo tick" }\n  slow: { kind: command, command: "sleep 10; echo slow" }\n` +
      `jobs:\n${jobsYaml}` +
      `daemon: { catalog: "${url}", concurrency: 2, shutdownGrace: 100ms, slots: { lease: ${lease}, missedAfter: 5s } }\n`,
  );
  const init = await runCli(['init', '--repo', path.join(t.dir, 'repo')], { env: { LIFEBOAT_PASSWORD: PW } });
  assert.equal(init.code, 0, init.stderr);
  return {
    dir: t.dir,
    config,
    db,
    url,
    cleanup: async () => {
      t.cleanup();
      await pgDropDb(db);
    },
  };
}

async function query(url: string, sql: string, params: unknown[] = []): Promise<pg.QueryResultRow[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(sql, params)).rows;
  } catch (err) {
    // before the first agent created the catalog's tables
    if ((err as { code?: string }).code === '42P01') return [];
    throw err;
  } finally {
    await c.end();
  }
}

async function snapshotsBySlot(dir: string): Promise<Map<string, string[]>> {
  const r = await runCli(['snapshots', '--repo', path.join(dir, 'repo'), '--json'], { env: { LIFEBOAT_PASSWORD: PW } });
  assert.equal(r.code, 0, r.stderr);
  const out = new Map<string, string[]>();
  for (const s of JSON.parse(r.stdout) as Array<{ id: string; tags: string[] }>) {
    for (const tag of s.tags) if (tag.startsWith('slot:')) out.set(tag.slice(5), [...(out.get(tag.slice(5)) ?? []), s.id]);
  }
  return out;
}

test('config: runOn: any needs the shared PostgreSQL catalog', () => {
  const yaml = (catalog: string) =>
    `repositories:\n  main: { location: ./repo }\nsources:\n  s: { kind: command, command: "echo x" }\njobs:\n  j: { source: s, schedule: "* * * * * *", runOn: any }\ndaemon: { catalog: "${catalog}" }\n`;
  assert.throws(() => parseConfig(yaml('./catalog.db'), '/tmp/lifeboat.yaml'), /jobs\.j\.runOn.*runOn: any needs a catalog shared by the agents \(daemon\.catalog: postgres:\/\/\.\.\.\)/s);
  const cfg = parseConfig(yaml('postgres://u@127.0.0.1/db'), '/tmp/lifeboat.yaml');
  assert.equal(cfg.jobs.j!.runOn, 'any');
  assert.equal(cfg.daemon.slots.lease, '60s');
  // the default stays today's behaviour
  assert.equal(parseConfig(yaml('./c.db').replace(', runOn: any', ''), '/tmp/lifeboat.yaml').jobs.j!.runOn, 'local');
});

test('three agents, one catalog: every slot of a runOn: any job runs exactly once, with one snapshot', { timeout: 180_000 }, async () => {
  const env = await setup(`  tick: { source: tick, schedule: "*/2 * * * * *", runOn: any, retries: 0 }\n`, '4s');
  const agents: Agent[] = [];
  const logs = () => agents.map((a, i) => `--- agent ${i}\n${a.log()}`).join('\n');
  try {
    for (const n of ['a1', 'a2', 'a3']) agents.push(startAgent(env.config, n));
    await waitFor('three agents started', () => (agents.every((a) => /daemon started/.test(a.log())) ? true : undefined), 60_000, logs);
    // the window: whole slots after every agent is up, for 30 s
    const from = new Date(Math.ceil((Date.now() + 1000) / 1000) * 1000);
    await sleep(from.getTime() - Date.now() + 30_000);
    const to = new Date();
    const expected = expectedSlots('*/2 * * * * *', from, to).map((d) => d.toISOString());
    assert.ok(expected.length >= 14, `${expected.length} slots`);
    // every slot of the window finished
    const rows = await waitFor(
      'the window\'s slots to finish',
      async () => {
        const r = await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE job = 'tick' AND slot >= $1 AND slot < $2 ORDER BY slot`, [from, to]);
        return r.length === expected.length && r.every((x) => x.finished_at) ? r : undefined;
      },
      60_000,
      logs,
    );
    // while the agents run: `lifeboat slots` shows the window as done, nothing missed
    const rep = await runCli(['slots', '--config', env.config, '--since', '20s', '--json'], { env: { LIFEBOAT_PASSWORD: PW } });
    assert.equal(rep.code, 0, rep.stderr);
    const r0 = JSON.parse(rep.stdout)[0];
    assert.equal(r0.missed.length, 0, rep.stdout);
    assert.ok(r0.done >= 8, rep.stdout);
    await stopAgents(agents);
    assert.deepEqual(
      rows.map((r) => (r.slot as Date).toISOString()),
      expected,
      'one claim per slot, none missing',
    );
    // a slot won while the previous one still ran on another agent (a loaded machine) is skipped, not run twice at once
    for (const r of rows) assert.match(r.result as string, /^(success |skipped: slot \S+ of this job still running on agent )/, JSON.stringify(r));
    assert.ok(rows.filter((r) => /^success /.test(r.result as string)).length >= rows.length / 2, 'most slots ran');
    assert.ok(rows.every((r) => r.takeovers === 0));
    const agentsUsed = new Set(rows.map((r) => String(r.agent_id).split('/')[0]));
    console.log(`slots ${expected.length}, run by agents: ${[...agentsUsed].join(', ')}`);
    // one snapshot per slot, the one recorded in the claim
    const snaps = await snapshotsBySlot(env.dir);
    for (const r of rows) {
      const slot = (r.slot as Date).toISOString();
      if (/^skipped: /.test(r.result as string)) assert.equal(snaps.get(slot), undefined, `a skipped slot ${slot} has no snapshot`);
      else assert.deepEqual(snaps.get(slot), [String(r.result).split(' ')[1]], `snapshots of slot ${slot}`);
    }
    // the runs table agrees: one successful run per slot of the window across the fleet
    const runs = await query(env.url, `SELECT count(*)::int AS n FROM lifeboat.runs WHERE job = 'tick' AND status = 'success' AND started_at >= $1 AND started_at < $2`, [
      from,
      new Date(to.getTime() - 2000),
    ]);
    assert.ok(runs[0]!.n <= expected.length, `${runs[0]!.n} successful runs for ${expected.length} slots`);
  } finally {
    await stopAgents(agents);
    await env.cleanup();
  }
});

test('kill -9 of the agent running a slot: another agent takes it over after the lease; the slot finishes once, one snapshot', { timeout: 180_000 }, async () => {
  // fires once a minute, a few seconds from now; the run takes 10 s; lease 3 s (renewed every 0.75 s)
  const second = (new Date().getUTCSeconds() + 12) % 60;
  const env = await setup(`  slow: { source: slow, schedule: "${second} * * * * *", runOn: any, retries: 0, catchUp: false }\n`, '3s');
  const agents: Agent[] = [];
  const logs = () => agents.map((a, i) => `--- agent ${i}\n${a.log()}`).join('\n');
  try {
    for (const n of ['k1', 'k2', 'k3']) agents.push(startAgent(env.config, n));
    await waitFor('three agents started', () => (agents.every((a) => /daemon started/.test(a.log())) ? true : undefined), 60_000, logs);
    const claim = await waitFor(
      'a claim of the slow job',
      async () => (await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE job = 'slow'`))[0],
      75_000,
      logs,
    );
    // let the run outlast the lease: a live holder keeps its slot (renewals on their own timer). Waited for by
    // the database's clock (the one leases are judged by), not a fixed sleep: a query can take seconds under load
    const live = await waitFor(
      'the first lease to have run out by the database clock',
      async () => {
        const row = (await query(env.url, `SELECT *, now() AS db_now FROM lifeboat.job_slots WHERE job = 'slow'`))[0]!;
        return (row.db_now as Date).getTime() > (claim.lease_until as Date).getTime() + 500 ? row : undefined;
      },
      60_000,
      logs,
    );
    assert.equal(live.agent_id, claim.agent_id, 'a live holder\'s slot was taken');
    assert.equal(live.takeovers, 0);
    assert.equal(live.finished_at, null);
    assert.ok((live.lease_until as Date) > (claim.lease_until as Date), 'the lease was renewed');
    const holder = agents.find((_, i) => String(claim.agent_id).startsWith(`k${i + 1}/`))!;
    const lastLease = live.lease_until as Date;
    holder.child.kill('SIGKILL');
    const killedAt = live.db_now as Date;
    const done = await waitFor(
      'the slot to finish on another agent',
      async () => (await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE job = 'slow' AND finished_at IS NOT NULL`))[0],
      60_000,
      logs,
    );
    assert.equal(done.previous_agent, claim.agent_id);
    assert.notEqual(done.agent_id, claim.agent_id);
    assert.equal(done.takeovers, 1);
    // taken over only once the dead holder's lease had run out
    assert.ok((done.taken_over_at as Date) >= lastLease, `taken over at ${(done.taken_over_at as Date).toISOString()}, lease until ${lastLease.toISOString()}`);
    assert.match(done.result as string, /^success /, JSON.stringify(done));
    console.log(`takeover ${((done.taken_over_at as Date).getTime() - killedAt.getTime()) / 1000} s after kill -9 (lease 3 s)`);
    // exactly one claim row, one snapshot for the slot: the dead holder's run wrote none
    assert.equal((await query(env.url, `SELECT count(*)::int AS n FROM lifeboat.job_slots`))[0]!.n, 1);
    const snaps = await snapshotsBySlot(env.dir);
    assert.deepEqual(snaps.get((done.slot as Date).toISOString()), [String(done.result).split(' ')[1]]);
    assert.equal(snaps.size, 1);
    // the survivors' logs say what happened
    assert.match(logs(), /took over slot .* from agent k\d\//);
  } finally {
    await stopAgents(agents);
    await env.cleanup();
  }
});

/** A TCP proxy to the PostgreSQL server that can stop forwarding (the catalog becomes unreachable, connections hang). */
async function startBlackholeProxy(): Promise<{ port: number; blackhole: (on: boolean) => void; close: () => Promise<void> }> {
  let holed = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(PG.port, PG.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => sockets.delete(s));
    }
    client.on('data', (d) => void (holed || upstream.write(d)));
    upstream.on('data', (d) => void (holed || client.write(d)));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    blackhole: (on) => void (holed = on),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('an agent that cannot reach the catalog stops its run before its lease runs out; another agent runs the slot; one snapshot', { timeout: 180_000 }, async () => {
  const second = (new Date().getUTCSeconds() + 10) % 60;
  const env = await setup(`  slow: { source: slow, schedule: "${second} * * * * *", runOn: any, retries: 0, catchUp: false }\n`, '3s');
  const proxy = await startBlackholeProxy();
  const agents: Agent[] = [];
  const logs = () => agents.map((a, i) => `--- agent ${i}\n${a.log()}`).join('\n');
  try {
    // agent p reaches the catalog through the proxy; it starts alone, so it claims the slot
    const viaProxy = path.join(env.dir, 'via-proxy.yaml');
    await fsp.writeFile(viaProxy, (await fsp.readFile(env.config, 'utf8')).replace(`:${PG.port}/`, `:${proxy.port}/`));
    agents.push(startAgent(viaProxy, 'p'));
    const claim = await waitFor('the proxied agent to claim the slot', async () => (await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE job = 'slow'`))[0], 75_000, logs);
    assert.match(String(claim.agent_id), /^p\//);
    agents.push(startAgent(env.config, 'd'));
    await waitFor('the second agent', () => (/daemon started/.test(agents[1]!.log()) ? true : undefined), 60_000, logs);
    // the catalog disappears for p in the middle of its 10 s run
    proxy.blackhole(true);
    const done = await waitFor(
      'the slot to finish on the other agent',
      async () => (await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE job = 'slow' AND finished_at IS NOT NULL`))[0],
      60_000,
      logs,
    );
    assert.match(String(done.agent_id), /^d\//);
    assert.equal(done.takeovers, 1);
    assert.match(done.result as string, /^success /, JSON.stringify(done));
    // p's own run (its sleep ends 10 s after the slot) must not have written a second snapshot
    await sleep(Math.max(0, (done.slot as Date).getTime() + 12_000 - Date.now()));
    const snaps = await snapshotsBySlot(env.dir);
    assert.deepEqual(snaps.get((done.slot as Date).toISOString()), [String(done.result).split(' ')[1]], logs());
    proxy.blackhole(false);
    // p says so in its log (waited for: a starved process writes it late, the assertion is that it comes)
    const stopLine = /no lease renewal succeeded for \d+ s \(catalog unreachable\?\): stopping before another agent may take the slot over/;
    await waitFor('p\'s log line', () => (stopLine.test(agents[0]!.log()) ? true : undefined), 30_000, logs);
    assert.match(agents[0]!.log(), stopLine);
  } finally {
    proxy.blackhole(false);
    await stopAgents(agents);
    await proxy.close();
    await env.cleanup();
  }
});

test('a slot taken over from an agent that died after writing its snapshot keeps that one snapshot', { timeout: 180_000 }, async () => {
  const second = (new Date().getUTCSeconds() + 8) % 60;
  const env = await setup(`  tick: { source: tick, schedule: "${second} * * * * *", runOn: any, retries: 0, catchUp: false }\n`, '2s');
  const agents: Agent[] = [];
  const logs = () => agents.map((a, i) => `--- agent ${i}\n${a.log()}`).join('\n');
  try {
    agents.push(startAgent(env.config, 'r1'));
    const first = await waitFor('the slot to finish', async () => (await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE finished_at IS NOT NULL`))[0], 75_000, logs);
    const snapshot = String(first.result).split(' ')[1];
    // what an agent killed between writing the snapshot and recording the slot leaves behind
    await query(env.url, `UPDATE lifeboat.job_slots SET finished_at = NULL, result = NULL, agent_id = 'dead/1/00000000', lease_until = now() - interval '1 second'`);
    const again = await waitFor(
      'the takeover to finish',
      async () => (await query(env.url, `SELECT * FROM lifeboat.job_slots WHERE finished_at IS NOT NULL AND takeovers = 1`))[0],
      60_000,
      logs,
    );
    assert.equal(again.previous_agent, 'dead/1/00000000');
    assert.equal(again.result, `success ${snapshot}`);
    assert.deepEqual([...(await snapshotsBySlot(env.dir)).entries()], [[(first.slot as Date).toISOString(), [snapshot]]]);
    assert.match(logs(), /already has snapshot .* not backing up again/);
  } finally {
    await stopAgents(agents);
    await env.cleanup();
  }
});

test('slots no agent ran (every agent down) alert: the next agent up sends a "slots" warning naming the missed slots', { timeout: 180_000 }, async () => {
  const { startWebhookReceiver } = await import('./helpers/receivers.js');
  const hook = await startWebhookReceiver();
  const env = await setup(`  tick: { source: tick, schedule: "*/2 * * * * *", runOn: any, retries: 0, catchUp: false, tier: critical }\n`, '4s');
  await fsp.appendFile(env.config, `notifiers:\n  channels:\n    hook: { type: webhook, url: "${hook.url}/alerts" }\n  routes: { critical: [hook] }\n`);
  const agents: Agent[] = [];
  const logs = () => agents.map((a, i) => `--- agent ${i}\n${a.log()}`).join('\n');
  const slotAlerts = () => hook.on('/alerts').map((r) => r.json as { check: string; kind: string; severity: string; message?: string }).filter((m) => m.check === 'slots');
  try {
    agents.push(startAgent(env.config, 'm1'));
    await waitFor('a first finished slot', async () => (await query(env.url, `SELECT 1 FROM lifeboat.job_slots WHERE job = 'tick' AND finished_at IS NOT NULL`))[0], 60_000, logs);
    await stopAgents(agents);
    assert.deepEqual(slotAlerts().filter((m) => m.kind === 'firing'), [], 'no slot alert while an agent ran every slot');
    // every agent down for longer than missedAfter (5 s): the slots of that gap ran nowhere
    await sleep(9000);
    agents.push(startAgent(env.config, 'm2'));
    const alert = await waitFor('a "slots" alert', () => slotAlerts().find((m) => m.kind === 'firing'), 90_000, logs);
    assert.equal(alert.severity, 'warning');
    assert.match(JSON.stringify(alert), /tick: of \d+ scheduled slots in the last 24 h, \d+ missed \(no agent claimed it/);
  } finally {
    await stopAgents(agents);
    await hook.close();
    await env.cleanup();
  }
});
