import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PostgresCatalog } from '../src/ops/catalog/postgres.js';
import { JobSlots } from '../src/ops/catalog/job-slots.js';
import pg from 'pg';
import { PG, pgCreateDb, pgDropDb, uniqueName } from './helpers/db.js';
import { slotReport } from '../src/ops/slot-report.js';

/** The claim protocol against a real PostgreSQL (a fresh database per test), many claimants at once. */

async function withCatalog(fn: (c: PostgresCatalog, url: string) => Promise<void>): Promise<void> {
  const db = uniqueName('lb_slots_');
  await pgCreateDb(db);
  const url = `postgres://${PG.user}@${PG.host}:${PG.port}/${db}`;
  const c = await PostgresCatalog.open(url, { maxConnections: 16 });
  try {
    await fn(c, url);
  } finally {
    await c.close();
    await pgDropDb(db);
  }
}

test('claims: of 12 agents claiming one slot at once exactly one wins; only the holder renews and finishes', async () => {
  await withCatalog(async (c) => {
    const agents = Array.from({ length: 12 }, (_, i) => new JobSlots(c.sql, `agent-${i}`, { leaseMs: 30_000 }));
    const slot = new Date('2026-11-30T12:00:05Z');
    const won = await Promise.all(agents.map((a) => a.claim('db', slot)));
    assert.equal(won.filter(Boolean).length, 1);
    const holder = agents[won.indexOf(true)]!;
    const other = agents[won.indexOf(false)]!;
    assert.equal(await other.renew('db', slot), false);
    assert.equal(await other.finish('db', slot, 'success x'), false);
    assert.equal(await holder.renew('db', slot), true);
    // a live lease is never taken over
    assert.deepEqual(await Promise.all(agents.map((a) => a.takeOver(['db']))), agents.map(() => undefined));
    assert.equal(await holder.finish('db', slot, 'success abc'), true);
    assert.equal(await holder.finish('db', slot, 'success again'), false, 'a finished slot is final');
    assert.equal(await holder.claim('db', slot), false, 'a finished slot is never claimed again');
    const rows = await holder.list({ job: 'db' });
    assert.equal(rows.length, 1);
    assert.equal(rows[0]!.result, 'success abc');
    assert.equal(rows[0]!.agentId, holder.agentId);
  });
});

test('takeover: of 12 agents scanning at once exactly one takes an expired slot; the old holder has lost it', async () => {
  await withCatalog(async (c, url) => {
    const dead = new JobSlots(c.sql, 'dead', { leaseMs: 200 });
    const slot = new Date('2026-11-30T12:00:10Z');
    assert.equal(await dead.claim('db', slot), true);
    const agents = Array.from({ length: 12 }, (_, i) => new JobSlots(c.sql, `agent-${i}`, { leaseMs: 30_000 }));
    await new Promise((r) => setTimeout(r, 400)); // the lease (database clock) runs out
    // line the 12 scans up: they wait for a table lock, then all run at the same moment
    const blocker = new pg.Client({ connectionString: url });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE lifeboat.job_slots IN SHARE MODE');
    const pending = Promise.all(agents.map((a) => a.takeOver(['db', 'other'])));
    await new Promise((r) => setTimeout(r, 300));
    await blocker.query('COMMIT');
    await blocker.end();
    const got = await pending;
    const winners = got.filter((g) => g !== undefined);
    assert.equal(winners.length, 1);
    assert.equal(winners[0]!.previousAgent, 'dead');
    assert.ok(winners[0]!.takenOverAt.getTime() >= winners[0]!.expiredAt.getTime());
    const holder = agents[got.findIndex((g) => g !== undefined)]!;
    // the dead holder, come back, can neither renew nor finish
    assert.equal(await dead.renew('db', slot), false);
    assert.equal(await dead.finish('db', slot, 'success old'), false);
    assert.equal(await holder.finish('db', slot, 'success new'), true);
    const [row] = await holder.list();
    assert.equal(row!.takeovers, 1);
    assert.equal(row!.result, 'success new');
    // jobs this agent does not have are not taken
    await dead.claim('not-mine', slot);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await holder.takeOver(['db']), undefined);
    // a released slot is taken over at once
    const a = agents[0]!;
    const s2 = new Date('2026-11-30T12:00:20Z');
    assert.equal(await a.claim('db', s2), true);
    assert.equal(await a.release('db', s2), true);
    const t = await agents[1]!.takeOver(['db']);
    assert.equal(t?.slot.toISOString(), s2.toISOString());
  });
});

test('slot report: done, running, orphaned, late and missed slots of a window', async () => {
  await withCatalog(async (c) => {
    const a = new JobSlots(c.sql, 'a', { leaseMs: 60_000 });
    const from = new Date(Math.floor(Date.now() / 1000) * 1000 - 60_000);
    const at = (s: number) => new Date(from.getTime() + s * 1000);
    // every 10 s: slots at +0, +10, ..., +50
    await a.claim('j', at(0));
    await a.finish('j', at(0), 'success s0');
    await a.claim('j', at(10));
    await a.finish('j', at(10), 'failed: boom');
    await a.claim('j', at(20)); // running
    const dead = new JobSlots(c.sql, 'dead', { leaseMs: 100 });
    await dead.claim('j', at(30)); // orphaned once its lease is over
    await new Promise((r) => setTimeout(r, 300));
    const rows = await a.list();
    const schedule = `${from.getUTCSeconds() % 10}-59/10 * * * * *`;
    const [r] = slotReport([{ name: 'j', schedule }], rows, { from, to: at(60), now: new Date(), missedAfterMs: 5_000 });
    assert.equal(r!.expected, 6);
    assert.equal(r!.done, 2);
    assert.equal(r!.failed, 1);
    assert.equal(r!.running, 1);
    assert.equal(r!.orphaned, 1);
    assert.deepEqual(r!.missed, [at(40).toISOString(), at(50).toISOString()]);
    // +0 .. +30 were claimed now, long after their fire time: late
    assert.equal(r!.late.length, 4);
  });
});

test('overlap: a slot whose previous slot still runs on another agent is recorded "skipped", not run and not missed; once that one finished the next runs', async () => {
  await withCatalog(async (c) => {
    const a = new JobSlots(c.sql, 'agent-a', { leaseMs: 30_000 });
    const b = new JobSlots(c.sql, 'agent-b', { leaseMs: 30_000 });
    const s1 = new Date('2026-11-30T12:00:00Z');
    const s2 = new Date('2026-11-30T12:01:00Z');
    const s3 = new Date('2026-11-30T12:02:00Z');
    assert.equal(await a.claim('db', s1), true);
    assert.equal(await a.skipIfOverlapping('db', s1), undefined, 'nothing before it');
    // s1 still runs on a: b wins s2's claim but must not run it
    assert.equal(await b.claim('db', s2), true);
    assert.match(String(await b.skipIfOverlapping('db', s2)), /^skipped: slot 2026-11-30T12:00:00\.000Z of this job still running on agent agent-a$/);
    // another job is not concerned
    assert.equal(await b.claim('other', s2), true);
    assert.equal(await b.skipIfOverlapping('other', s2), undefined);
    await a.finish('db', s1, 'success 1234');
    assert.equal(await b.claim('db', s3), true);
    assert.equal(await b.skipIfOverlapping('db', s3), undefined, 'the previous slot finished: run it');
    const rows = await a.list({ job: 'db' });
    assert.deepEqual(rows.map((r) => [r.slot.toISOString(), r.finishedAt ? r.result : 'running']), [
      ['2026-11-30T12:00:00.000Z', 'success 1234'],
      ['2026-11-30T12:01:00.000Z', 'skipped: slot 2026-11-30T12:00:00.000Z of this job still running on agent agent-a'],
      ['2026-11-30T12:02:00.000Z', 'running'],
    ]);
    const [rep] = slotReport([{ name: 'db', schedule: '0 * * * * *' }], rows, { from: s1, to: new Date('2026-11-30T12:02:30Z'), now: new Date('2026-11-30T12:02:30Z'), missedAfterMs: 5000 });
    assert.equal(rep!.skipped, 1);
    assert.equal(rep!.failed, 0);
    assert.deepEqual(rep!.missed, []);
  });
});
