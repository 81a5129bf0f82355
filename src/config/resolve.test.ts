import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './load.js';
import { resolveJob, resolvePlan, resolveSource } from './resolve.js';

const yaml = `
repositories:
  main: { location: /tmp/lb-main }
  offsite: { location: /tmp/lb-offsite }
  archive: { location: /tmp/lb-archive }
defaults: { repository: main, retention: { keepLast: 3 } }
sources:
  site: { kind: files, paths: [./www, /etc/app] }
  lite: { kind: sqlite, path: data/app.db, repository: archive }
  cmd: { kind: command, command: "echo hi" }
  pg: { kind: postgres, database: app, passwordFile: secrets/pg }
  pitr: { kind: postgres-physical, dataDir: pgdata }
jobs:
  site-nightly: { source: site, repository: offsite, copyTo: [archive], tier: critical, rpo: 1d }
  lite-hourly: { source: lite, retention: { keepLast: 24 } }
  cmd-job: { source: cmd }
  pg-job:
    source: pg
    drill:
      queries:
        - { sql: "select count(*) from t", equalsBackup: true }
        - { sql: "select 1", equals: 1 }
`;

test('resolvePlan: absolute paths, one repository per job and source, copies, retention, objectives', () => {
  const cfg = parseConfig(yaml, '/srv/lb/lifeboat.yaml');
  const plan = resolvePlan(cfg);
  // paths relative to the config file, whatever the kind
  assert.deepEqual((plan.sources.site!.config as { paths: string[] }).paths, ['/srv/lb/www', '/etc/app']);
  assert.equal((plan.sources.lite!.config as { path: string }).path, '/srv/lb/data/app.db');
  assert.equal((plan.sources.cmd!.config as { cwd: string }).cwd, '/srv/lb');
  assert.equal((plan.sources.pg!.config as { passwordFile: string }).passwordFile, '/srv/lb/secrets/pg');
  assert.equal((plan.sources.pitr!.config as { dataDir: string }).dataDir, '/srv/lb/pgdata');
  // the config itself is left as it was
  assert.deepEqual((cfg.sources.site as { paths: string[] }).paths, ['./www', '/etc/app']);
  // repositories: the job's own, else the source's, else the default; a source restores where its job writes
  assert.equal(plan.jobs['site-nightly']!.repository, 'offsite');
  assert.equal(plan.sources.site!.repository, 'offsite');
  assert.equal(plan.jobs['lite-hourly']!.repository, 'archive');
  assert.equal(plan.jobs['cmd-job']!.repository, 'main');
  assert.deepEqual(plan.repositories, ['offsite', 'archive', 'main']);
  assert.deepEqual(plan.jobs['site-nightly']!.copies, ['archive']);
  assert.deepEqual(plan.jobs['site-nightly']!.objectives, { tier: 'critical', rpo: '1d', rto: undefined });
  assert.deepEqual(plan.jobs['lite-hourly']!.retention, { keepLast: 24 });
  assert.deepEqual(plan.jobs['cmd-job']!.retention, { keepLast: 3 });
  // equalsBackup drill queries are run at backup time by the source
  assert.deepEqual(plan.sources.pg!.verifyQueries, ['select count(*) from t']);
  assert.deepEqual(plan.sources.site!.verifyQueries, []);
  for (const j of Object.values(plan.jobs)) assert.equal(j.source.repository, j.repository, j.name);
});

test('an explicit repository (restore --repo, a step\'s repository) wins; unknown names resolve to undefined', () => {
  const cfg = parseConfig(yaml, '/srv/lb/lifeboat.yaml');
  assert.equal(resolveSource(cfg, 'site', 'main')!.repository, 'main');
  assert.equal(resolveSource(cfg, 'nope'), undefined);
  assert.equal(resolveJob(cfg, 'nope'), undefined);
});

test('the plan carries what code below the entry points needs instead of the config: daemon settings, repositories, the config location', async () => {
  const cfg = parseConfig(`${yaml}daemon: { concurrency: 3 }\n`.replace('archive: { location: /tmp/lb-archive }', 'archive: { location: ./archive-repo }'), '/srv/lb/lifeboat.yaml');
  const plan = resolvePlan(cfg);
  assert.equal(plan.daemon.concurrency, 3);
  assert.equal(plan.file, '/srv/lb/lifeboat.yaml');
  assert.equal(plan.dir, '/srv/lb');
  assert.equal(plan.repository('archive').location, '/srv/lb/archive-repo');
  assert.throws(() => plan.repository('nope'), /unknown repository "nope"/);
  await assert.rejects(plan.openRepository('nope'), /unknown repository "nope"/);
});
