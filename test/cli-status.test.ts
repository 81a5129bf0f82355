import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { CLI, runCli, tmpDir } from './helpers/tmp.js';

/**
 * `lifeboat status` for a person: one short line per job (no ~220-character
 * lines), colour only on a terminal and never with NO_COLOR, every check
 * under --verbose; --json unchanged.
 */
test('status: a compact table, one line per job; colour on a terminal only, NO_COLOR honoured; details under --verbose', async () => {
  const t = tmpDir('lb-status-');
  try {
    mkdirSync(path.join(t.dir, 'site'));
    writeFileSync(path.join(t.dir, 'site', 'a.txt'), 'hello\n');
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    writeFileSync(
      cfg,
      `repositories:
  local: { location: ./repo, autoInit: true }
sources:
  site: { kind: files, paths: [./site] }
  gone: { kind: files, paths: [./does-not-exist] }
jobs:
  website: { source: site, rpo: 1h }
  broken-job-with-a-long-name: { source: gone, rpo: 1h }
`,
    );
    const env = { LIFEBOAT_PASSWORD: 'status-pw' };
    assert.equal((await runCli(['-c', cfg, 'run', 'website'], { env })).code, 0);
    assert.notEqual((await runCli(['-c', cfg, 'run', 'broken-job-with-a-long-name'], { env })).code, 0);

    const r = await runCli(['-c', cfg, 'status'], { env });
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^JOB\s+STATE\s+PROBLEMS\s+DETAIL$/);
    const website = lines.find((l) => l.startsWith('website '))!;
    const broken = lines.find((l) => l.startsWith('broken-job-with-a-long-name '))!;
    assert.match(website, /\bok\b/);
    assert.match(broken, /CRITICAL|WARNING/);
    for (const l of lines) assert.ok(l.length <= 130, `a short line: ${l.length} chars: ${l}`);
    assert.doesNotMatch(r.stdout, /\x1b\[/, 'no colour when stdout is not a terminal');
    assert.match(r.stdout, /overall: critical/);
    assert.notEqual(r.code, 0, 'a critical state is a failing exit code, as before');

    const v = await runCli(['-c', cfg, 'status', '--verbose'], { env });
    assert.match(v.stdout, /Check/);
    assert.ok(v.stdout.split('\n').filter((l) => l.includes('website')).length > 1, 'every check of the job under --verbose');

    const j = await runCli(['-c', cfg, '--json', 'status'], { env });
    assert.ok(JSON.parse(j.stdout).findings.length > 2);

    // on a terminal (a pty through script(1)): colour, unless NO_COLOR is set
    const inPty = (extra: Record<string, string>) =>
      spawnSync('script', ['-qec', `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} -c ${JSON.stringify(cfg)} status`, '/dev/null'], {
        env: { ...process.env, ...env, TERM: 'xterm', ...extra },
        encoding: 'utf8',
        timeout: 60_000,
      }).stdout;
    const withColor = inPty({});
    assert.match(withColor, /\x1b\[3[13]m(CRITICAL|WARNING)\x1b\[0m/, withColor);
    assert.match(withColor, /\x1b\[32mok\x1b\[0m/);
    const noColor = inPty({ NO_COLOR: '1' });
    assert.match(noColor, /JOB\s+STATE/);
    assert.doesNotMatch(noColor, /\x1b\[3\dm/, 'NO_COLOR honoured');
  } finally {
    t.cleanup();
  }
});
