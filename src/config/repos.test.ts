import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './load.js';
import { defaultRepository, jobRepository, sourceRepository } from './repos.js';

const yaml = `
repositories:
  main: { location: /tmp/lb-main }
  offsite: { location: /tmp/lb-offsite }
  archive: { location: /tmp/lb-archive }
defaults: { repository: main }
sources:
  pinned: { kind: files, paths: [/etc], repository: archive }
  byjob: { kind: files, paths: [/srv] }
  plain: { kind: files, paths: [/opt] }
jobs:
  pinned-job: { source: pinned }
  byjob-nightly: { source: byjob, repository: offsite }
  plain-job: { source: plain }
`;

test('one rule resolves the repository of a job, a source and a restore', () => {
  const cfg = parseConfig(yaml, '/tmp/lifeboat.yaml');
  assert.equal(defaultRepository(cfg), 'main');
  // a job: its own repository, else its source's, else the default
  assert.equal(jobRepository(cfg, cfg.jobs['byjob-nightly']!), 'offsite');
  assert.equal(jobRepository(cfg, cfg.jobs['pinned-job']!), 'archive');
  assert.equal(jobRepository(cfg, cfg.jobs['plain-job']!), 'main');
  // a source (restores, runbooks, the server): explicit, else its own, else where its job writes, else the default
  assert.equal(sourceRepository(cfg, 'byjob', 'archive'), 'archive');
  assert.equal(sourceRepository(cfg, 'pinned'), 'archive');
  assert.equal(sourceRepository(cfg, 'byjob'), 'offsite');
  assert.equal(sourceRepository(cfg, 'plain'), 'main');
  // restoring a source finds the snapshots where its job puts them
  for (const [name, job] of Object.entries(cfg.jobs)) assert.equal(sourceRepository(cfg, job.source), jobRepository(cfg, job), name);
});

test('without defaults the first repository is used', () => {
  const cfg = parseConfig('repositories:\n  first: { location: /tmp/a }\n  second: { location: /tmp/b }\n', '/tmp/lifeboat.yaml');
  assert.equal(defaultRepository(cfg), 'first');
  assert.equal(sourceRepository(cfg, 'nothing'), 'first');
});
