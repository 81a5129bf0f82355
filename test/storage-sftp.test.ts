import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, makeTree, describeTree } from './helpers/tmp.js';
import { rcloneMissing } from './helpers/rclone.js';
import { sshdMissing, startSshd, type SshServer } from './helpers/sshd.js';
import { openStorage, parseLocation } from '../src/storage/open.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';
import { checkRepository } from '../src/verify/check.js';
import { ConfigError, LifeboatError } from '../src/errors.js';
import { AppendOnlyError } from '../src/storage/retry.js';

const skip = rcloneMissing() || sshdMissing();
const name = (n: number) => 'ab'.repeat(31) + n.toString(16).padStart(2, '0');

describe('SFTP locations', () => {
  it('parses restic-style and URL forms, refuses bad ones', () => {
    assert.deepEqual(parseLocation('sftp:backup@host.example:/srv/repo'), { kind: 'sftp', user: 'backup', host: 'host.example', path: '/srv/repo' });
    assert.deepEqual(parseLocation('sftp://u@10.0.0.1:2222/srv/r'), { kind: 'sftp', user: 'u', host: '10.0.0.1', port: 2222, path: '/srv/r' });
    assert.deepEqual(parseLocation('sftp:host:rel/dir'), { kind: 'sftp', host: 'host', path: 'rel/dir' });
    for (const [loc, re] of [
      ['sftp://u:pw@h/x', /passwords are not allowed/],
      ['sftp:h', /expected sftp:user@host:\/path/],
      ['sftp://h/a/../b', /"\.\." is not allowed/],
      ['sftp://h:99999/x', /not a valid URL|port out of range/],
    ] as const) {
      assert.throws(() => parseLocation(loc), (e: unknown) => e instanceof ConfigError && re.test(e.message), loc);
    }
  });
});

describe('SFTP backend (rclone sftp remote against a real sshd)', { skip }, () => {
  let t: ReturnType<typeof tmpDir>;
  let sshd: SshServer;
  before(async () => {
    t = tmpDir('lb-sftp-');
    sshd = await startSshd();
  });
  after(async () => {
    await sshd?.stop();
    t.cleanup();
  });
  const loc = (dir: string) => `sftp://${sshd.user}@127.0.0.1:${sshd.port}${dir}`;
  const opts = () => ({ sftp: { keyFile: sshd.keyFile, knownHostsFile: sshd.knownHostsFile }, timeouts: { retries: 1, requestMs: 30_000 } });

  it('backup, restore and check --read-data through SFTP; objects land in the repository layout', async () => {
    const dir = path.join(t.dir, 'repo');
    const src = path.join(t.dir, 'src');
    await makeTree(src, { files: 200, seed: 3 });
    writeFileSync(path.join(src, 'big.bin'), randomBytes(6 * 1024 * 1024));
    const st = openStorage(loc(dir), opts());
    assert.equal(st.kind, 'sftp');
    assert.equal(st.location, `sftp://${sshd.user}@127.0.0.1:${sshd.port}${dir}`);
    const repo = await Repository.init(st, 'pw');
    const r = await backupPaths(repo, { paths: [src] });
    assert.equal(r.summary.errors, 0);
    await repo.close();
    assert.ok(existsSync(path.join(dir, 'config')));
    const repo2 = await Repository.open(openStorage(loc(dir), opts()), 'pw');
    const out = path.join(t.dir, 'out');
    const rs = await restoreSnapshot(repo2, await repo2.findSnapshot('latest'), { target: out });
    assert.deepEqual(rs.errors, []);
    assert.deepEqual(await describeTree(path.join(out, src)), await describeTree(src));
    const c = await checkRepository(repo2, { readData: true });
    assert.ok(c.ok, JSON.stringify(c.problems));
    await repo2.close();
  });

  it('a host key that does not match known_hosts is refused', async () => {
    const other = path.join(t.dir, 'other_known_hosts');
    writeFileSync(other, `[127.0.0.1]:${sshd.port} ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n`);
    const st = openStorage(loc(path.join(t.dir, 'x')), { sftp: { keyFile: sshd.keyFile, knownHostsFile: other }, timeouts: { retries: 0, requestMs: 30_000 } });
    await assert.rejects(st.list('snapshot'), (err: unknown) => {
      assert.ok(err instanceof LifeboatError);
      assert.match(err.message, /key mismatch|knownhosts|host key/i);
      return true;
    });
    await st.close();
  });

  it('without a known_hosts file the location is refused (no blind trust)', () => {
    assert.throws(
      () => openStorage(loc('/x'), { sftp: { keyFile: sshd.keyFile, knownHostsFile: path.join(t.dir, 'missing') } }),
      (e: unknown) => e instanceof ConfigError && /known_hosts file .* does not exist/.test(e.message),
    );
  });

  it('append-only: rclone refuses delete and overwrite on the SFTP server; locks still come and go', async () => {
    const dir = path.join(t.dir, 'ao');
    const full = openStorage(loc(dir), opts());
    await full.create();
    await full.save('index', name(1), Buffer.from('one'));
    await full.close();
    // only the server-side guard: bypass the client-side one to prove rclone enforces it
    const ao = openStorage(loc(dir), { ...opts(), appendOnly: true });
    const inner = (ao as unknown as { inner: typeof ao }).inner;
    await assert.rejects(inner.remove('index', name(1)), AppendOnlyError);
    await assert.rejects(inner.save('index', name(1), Buffer.from('two')), AppendOnlyError);
    await inner.save('lock', name(2), Buffer.from('l'));
    await inner.remove('lock', name(2));
    await inner.save('index', name(3), Buffer.from('three'));
    await ao.close();
    const check = openStorage(loc(dir), opts());
    assert.equal((await check.load('index', name(1))).toString(), 'one');
    assert.deepEqual((await check.list('index')).map((o) => o.name).sort(), [name(1), name(3)]);
    await check.close();
  });
});
