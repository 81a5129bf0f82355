import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { Repository } from '../src/repo/repository.js';
import { pushWal } from '../src/repo/wal.js';
import { LocalStorage } from '../src/storage/local.js';
import { backupStream } from '../src/sources/stream.js';
import { runCli, tmpDir } from './helpers/tmp.js';

/**
 * `pg restore` makes the WAL archiving of the restored server an explicit
 * choice (off for copies, preserve only for a promotion). Runs without a
 * PostgreSQL server: the base backup is a small tar written as a
 * pg-basebackup snapshot with the project's own writer, its WAL pushed with
 * pushWal, as the real commands would.
 */
test('pg restore: --archive-mode off|preserve is required (exit 2 without a terminal), off writes archive_mode = off, preserve keeps archive_command', { timeout: 180_000 }, async () => {
  const t = tmpDir('lb-pitr-am-');
  try {
    const repoDir = path.join(t.dir, 'repo');
    const pw = path.join(t.dir, 'pw');
    await fsp.writeFile(pw, 'am-secret');
    assert.equal((await runCli(['init', '--repo', repoDir, '--password-file', pw])).code, 0);
    // a "data directory" with the original archive settings, as a tar
    const data = path.join(t.dir, 'data');
    await fsp.mkdir(data);
    await fsp.writeFile(path.join(data, 'PG_VERSION'), '15\n');
    await fsp.writeFile(path.join(data, 'postgresql.auto.conf'), "archive_mode = 'on'\narchive_command = 'lifeboat wal-push %p --repo /prod'\n");
    const tar = spawnSync('tar', ['-c', '-f', '-', '-C', data, '.'], { maxBuffer: 16 << 20 });
    assert.equal(tar.status, 0);
    const repo = await Repository.open(new LocalStorage(repoDir), 'am-secret');
    try {
      const seg = '000000010000000000000002';
      const walFile = path.join(t.dir, seg);
      await fsp.writeFile(walFile, Buffer.alloc(16 * 1024 * 1024, 7));
      await pushWal(repo, walFile);
      const now = new Date().toISOString();
      await backupStream(repo, Readable.from([tar.stdout]), {
        filename: 'base.tar',
        source: {
          kind: 'pg-basebackup',
          archive: 'default',
          timeline: 1,
          startLsn: '0/2000028',
          startSegment: seg,
          endLsn: '0/2000100',
          endSegment: seg,
          walSegmentSize: 16 * 1024 * 1024,
          startTime: now,
          stopTime: now,
          serverVersion: '15.0',
        },
        tags: ['pg-basebackup'],
      });
    } finally {
      await repo.close();
    }
    const common = ['--repo', repoDir, '--password-file', pw];
    const auto = (dir: string) => fsp.readFile(path.join(dir, 'postgresql.auto.conf'), 'utf8');

    // no choice, no terminal: usage error before anything is written
    const none = path.join(t.dir, 'none');
    const r0 = await runCli(['pg', 'restore', '--to', none, ...common]);
    assert.equal(r0.code, 2, r0.stderr);
    assert.match(r0.stderr, /needs --archive-mode off\|preserve/);
    assert.doesNotMatch(r0.stderr, /\n\s+at /);
    assert.ok(!existsSync(none), 'nothing restored');
    for (const bad of [['--archive-mode', 'on'], ['--archive-mode', 'preserve', '--disable-archiving']]) {
      const r = await runCli(['pg', 'restore', '--to', none, ...bad, ...common]);
      assert.equal(r.code, 2, `${bad.join(' ')}: ${r.stderr}`);
      assert.ok(!existsSync(none));
    }

    // off (and its alias): archive_mode = off wins over the backed-up setting, and the output says so
    for (const [name, flags] of [
      ['off', ['--archive-mode', 'off']],
      ['alias', ['--disable-archiving']],
    ] as const) {
      const dir = path.join(t.dir, name);
      const r = await runCli(['pg', 'restore', '--to', dir, ...flags, ...common]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /WAL archiving: off/);
      const conf = await auto(dir);
      const lines = conf.split('\n').filter((l) => l.startsWith('archive_mode'));
      assert.equal(lines[lines.length - 1], "archive_mode = 'off'", 'the last archive_mode line (the one PostgreSQL uses) is off');
    }
    const j = await runCli(['pg', 'restore', '--to', path.join(t.dir, 'json'), '--archive-mode', 'off', '--json', ...common]);
    assert.equal((JSON.parse(j.stdout.trim().split('\n').pop()!) as { archive_mode: string }).archive_mode, 'off');

    // preserve: the backed-up archive settings stay in force, and the output warns
    const keep = path.join(t.dir, 'preserve');
    const rp = await runCli(['pg', 'restore', '--to', keep, '--archive-mode', 'preserve', ...common]);
    assert.equal(rp.code, 0, rp.stderr);
    assert.match(rp.stdout, /WAL archiving: PRESERVED/);
    const conf = await auto(keep);
    assert.deepEqual(conf.split('\n').filter((l) => l.startsWith('archive_mode')), ["archive_mode = 'on'"]);
    assert.match(conf, /^archive_command = 'lifeboat wal-push %p --repo \/prod'$/m);
  } finally {
    t.cleanup();
  }
});
