import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { hostname } from 'node:os';
import pg from 'pg';
import { PostgresCatalog } from '../src/ops/catalog/postgres.js';
import { SqliteCatalog } from '../src/ops/catalog/sqlite.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { FleetStore, type AgentRegistration } from '../src/ops/fleet/store.js';
import { fleetFindings } from '../src/ops/fleet/watch.js';
import { PG } from './helpers/db.js';

/**
 * The fleet tables (migration 5) on both catalog backends: registration and
 * the duplicate rule, take-over of a silent agent's id, exactly one claimer
 * per run request, interrupted requests, runs carrying the agent id, and the
 * deadline of a catalog call that never answers (PostgreSQL: a table lock
 * held by another session).
 */

const PG_URL = `postgres://${PG.user}@${PG.host}:${PG.port}/test`;

const reg = (over: Partial<AgentRegistration> = {}): AgentRegistration => ({
  id: 'web-1',
  hostname: 'web-1.example',
  version: '0.1.0',
  instance: 'instance-a',
  pid: 100,
  heartbeatMs: 1000,
  jobs: [{ name: 'site', source: 'site', sourceKind: 'files', schedule: '0 * * * *', repository: 'main', drillSchedule: null, services: ['website'] }],
  ...over,
});

for (const [backend, open] of [
  ['sqlite', () => SqliteCatalog.open(':memory:')],
  ['postgres', () => PostgresCatalog.open(PG_URL, { schema: `lb_fleet_${randomBytes(4).toString('hex')}` })],
] as Array<[string, () => Promise<Catalog & { dropSchema?: () => Promise<void> }>]>) {
  test(`fleet store (${backend}): register, duplicate refused, take-over of a silent id, claims, runs by agent`, async () => {
    const c = await open();
    try {
      assert.ok((await c.migrations()).includes(5));
      const s = new FleetStore(c, { timeoutMs: 5000, missedAfter: 3 });
      await s.register(reg());
      await s.register(reg()); // the same process again: fine
      await assert.rejects(s.register(reg({ instance: 'instance-b', pid: 200 })), (e: Error & { exitCode?: number }) => {
        assert.match(e.message, /agent id "web-1" is already in use by a live agent on host web-1\.example \(pid 100/);
        assert.equal(e.exitCode, 2);
        return true;
      });
      assert.equal(await s.heartbeat('web-1', 'instance-a'), true);
      assert.equal(await s.heartbeat('web-1', 'instance-b'), false, 'not our row');
      // silent for longer than missedAfter heartbeats: "missed", and another process may take the id
      await c.sql.exec(`UPDATE ${c.sql.t('agents')} SET last_seen = ? WHERE id = ?`, [new Date(Date.now() - 10_000), 'web-1']);
      assert.equal((await s.agents()).agents[0]!.state, 'missed');
      const f = await fleetFindings(s, { tier: 'critical', missedAfter: 3 });
      assert.equal(f.eligible, true, 'no live agent: an outside watcher (the server) reports');
      assert.deepEqual(f.findings.map((x) => [x.job, x.check, x.severity]), [['agent:web-1', 'heartbeat', 'critical']]);
      await s.register(reg({ instance: 'instance-b', pid: 200 }));
      assert.equal(await s.heartbeat('web-1', 'instance-a'), false, 'the old process lost the id');
      assert.equal((await s.agents()).agents[0]!.state, 'live');
      const live = await fleetFindings(s, { selfId: 'web-1', tier: 'critical', missedAfter: 3 });
      assert.equal(live.findings[0]!.severity, 'ok');
      assert.equal(live.eligible, true);
      assert.equal((await fleetFindings(s, { tier: 'critical', missedAfter: 3 })).eligible, false, 'an agent is live: the server does not report');
      // the watch lease: one holder at a time; renewable by its holder; taken over once expired; released
      assert.equal(await s.holdWatch('w', 'agent web-1', 60_000), true);
      assert.equal(await s.holdWatch('w', 'agent web-2', 60_000), false);
      assert.equal(await s.holdWatch('w', 'agent web-1', 60_000), true);
      await c.sql.exec(`UPDATE ${c.sql.t('fleet_watch')} SET expires_at = ?`, [new Date(Date.now() - 1000)]);
      assert.equal(await s.holdWatch('w', 'agent web-2', 60_000), true);
      assert.equal(await s.holdWatch('w', 'agent web-1', 60_000), false);
      await s.releaseWatch('w', 'agent web-2');
      assert.equal(await s.holdWatch('w', 'agent web-1', 60_000), true);
      // requests: only for a job the agent reports; exactly one claimer
      await assert.rejects(s.request('web-1', 'job', 'nope', 'tester'), /agent "web-1" has no job "nope" \(its jobs: site\)/);
      await assert.rejects(s.request('db-9', 'job', 'site', 'tester'), /no agent "db-9"/);
      const r = await s.request('web-1', 'job', 'site', 'tester');
      assert.equal(r.status, 'pending');
      const claims = await Promise.all([s.claim(r.id, 'instance-b'), s.claim(r.id, 'instance-c'), s.claim(r.id, 'instance-b')]);
      assert.equal(claims.filter(Boolean).length, 1, JSON.stringify(claims));
      assert.deepEqual(await s.pending('web-1'), []);
      // a claimed request of a process that died is failed when the agent registers again
      await s.stopped('web-1', 'instance-b');
      assert.equal((await s.agents()).agents[0]!.state, 'stopped');
      await s.register(reg({ instance: 'instance-d' }));
      assert.equal(await s.failInterrupted('web-1', 'instance-d'), 1);
      const done = (await s.getRequest(r.id))!;
      assert.equal(done.status, 'failed');
      assert.match(String(done.result!.error), /interrupted/);
      // finish redacts secrets in what the agent reports
      const r2 = await s.request('web-1', 'drill', 'site', 'tester');
      await s.claim(r2.id, 'instance-d');
      await s.finish(r2.id, 'failed', { error: 'connect to postgres://u:hunter2@db:5432/x failed' });
      assert.doesNotMatch(JSON.stringify(await s.getRequest(r2.id)), /hunter2/);
      assert.deepEqual((await s.requests({ agentId: 'web-1' })).map((x) => x.id), [r2.id, r.id]);
      // on this host, the id of a process that is gone (kill -9, then a restart) is taken over at once
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      await s.register(reg({ id: 'local-1', hostname: hostname(), instance: 'crashed', pid: dead }));
      await s.register(reg({ id: 'local-1', hostname: hostname(), instance: 'restarted', pid: process.ppid }));
      assert.equal(await s.heartbeat('local-1', 'restarted'), true);
      // ... but not while that process lives
      await assert.rejects(s.register(reg({ id: 'local-1', hostname: hostname(), instance: 'third', pid: process.pid })), /already in use/);
      // runs carry the agent id and filter by it
      const a = await c.startRun({ job: 'site', agentId: 'web-1' });
      await c.startRun({ job: 'site', agentId: 'web-2' });
      assert.deepEqual((await c.runs({ agentId: 'web-1' })).map((x) => [x.id, x.agentId]), [[a, 'web-1']]);
    } finally {
      await c.dropSchema?.();
      await c.close();
    }
  });
}

test('fleet store (postgres): a catalog call that never answers fails at its deadline', async () => {
  const schema = `lb_fleet_${randomBytes(4).toString('hex')}`;
  const c = await PostgresCatalog.open(PG_URL, { schema });
  const locker = new pg.Client({ ...PG, database: 'test' });
  await locker.connect();
  try {
    const s = new FleetStore(c, { timeoutMs: 500, missedAfter: 3 });
    await s.register(reg());
    await locker.query('BEGIN');
    await locker.query(`LOCK TABLE "${schema}".agents IN ACCESS EXCLUSIVE MODE`);
    await assert.rejects(s.heartbeat('web-1', 'instance-a'), /catalog: heartbeat did not answer within 500 ms/);
    await locker.query('ROLLBACK');
    assert.equal(await s.heartbeat('web-1', 'instance-a'), true);
  } finally {
    await locker.end();
    await c.dropSchema();
    await c.close();
  }
});
