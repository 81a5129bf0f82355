import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { CLI, runCli, tmpDir } from './helpers/tmp.js';

/**
 * The progress of a backup as a person and a script see it (issue 15 item 3):
 * a status line on a terminal with percent, rate, ETA and the file being read;
 * nothing but plain lines when stderr is not a terminal; `--json` status lines
 * (restic's shape) before the summary; and one naming style, snake_case, in
 * every --json output of the CLI.
 *
 * The backups are throttled (--limit-upload) so they last a few seconds: long
 * enough for several status updates whatever the machine's speed.
 */

const FILES = 24;
const FILE_SIZE = 2_000_000;

function setup(prefix: string): { dir: string; data: string; repo: string; env: Record<string, string>; cleanup: () => void } {
  const t = tmpDir(prefix);
  const data = path.join(t.dir, 'data');
  mkdirSync(path.join(data, 'sub'), { recursive: true });
  // random, so neither compression nor deduplication shortens the backup
  for (let i = 0; i < FILES; i++) writeFileSync(path.join(data, 'sub', `payload-${String(i).padStart(2, '0')}.bin`), randomBytes(FILE_SIZE));
  const repo = path.join(t.dir, 'repo');
  const env = { LIFEBOAT_PASSWORD: 'progress-pw' };
  return { dir: t.dir, data, repo, env, cleanup: t.cleanup };
}

const THROTTLE = ['--limit-upload', '12000']; // KiB/s: 48 MB take about 4 s
/**
 * Small packs: the sealed packs a backup holds while the storage is slow are
 * bounded (3 plus the one being filled), so with 1 MiB packs reading stays within
 * a few MiB of the throttled upload and the status shows the file being read
 * (with the default 16 MiB packs the 46 MiB would be read ahead in half a second).
 */
const SMALL_PACKS = ['--pack-size', '1MiB'];

test('backup on a terminal: a status line with percent, rate, ETA and the current file; without a terminal no control characters', async () => {
  const s = setup('lb-progress-tty-');
  try {
    assert.equal((await runCli(['init', '--repo', s.repo, ...SMALL_PACKS], { env: s.env })).code, 0);
    const cmd = [process.execPath, CLI, 'backup', '--repo', s.repo, ...THROTTLE, s.data].map((a) => JSON.stringify(a)).join(' ');
    // a terminal 100 columns wide
    const r = spawnSync('script', ['-qfec', `stty cols 100; ${cmd}`, '/dev/null'], {
      env: { ...process.env, ...s.env, LIFEBOAT_TEST_SCRYPT_N: '1024', TERM: 'xterm' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    const frames = r.stdout.split('\r').map((f) => f.replace(/\x1b\[K/g, ''));
    const status = frames.filter((f) => /^\[\d+:\d\d\]/.test(f));
    assert.ok(status.length >= 3, `several status updates: ${JSON.stringify(frames.slice(0, 5))}`);
    const all = status.join('\n');
    assert.match(all, /\b\d{1,3}\.\d%/, 'a percentage');
    assert.match(all, /\d+\/24 files/, 'files done of the scanned total');
    assert.match(all, /\/45\.8 MiB/, 'bytes done of the scanned total (24 x 2,000,000 bytes)');
    assert.match(all, /[\d.]+ (B|KiB|MiB|GiB)\/s/, 'a rate');
    assert.match(all, /ETA \d+:\d\d/, 'an ETA once the scan finished and a second of data passed');
    assert.match(all, /payload-\d\d\.bin/, 'the file being read');
    assert.doesNotMatch(all, /\? total|ETA 0s/, 'not the old always-full bar');
    // the percentage starts below 100 (the bar is not full from the first second)
    const first = Number(/(\d+\.\d)%/.exec(status.find((f) => /%/.test(f))!)![1]);
    assert.ok(first < 100, `first percentage ${first}`);
    for (const f of status) assert.ok(f.length <= 99, `fits the terminal width: ${f.length}: ${f}`);
    assert.match(r.stdout, /snapshot [0-9a-f]{8} saved/, 'the summary follows');

    // not a terminal: no status at all; with --verbose plain lines without \r or ESC
    // (new repositories: the data is not deduplicated away, the backups take as long)
    const fresh = async (name: string) => {
      const repo = path.join(s.dir, name);
      assert.equal((await runCli(['init', '--repo', repo, ...SMALL_PACKS], { env: s.env })).code, 0);
      return repo;
    };
    const quietLog = await runCli(['backup', '--repo', await fresh('repo2'), ...THROTTLE, s.data], { env: { ...s.env, LIFEBOAT_PROGRESS_FPS: '20' } });
    assert.equal(quietLog.code, 0, quietLog.stderr);
    assert.equal(quietLog.stderr, '', 'no progress output when stderr is not a terminal');
    const log = await runCli(['backup', '--repo', await fresh('repo3'), '--verbose', ...THROTTLE, s.data], { env: { ...s.env, LIFEBOAT_PROGRESS_FPS: '20' } });
    assert.equal(log.code, 0, log.stderr);
    const lines = log.stderr.split('\n').filter(Boolean);
    assert.ok(lines.length >= 2, `--verbose: status lines in the log: ${log.stderr}`);
    assert.ok(lines.every((l) => /^\[\d+:\d\d\] /.test(l)), log.stderr);
    assert.doesNotMatch(log.stderr + log.stdout, /[\r\x1b]/, 'no carriage return or escape sequence in a log');
    // --quiet silences it even on a terminal
    const q = spawnSync('script', ['-qfec', `${cmd} --quiet`, '/dev/null'], {
      env: { ...process.env, ...s.env, LIFEBOAT_TEST_SCRYPT_N: '1024', TERM: 'xterm' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(q.status, 0, q.stdout);
    assert.doesNotMatch(q.stdout, /ETA|\x1b\[K/, '--quiet: no status line');
  } finally {
    s.cleanup();
  }
});

test('backup --json: status lines during the run, bytes_done never decreasing, the scanned total equal to the real one, then the summary', async () => {
  const s = setup('lb-progress-json-');
  try {
    assert.equal((await runCli(['init', '--repo', s.repo, ...SMALL_PACKS], { env: s.env })).code, 0);
    const r = await runCli(['backup', '--repo', s.repo, '--json', ...THROTTLE, s.data], { env: { ...s.env, LIFEBOAT_PROGRESS_FPS: '10' } });
    assert.equal(r.code, 0, r.stderr);
    const msgs = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = msgs.pop()!;
    assert.equal(summary.message_type, 'summary');
    assert.ok(msgs.every((m) => m.message_type === 'status'), 'only status lines before the summary');
    assert.ok(msgs.length >= 3, `status lines arrive during the run: ${msgs.length}`);
    const total = FILES * FILE_SIZE;
    let last = -1;
    for (const m of msgs) {
      for (const k of ['files_done', 'bytes_done', 'seconds_elapsed', 'current_files', 'total_files', 'total_bytes']) assert.ok(k in m, `${k} in ${JSON.stringify(m)}`);
      const done = m.bytes_done as number;
      assert.ok(done >= last, `bytes_done non-decreasing: ${last} -> ${done}`);
      last = done;
      if (m.scan_finished) {
        assert.equal(m.total_bytes, total, 'the scan counted every byte');
        assert.equal(m.total_files, FILES);
        assert.equal(typeof m.percent_done, 'number');
        assert.ok((m.percent_done as number) >= 0 && (m.percent_done as number) <= 1);
      } else assert.ok(!('percent_done' in m) && !('seconds_remaining' in m), 'no percentage or estimate before the total is known');
    }
    assert.ok(msgs.some((m) => m.scan_finished && (m.bytes_done as number) < total), 'a status while the backup was still running, with the final total');
    assert.ok(msgs.some((m) => typeof m.seconds_remaining === 'number'), 'an estimate of the time remaining');
    assert.ok(msgs.some((m) => (m.current_files as string[]).some((f) => /payload-\d\d\.bin$/.test(f))), 'the files being read');
    assert.equal(msgs[msgs.length - 1]!.bytes_done, total, 'the last status: everything done');
    assert.equal(summary.total_bytes, total);
    assert.equal(summary.files_new, FILES);

    // a stream: bytes and rate, no total, no percentage, no estimate
    const st = await runCli(['backup', '--repo', s.repo, '--json', '--stdin', ...THROTTLE], { env: { ...s.env, LIFEBOAT_PROGRESS_FPS: '10' }, input: randomBytes(20_000_000) });
    assert.equal(st.code, 0, st.stderr);
    const smsgs = st.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(smsgs.pop()!.message_type, 'summary');
    assert.ok(smsgs.length >= 2);
    for (const m of smsgs) {
      assert.equal(m.message_type, 'status');
      assert.ok(!('total_bytes' in m) && !('percent_done' in m) && !('seconds_remaining' in m), JSON.stringify(m));
    }
    assert.equal(smsgs[smsgs.length - 1]!.bytes_done, 20_000_000);
  } finally {
    s.cleanup();
  }
});

test('run JOB and backup --config: the same status line per source, the source name first (files with a percentage, a stream with bytes and rate)', async () => {
  const s = setup('lb-progress-run-');
  try {
    const cfg = path.join(s.dir, 'lifeboat.yaml');
    writeFileSync(
      cfg,
      `repositories:
  main: { location: ./repo, autoInit: true }
sources:
  site: { kind: files, paths: [./data] }
  dump: { kind: command, command: "head -c 24000000 /dev/urandom" }
jobs:
  website: { source: site, rpo: 1h }
`,
    );
    const inPty = (args: string[]) => {
      const cmd = [process.execPath, CLI, '-c', cfg, ...THROTTLE, ...args].map((a) => JSON.stringify(a)).join(' ');
      const r = spawnSync('script', ['-qfec', `stty cols 100; cd ${JSON.stringify(s.dir)} && ${cmd}`, '/dev/null'], {
        env: { ...process.env, ...s.env, LIFEBOAT_TEST_SCRYPT_N: '1024', TERM: 'xterm', LIFEBOAT_PROGRESS_FPS: '10' },
        encoding: 'utf8',
        timeout: 120_000,
      });
      assert.equal(r.status, 0, r.stdout);
      return r.stdout.split('\r').map((f) => f.replace(/\x1b\[K/g, ''));
    };
    const run = inPty(['run', 'website']);
    assert.ok(run.some((f) => /^site: \[\d+:\d\d\] \d+\.\d% \d+\/24 files .* ETA /.test(f)), `run: ${JSON.stringify(run.slice(0, 6))}`);
    // new content: an unchanged re-backup could end before the scan has a total to show a percentage of
    for (let i = 0; i < FILES; i++) writeFileSync(path.join(s.data, 'sub', `payload-${String(i).padStart(2, '0')}.bin`), randomBytes(FILE_SIZE));
    const all = inPty(['backup']);
    assert.ok(all.some((f) => /^site: \[\d+:\d\d\] \d+\.\d% /.test(f)), 'files source: percentage');
    const dump = all.filter((f) => /^dump: \[\d+:\d\d\] /.test(f));
    assert.ok(dump.length > 0, `stream source: ${JSON.stringify(all.slice(-6))}`);
    for (const f of dump) assert.doesNotMatch(f, /%|ETA|files/, `a stream has no total: ${f}`);
    assert.ok(dump.some((f) => /^dump: \[\d+:\d\d\] [\d.]+ (B|KiB|MiB) [\d.]+ (B|KiB|MiB)\/s$/.test(f.split('\n')[0]!.trimEnd())), JSON.stringify(dump.slice(0, 3)));
  } finally {
    s.cleanup();
  }
});

/** Every key of every object in a JSON document, with its path. */
function keysOf(v: unknown, at = '$', out: Array<[string, string]> = []): Array<[string, string]> {
  if (Array.isArray(v)) v.forEach((x, i) => keysOf(x, `${at}[${i}]`, out));
  else if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) {
      out.push([k, `${at}.${k}`]);
      // `status`: jobs is a map keyed by job (and repository) name: data, not field names
      if (k === 'jobs' && x && typeof x === 'object' && !Array.isArray(x)) continue;
      keysOf(x, `${at}.${k}`, out);
    }
  }
  return out;
}

test('every --json output of the CLI uses snake_case keys', async () => {
  const t = tmpDir('lb-json-keys-');
  try {
    const site = path.join(t.dir, 'site');
    mkdirSync(site);
    writeFileSync(path.join(site, 'a.txt'), 'hello\n');
    writeFileSync(path.join(site, 'b.bin'), randomBytes(300_000));
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    writeFileSync(
      cfg,
      `repositories:
  main: { location: ./repo, autoInit: true }
  second: { location: ./second, autoInit: true }
sources:
  site: { kind: files, paths: [./site] }
  dump: { kind: command, command: "printf 'some data'" }
jobs:
  website: { source: site, rpo: 1h, repository: main, copyTo: [second], retention: { keepLast: 5 } }
  dumps: { source: dump, rpo: 1h, repository: main }
`,
    );
    const env = { LIFEBOAT_PASSWORD: 'keys-pw', LIFEBOAT_FROM_PASSWORD: 'keys-pw' };
    const repo = path.join(t.dir, 'repo');
    const outputs: Array<[string, unknown[]]> = [];
    const json = async (args: string[], okCodes = [0]): Promise<unknown[]> => {
      const r = await runCli(['--json', ...args], { env, cwd: t.dir });
      assert.ok(okCodes.includes(r.code!), `${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      const docs = r.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown);
      assert.ok(docs.length > 0, `${args.join(' ')}: no JSON output`);
      outputs.push([args.join(' '), docs]);
      return docs;
    };
    await json(['-c', cfg, 'run', 'website']);
    await json(['-c', cfg, 'run', 'dumps']);
    await json(['-c', cfg, 'backup']);
    await json(['backup', '--repo', repo, site]);
    const first = (await json(['snapshots', '--repo', repo]))[0] as Array<{ id: string }>;
    await json(['ls', '--repo', repo, first[0]!.id]);
    await json(['diff', '--repo', repo, first[0]!.id, first[first.length - 1]!.id]);
    await json(['stats', '--repo', repo]);
    await json(['check', '--repo', repo, '--read-data']);
    await json(['restore', '--repo', repo, first[0]!.id, '--target', path.join(t.dir, 'restored')]);
    await json(['forget', '--repo', repo, '--keep-last', '2', '--dry-run']);
    await json(['forget', '--repo', repo, '--keep-last', '2']);
    await json(['prune', '--repo', repo]);
    await json(['key', 'list', '--repo', repo]);
    await json(['copy', '--repo', path.join(t.dir, 'second'), '--from-repo', repo], [0]);
    await json(['-c', cfg, 'status'], [0, 1]);
    await json(['-c', cfg, 'plan', 'check'], [0, 1]);
    await json(['unlock', '--repo', repo]);
    const bad: string[] = [];
    for (const [cmd, docs] of outputs) for (const [k, at] of keysOf(docs)) if (!/^[a-z][a-z0-9_]*$/.test(k)) bad.push(`${cmd}: ${at}`);
    assert.deepEqual(bad, [], 'keys not in snake_case');
    // the same concept has the same name everywhere
    const summary = outputs.find(([c]) => c.startsWith('backup --repo'))![1].at(-1) as Record<string, unknown>;
    for (const k of ['snapshot_id', 'files_new', 'files_changed', 'files_unmodified', 'total_bytes', 'data_added', 'duration_ms']) assert.ok(k in summary, `${k} in the backup summary`);
  } finally {
    t.cleanup();
  }
});
