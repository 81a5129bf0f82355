import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { request as httpRequest } from 'node:http';
import { existsSync, readFileSync, readdirSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { tmpDir, CLI } from './helpers/tmp.js';
import { loadConfig } from '../src/config/load.js';
import { startServer } from '../src/server/server.js';

/**
 * Packaging (packaging/, Dockerfile): what can be validated on this machine.
 * systemd units through `systemd-analyze verify`; the Compose file and the
 * Kubernetes manifests parsed and checked for what matters (non-root, probes
 * on /health, secrets only by reference); the example configs through the real
 * config loader; the image build only where a container engine answers.
 */
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const PKG = path.join(ROOT, 'packaging');
const SECRET_NAME = /PASSWORD|SECRET|TOKEN|PRIVATE|_KEY$|KEY_ID$/i;

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function unitDirectives(text: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith('[')) continue;
    const i = l.indexOf('=');
    const k = l.slice(0, i);
    m.set(k, [...(m.get(k) ?? []), l.slice(i + 1)]);
  }
  return m;
}

describe('systemd units', () => {
  const units = ['lifeboat-daemon.service', 'lifeboat-server.service'];

  it('have the sandboxing options, credentials by LoadCredential, nothing secret in argv', () => {
    for (const u of units) {
      const d = unitDirectives(readFileSync(path.join(PKG, 'systemd', u), 'utf8'));
      assert.deepEqual(d.get('ProtectSystem'), ['strict'], u);
      assert.deepEqual(d.get('PrivateTmp'), ['true'], u);
      assert.deepEqual(d.get('NoNewPrivileges'), ['true'], u);
      assert.deepEqual(d.get('ReadWritePaths'), ['/var/lib/lifeboat'], u);
      assert.deepEqual(d.get('StateDirectory'), ['lifeboat'], u);
      assert.equal(d.get('User')?.[0], 'lifeboat', u);
      assert.ok(d.get('LoadCredential')?.some((c) => c.startsWith('repository-password:')), u);
      assert.ok(d.get('Environment')?.includes('LIFEBOAT_PASSWORD_FILE=%d/repository-password'), u);
      const exec = d.get('ExecStart')!.join(' ');
      assert.doesNotMatch(exec, /password|token|secret|key/i, `${u}: ExecStart ${exec}`);
      for (const e of d.get('Environment') ?? []) {
        const [k, v] = e.split('=', 2) as [string, string];
        if (SECRET_NAME.test(k)) assert.match(k, /_FILE$/, `${u}: ${k} is a secret literal`);
        void v;
      }
    }
  });

  it('pass systemd-analyze verify', (t) => {
    const which = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' });
    if (which.status !== 0) {
      process.stdout.write('# skipped: systemd-analyze is not installed\n');
      t.skip('systemd-analyze is not installed');
      return;
    }
    // verify checks that ExecStart's program exists: point it at this build's CLI (node + main.js)
    const tmp = tmpDir();
    try {
      const files = units.map((u) => {
        const f = path.join(tmp.dir, u);
        writeFileSync(f, readFileSync(path.join(PKG, 'systemd', u), 'utf8').replaceAll('/usr/bin/lifeboat', `${process.execPath} ${CLI}`));
        return f;
      });
      const r = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr.trim(), '', 'no warnings');
      const sec = spawnSync('systemd-analyze', ['security', '--offline=true', files[0]!], { encoding: 'utf8', timeout: 60_000 });
      const score = /Overall exposure level for .*: ([\d.]+) (\w+)/.exec(sec.stdout);
      if (score) process.stdout.write(`# systemd-analyze security lifeboat-daemon.service: ${score[1]} ${score[2]}\n`);
    } finally {
      tmp.cleanup();
    }
  });
});

describe('the lifeboat command', () => {
  it('bin/lifeboat (package.json bin, the image\'s /usr/local/bin/lifeboat) runs the CLI under node with a 4 MiB young generation', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    assert.equal(pkg.bin.lifeboat, 'bin/lifeboat');
    assert.match(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'), /ln -s \/opt\/lifeboat\/bin\/lifeboat \/usr\/local\/bin\/lifeboat/);
    const bin = path.join(ROOT, 'bin', 'lifeboat');
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    assert.equal(v.status, 0, v.stderr);
    assert.equal(v.stdout.trim(), pkg.version);
    // what it runs: LIFEBOAT_NODE=echo prints node's arguments
    const e = spawnSync(bin, ['backup', '--stdin'], { encoding: 'utf8', env: { ...process.env, LIFEBOAT_NODE: 'echo' } });
    const args = e.stdout.trim().split(' ');
    assert.deepEqual([args[0], ...args.slice(2)], ['--max-semi-space-size=4', 'backup', '--stdin']);
    assert.equal(path.resolve(args[1]!), path.join(ROOT, 'dist', 'src', 'cli', 'main.js'));
    const none = spawnSync(bin, ['-V'], { encoding: 'utf8', env: { ...process.env, LIFEBOAT_NODE: 'echo', LIFEBOAT_NODE_FLAGS: '' } });
    assert.equal(path.resolve(none.stdout.trim().split(' ')[0]!), path.join(ROOT, 'dist', 'src', 'cli', 'main.js'));
  });

  it('bin/lifeboat asks glibc for one arena, and for huge pages for restore, for node alone; the commands Lifeboat runs get the caller\'s GLIBC_TUNABLES back', (t) => {
    const bin = path.join(ROOT, 'bin', 'lifeboat');
    const tmp = tmpDir();
    t.after(tmp.cleanup);
    const d = tmp.dir;
    // LIFEBOAT_NODE: a script printing the environment node would start with
    const show = path.join(d, 'show-env');
    writeFileSync(show, '#!/bin/sh\nprintf "%s|%s" "${GLIBC_TUNABLES-unset}" "${LIFEBOAT_GLIBC_TUNABLES-unset}"\n', { mode: 0o755 });
    const launched = (tunables: string | undefined, more: NodeJS.ProcessEnv = {}, args = ['-V']) => {
      const env: NodeJS.ProcessEnv = { ...process.env, LIFEBOAT_NODE: show };
      delete env.GLIBC_TUNABLES;
      delete env.LIFEBOAT_GLIBC_TUNABLES;
      delete env.MALLOC_ARENA_MAX;
      Object.assign(env, more);
      if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
      const r = spawnSync(bin, args, { encoding: 'utf8', env });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    const restore = ['-r', '/srv/repo', '--password-file', 'restore', 'restore', 'latest', '--target', '/x'];
    assert.equal(launched(undefined), 'glibc.malloc.arena_max=1|');
    assert.equal(launched(undefined, {}, restore), 'glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1|');
    assert.equal(launched('glibc.malloc.arena_max=2', {}, restore), 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1|glibc.malloc.arena_max=2');
    assert.equal(launched('glibc.malloc.arena_max=2'), 'glibc.malloc.arena_max=2|unset');
    // huge pages for restore only: the command is the first argument that is neither an option nor an option's value
    for (const args of [['backup', '/data'], ['check', '--read-data'], ['-r', 'restore', 'backup', '/data'], ['-c', 'restore', 'snapshots'], ['--repo=/x', 'backup', '--stdin', '--stdin-filename', 'restore']]) {
      assert.equal(launched(undefined, {}, args), 'glibc.malloc.arena_max=1|', args.join(' '));
    }
    for (const args of [['restore', 'latest'], ['--repo=/x', '-q', '--json', 'restore', 'latest'], ['--limit-download', '100', 'restore', 'latest']]) {
      assert.equal(launched(undefined, {}, args), 'glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1|', args.join(' '));
    }
    // the caller's own choice stands (hugetlb=0 or 1 for every command; arena_max=N or MALLOC_ARENA_MAX sets the arenas)
    assert.equal(launched('glibc.malloc.hugetlb=0', {}, restore), 'glibc.malloc.hugetlb=0:glibc.malloc.arena_max=1|glibc.malloc.hugetlb=0');
    assert.equal(launched('glibc.malloc.hugetlb=1'), 'glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1|glibc.malloc.hugetlb=1');
    assert.equal(launched('glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0', {}, restore), 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=0|unset');
    assert.equal(launched(undefined, { MALLOC_ARENA_MAX: '4' }, restore), 'glibc.malloc.hugetlb=1|');
    assert.equal(launched(undefined, { MALLOC_ARENA_MAX: '4' }), 'unset|unset');

    // the real command: a child it runs sees what the caller had
    const repo = path.join(d, 'repo');
    const seen = path.join(d, 'seen');
    const env: NodeJS.ProcessEnv = { ...process.env, LIFEBOAT_PASSWORD: 'pw' };
    delete env.LIFEBOAT_NODE;
    delete env.LIFEBOAT_NODE_FLAGS;
    delete env.LIFEBOAT_GLIBC_TUNABLES;
    for (const [tunables, want] of [
      [undefined, 'unset|unset'],
      ['glibc.malloc.arena_max=2', 'glibc.malloc.arena_max=2|unset'],
    ] as const) {
      if (tunables === undefined) delete env.GLIBC_TUNABLES;
      else env.GLIBC_TUNABLES = tunables;
      rmSync(repo, { recursive: true, force: true });
      const init = spawnSync(bin, ['init', '-q', '-r', repo], { encoding: 'utf8', env });
      assert.equal(init.status, 0, init.stderr);
      const cmd = `printf "%s|%s" "\${GLIBC_TUNABLES-unset}" "\${LIFEBOAT_GLIBC_TUNABLES-unset}" > ${seen}; echo data`;
      const b = spawnSync(bin, ['backup', '-q', '-r', repo, '--stdin-from-command', cmd, '--stdin-filename', 'x'], { encoding: 'utf8', env });
      assert.equal(b.status, 0, b.stderr);
      assert.equal(readFileSync(seen, 'utf8'), want);
    }
  });

  it("bin/lifeboat sizes libuv's thread pool to a machine's cores below 4, for node alone; a caller's size stands, and the commands Lifeboat runs get the caller's environment back", (t) => {
    const bin = path.join(ROOT, 'bin', 'lifeboat');
    const tmp = tmpDir();
    t.after(tmp.cleanup);
    const d = tmp.dir;
    // a file in place of /sys/devices/system/cpu/online says which CPUs there are; LIFEBOAT_NODE prints what node would get
    const online = path.join(d, 'online');
    const cores = (list: string) => writeFileSync(online, list);
    const show = path.join(d, 'show-env');
    writeFileSync(show, '#!/bin/sh\nprintf "%s|%s" "${UV_THREADPOOL_SIZE-unset}" "${LIFEBOAT_UV_THREADPOOL_SIZE-unset}"\n', { mode: 0o755 });
    const base: NodeJS.ProcessEnv = { ...process.env, LIFEBOAT_CPU_ONLINE: online };
    delete base.UV_THREADPOOL_SIZE;
    delete base.LIFEBOAT_UV_THREADPOOL_SIZE;
    const launched = (more: NodeJS.ProcessEnv = {}, args = ['-V']) => {
      const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...base, LIFEBOAT_NODE: show, ...more } });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout;
    };
    for (const [n, want] of [
      ['0\n', '2|'],
      ['0-1\n', '2|'],
      ['0,2\n', '2|'],
      ['0-2', '3|'],
      ['0-1,3\n', '3|'],
      ['0-3\n', 'unset|unset'],
      ['0-63\n', 'unset|unset'],
      // not understood: libuv's default
      ['', 'unset|unset'],
      ['x\n', 'unset|unset'],
      ['1-\n', 'unset|unset'],
      ['3-1\n', 'unset|unset'],
      ['0-1-2\n', 'unset|unset'],
      ['08\n', 'unset|unset'],
      ['0-07\n', 'unset|unset'],
      ['*\n', 'unset|unset'],
    ] as const) {
      cores(n);
      for (const args of [['-V'], ['restore', 'latest'], ['backup', '/data'], ['check', '--read-data'], ['daemon']]) assert.equal(launched({}, args), want, `${n}: ${args.join(' ')}`);
    }
    // the caller's size stands, whatever the cores (an empty one too: libuv's default)
    cores('0-1\n');
    assert.equal(launched({ UV_THREADPOOL_SIZE: '8' }), '8|unset');
    assert.equal(launched({ UV_THREADPOOL_SIZE: '' }), '|unset');
    // a list is never matched against file names (a `*` beside a file named 1)
    const cwd = path.join(d, 'cwd');
    mkdirSync(cwd);
    writeFileSync(path.join(cwd, '1'), '');
    cores('*\n');
    assert.equal(spawnSync(bin, ['-V'], { cwd, encoding: 'utf8', env: { ...base, LIFEBOAT_NODE: show } }).stdout, 'unset|unset');
    cores('0-1\n');
    // no list to read: libuv's default, and nothing on stderr
    const none = spawnSync(bin, ['-V'], { encoding: 'utf8', env: { ...base, LIFEBOAT_NODE: show, LIFEBOAT_CPU_ONLINE: path.join(d, 'missing') } });
    assert.equal(none.status, 0);
    assert.equal(none.stdout, 'unset|unset');
    assert.equal(none.stderr, '');
    // this machine's own list is read as the machine's cores
    const own = spawnSync(bin, ['-V'], { encoding: 'utf8', env: { ...base, LIFEBOAT_NODE: show, LIFEBOAT_CPU_ONLINE: '' } });
    const n = cpus().length; // libuv counts the online CPUs (/proc/stat), as the launcher's list does
    assert.equal(own.stdout, n < 3 ? '2|' : n === 3 ? '3|' : 'unset|unset', `${n} cores`);

    // node started so has a pool of 2 threads: 2 threads fewer than with libuv's 4 (a probe in place of the CLI)
    cores('0-1\n');
    const probe = path.join(d, 'probe');
    const js = 'require("fs").stat("/", () => setTimeout(() => process.stdout.write(String(require("fs").readdirSync("/proc/self/task").length)), 100))';
    writeFileSync(probe, `#!/bin/sh\nexec "${process.execPath}" -e '${js}'\n`, { mode: 0o755 });
    const threads = (more: NodeJS.ProcessEnv) => Number(launched({ ...more, LIFEBOAT_NODE: probe }));
    assert.equal(threads({}) + 2, threads({ UV_THREADPOOL_SIZE: '4' }));

    // the real command on "2 cores": a child it runs sees the caller's (unset) size
    const repo = path.join(d, 'repo');
    const seen = path.join(d, 'seen');
    const env: NodeJS.ProcessEnv = { ...base, LIFEBOAT_PASSWORD: 'pw' };
    delete env.LIFEBOAT_NODE;
    delete env.LIFEBOAT_NODE_FLAGS;
    const init = spawnSync(bin, ['init', '-q', '-r', repo], { encoding: 'utf8', env });
    assert.equal(init.status, 0, init.stderr);
    const cmd = `printf "%s|%s" "\${UV_THREADPOOL_SIZE-unset}" "\${LIFEBOAT_UV_THREADPOOL_SIZE-unset}" > ${seen}; echo data`;
    for (const [size, want] of [
      [undefined, 'unset|unset'],
      ['6', '6|unset'],
    ] as const) {
      const b = spawnSync(bin, ['backup', '-q', '-r', repo, '--stdin-from-command', cmd, '--stdin-filename', 'x'], { encoding: 'utf8', env: size === undefined ? env : { ...env, UV_THREADPOOL_SIZE: size } });
      assert.equal(b.status, 0, b.stderr);
      assert.equal(readFileSync(seen, 'utf8'), want);
    }
  });

  it("bin/lifeboat's list of the global options that take a value is the command line's own", async () => {
    const { buildProgram } = await import('../src/cli/program.js');
    const program = await buildProgram(['node', 'lifeboat', '-V']);
    const taking = program.options.filter((o) => o.required || o.optional).flatMap((o) => [o.short, o.long].filter((f): f is string => !!f));
    const launcher = readFileSync(path.join(ROOT, 'bin', 'lifeboat'), 'utf8');
    const m = /^\s*(-r\|[^)]*)\) skip=1 ;;$/m.exec(launcher);
    assert.ok(m, 'the launcher skips the values of its global options');
    assert.deepEqual(m[1]!.split('|').sort(), taking.sort());
  });

  it('glibc.malloc.hugetlb=1 (as bin/lifeboat sets it for restore) gives node\'s large buffers huge pages on this machine, and the other commands none', (t) => {
    let thp = '';
    try {
      thp = readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8');
    } catch {
      /* no THP */
    }
    const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime;
    if (!/\[(always|madvise)\]/.test(thp) || !glibc || Number(glibc.split('.')[1]) < 35 || Number(glibc.split('.')[0]) !== 2) {
      t.skip(`no transparent huge pages to ask for (THP: ${thp.trim() || 'none'}, glibc ${glibc ?? 'none'})`);
      return;
    }
    const bin = path.join(ROOT, 'bin', 'lifeboat');
    const tmp = tmpDir();
    t.after(tmp.cleanup);
    const d = tmp.dir;
    // LIFEBOAT_NODE: node running a probe instead of the CLI, in the environment bin/lifeboat made
    const probe = path.join(d, 'probe');
    const js = 'const b=Buffer.allocUnsafeSlow(64<<20);b.fill(1);process.stdout.write(/AnonHugePages:\\s+(\\d+)/.exec(require("fs").readFileSync("/proc/self/smaps_rollup","utf8"))[1])';
    writeFileSync(probe, `#!/bin/sh\nexec "${process.execPath}" -e '${js}'\n`, { mode: 0o755 });
    const huge = (tunables: string | undefined, args: string[]) => {
      const env: NodeJS.ProcessEnv = { ...process.env, LIFEBOAT_NODE: probe };
      delete env.GLIBC_TUNABLES;
      if (tunables !== undefined) env.GLIBC_TUNABLES = tunables;
      const r = spawnSync(bin, args, { encoding: 'utf8', env });
      assert.equal(r.status, 0, r.stderr);
      return Number(r.stdout) * 1024;
    };
    if (thp.includes('[madvise]')) {
      assert.ok(huge('glibc.malloc.hugetlb=0', ['restore', 'latest']) < 16 << 20, 'without the tunable, the buffer has no huge pages (THP left to madvise)');
      assert.ok(huge(undefined, ['backup', '/data']) < 16 << 20, 'a backup: no huge pages');
      assert.ok(huge(undefined, ['check', '--read-data']) < 16 << 20, 'check: no huge pages');
    }
    assert.ok(huge(undefined, ['restore', 'latest']) >= 32 << 20, 'restore: the 64 MiB buffer is mostly in huge pages');
    assert.ok(huge(undefined, ['-r', '/srv/repo', 'restore', 'latest']) >= 32 << 20, 'restore after a global option: the same');
  });
});

describe('container image', () => {
  const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n').filter((l) => l.trim() && !l.trim().startsWith('#'));

  it('Dockerfile: multi-stage, slim runtime, non-root, HEALTHCHECK on /health', () => {
    const froms = lines.filter((l) => /^FROM /i.test(l));
    assert.ok(froms.length >= 2, 'multi-stage');
    assert.match(froms.at(-1)!, /-slim\b/);
    const users = lines.filter((l) => /^USER /i.test(l));
    assert.ok(users.length > 0);
    assert.doesNotMatch(users.at(-1)!, /^USER\s+(root|0)(:|\s|$)/i);
    const hc = dockerfile.slice(dockerfile.indexOf('HEALTHCHECK'));
    assert.match(hc, /LIFEBOAT_HEALTH_URL/);
    assert.match(dockerfile, /LIFEBOAT_HEALTH_URL=http:\/\/127\.0\.0\.1:8080\/health/);
    assert.ok(existsSync(path.join(ROOT, '.dockerignore')));
    const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n');
    for (const p of ['node_modules', 'dist', '.git']) assert.ok(ignore.includes(p), `.dockerignore: ${p}`);
    // every COPY source of the build stage exists
    for (const l of lines.filter((x) => /^COPY (?!--from)/.test(x))) {
      for (const src of l.split(/\s+/).slice(1, -1)) assert.ok(existsSync(path.join(ROOT, src)), `COPY ${src}`);
    }
  });

  it('builds (only where a container engine answers)', { timeout: 1_800_000 }, (t) => {
    const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 30_000 });
    if (info.status !== 0) {
      const why = info.error ? 'docker is not installed' : `no container engine answers (${(info.stderr || '').trim().split('\n').pop()})`;
      process.stdout.write(`# skipped: ${why}\n`);
      t.skip(why);
      return;
    }
    const r = spawnSync('docker', ['build', '-t', 'lifeboat:test', ROOT], { encoding: 'utf8', timeout: 1_700_000 });
    assert.equal(r.status, 0, r.stderr.slice(-4000));
    const run = spawnSync('docker', ['run', '--rm', 'lifeboat:test', '--version'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, run.stderr);
    const user = spawnSync('docker', ['image', 'inspect', '--format', '{{.Config.User}}', 'lifeboat:test'], { encoding: 'utf8' });
    assert.equal(user.stdout.trim(), '10001:10001');
  });
});

/** Every container of a pod spec: non-root, no privilege escalation, secrets only from Secret refs. */
function checkPod(where: string, spec: Obj): void {
  const psc = spec.securityContext ?? {};
  assert.equal(psc.runAsNonRoot, true, `${where}: runAsNonRoot`);
  assert.ok(Number(psc.runAsUser) > 0, `${where}: runAsUser`);
  for (const c of spec.containers as Obj[]) {
    const w = `${where}/${c.name}`;
    assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${w}: allowPrivilegeEscalation`);
    assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${w}: capabilities`);
    for (const e of (c.env ?? []) as Obj[]) {
      if (SECRET_NAME.test(e.name)) {
        assert.equal(e.value, undefined, `${w}: ${e.name} is a literal`);
        assert.ok(e.valueFrom?.secretKeyRef?.name, `${w}: ${e.name} must come from a Secret`);
      }
    }
    assert.equal(c.envFrom, undefined, `${w}: envFrom`);
  }
  for (const v of (spec.volumes ?? []) as Obj[]) if (v.secret) assert.ok(v.secret.secretName, `${where}: volume ${v.name}`);
}

describe('Kubernetes manifests', () => {
  const dir = path.join(PKG, 'kubernetes');
  const docs: Obj[] = [];
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(readFileSync(path.join(dir, f), 'utf8'))) {
      assert.deepEqual(d.errors, [], `${f}: YAML errors`);
      docs.push({ ...(d.toJS() as Obj), __file: f });
    }
  }
  const workloads = docs.filter((d) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(d.kind));

  it('parse, and describe a fleet: PostgreSQL catalog, one server, three agents', () => {
    const names = new Map(workloads.map((w) => [w.metadata.name, w]));
    assert.equal(names.get('postgres')?.kind, 'StatefulSet');
    assert.equal(names.get('lifeboat-server')?.spec.template.spec.containers[0].args[0], 'serve');
    assert.equal(names.get('lifeboat-agent')?.spec.replicas, 3);
    assert.equal(names.get('lifeboat-agent')?.spec.template.spec.containers[0].args[0], 'daemon');
    // a StatefulSet's serviceName is a Service of the manifests
    for (const w of workloads.filter((x) => x.kind === 'StatefulSet')) {
      assert.ok(docs.some((d) => d.kind === 'Service' && d.metadata.name === w.spec.serviceName), `${w.metadata.name}: Service ${w.spec.serviceName}`);
    }
    for (const w of workloads) assert.deepEqual(w.spec.selector.matchLabels, Object.fromEntries(Object.entries(w.spec.template.metadata.labels)), w.metadata.name);
  });

  it('run everything as non-root, with secrets only from Secret refs (no Secret with values in the manifests)', () => {
    for (const w of workloads) checkPod(`${w.__file}:${w.metadata.name}`, w.spec.template.spec);
    for (const d of docs) if (d.kind === 'Secret') assert.ok(!d.data && !d.stringData, `${d.__file}: a Secret with values`);
  });

  it('probe the Lifeboat containers on /health; the agents select their config by pod name', () => {
    for (const w of workloads.filter((x) => x.metadata.name.startsWith('lifeboat-'))) {
      for (const c of w.spec.template.spec.containers as Obj[]) {
        for (const p of ['readinessProbe', 'livenessProbe']) {
          assert.equal(c[p]?.httpGet?.path, '/health', `${w.metadata.name}/${c.name}: ${p}`);
          const port = c[p].httpGet.port;
          assert.ok((c.ports as Obj[]).some((x) => x.name === port || x.containerPort === port), `${w.metadata.name}: probe port ${port}`);
        }
        assert.equal(c.securityContext.readOnlyRootFilesystem, true);
      }
    }
    const agent = workloads.find((w) => w.metadata.name === 'lifeboat-agent')!;
    // kustomize only loads files at or below the kustomization's directory
    const kust = parse(readFileSync(path.join(PKG, 'kustomization.yaml'), 'utf8')) as Obj;
    const files = (kust.configMapGenerator[0].files as string[]).map((f) => f.split('='));
    for (let i = 0; i < agent.spec.replicas; i++) assert.ok(files.some(([k]) => k === `lifeboat-agent-${i}.yaml`), `config of lifeboat-agent-${i}`);
    for (const f of [...files.map(([, f]) => f!), ...(kust.resources as string[])]) {
      assert.ok(!path.normalize(f).startsWith('..'), `${f} is outside the kustomization`);
      assert.ok(existsSync(path.join(PKG, f)), f);
    }
    for (const f of readdirSync(dir)) assert.ok((kust.resources as string[]).includes(`kubernetes/${f}`), `kubernetes/${f} is not in the kustomization`);
    assert.ok((agent.spec.template.spec.containers[0].args as string[]).includes('/etc/lifeboat/$(POD_NAME).yaml'));
  });
});

describe('kubectl kustomize', () => {
  it('renders the fleet: every object in namespace lifeboat, the generated ConfigMap referenced by the pods', (t) => {
    const which = spawnSync('sh', ['-c', 'command -v kubectl'], { encoding: 'utf8' });
    if (which.status !== 0) {
      process.stdout.write('# skipped: kubectl is not installed\n');
      t.skip('kubectl is not installed');
      return;
    }
    const r = spawnSync('kubectl', ['kustomize', PKG], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Obj);
    assert.ok(docs.every((d) => d.metadata.namespace === 'lifeboat'));
    const cm = docs.find((d) => d.kind === 'ConfigMap')!;
    assert.deepEqual(Object.keys(cm.data).sort(), ['lifeboat-agent-0.yaml', 'lifeboat-agent-1.yaml', 'lifeboat-agent-2.yaml', 'server.yaml']);
    for (const w of docs.filter((d) => d.metadata.name.startsWith('lifeboat-') && d.spec?.template)) {
      const vol = (w.spec.template.spec.volumes as Obj[]).find((v) => v.name === 'config')!;
      assert.equal(vol.configMap.name, cm.metadata.name, w.metadata.name);
    }
  });
});

describe('Compose file and example configs', () => {
  const compose = parse(readFileSync(path.join(PKG, 'compose', 'compose.yaml'), 'utf8'), { merge: true }) as Obj;

  it('a fleet of three agents, the server and PostgreSQL; non-root, /health checks, secrets as files', () => {
    const s = compose.services as Obj;
    assert.ok(s.postgres && s.server);
    const agents = Object.keys(s).filter((k) => k.startsWith('agent-'));
    assert.equal(agents.length, 3);
    for (const name of ['server', ...agents]) {
      const svc = s[name];
      assert.equal(svc.user, '10001:10001', name);
      assert.equal(svc.read_only, true, name);
      assert.deepEqual(svc.cap_drop, ['ALL'], name);
      assert.ok((svc.security_opt as string[]).includes('no-new-privileges:true'), name);
      assert.match((svc.healthcheck.test as string[]).join(' '), /\/health/, name);
      for (const [k, v] of Object.entries(svc.environment as Obj)) {
        if (SECRET_NAME.test(k) && !/_FILE$/.test(k)) assert.match(String(v), /^\$\{[A-Z_]+(:\?[^}]*)?\}$/, `${name}: ${k} is a literal`);
      }
    }
    assert.equal(s.postgres.environment.POSTGRES_PASSWORD, undefined);
    assert.equal(s.postgres.environment.POSTGRES_PASSWORD_FILE, '/run/secrets/pg-password');
    for (const [k, v] of Object.entries(compose.secrets as Obj)) assert.ok((v as Obj).file, `secret ${k} from a file`);
    for (const name of ['server', ...agents]) {
      const mount = (s[name].volumes as string[]).find((v) => v.endsWith(':/etc/lifeboat:ro'))!;
      assert.ok(existsSync(path.join(PKG, 'compose', mount.split(':')[0]!, `${name === 'server' ? 'server' : name}.yaml`)), `${name}: its config`);
    }
  });

  it('the example configs load with the real config loader; no secret values in them', () => {
    const dir = path.join(PKG, 'config');
    for (const f of readdirSync(dir)) {
      const cfg = loadConfig(path.join(dir, f));
      assert.match(cfg.daemon.catalog, /^postgres:\/\/lifeboat@postgres:5432\/lifeboat$/, f);
      for (const r of Object.values(cfg.repositories)) {
        assert.equal(typeof r.password, 'object', `${f}: password is a reference`);
      }
      assert.doesNotMatch(readFileSync(path.join(dir, f), 'utf8'), /:\/\/[^@\s]+:[^@\s]+@/, `${f}: a URL with a password`);
    }
  });
});

describe('server /health (the probes)', () => {
  it('answers 200 for any Host (probes use the pod IP), while pages still check the Host', async () => {
    const tmp = tmpDir();
    const file = path.join(tmp.dir, 'lifeboat.yaml');
    mkdirSync(path.join(tmp.dir, 'repo'));
    writeFileSync(
      file,
      `version: 1
repositories:
  main: { location: ./repo, password: { env: LIFEBOAT_PASSWORD } }
defaults: { repository: main }
daemon: { catalog: ./catalog.db }
server: { publicUrl: "https://lifeboat.example.com" }
`,
    );
    const srv = await startServer(loadConfig(file), { listen: '127.0.0.1:0', log: () => {} });
    try {
      // a raw request: fetch() does not let a caller set Host
      const get = (p: string, method = 'GET') =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpRequest(`${srv.url}${p}`, { method, headers: { host: '10.1.2.3:8080' } }, (res) => {
            let body = '';
            res.on('data', (d: Buffer) => (body += d.toString()));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end();
        });
      const health = await get('/health');
      assert.equal(health.status, 200);
      assert.deepEqual(JSON.parse(health.body), { status: 'ok' });
      assert.equal((await get('/health', 'HEAD')).status, 200);
      assert.equal((await get('/')).status, 421);
    } finally {
      await srv.close();
      tmp.cleanup();
    }
  });
});
