import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_TIER, TIER_DEFAULTS, describeRpo, objectivesSchema, resolveObjectives, rpoStatus } from '../src/policy/objectives.js';
import type { Tier } from '../src/config/tiers.js';
import { ConfigError } from '../src/errors.js';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('resolveObjectives', () => {
  it('uses the tier defaults', () => {
    assert.deepEqual(resolveObjectives('critical'), { tier: 'critical', rpoMs: 15 * MIN, rtoMs: HOUR });
    assert.deepEqual(resolveObjectives('important'), { tier: 'important', rpoMs: HOUR, rtoMs: 4 * HOUR });
    assert.deepEqual(resolveObjectives('normal'), { tier: 'normal', rpoMs: 4 * HOUR, rtoMs: 24 * HOUR });
    assert.equal(DEFAULT_TIER, 'normal');
    assert.deepEqual(resolveObjectives(), resolveObjectives('normal'));
    assert.deepEqual(TIER_DEFAULTS.critical, { rpo: '15m', rto: '1h' });
  });

  it('applies overrides given as strings or milliseconds', () => {
    assert.deepEqual(resolveObjectives('critical', { rpo: '5m' }), { tier: 'critical', rpoMs: 5 * MIN, rtoMs: HOUR });
    assert.deepEqual(resolveObjectives('normal', { rpo: '1d', rto: '2h30m' }), { tier: 'normal', rpoMs: 24 * HOUR, rtoMs: 2.5 * HOUR });
    assert.deepEqual(resolveObjectives('important', { rto: 90 * MIN }), { tier: 'important', rpoMs: HOUR, rtoMs: 90 * MIN });
  });

  it('rejects unknown tiers and bad durations with a clear error', () => {
    assert.throws(() => resolveObjectives('gold' as Tier), (e: unknown) => e instanceof ConfigError && /unknown tier "gold".*critical, important, normal/.test(e.message));
    assert.throws(() => resolveObjectives('normal', { rpo: '15 minutes' }), (e: unknown) => e instanceof ConfigError && /^rpo: invalid duration "15 minutes"/.test(e.message));
    assert.throws(() => resolveObjectives('normal', { rto: 0 }), /rto: expected a positive duration/);
    assert.throws(() => resolveObjectives('normal', { rto: -5 }), /rto: expected a positive duration/);
  });
});

describe('rpoStatus', () => {
  const now = new Date('2024-06-01T12:00:00Z');
  const ago = (ms: number) => new Date(now.getTime() - ms);
  const table: Array<[string, Date | undefined, number, 'ok' | 'warning' | 'critical']> = [
    ['just now', ago(0), HOUR, 'ok'],
    ['half the RPO', ago(30 * MIN), HOUR, 'ok'],
    ['exactly the RPO', ago(HOUR), HOUR, 'ok'],
    ['1 ms past the RPO', ago(HOUR + 1), HOUR, 'warning'],
    ['1.5 x RPO', ago(90 * MIN), HOUR, 'warning'],
    ['exactly 2 x RPO', ago(2 * HOUR), HOUR, 'warning'],
    ['1 ms past 2 x RPO', ago(2 * HOUR + 1), HOUR, 'critical'],
    ['a week old, RPO 15m', ago(7 * 24 * HOUR), 15 * MIN, 'critical'],
    ['never backed up', undefined, HOUR, 'critical'],
    ['invalid date counts as never', new Date(NaN), HOUR, 'critical'],
    ['last success in the future (clock skew)', ago(-10 * MIN), HOUR, 'ok'],
  ];
  for (const [name, last, rpo, want] of table) {
    it(name, () => assert.equal(rpoStatus(last, rpo, now), want));
  }

  it('rejects a non-positive RPO', () => {
    assert.throws(() => rpoStatus(now, 0, now), ConfigError);
    assert.throws(() => rpoStatus(now, NaN, now), ConfigError);
  });

  it('describeRpo explains the status', () => {
    assert.equal(describeRpo(ago(5 * HOUR), 4 * HOUR, now), 'last success 5h ago, RPO 4h: warning');
    assert.equal(describeRpo(ago(15 * MIN), 15 * MIN, now), 'last success 15m ago, RPO 15m: ok');
    assert.equal(describeRpo(undefined, HOUR, now), 'no successful backup, RPO 1h: critical');
  });
});

describe('objectivesSchema', () => {
  it('parses objectives blocks', () => {
    assert.deepEqual(objectivesSchema.parse({}), { tier: 'normal' });
    assert.deepEqual(objectivesSchema.parse({ tier: 'critical', rpo: '10m' }), { tier: 'critical', rpo: '10m' });
    assert.deepEqual(objectivesSchema.parse({ tier: 'important', rpo: '1h', rto: '7d' }), { tier: 'important', rpo: '1h', rto: '7d' });
    const o = objectivesSchema.parse({ tier: 'critical', rpo: '10m' });
    assert.deepEqual(resolveObjectives(o.tier, o), { tier: 'critical', rpoMs: 10 * MIN, rtoMs: HOUR });
  });

  it('rejects bad blocks naming the field', () => {
    const msg = (v: unknown) => {
      const r = objectivesSchema.safeParse(v);
      assert.equal(r.success, false, `expected ${JSON.stringify(v)} to be rejected`);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.match(msg({ tier: 'gold' }), /tier: expected one of: critical, important, normal/);
    assert.match(msg({ rpo: '15' }), /rpo: invalid duration "15": number 15 has no unit/);
    assert.match(msg({ rto: '0h' }), /rto: .*greater than zero/);
    assert.match(msg({ rpo: 900 }), /rpo/);
    assert.match(msg({ tier: 'normal', retention: 3 }), /retention/);
  });
});
