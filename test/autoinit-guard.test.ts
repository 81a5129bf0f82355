import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { runCli, tmpDir } from './helpers/tmp.js';

/**
 * The autoInit typo guard (issue 15 item 11): `lifeboat run JOB` creates a
 * repository with `autoInit: true` only on the job's first run (no successful
 * backup of it in the catalog), and says so loudly; once the job has backed
 * up, a missing repository -- e.g. a mistyped location -- is an error (exit
 * 10) and nothing is created there.
 */

function config(dir: string, location: string): string {
  const file = path.join(dir, 'lifeboat.yaml');
  writeFileSync(
    file,
    `repositories:
  main: { location: ${location}, autoInit: true, password: { file: ./pw } }
sources:
  site: { kind: files, paths: [./site] }
jobs:
  site-files: { source: site, rpo: 1h }
`,
  );
  return file;
}

test('autoInit: the first run of a job creates the repository and says so; a later run with a mistyped location fails and creates nothing', async () => {
  const t = tmpDir('lb-autoinit-');
  try {
    mkdirSync(path.join(t.dir, 'site'));
    writeFileSync(path.join(t.dir, 'site', 'a.txt'), 'hello\n');
    writeFileSync(path.join(t.dir, 'pw'), 'pw\n');
    const env = { LIFEBOAT_PASSWORD: undefined };

    // first run: created, loudly (a warning line and in the run's JSON warnings)
    let cfg = config(t.dir, './repo');
    const first = await runCli(['-c', cfg, 'run', 'site-files'], { env });
    assert.equal(first.code, 0, first.stderr);
    const repoDir = path.join(t.dir, 'repo');
    assert.ok(existsSync(path.join(repoDir, 'config')), 'repository created');
    assert.match(first.stdout, new RegExp(`warning: created a new empty repository at ${repoDir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(first.stderr, /warning: created a new empty repository at .*first run of job site-files/);

    // the location is mistyped: the job has backed up before, so nothing is created
    cfg = config(t.dir, './rpeo');
    const typo = await runCli(['-c', cfg, '--json', 'run', 'site-files'], { env });
    assert.equal(typo.code, 10, typo.stderr);
    assert.match(typo.stderr, /no Lifeboat repository at .*rpeo/);
    assert.match(typo.stderr, /has backed up before/);
    assert.match(typo.stderr, /location may be mistyped/);
    assert.ok(!existsSync(path.join(t.dir, 'rpeo', 'config')), 'no repository was created at the mistyped location');

    // the right location still works, and creates nothing new
    cfg = config(t.dir, './repo');
    const again = await runCli(['-c', cfg, '--json', 'run', 'site-files'], { env });
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /created a new empty repository/);
  } finally {
    t.cleanup();
  }
});

test('autoInit: a job whose runs all failed may still create its repository (it has never backed up)', async () => {
  const t = tmpDir('lb-autoinit-');
  try {
    writeFileSync(path.join(t.dir, 'pw'), 'pw\n');
    const env = { LIFEBOAT_PASSWORD: undefined };
    const cfg = config(t.dir, './repo');
    // no ./site yet: the first run fails (after creating the repository)
    const failed = await runCli(['-c', cfg, 'run', 'site-files'], { env });
    assert.notEqual(failed.code, 0);
    mkdirSync(path.join(t.dir, 'site'));
    writeFileSync(path.join(t.dir, 'site', 'a.txt'), 'hello\n');
    const cfg2 = config(t.dir, './repo2');
    const ok = await runCli(['-c', cfg2, 'run', 'site-files'], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /created a new empty repository at .*repo2/);
  } finally {
    t.cleanup();
  }
});

test('autoInit in the daemon: the same rule (the catalog decides the first run); a later mistyped location fails every run and creates nothing', async () => {
  const { parseConfig } = await import('../src/config/load.js');
  const { startService } = await import('../src/ops/service.js');
  const t = tmpDir('lb-autoinit-daemon-');
  const yaml = (location: string) => `repositories:
  main: { location: ${location}, autoInit: true, password: { file: ./pw } }
sources:
  site: { kind: files, paths: [./site] }
jobs:
  site-files: { source: site, schedule: "* * * * * *", catchUp: false }
daemon: { catalog: ./catalog.db }
`;
  const waitRun = async (svc: { catalog: { recentRuns(job: string, n: number): Promise<Array<{ status: string; error?: string | null }>> } }, status: string) => {
    for (let i = 0; i < 600; i++) {
      const runs = await svc.catalog.recentRuns('site-files', 20);
      const hit = runs.find((r) => r.status === status);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`no ${status} run within 60 s`);
  };
  try {
    mkdirSync(path.join(t.dir, 'site'));
    writeFileSync(path.join(t.dir, 'site', 'a.txt'), 'hello\n');
    writeFileSync(path.join(t.dir, 'pw'), 'pw\n');
    let svc = await startService(parseConfig(yaml('./repo'), path.join(t.dir, 'lifeboat.yaml')), { listen: false });
    try {
      await waitRun(svc, 'success');
    } finally {
      await svc.stop();
    }
    assert.ok(existsSync(path.join(t.dir, 'repo', 'config')), 'the first run created the repository');
    svc = await startService(parseConfig(yaml('./rpeo'), path.join(t.dir, 'lifeboat.yaml')), { listen: false });
    try {
      const failed = await waitRun(svc, 'failed');
      assert.match(String(failed.error), /has backed up before/);
    } finally {
      await svc.stop();
    }
    assert.ok(!existsSync(path.join(t.dir, 'rpeo', 'config')), 'nothing created at the mistyped location');
  } finally {
    t.cleanup();
  }
});
