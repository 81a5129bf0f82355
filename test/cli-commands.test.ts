import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { buildProgram, COMMAND_MODULES, commandModuleOf, modulesFor } from '../src/cli/program.js';
import { tmpDir, runCli } from './helpers/tmp.js';
import { PROGRAM } from '../src/repo/version.js';
import { progressBars } from '../src/cli/output.js';

/**
 * The CLI loads only the module of the command that runs (src/cli/program.ts):
 * its table of command names must match what each module registers, the
 * command must be found past global options and their values, and help must
 * still list every command.
 */

test('each command module registers exactly the commands the table names, and together all of them', async () => {
  const seen: string[] = [];
  for (const m of COMMAND_MODULES) {
    const p = new Command();
    (await m.load())(p, () => {
      throw new Error('no context while registering');
    });
    assert.deepEqual(p.commands.map((c) => c.name()), [...m.commands]);
    for (const c of p.commands) assert.deepEqual(c.aliases(), [], `${c.name()}: an alias must be in the table too`);
    seen.push(...m.commands);
  }
  assert.equal(new Set(seen).size, seen.length, 'a command name in two modules');
  const full = await buildProgram();
  assert.deepEqual(full.commands.map((c) => c.name()), seen);
});

test('the command is found past global options and their values; anything else loads every module', async () => {
  const owner = (...args: string[]) => commandModuleOf(['node', 'lifeboat', ...args])?.commands[0];
  assert.equal(owner('snapshots', '--json'), 'snapshots');
  assert.equal(owner('-r', 'backup', 'ls', 'latest'), 'snapshots'); // "backup" is the repository path
  assert.equal(owner('--repo=/r', '-p', 'check', 'backup', '--tag', 'x', '/data'), 'backup'); // "check" is the password file
  assert.equal(owner('-qr', '/r', 'check', '--read-data'), 'check');
  assert.equal(owner('--retry-lock', '5m', '--no-lock', 'restore', 'latest'), 'restore');
  assert.equal(owner('maintenance-window', 'list'), 'serve');
  assert.equal(owner(), undefined);
  assert.equal(owner('help', 'backup'), undefined);
  assert.equal(owner('bakup'), undefined); // a typo: the full program says "did you mean"
  assert.equal(owner('--no-such-option', 'backup'), undefined);
  assert.equal(owner('-r'), undefined); // missing value: the full program reports it
  // --version is answered while commander parses the global options: no command module is needed
  assert.deepEqual(modulesFor(['node', 'lifeboat', '--version']), []);
  assert.deepEqual(modulesFor(['node', 'lifeboat', '-r', '/r', '-V']), []);
  assert.equal(modulesFor(['node', 'lifeboat', 'help']).length, COMMAND_MODULES.length);
  assert.equal((await buildProgram(['node', 'lifeboat', '--version'])).commands.length, 0);
  const one = await buildProgram(['node', 'lifeboat', '-r', '/r', 'prune']);
  assert.deepEqual(one.commands.map((c) => c.name()), ['prune']);
});

test('lifeboat --help lists every command; a typo still gets a suggestion', async () => {
  const r = await runCli(['--help'], {});
  assert.equal(r.code, 0, r.stderr);
  for (const m of COMMAND_MODULES) for (const c of m.commands) assert.match(r.stdout, new RegExp(`^  ${c}\\b`, 'm'), c);
  const typo = await runCli(['snapshot'], {});
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /Did you mean snapshots\?/);
});

test('lifeboat --version prints the version and loads neither command modules nor repository code', async () => {
  const t = tmpDir();
  try {
    const hooks = path.join(t.dir, 'hooks.mjs');
    writeFileSync(hooks, "export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write('LOADED ' + r.url + '\\n'); return r; }\n");
    const reg = path.join(t.dir, 'register.mjs');
    writeFileSync(reg, `import { register } from 'node:module'; register(${JSON.stringify('file://' + hooks)});\n`);
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag], { env: { NODE_OPTIONS: `--import ${reg}` }, cwd: t.dir });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${PROGRAM.split(' ')[1]}\n`);
      const loaded = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
      assert.ok(loaded.some((u) => u.endsWith('/cli/program.js')), 'the hook saw the program');
      for (const heavy of ['/cli/commands/', '/cli/context.js', '/repo/repository.js', '/config/']) {
        assert.ok(!loaded.some((u) => u.includes(heavy)), `${heavy} was loaded`);
      }
    }
  } finally {
    t.cleanup();
  }
});

test('listing snapshots without a config loads neither the config schemas nor other commands', async () => {
  const t = tmpDir();
  try {
    const repo = path.join(t.dir, 'repo');
    const env = { LIFEBOAT_PASSWORD: 'lazy-test-pw' };
    assert.equal((await runCli(['init', '--repo', repo], { env })).code, 0);
    // a module hook that names every module the process loads
    const hooks = path.join(t.dir, 'hooks.mjs');
    writeFileSync(hooks, "export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write('LOADED ' + r.url + '\\n'); return r; }\n");
    const reg = path.join(t.dir, 'register.mjs');
    // ... and every require() (cli-progress is CommonJS, loaded with createRequire when a bar is drawn)
    writeFileSync(
      reg,
      `import Module, { register } from 'node:module'; register(${JSON.stringify('file://' + hooks)});\n` +
        "const load = Module._load; Module._load = function (req, ...a) { process.stderr.write('REQUIRED ' + req + '\\n'); return load.call(this, req, ...a); };\n",
    );
    const r = await runCli(['snapshots', '--repo', repo, '--json'], { env: { ...env, NODE_OPTIONS: `--import ${reg}` }, cwd: t.dir });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), []);
    const loaded = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
    assert.ok(loaded.some((u) => u.endsWith('/cli/commands/inspect.js')), 'the hook saw the command module');
    for (const heavy of ['/node_modules/zod/', '/node_modules/yaml/', '/config/load.js', '/cli/commands/backup.js', '/cli/commands/serve.js', '/sources/pipeline.js', '/engine/restorer.js']) {
      assert.ok(!loaded.some((u) => u.includes(heavy)), `${heavy} was loaded`);
    }
    // a files restore: the restorer, but not the sources (every kind's dump/drill code, zod schemas, SQLite)
    const data = path.join(t.dir, 'data');
    mkdirSync(data);
    writeFileSync(path.join(data, 'f.txt'), 'restore me');
    assert.equal((await runCli(['backup', '--repo', repo, data], { env })).code, 0);
    const target = path.join(t.dir, 'target');
    const rr = await runCli(['restore', '--repo', repo, `latest:${data}`, '--target', target], { env: { ...env, NODE_OPTIONS: `--import ${reg}` }, cwd: t.dir });
    assert.equal(rr.code, 0, rr.stderr);
    assert.equal(readFileSync(path.join(target, 'f.txt'), 'utf8'), 'restore me');
    const loadedR = rr.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => l.slice(7));
    assert.ok(loadedR.some((u) => u.endsWith('/engine/restorer.js')), 'the hook saw the restorer');
    for (const heavy of ['/node_modules/zod/', '/node_modules/better-sqlite3/', '/config/sources.js', '/sources/', '/node_modules/cli-progress/']) {
      assert.ok(!loadedR.some((u) => u.includes(heavy)), `restore: ${heavy} was loaded`);
    }
    // no progress bar without a terminal: cli-progress is never loaded (~12 ms and ~5 MB at start-up)
    const required = rr.stderr.split('\n').filter((l) => l.startsWith('REQUIRED ')).map((l) => l.slice(9));
    assert.ok(required.length > 0, 'the require hook ran');
    assert.ok(!required.some((x) => x.includes('cli-progress')), 'restore: cli-progress was required');
    // ...and it is there when one is drawn
    assert.equal(typeof progressBars().SingleBar, 'function');
  } finally {
    t.cleanup();
  }
});
