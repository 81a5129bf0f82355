import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp, createWriteStream } from 'node:fs';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { tmpDir, runCli, runCliMeasured, CLI, type RunResult } from './helpers/tmp.js';
import { parseConfig } from '../src/config/load.js';
import { parseYamlLimited, YAML_LIMITS } from '../src/config/yaml-safe.js';
import { ConfigError } from '../src/errors.js';

/**
 * Config loading cannot hang or blow up: size, token, depth, node and alias
 * limits end hostile lifeboat.yaml files with one clear line and exit 2,
 * within seconds and bounded memory; YAML errors name line and column;
 * unknown keys get a "did you mean"; SIGTERM during loading exits 130.
 */

const STACK = /^\s+at /m;
const t = tmpDir('lb-cfglimits-');
after(() => t.cleanup());

function assertCleanConfigError(r: RunResult, what: string): void {
  assert.equal(r.code, 2, `${what}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr.slice(0, 2000)}`);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `${what}: one line expected:\n${r.stderr.slice(0, 2000)}`);
  assert.match(lines[0]!, /^lifeboat: /);
  assert.doesNotMatch(r.stderr, STACK, `${what}: stack trace`);
  assert.doesNotMatch(r.stderr, /unexpected error/, what);
}

async function writeConfig(name: string, text: string | Buffer): Promise<string> {
  const f = path.join(t.dir, name);
  await fsp.writeFile(f, text);
  return f;
}

describe('hostile config files, with the real CLI', () => {
  test('a 50 MB lifeboat.yaml: refused at once, one line, exit 2, bounded memory', { timeout: 120_000 }, async () => {
    const f = path.join(t.dir, 'huge.yaml');
    const ws = createWriteStream(f);
    ws.write('repositories:\n  main:\n    location: ./r\nsources:\n');
    const chunk = Array.from({ length: 1000 }, (_, i) => `  s${i}: { kind: files, paths: [./d] }\n`).join('');
    let n = 0;
    while (n < 50 * 1024 * 1024) {
      if (!ws.write(chunk)) await new Promise<void>((r) => ws.once('drain', () => r()));
      n += chunk.length;
    }
    await new Promise<void>((r) => ws.end(() => r()));
    const r = await runCliMeasured(['--config', f, 'snapshots'], { killAfterMs: 60_000 });
    assert.equal(r.killed, false, 'hung');
    assertCleanConfigError(r, '50 MB');
    assert.match(r.stderr, /too large/);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    assert.ok(r.peakRssMb < 1024, `peak RSS ${r.peakRssMb} MiB`);
  });

  test('a YAML alias bomb ("billion laughs"): one line, exit 2, bounded memory', { timeout: 120_000 }, async () => {
    const lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
    for (let i = 1; i < 9; i++) {
      const prev = String.fromCharCode(96 + i);
      const cur = String.fromCharCode(97 + i);
      lines.push(`${cur}: &${cur} [${Array(9).fill(`*${prev}`).join(',')}]`);
    }
    const f = await writeConfig('bomb.yaml', `repositories:\n  main: { location: ./r }\nbomb:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
    const r = await runCliMeasured(['--config', f, 'snapshots'], { killAfterMs: 60_000 });
    assert.equal(r.killed, false, 'hung');
    assertCleanConfigError(r, 'alias bomb');
    assert.match(r.stderr, /alias/);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    assert.ok(r.peakRssMb < 1024, `peak RSS ${r.peakRssMb} MiB`);
  });

  test('deep nesting, too many tokens, a directory, a FIFO: one line, exit 2, no hang', { timeout: 300_000 }, async () => {
    const fifo = path.join(t.dir, 'fifo.yaml');
    execFileSync('mkfifo', [fifo]);
    const cases: Array<[string, string, RegExp]> = [
      ['deep flow nesting', await writeConfig('deep.yaml', 'a: ' + '['.repeat(1_000_000)), /nested/],
      ['deep block nesting', await writeConfig('deepblock.yaml', 'a:\n' + Array.from({ length: 200 }, (_, i) => `${' '.repeat(2 * i + 2)}k:`).join('\n') + ' 1\n'), /nested more than 64 levels/],
      ['too many tokens', await writeConfig('tokens.yaml', 'a: [' + 'x,'.repeat(400_000) + ']\n'), /tokens/],
      ['a directory', t.dir, /is a directory/],
      ['a FIFO', fifo, /not a regular file/],
    ];
    for (const [what, f, re] of cases) {
      const r = await runCliMeasured(['--config', f, 'snapshots'], { killAfterMs: 60_000 });
      assert.equal(r.killed, false, `${what}: hung`);
      assertCleanConfigError(r, what);
      assert.match(r.stderr, re, what);
      assert.ok(r.ms < 30_000, `${what}: took ${r.ms} ms`);
      assert.ok(r.peakRssMb < 1024, `${what}: peak RSS ${r.peakRssMb} MiB`);
    }
  });

  test('a YAML syntax error names its line and column', async () => {
    const cases: Array<[string, RegExp]> = [
      ['repositories:\n  main:\n    location: ./r\n  x: [\n', /syntax\.yaml:5:1: invalid YAML: /],
      ['repositories:\n  main:\n    location: ./r\n   bad: 1\n', /syntax\.yaml:4:1: invalid YAML: /],
      ['repositories:\n  main:\n    location: ./r\n    location: ./s\n', /syntax\.yaml:4:5: invalid YAML: duplicate key "location"/],
    ];
    for (const [text, re] of cases) {
      const f = await writeConfig('syntax.yaml', text);
      const r = await runCli(['--config', f, 'snapshots']);
      assertCleanConfigError(r, text);
      assert.match(r.stderr, re);
    }
  });

  test('unknown config keys get a "did you mean" with the closest known key', async () => {
    const f = await writeConfig(
      'typos.yaml',
      [
        'repositories:',
        '  main:',
        '    location: ./r',
        '    autoinit: true',
        '    s3: { regoin: x }',
        'sources:',
        '  s1: { kind: files, paths: [./d], exclude: [x] }',
        '  s2: { kind: postgres, databse: x }',
        'jobs:',
        '  j: { source: s1, schedul: "0 * * * *" }',
        'default: {}',
        'zzzzzzzz: 1',
        '',
      ].join('\n'),
    );
    const r = await runCli(['--config', f, 'snapshots']);
    assert.equal(r.code, 2, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
    for (const re of [
      /typos\.yaml:4:5: repositories\.main: unknown key "autoinit" \(did you mean "autoInit"\?\)/,
      /repositories\.main\.s3: unknown key "regoin" \(did you mean "region"\?\)/,
      /sources\.s1: unknown key "exclude" \(did you mean "excludes"\?\)/,
      /sources\.s2: unknown key "databse" \(did you mean "database"\?\)/,
      /jobs\.j: unknown key "schedul" \(did you mean "schedule"\?\)/,
      /typos\.yaml:11:1: unknown keys? "default" \(did you mean "defaults"\?\)/,
    ]) {
      assert.match(r.stderr, re);
    }
    // nothing close: no suggestion
    assert.match(r.stderr, /"zzzzzzzz"(?! \(did you mean)/);
  });

  test('runbook files: the same limits and "did you mean" for unknown keys', async () => {
    const dir = path.join(t.dir, 'runbooks');
    await fsp.mkdir(dir, { recursive: true });
    const cfg = await writeConfig('rb.yaml', `repositories:\n  main: { location: ./r }\nrunbooks:\n  dir: ./runbooks\n`);
    await fsp.writeFile(
      path.join(dir, 'typo.yaml'),
      'titel: Restore\nscenario: accidental-deletion\nseverity: high\nsteps:\n  - type: exec\n    name: one\n    comand: "true"\n',
    );
    let r = await runCli(['-c', cfg, 'runbook', 'list']);
    assert.equal(r.code, 2, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
    assert.match(r.stderr, /typo\.yaml:1:1: runbook typo: .*unknown key "titel" \(did you mean "title"\?\)/);
    assert.match(r.stderr, /unknown key "comand" \(did you mean "command"\?\)/);
    await fsp.rm(path.join(dir, 'typo.yaml'));
    await fsp.writeFile(path.join(dir, 'huge.yaml'), 'title: x\n' + '#'.repeat(3 * 1024 * 1024) + '\n');
    r = await runCli(['-c', cfg, 'runbook', 'list']);
    // the runbook loader lists every bad file under one "invalid runbooks:" line
    assert.equal(r.code, 2, r.stderr);
    assert.doesNotMatch(r.stderr, STACK);
    assert.match(r.stderr, /runbook file .*huge\.yaml is too large/);
  });

  test('SIGTERM while a large config is being parsed: exit 130 promptly', { timeout: 120_000 }, async () => {
    // a valid config close to the token limit: its parse takes a noticeable time
    const parts = ['repositories:\n  main:\n    location: ./r\nsources:\n'];
    for (let i = 0; i < 4000; i++) parts.push(`  s${i}:\n    kind: files\n    paths:\n      - ./d\n`);
    const f = await writeConfig('large-valid.yaml', parts.join(''));
    const r = await new Promise<{ code: number | null; signal: string | null; stderr: string; afterSignalMs: number }>((resolve, reject) => {
      // LIFEBOAT_DEBUG prints "loading config" just before the config is read: the signal arrives during the parse
      const child = spawn(process.execPath, [CLI, '--config', f, 'plan', 'check'], { env: { ...process.env, LIFEBOAT_DEBUG: '1' }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      let sentAt = 0;
      const guard = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        if (!sentAt && stderr.includes('loading config')) {
          sentAt = Date.now();
          child.kill('SIGTERM');
        }
      });
      child.on('error', reject);
      child.on('close', (code, signal) => {
        clearTimeout(guard);
        resolve({ code, signal, stderr, afterSignalMs: sentAt ? Date.now() - sentAt : -1 });
      });
    });
    assert.ok(r.afterSignalMs >= 0, `never saw "loading config":\n${r.stderr}`);
    assert.equal(r.code, 130, `exit ${r.code} ${r.signal}\n${r.stderr}`);
    assert.match(r.stderr, /received SIGTERM/);
    assert.doesNotMatch(r.stderr, STACK);
    assert.ok(r.afterSignalMs < 30_000, `exited ${r.afterSignalMs} ms after the signal`);
  });
});

describe('YAML limits, in process', () => {
  test('each limit ends in a ConfigError naming the file', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['size', 'a: "' + 'x'.repeat(YAML_LIMITS.maxBytes) + '"\n', /more than 1 MiB/],
      ['flow depth', 'a: ' + '['.repeat(100) + ']'.repeat(100) + '\n', /more than 64 nested/],
      ['tokens', 'a: [' + '1,'.repeat(YAML_LIMITS.maxTokens) + ']\n', /more than 100000 YAML tokens/],
      ['block depth', Array.from({ length: 70 }, (_, i) => `${' '.repeat(i)}k:`).join('\n') + ' 1\n', /nested more than 64 levels/],
      ['duplicate key', 'a: 1\nb: 2\na: 3\n', /x\.yaml:3:1: invalid YAML: duplicate key "a"/],
      ['alias expansion', 'a: &a [1,2,3,4,5,6,7,8,9,10]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n', /alias/],
      ['syntax', 'a: [1, 2\nb: 3\n', /x\.yaml:\d+:\d+: invalid YAML/],
    ];
    for (const [what, text, re] of cases) {
      assert.throws(
        () => parseYamlLimited(text, '/x/x.yaml'),
        (e: Error) => e instanceof ConfigError && re.test(e.message) && e.message.includes('/x/x.yaml'),
        what,
      );
    }
    // the node limit, with a smaller limit (the default token limit is reached first on real input)
    assert.throws(
      () => parseYamlLimited('a: [' + '1,'.repeat(200) + ']\n', '/x/x.yaml', { ...YAML_LIMITS, maxNodes: 100 }),
      (e: Error) => e instanceof ConfigError && /more than 100 values/.test(e.message),
    );
    // within the limits: parsed, aliases expanded
    const ok = parseYamlLimited('a: &a [1, 2]\nb: *a\n', '/x/x.yaml');
    assert.deepEqual(ok.value, { a: [1, 2], b: [1, 2] });
  });

  test('an ordinary config still loads', () => {
    const cfg = parseConfig('repositories:\n  main: { location: ./r }\nsources:\n  s: { kind: files, paths: [./d] }\njobs:\n  j: { source: s }\n', '/x/lifeboat.yaml');
    assert.equal(cfg.jobs.j!.source, 's');
  });
});
