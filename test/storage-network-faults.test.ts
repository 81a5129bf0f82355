import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { writeFileSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describeTree, makeTree, tmpDir } from './helpers/tmp.js';
import { startS3Server, s3Location, type S3TestServer } from './helpers/s3server.js';
import { startFaultProxy, type FaultProxy } from './helpers/faultproxy.js';
import { rcloneMissing } from './helpers/rclone.js';
import { sshdMissing, startSshd, type SshServer } from './helpers/sshd.js';
import { openStorage, type OpenStorageOptions } from '../src/storage/open.js';
import { Repository } from '../src/repo/repository.js';
import { backupPaths } from '../src/engine/archiver.js';
import { restoreSnapshot } from '../src/engine/restorer.js';
import { checkRepository } from '../src/verify/check.js';
import { LifeboatError } from '../src/errors.js';

/**
 * Network faults under a backup and a restore: a proxy on 127.0.0.1 drops,
 * stalls and resets connections at random. The run retries and finishes, or
 * fails cleanly (a LifeboatError, no snapshot pointing at missing data); a
 * second run without faults finishes; `check --read-data` passes afterwards and
 * the restored tree is byte for byte the source.
 */
async function faultyRun(
  label: string,
  proxy: FaultProxy,
  location: string,
  opts: OpenStorageOptions,
  directLocation: string,
  directOpts: OpenStorageOptions,
  t: { dir: string },
): Promise<void> {
  const src = path.join(t.dir, `src-${label}`);
  await makeTree(src, { files: 300, seed: 11 });
  writeFileSync(path.join(src, 'big.bin'), randomBytes(12 * 1024 * 1024));
  const init = await Repository.init(openStorage(directLocation, directOpts), 'pw');
  await init.close();

  const outcomes: string[] = [];
  // backup through the faulty network: a run that fails must fail cleanly; one of two runs must finish
  for (let attempt = 0; attempt < 2; attempt++) {
    let repo: Repository | undefined;
    try {
      repo = await Repository.open(openStorage(location, opts), 'pw');
      const r = await backupPaths(repo, { paths: [src] });
      assert.equal(r.summary.errors, 0);
      outcomes.push('backup ok');
      break;
    } catch (err) {
      assert.ok(err instanceof LifeboatError, `backup failed uncleanly: ${String((err as Error)?.stack ?? err)}`);
      outcomes.push(`backup failed cleanly: ${err.message.slice(0, 120)}`);
    } finally {
      await repo?.close().catch(() => {});
    }
  }
  assert.ok(outcomes.some((o) => o === 'backup ok'), outcomes.join('\n'));

  // restore through the faulty network
  const out = path.join(t.dir, `out-${label}`);
  for (let attempt = 0; attempt < 2; attempt++) {
    rmSync(out, { recursive: true, force: true });
    let repo: Repository | undefined;
    try {
      repo = await Repository.open(openStorage(location, opts), 'pw');
      const rs = await restoreSnapshot(repo, await repo.findSnapshot('latest'), { target: out });
      assert.deepEqual(rs.errors, []);
      outcomes.push('restore ok');
      break;
    } catch (err) {
      assert.ok(err instanceof LifeboatError, `restore failed uncleanly: ${String((err as Error)?.stack ?? err)}`);
      outcomes.push(`restore failed cleanly: ${err.message.slice(0, 120)}`);
    } finally {
      await repo?.close().catch(() => {});
    }
  }
  assert.ok(outcomes.includes('restore ok'), outcomes.join('\n'));
  assert.deepEqual(await describeTree(path.join(out, src)), await describeTree(src));
  proxy.enabled = false;
  const injected = proxy.stats.drop + proxy.stats.reset + proxy.stats.stall;
  assert.ok(injected > 0, `no fault was injected: ${JSON.stringify(proxy.stats)}`);
  // the repository is whole
  const repo = await Repository.open(openStorage(directLocation, directOpts), 'pw');
  const c = await checkRepository(repo, { readData: true });
  await repo.close();
  assert.ok(c.ok, JSON.stringify(c.problems));
  process.stderr.write(`# ${label}: faults ${JSON.stringify(proxy.stats)}; ${outcomes.join('; ')}\n`);
}

describe('network faults during backup and restore', () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir('lb-netfault-');
  });
  after(() => t.cleanup());

  describe('S3', () => {
    let srv: S3TestServer;
    let proxy: FaultProxy;
    before(async () => {
      srv = await startS3Server();
      proxy = await startFaultProxy({ target: { port: Number(new URL(srv.endpoint).port) }, rate: 0.2, seed: 7, stallMs: 20_000 });
    });
    after(async () => {
      await proxy.close();
      await srv.stop();
    });
    it('drops, stalls and resets: retried, finished, check --read-data passes', async () => {
      const direct = s3Location(srv, 'nf');
      const viaProxy = s3Location({ ...srv, endpoint: `http://127.0.0.1:${proxy.port}` }, 'nf');
      const timeouts = { requestMs: 4000, connectMs: 2000, retries: 6 };
      await faultyRun('s3', proxy, viaProxy.location, { ...viaProxy.opts, s3: { ...viaProxy.opts.s3, maxAttempts: 7 }, timeouts }, direct.location, direct.opts, t);
    });
  });

  describe('rclone (SFTP remote through the proxy)', { skip: rcloneMissing() || sshdMissing() }, () => {
    let sshd: SshServer;
    let proxy: FaultProxy;
    before(async () => {
      sshd = await startSshd();
      // a little gentler: every broken SSH connection costs rclone a reconnect
      proxy = await startFaultProxy({ target: { port: sshd.port }, rate: 0.3, seed: 3, stallMs: 20_000, maxBytes: 2 * 1024 * 1024, faultAt: [1] });
      // the proxy's port must be a known host too
      const kh = sshd.knownHostsFile;
      const { readFileSync } = await import('node:fs');
      const line = readFileSync(kh, 'utf8').trim().replace(/^\[127\.0\.0\.1\]:\d+/, `[127.0.0.1]:${proxy.port}`);
      writeFileSync(kh, `${readFileSync(kh, 'utf8')}${line}\n`);
    });
    after(async () => {
      await proxy?.close();
      await sshd?.stop();
    });
    it('drops, stalls and resets under rclone: retried, finished, check --read-data passes', async () => {
      const dir = path.join(t.dir, 'sftp-repo');
      const sftp = { keyFile: sshd.keyFile, knownHostsFile: sshd.knownHostsFile };
      const timeouts = { requestMs: 15_000, connectMs: 5000, retries: 6 };
      await faultyRun(
        'rclone-sftp',
        proxy,
        `sftp://${sshd.user}@127.0.0.1:${proxy.port}${dir}`,
        { sftp, timeouts },
        `sftp://${sshd.user}@127.0.0.1:${sshd.port}${dir}`,
        { sftp },
        t,
      );
    });
  });
});
