import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfig } from './load.js';
import { defaultRepository, jobRepository, openConfiguredRepo, sourceRepository } from './repos.js';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

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

test('autoInit: jobs that start together on one empty location all open the one repository that was created', async () => {
  process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-autoinit-race-'));
  try {
    writeFileSync(path.join(dir, 'pw'), 'race-pw');
    const cfg = parseConfig('repositories:\n  main: { location: ./main, password: { file: ./pw }, autoInit: true }\n', path.join(dir, 'lifeboat.yaml'));
    // rounds of 6 at once (a daemon's jobs at its start); each round on a new location
    for (let round = 0; round < 5; round++) {
      const loc = `./main-${round}`;
      const c = { ...cfg, repositories: { main: { ...cfg.repositories.main!, location: loc } } };
      const inits: string[] = [];
      // all settled before judging: a failed open must not leave the others writing into a removed directory
      const settled = await Promise.allSettled(Array.from({ length: 6 }, () => openConfiguredRepo(c, 'main', { onInit: (l) => inits.push(l) })));
      const repos = settled.flatMap((x) => (x.status === 'fulfilled' ? [x.value] : []));
      try {
        assert.deepEqual(settled.flatMap((x) => (x.status === 'rejected' ? [String(x.reason)] : [])), []);
        assert.equal(inits.length, 1, 'only the open that created it says so');
        assert.equal(new Set(repos.map((r) => r.config.id)).size, 1, 'one repository');
        // the keys of the inits that lost are gone: one key file is left
        assert.deepEqual(readdirSync(path.join(dir, `main-${round}`, 'keys')).length, 1);
      } finally {
        for (const r of repos) await r.close();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
