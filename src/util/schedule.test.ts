import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeSchedule } from './schedule.js';

test('describeSchedule: words, zone and the next run of a cron expression', () => {
  const now = new Date('2026-11-30T10:07:30Z');
  const every15 = describeSchedule('*/15 * * * *', now);
  assert.match(every15.text, /^Every 15 minutes \(/);
  // the next quarter hour after 10:07:30 in the process's zone: 15 minutes are 15 minutes in every zone with whole-quarter offsets
  assert.equal(new Date(every15.next!).getUTCMinutes() % 15, 0);
  assert.ok(Date.parse(every15.next!) > now.getTime() && Date.parse(every15.next!) - now.getTime() <= 15 * 60_000);
  const nightly = describeSchedule('0 30 3 * * *', now);
  assert.match(nightly.text, /At 03:30/);
  assert.ok(Date.parse(nightly.next!) - now.getTime() <= 24 * 3600_000);
  const bad = describeSchedule('not a cron', now);
  assert.equal(bad.next, null);
  assert.equal(bad.text, `not a cron (${bad.timeZone})`);
});
