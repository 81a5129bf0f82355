import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { testOnBothCatalogs } from './helpers/catalogs.js';
import { tmpDir } from './helpers/tmp.js';
import { loadConfig } from '../src/config/load.js';
import type { LifeboatConfig } from '../src/config/config.js';
import type { Catalog } from '../src/ops/catalog/types.js';
import { IncidentStore, type IncidentImpact, type IncidentVisibility } from '../src/ops/incidents.js';
import { computeAvailability } from '../src/ops/availability.js';
import { buildStatus, renderStatusHtml } from '../src/server/status.js';

/**
 * Availability (issue 14 item 8): incidents with known durations give exact
 * 30/90-day percentages and daily bars; only published incidents count on
 * the public page, all of them for the internal figure. Real catalogs
 * (SQLite and PostgreSQL), the real status page model and HTML.
 */

const tmp = tmpDir('lb-avail-');
after(() => tmp.cleanup());
const NOW = new Date('2026-11-30T12:00:00Z');
const at = (s: string) => new Date(s);

async function config(): Promise<LifeboatConfig> {
  const dir = path.join(tmp.dir, `cfg-${randomBytes(3).toString('hex')}`);
  await fsp.mkdir(dir);
  const file = path.join(dir, 'lifeboat.yaml');
  await fsp.writeFile(
    file,
    `repositories:
  r: { location: ./repo }
daemon: { catalog: ./catalog.db }
services:
  web: { description: Website, availabilityTarget: 99.9 }
  api: { availabilityTarget: 99.99 }
  db: {}
`,
  );
  return loadConfig(file);
}

async function seed(catalog: Catalog): Promise<void> {
  const store = new IncidentStore(catalog, { now: () => NOW });
  const add = async (impact: IncidentImpact, services: string[], from: string, to: string | null, visibility: IncidentVisibility = 'public') => {
    const i = await store.create({ title: `${impact} ${from}`, impact, services, startedAt: at(from), visibility });
    if (to) await new IncidentStore(catalog, { now: () => at(to) }).resolve(i.id, { message: 'fixed' });
  };
  await add('critical', ['web'], '2026-11-20T10:00:00Z', '2026-11-20T11:00:00Z'); // 60 min full
  await add('major', ['web'], '2026-11-25T00:00:00Z', '2026-11-25T02:00:00Z'); // 120 min partial ...
  await add('critical', ['web', 'db'], '2026-11-25T01:00:00Z', '2026-11-25T01:30:00Z'); // ... 30 of them full: 30 + 0.5×90 = 75 min
  await add('minor', ['web'], '2026-11-26T00:00:00Z', '2026-11-26T03:00:00Z'); // not downtime
  await add('critical', ['web'], '2026-11-27T00:00:00Z', '2026-11-27T10:00:00Z', 'private'); // 600 min, internal only
  await add('major', ['web'], '2026-11-28T08:00:00Z', '2026-11-28T08:20:00Z'); // 10 min weighted
  await add('critical', ['web'], '2026-10-31T10:00:00Z', '2026-10-31T14:00:00Z'); // 2h inside 30 days (from 10-31 12:00), 4h inside 90
  await add('critical', ['web'], '2026-10-01T00:00:00Z', '2026-10-01T06:00:00Z'); // 6h, only in 90 days
  await add('critical', ['web'], '2026-08-01T00:00:00Z', '2026-08-02T00:00:00Z'); // before 90 days: never counts
  await add('critical', ['api'], '2026-11-30T11:00:00Z', null); // still open: 60 min up to now
  // db: only 30 min (shared critical) → 99.9306 % over 30 days; no target
}

async function exercise(catalog: Catalog): Promise<void> {
  const cfg = await config();
  await seed(catalog);
  const pub = await computeAvailability(cfg, catalog, { now: NOW, visibility: 'public' });
  const byName = Object.fromEntries(pub.map((a) => [a.service, a]));
  const win = (s: string) => byName[s]!.windows.map((w) => [w.days, w.percent, w.downtimeSeconds, w.meetsTarget]);
  // web: 30 d = 60 + 75 + 10 + 120 = 265 min = 15900 s of 2592000 s → 99.3866 %; 90 d: + 120 + 360 = 745 min = 44700 s of 7776000 s → 99.4252 %
  assert.deepEqual(win('web'), [
    [30, 99.3866, 15900, false],
    [90, 99.4252, 44700, false],
  ]);
  // api: 1 h open incident: 3600/2592000 → 99.8611 %, 3600/7776000 → 99.9537 %; below 99.99
  assert.deepEqual(win('api'), [
    [30, 99.8611, 3600, false],
    [90, 99.9537, 3600, false],
  ]);
  assert.deepEqual(win('db'), [
    [30, 99.9306, 1800, null],
    [90, 99.9769, 1800, null],
  ]);
  assert.equal(byName.web!.target, 99.9);
  // the internal figure counts the private 10 h outage: 865 min = 51900 s → 97.9977 %
  const internal = await computeAvailability(cfg, catalog, { now: NOW });
  assert.deepEqual(internal.find((a) => a.service === 'web')!.windows[0], { days: 30, percent: 97.9977, downtimeSeconds: 51900, meetsTarget: false });

  // bars: 90 UTC days, oldest first, today last (partial: up to now)
  const days = byName.web!.days;
  assert.equal(days.length, 90);
  assert.equal(days[0]!.date, '2026-09-02');
  assert.equal(days[89]!.date, '2026-11-30');
  const day = (s: string, d: string) => byName[s]!.days.find((x) => x.date === d)!;
  assert.deepEqual([day('web', '2026-11-20').percent, day('web', '2026-11-20').level], [95.8333, 'down']); // 60 min
  assert.deepEqual([day('web', '2026-11-25').percent, day('web', '2026-11-25').level], [94.7917, 'down']); // 75 min
  assert.deepEqual([day('web', '2026-11-26').percent, day('web', '2026-11-26').level], [100, 'up']); // minor
  assert.deepEqual([day('web', '2026-11-27').percent, day('web', '2026-11-27').level], [100, 'up']); // private: not on the public page
  assert.deepEqual([day('web', '2026-11-28').percent, day('web', '2026-11-28').level], [99.3056, 'degraded']); // 10 min
  assert.equal(day('web', '2026-10-31').percent, 83.3333); // 4 h
  assert.deepEqual([day('api', '2026-11-30').percent, day('api', '2026-11-30').level], [91.6667, 'down']); // 1 h of the 12 h so far
  assert.equal(days.filter((d) => d.level !== 'up').length, 5);
  assert.equal(internal.find((a) => a.service === 'web')!.days.find((d) => d.date === '2026-11-27')!.percent, 58.3333);

  // the status page model (and so /status.json) and the HTML
  const model = await buildStatus(cfg, catalog, { now: NOW });
  const web = model.components.find((c) => c.name === 'web')!;
  assert.deepEqual(JSON.parse(JSON.stringify(web.availability)), JSON.parse(JSON.stringify({ target: 99.9, windows: byName.web!.windows, days: byName.web!.days })));
  const dash = await buildStatus(cfg, catalog, { now: NOW, availabilityFrom: 'all' });
  assert.equal(dash.components.find((c) => c.name === 'web')!.availability!.windows[0]!.percent, 97.9977);
  const html = renderStatusHtml(model);
  const card = html.slice(html.indexOf('data-component="web"'), html.indexOf('data-component="api"'));
  assert.equal([...card.matchAll(/<span class="d-(up|degraded|down)" data-date="/g)].length, 90);
  assert.match(card, /Availability <span data-window="30" data-percent="99.3866" class="miss">99\.39%<\/span> \(30 days\) · <span data-window="90" data-percent="99.4252" class="miss">99\.43%<\/span> \(90 days\) · target 99\.9%/);
  assert.match(card, /<span class="d-down" data-date="2026-11-25" data-percent="94.7917" title="2026-11-25: 94\.79%"><\/span>/);
  assert.match(card, /<span class="d-degraded" data-date="2026-11-28" data-percent="99.3056"/);
  assert.match(card, /<span class="d-up" data-date="2026-11-27" data-percent="100"/);
  const dbCard = html.slice(html.indexOf('data-component="db"'));
  assert.match(dbCard, /Availability <span data-window="30" data-percent="99.9306">99\.93%<\/span> \(30 days\) · <span data-window="90" data-percent="99.9769">99\.98%<\/span> \(90 days\)<\/small>/);
}

testOnBothCatalogs('availability from incident history: exact 30/90-day percentages, daily bars, public vs internal', () => tmp.dir, exercise);

test('availabilityTarget is validated', async () => {
  const dir = path.join(tmp.dir, 'bad');
  await fsp.mkdir(dir);
  await fsp.writeFile(path.join(dir, 'lifeboat.yaml'), 'repositories:\n  r: { location: ./r }\nservices:\n  web: { availabilityTarget: 120 }\n');
  assert.throws(() => loadConfig(path.join(dir, 'lifeboat.yaml')), /services\.web\.availabilityTarget/);
});
