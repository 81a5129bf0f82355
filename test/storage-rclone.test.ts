import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir } from './helpers/tmp.js';
import { rcloneMissing, rcloneLocation, useRcloneEnv, RCLONE_REMOTE } from './helpers/rclone.js';
import { engineSuite } from './helpers/engine-suite.js';
import { openStorage, parseLocation } from '../src/storage/open.js';
import { RcloneStorage } from '../src/storage/rclone.js';
import { AppendOnlyError } from '../src/storage/retry.js';
import { NotFoundError, LifeboatError, ExitCode } from '../src/errors.js';
import type { Storage } from '../src/storage/types.js';

const skip = rcloneMissing();
if (!skip) useRcloneEnv();
const run = randomBytes(31).toString('hex');
const hex = (n: number) => run + n.toString(16).padStart(2, '0');

/**
 * SIGSTOP, then wait until the kernel reports the process stopped: on a loaded
 * machine the stop takes effect later than kill() returns, and a child still
 * running for that moment answers the request that was meant to be in flight.
 */
async function stopProcess(pid: number): Promise<void> {
  process.kill(pid, 'SIGSTOP');
  const until = Date.now() + 20_000;
  for (;;) {
    // the state follows the parenthesised command name in /proc/PID/stat
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('T')) return;
    if (Date.now() > until) throw new Error(`process ${pid} did not stop within 20 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('rclone backend (rclone serve restic --stdio, local remote)', { skip }, () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir('lb-rclone-');
  });
  after(() => t.cleanup());

  it('parses rclone: locations', () => {
    assert.deepEqual(parseLocation('rclone:gdrive:backups/x'), { kind: 'rclone', remote: 'gdrive:backups/x' });
    assert.deepEqual(parseLocation('rclone::local:/srv'), { kind: 'rclone', remote: ':local:/srv' });
  });

  it('stores every object type in the local-repository layout, with ranges, listings, stat and removal', async () => {
    const dir = path.join(t.dir, 'contract');
    const st = openStorage(rcloneLocation(dir));
    assert.equal(st.kind, 'rclone');
    assert.equal(st.location, `rclone:${RCLONE_REMOTE}:${dir}`);
    try {
      await st.create();
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const names = { data: hex(1), index: hex(2), snapshot: hex(3), key: hex(4), wal: hex(5), lock: hex(6) };
      await st.save('config', '', Buffer.from('cfg'));
      await st.save('data', names.data, data);
      for (const ty of ['index', 'snapshot', 'key', 'wal', 'lock'] as const) await st.save(ty, names[ty], Buffer.from(ty));
      // the on-disk layout is the local backend's (docs/format.md)
      assert.ok(existsSync(path.join(dir, 'data', names.data.slice(0, 2), names.data)));
      for (const [ty, d] of [['index', 'index'], ['snapshot', 'snapshots'], ['key', 'keys'], ['wal', 'wal'], ['lock', 'locks']] as const) {
        assert.deepEqual(readdirSync(path.join(dir, d)), [names[ty]], ty);
      }
      assert.equal((await st.load('config', '')).toString(), 'cfg');
      assert.ok((await st.load('data', names.data)).equals(data));
      assert.ok((await st.load('data', names.data, { offset: 1_000_000, length: 4321 })).equals(data.subarray(1_000_000, 1_004_321)));
      await assert.rejects(st.load('data', names.data, { offset: data.length - 10, length: 20 }), /short read/);
      assert.equal((await st.stat('data', names.data)).size, data.length);
      assert.deepEqual((await st.list('data')).map((o) => [o.name, o.size]), [[names.data, data.length]]);
      assert.deepEqual((await st.list('wal')).map((o) => o.name), [names.wal]);
      assert.deepEqual((await st.list('config')).map((o) => o.size), [3]);
      assert.equal(await st.exists('index', names.index), true);
      assert.equal(await st.exists('index', hex(9)), false);
      await assert.rejects(st.load('index', hex(9)), NotFoundError);
      assert.equal(await st.saveNew('key', names.key, Buffer.from('again')), false);
      assert.equal(await st.saveNew('key', hex(7), Buffer.from('new')), true);
      await st.remove('lock', names.lock);
      await assert.rejects(st.remove('lock', names.lock), NotFoundError);
      assert.deepEqual(await st.list('lock'), []);
    } finally {
      await st.close();
    }
  });

  it('a child that dies fails in-flight requests clearly and the next request starts a new one', async () => {
    const dir = path.join(t.dir, 'death');
    const name = hex(1);
    const child = (st: RcloneStorage) => (st as unknown as { session: { child: { pid: number } } }).session.child.pid;
    const st = new RcloneStorage({ remote: `${RCLONE_REMOTE}:${dir}`, timeouts: { retries: 0 } });
    try {
      await st.create();
      await st.save('index', name, Buffer.from('x'));
      // a request in flight when the child dies (stopped first, so the request is surely in flight)
      const pid = child(st);
      await stopProcess(pid);
      const p = st.load('index', name);
      await new Promise((r) => setTimeout(r, 100));
      process.kill(pid, 'SIGKILL');
      await assert.rejects(p, (err: unknown) => {
        assert.ok(err instanceof LifeboatError);
        assert.match(err.message, /rclone \(serving rclone:lbtest:.*\) exited on signal SIGKILL/);
        return true;
      });
      // the next call starts a fresh child
      assert.equal((await st.load('index', name)).toString(), 'x');
      assert.notEqual(child(st), pid);
    } finally {
      await st.close();
    }
    // with retries, a death in the middle of a call is retried on a new child
    const st2 = new RcloneStorage({ remote: `${RCLONE_REMOTE}:${dir}`, timeouts: { retries: 2 } });
    try {
      await st2.load('index', name);
      const pid = child(st2);
      await stopProcess(pid);
      const p = st2.load('index', name);
      await new Promise((r) => setTimeout(r, 100));
      process.kill(pid, 'SIGKILL');
      assert.equal((await p).toString(), 'x');
    } finally {
      await st2.close();
    }
  });

  it('a missing rclone program is a clear usage error', async () => {
    const st = new RcloneStorage({ remote: `${RCLONE_REMOTE}:${t.dir}/x`, program: path.join(t.dir, 'no-such-rclone'), timeouts: { retries: 0 } });
    await assert.rejects(st.create(), (err: unknown) => {
      assert.ok(err instanceof LifeboatError);
      assert.equal(err.exitCode, ExitCode.USAGE);
      assert.match(err.message, /cannot start rclone .* not found/);
      return true;
    });
    await st.close();
  });

  it('close() ends the child; a silent child hits the request deadline', async () => {
    const fake = path.join(t.dir, 'silent-rclone');
    writeFileSync(fake, '#!/bin/sh\nexec sleep 30\n', { mode: 0o755 });
    const st = new RcloneStorage({ remote: 'x:y', program: fake, timeouts: { requestMs: 500, retries: 0 } });
    const t0 = Date.now();
    await assert.rejects(st.stat('index', hex(1)), /did not answer within 500ms/);
    assert.ok(Date.now() - t0 < 10_000);
    await st.close();
  });
});

if (!skip) {
  engineSuite('rclone', async (dir) => ({
    storage: (): Storage => openStorage(rcloneLocation(dir)),
    packDir: path.join(dir, 'data'),
  }));
}

export { AppendOnlyError };
