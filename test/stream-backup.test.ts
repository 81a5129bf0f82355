import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { IntegrityError } from '../src/errors.js';
import { Repository } from '../src/repo/repository.js';
import { LocalStorage } from '../src/storage/local.js';
import { dumpCommand } from '../src/sources/command/dump.js';
import { backupStream, restoreStream } from '../src/sources/stream.js';
import { CLI, runCli, tmpDir } from './helpers/tmp.js';
import { collect } from './helpers/db.js';

/**
 * Stream backups store exactly what the command wrote, however fast the
 * command is: a command that finishes before the repository is locked and its
 * snapshots listed used to lose its whole output (node discards unread stdio
 * of an exited child). Every stream snapshot records the byte count and
 * SHA-256 of the stream as read from the producer, and restores check it.
 */

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function restoreStdout(args: string[], cwd?: string): { status: number | null; stdout: Buffer; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, 'restore', ...args], {
    env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024' },
    maxBuffer: 64 << 20,
    timeout: 120_000,
    ...(cwd ? { cwd } : {}),
  });
  return { status: r.status, stdout: Buffer.from(r.stdout), stderr: r.stderr.toString() };
}

/** Fast commands of many sizes: [name, shell command, expected bytes]. */
async function fastCommands(dir: string): Promise<Array<[string, string, Buffer]>> {
  const big = randomBytes(20 * 1024 * 1024);
  const file20 = path.join(dir, 'random-20m.bin');
  await fsp.writeFile(file20, big);
  const file1 = path.join(dir, 'random-1m.bin');
  await fsp.writeFile(file1, big.subarray(0, 1024 * 1024));
  const seq = Buffer.from(Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join(''));
  assert.equal(seq.length, 108_894);
  return [
    ['empty', "printf ''", Buffer.alloc(0)],
    ['one', 'printf x', Buffer.from('x')],
    ['echo', 'echo foo', Buffer.from('foo\n')],
    ['4k', `head -c 4096 ${file20}`, big.subarray(0, 4096)],
    ['seq', 'seq 1 20000', seq],
    ['1m', `cat ${file1}`, big.subarray(0, 1024 * 1024)],
    ['20m', `head -c ${20 * 1024 * 1024} ${file20}`, big],
  ];
}

test('backup --stdin-from-command stores every byte of fast commands (0 B to 20 MiB); restore --stdout gives them back', { timeout: 300_000 }, async () => {
  const t = tmpDir('lb-stream-fast-');
  try {
    const repo = path.join(t.dir, 'repo');
    const pw = path.join(t.dir, 'pw');
    await fsp.writeFile(pw, 'stream-secret');
    const common = ['--repo', repo, '--password-file', pw];
    assert.equal((await runCli(['init', ...common])).code, 0);
    for (const [name, cmd, want] of await fastCommands(t.dir)) {
      const r = await runCli(['backup', ...common, '--stdin-from-command', cmd, '--stdin-filename', `${name}.out`, '--json']);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      const sum = JSON.parse(r.stdout.trim().split('\n').pop()!) as { snapshot_id: string; total_bytes: number; stream: { bytes: number; sha256: string } };
      const back = restoreStdout([sum.snapshot_id, ...common, '--stdout']);
      assert.equal(back.status, 0, `${name}: ${back.stderr}`);
      assert.equal(back.stdout.length, want.length, `${name}: restored size`);
      assert.ok(back.stdout.equals(want), `${name}: restored bytes`);
      assert.equal(sum.total_bytes, want.length, `${name}: processed bytes`);
      assert.deepEqual(sum.stream, { bytes: want.length, sha256: sha256(want) }, `${name}: recorded byte count and SHA-256`);
    }
    const snaps = JSON.parse((await runCli(['snapshots', ...common, '--json'])).stdout) as Array<{ source?: Record<string, unknown> }>;
    for (const s of snaps) assert.deepEqual(Object.keys(s.source ?? {}).sort(), ['duration_ms', 'exit_code', 'kind', 'tool'], 'the command line is not recorded');
  } finally {
    t.cleanup();
  }
});

test('backup --stdin redirected from a file (256 KiB reads, hash off the main thread) stores the file from its position on; native and LIFEBOAT_NO_NATIVE=1 agree', { timeout: 300_000 }, async () => {
  const t = tmpDir('lb-stream-file-');
  try {
    const repo = path.join(t.dir, 'repo');
    const pw = path.join(t.dir, 'pw');
    await fsp.writeFile(pw, 'stream-secret');
    const common = ['--repo', repo, '--password-file', pw];
    assert.equal((await runCli(['init', ...common])).code, 0);
    // many 256 KiB reads and a short last one; the shell's redirect may leave the file
    // anywhere: here 12,345 bytes in, as after `{ head -c 12345 >/dev/null; lifeboat ...; } < file`
    const data = randomBytes(5 * 1024 * 1024 + 777);
    const file = path.join(t.dir, 'dump.bin');
    await fsp.writeFile(file, data);
    const skipped = 12_345;
    const want = data.subarray(skipped);
    for (const env of [{}, { LIFEBOAT_NO_NATIVE: '1' }]) {
      const fh = await fsp.open(file, 'r');
      try {
        await fh.read(Buffer.alloc(skipped), 0, skipped, null);
        const r = spawnSync(process.execPath, [CLI, 'backup', ...common, '--stdin', '--stdin-filename', 'dump.bin', '--json'], {
          env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', ...env },
          stdio: [fh.fd, 'pipe', 'pipe'],
          timeout: 120_000,
        });
        assert.equal(r.status, 0, `${JSON.stringify(env)}: ${r.stderr}`);
        const sum = JSON.parse(r.stdout.toString().trim().split('\n').pop()!) as { snapshot_id: string; stream: { bytes: number; sha256: string } };
        assert.deepEqual(sum.stream, { bytes: want.length, sha256: sha256(want) }, `${JSON.stringify(env)}: recorded byte count and SHA-256`);
        const back = restoreStdout([sum.snapshot_id, ...common, '--stdout']);
        assert.equal(back.status, 0, back.stderr);
        assert.ok(back.stdout.equals(want), `${JSON.stringify(env)}: restored bytes`);
      } finally {
        await fh.close();
      }
    }
  } finally {
    t.cleanup();
  }
});

test('configured command sources: fast commands are stored whole; restore --source NAME --target - writes stdout and never runs the restoreCommand', { timeout: 300_000 }, async () => {
  const t = tmpDir('lb-stream-src-');
  try {
    const repo = path.join(t.dir, 'repo');
    const pw = path.join(t.dir, 'pw');
    await fsp.writeFile(pw, 'stream-secret');
    const cmds = await fastCommands(t.dir);
    const marker = path.join(t.dir, 'restore-command-ran');
    const cfg = path.join(t.dir, 'lifeboat.yaml');
    await fsp.writeFile(
      cfg,
      `repositories:\n  main: { location: ${repo}, password: { file: ${pw} } }\n` +
        'sources:\n' +
        cmds.map(([name, cmd]) => `  s${name}: { kind: command, command: ${JSON.stringify(cmd)}, restoreCommand: ${JSON.stringify(`cat > /dev/null; touch ${marker}`)} }\n`).join(''),
    );
    assert.equal((await runCli(['init', '--config', cfg])).code, 0);
    const b = await runCli(['backup', '--config', cfg, '--json']);
    assert.equal(b.code, 0, b.stderr);
    const snaps = JSON.parse((await runCli(['snapshots', '--config', cfg, '--json'])).stdout) as Array<{ source?: { name?: string }; stream?: { bytes: number; sha256: string } }>;
    for (const [i, [name, , want]] of cmds.entries()) {
      const s = snaps.find((x) => x.source?.name === `s${name}`);
      assert.deepEqual(s?.stream, { bytes: want.length, sha256: sha256(want) }, `s${name}: recorded byte count and SHA-256`);
      for (const flag of [i % 2 ? ['--stdout'] : ['--target', '-']]) {
        const back = restoreStdout(['latest', '--config', cfg, '--source', `s${name}`, ...flag], t.dir);
        assert.equal(back.status, 0, `s${name} ${flag.join(' ')}: ${back.stderr}`);
        assert.ok(back.stdout.equals(want), `s${name} ${flag.join(' ')}: restored bytes on stdout`);
        assert.equal(existsSync(marker), false, `s${name} ${flag.join(' ')}: the restoreCommand must not run`);
      }
    }
    // --target DIR is not a target of a stream source: a usage error, nothing runs
    const bad = restoreStdout(['latest', '--config', cfg, '--source', 'sone', '--target', path.join(t.dir, 'dir')], t.dir);
    assert.equal(bad.status, 2, bad.stderr);
    assert.equal(existsSync(marker), false);
    // without --target -, the restoreCommand is the restore (the marker proves the test can see it run)
    const live = restoreStdout(['latest', '--config', cfg, '--source', 'sone'], t.dir);
    assert.equal(live.status, 0, live.stderr);
    assert.equal(existsSync(marker), true);
  } finally {
    t.cleanup();
  }
});

test('a command that exits before the repository reads from it loses nothing (library path)', { timeout: 120_000 }, async () => {
  const t = tmpDir('lb-stream-lib-');
  const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
  try {
    for (const [cmd, want] of [
      ['printf hello', Buffer.from('hello')],
      ['seq 1 20000', Buffer.from(Array.from({ length: 20000 }, (_, i) => `${i + 1}\n`).join(''))],
    ] as const) {
      const h = await dumpCommand({ kind: 'command', command: cmd });
      // the command has long exited when the backup starts reading
      await sleep(500);
      let streamBytes: number | undefined;
      const r = await backupStream(repo, h.stream, {
        filename: 'late.out',
        source: h.meta,
        finalize: async () => {
          streamBytes = (await h.done).streamBytes;
        },
        producedBytes: () => streamBytes,
      });
      assert.equal(streamBytes, want.length, 'the tool side counted every byte');
      assert.deepEqual(r.stream, { bytes: want.length, sha256: sha256(want) });
      const back = await collect(await restoreStream(repo, r.snapshotId));
      assert.ok(Buffer.concat(back.chunks).equals(want));
    }
  } finally {
    await repo.close();
    t.cleanup();
  }
});

test('bytes the producer wrote that did not reach the repository fail the backup; no snapshot is written', { timeout: 60_000 }, async () => {
  const t = tmpDir('lb-stream-lost-');
  const repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
  try {
    await assert.rejects(
      backupStream(repo, Readable.from([Buffer.from('abc')]), { filename: 'x', producedBytes: () => 5 }),
      (e: Error) => e instanceof IntegrityError && /wrote 5 bytes but 3 reached the repository/.test(e.message),
    );
    assert.equal((await repo.listSnapshots()).length, 0);
    const ok = await backupStream(repo, Readable.from([Buffer.from('abc')]), { filename: 'x', producedBytes: () => 3 });
    assert.deepEqual(ok.stream, { bytes: 3, sha256: sha256(Buffer.from('abc')) });
  } finally {
    await repo.close();
    t.cleanup();
  }
});

test('restore checks the recorded byte count and SHA-256: a mismatch or a malformed record fails loudly (exit 5), and a restore tool never sees a clean end', { timeout: 120_000 }, async () => {
  const t = tmpDir('lb-stream-verify-');
  try {
    const repoDir = path.join(t.dir, 'repo');
    const pw = path.join(t.dir, 'pw');
    await fsp.writeFile(pw, 'pw');
    assert.equal((await runCli(['init', '--repo', repoDir, '--password-file', pw])).code, 0);
    const repo = await Repository.open(new LocalStorage(repoDir), 'pw');
    const payload = randomBytes(3 * 1024 * 1024 + 5);
    let bad: Record<string, string> = {};
    try {
      const good = await backupStream(repo, Readable.from([payload]), { filename: 'data.bin' });
      const snap = await repo.findSnapshot(good.snapshotId);
      const { id: _id, ...base } = snap;
      const forged = async (stream: unknown) => repo.saveSnapshot({ ...base, stream } as Parameters<Repository['saveSnapshot']>[0]);
      bad = {
        hash: await forged({ bytes: payload.length, sha256: sha256(Buffer.from('something else')) }),
        count: await forged({ bytes: payload.length + 1, sha256: good.stream.sha256 }),
        malformed: await forged({ bytes: -1, sha256: 'not hex' }),
        huge: await forged({ bytes: 2 ** 60, sha256: good.stream.sha256 }),
      };
      // library: the consumer gets an error before the last chunk, never a clean end
      const s = await restoreStream(repo, bad.hash!);
      const got: Buffer[] = [];
      await assert.rejects(
        (async () => {
          for await (const b of s) got.push(b as Buffer);
        })(),
        (e: Error) => e instanceof IntegrityError && /SHA-256/.test(e.message),
      );
      assert.ok(Buffer.concat(got).length < payload.length, 'the last chunk is held back');
      await assert.rejects(restoreStream(repo, bad.count!), (e: Error) => e instanceof IntegrityError && /bytes/.test(e.message));
      await assert.rejects(restoreStream(repo, bad.malformed!), (e: Error) => e instanceof IntegrityError && /malformed stream record/.test(e.message));
      const back = await collect(await restoreStream(repo, good.snapshotId));
      assert.ok(Buffer.concat(back.chunks).equals(payload));
    } finally {
      await repo.close();
    }
    for (const [what, id] of Object.entries(bad)) {
      const started = Date.now();
      const r = restoreStdout([id, '--repo', repoDir, '--password-file', pw, '--stdout']);
      assert.equal(r.status, 5, `${what}: ${r.stderr}`);
      assert.match(r.stderr, /RESTORE FAILED/, what);
      assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
      assert.ok(r.stdout.length < payload.length, `${what}: not the whole stream`);
      assert.ok(Date.now() - started < 60_000, `${what}: fails within the hang guard`);
    }
  } finally {
    t.cleanup();
  }
});
