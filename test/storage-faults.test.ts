import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as net from 'node:net';
import * as path from 'node:path';
import { execFileSync, spawn } from 'node:child_process';
import { constants as fsc, openSync, closeSync, promises as fsp } from 'node:fs';
import { CLI, runCliMeasured, tmpDir } from './helpers/tmp.js';
import { S3Storage } from '../src/storage/s3.js';
import { LocalStorage } from '../src/storage/local.js';
import { StorageTimeoutError, StorageAbortedError, storageCall } from '../src/storage/retry.js';

/**
 * Storage faults built for real: a TCP server that accepts connections and
 * never answers (a hung S3 endpoint), and a FIFO in place of a repository file
 * (a file-system call that blocks forever, like one on a hung NFS mount).
 * Every case must end with a clear error within its deadline.
 */

interface HungServer {
  endpoint: string;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

async function hungServer(): Promise<HungServer> {
  const sockets = new Set<net.Socket>();
  let count = 0;
  const srv = net.createServer((s) => {
    count++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
    // never write anything
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    connections: () => count,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

const AWS_ENV = {
  AWS_ACCESS_KEY_ID: 'HUNGKEY',
  AWS_SECRET_ACCESS_KEY: 'HUNGSECRET',
  AWS_REGION: 'us-east-1',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  LIFEBOAT_PASSWORD: 'pw',
};

test('storageCall: a call that never settles is abandoned at its deadline; an owner abort ends it at once', { timeout: 60_000 }, async () => {
  const t0 = Date.now();
  await assert.rejects(
    storageCall({ what: 'reading x', timeouts: { connectMs: 1000, requestMs: 300, retries: 0 }, timeoutMessage: (ms, w) => `no answer within ${ms} ms while ${w}` }, () => new Promise<never>(() => {})),
    (e: unknown) => e instanceof StorageTimeoutError && /no answer within 300 ms while reading x/.test(e.message),
  );
  assert.ok(Date.now() - t0 < 10_000);
  // retries: a timeout is retried at most once, other retryable errors up to `retries`
  let calls = 0;
  await assert.rejects(
    storageCall(
      { what: 'x', timeouts: { connectMs: 1000, requestMs: 100, retries: 5 }, retryable: () => true, timeoutMessage: () => 'timeout', sleep: async () => {} },
      () => {
        calls++;
        return new Promise<never>(() => {});
      },
    ),
    /timeout \(2 attempts\)/,
  );
  assert.equal(calls, 2);
  calls = 0;
  const v = await storageCall(
    { what: 'x', timeouts: { connectMs: 1000, requestMs: 5000, retries: 3 }, retryable: () => true, timeoutMessage: () => 'timeout', sleep: async () => {} },
    async () => {
      if (++calls < 4) throw Object.assign(new Error('reset'), { code: 'ECONNRESET' });
      return 42;
    },
  );
  assert.equal(v, 42);
  assert.equal(calls, 4);
  // the owner's signal (job timeout, shutdown) ends a hung call immediately
  const ac = new AbortController();
  setTimeout(() => ac.abort(new Error('job timed out')), 100);
  await assert.rejects(
    storageCall({ what: 'reading y', timeouts: { connectMs: 1000, requestMs: 60_000, retries: 3 }, signal: ac.signal, retryable: () => true, timeoutMessage: () => 'timeout' }, () => new Promise<never>(() => {})),
    (e: unknown) => e instanceof StorageAbortedError && /reading y: job timed out/.test(e.message),
  );
});

test('S3 endpoint that accepts and never answers: requests fail at the request timeout, a timeout is retried once', { timeout: 60_000 }, async () => {
  const hung = await hungServer();
  try {
    const s = new S3Storage({
      bucket: 'hung-bucket',
      endpoint: hung.endpoint,
      accessKeyId: 'K',
      secretAccessKey: 'S',
      timeouts: { connectMs: 2000, requestMs: 1000, retries: 3 },
    });
    const t0 = Date.now();
    await assert.rejects(s.exists('config', ''), (e: unknown) => {
      assert.ok(e instanceof StorageTimeoutError, String(e));
      assert.match(e.message, new RegExp(`S3 endpoint ${hung.endpoint} did not answer within 1s while checking config`));
      return true;
    });
    const ms = Date.now() - t0;
    assert.ok(ms < 20_000, `took ${ms} ms`);
    assert.equal(hung.connections(), 2, 'one attempt and one retry');
    // the owner's signal ends a hung request at once
    const ac = new AbortController();
    const s2 = new S3Storage({ bucket: 'hung-bucket', endpoint: hung.endpoint, accessKeyId: 'K', secretAccessKey: 'S', signal: ac.signal });
    setTimeout(() => ac.abort(new Error('daemon shutting down')), 300);
    await assert.rejects(s2.load('snapshot', 'a'.repeat(64)), /daemon shutting down/);
    await s.close();
    await s2.close();
  } finally {
    await hung.close();
  }
});

test('CLI: snapshots on a hung S3 endpoint fails with a clear timeout error within the configured timeout', { timeout: 240_000 }, async () => {
  const hung = await hungServer();
  const t = tmpDir();
  try {
    await fsp.writeFile(
      path.join(t.dir, 'lifeboat.yaml'),
      `repositories:\n  hung:\n    location: "s3:${hung.endpoint}/hung-bucket"\n    timeouts: { connect: 2s, request: 2s, retries: 0 }\n`,
    );
    const r = await runCliMeasured(['snapshots', '--config', path.join(t.dir, 'lifeboat.yaml')], { env: AWS_ENV, killAfterMs: 60_000 });
    assert.equal(r.killed, false, `hung: ${r.stderr}`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /S3 endpoint http:\/\/127\.0\.0\.1:\d+ did not answer within 2s while checking config/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    assert.equal(hung.connections(), 1);

    // environment override, no config: LIFEBOAT_REQUEST_TIMEOUT / LIFEBOAT_RETRIES
    const e = await runCliMeasured(['snapshots', '--repo', `s3:${hung.endpoint}/hung-bucket`], {
      env: { ...AWS_ENV, LIFEBOAT_REQUEST_TIMEOUT: '1s', LIFEBOAT_RETRIES: '0' },
      cwd: t.dir,
      killAfterMs: 60_000,
    });
    assert.equal(e.killed, false);
    assert.equal(e.code, 1, e.stderr);
    assert.match(e.stderr, /did not answer within 1s/);
    assert.ok(e.ms < 30_000, `took ${e.ms} ms`);

    const bad = await runCliMeasured(['snapshots', '--repo', `s3:${hung.endpoint}/hung-bucket`], {
      env: { ...AWS_ENV, LIFEBOAT_REQUEST_TIMEOUT: 'soon' },
      cwd: t.dir,
      killAfterMs: 60_000,
    });
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /LIFEBOAT_REQUEST_TIMEOUT=soon/);
  } finally {
    await hung.close();
    t.cleanup();
  }
});

test('job with timeout 5s against a hung S3 endpoint (default storage timeouts) ends at its timeout and is recorded as failed', { timeout: 240_000 }, async () => {
  const hung = await hungServer();
  const t = tmpDir();
  try {
    await fsp.mkdir(path.join(t.dir, 'data'));
    await fsp.writeFile(path.join(t.dir, 'data/a.txt'), 'hello');
    await fsp.writeFile(
      path.join(t.dir, 'lifeboat.yaml'),
      `repositories:\n  hung: { location: "s3:${hung.endpoint}/hung-bucket" }\nsources:\n  data: { kind: files, paths: [./data] }\njobs:\n  data: { source: data, repository: hung, timeout: 5s, retries: 0 }\ndaemon: { catalog: ./catalog.db }\n`,
    );
    const r = await runCliMeasured(['run', 'data', '--config', path.join(t.dir, 'lifeboat.yaml')], { env: AWS_ENV, killAfterMs: 90_000 });
    assert.equal(r.killed, false, `hung: ${r.stderr}`);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /job data failed: job data timed out after 5s/);
    assert.ok(r.ms >= 5000, `ended before its timeout: ${r.ms} ms`);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
    const { SqliteCatalog } = await import('../src/ops/catalog/sqlite.js');
    const cat = await SqliteCatalog.open(path.join(t.dir, 'catalog.db'));
    const runs = await cat.recentRuns('data', 5);
    await cat.close();
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.status, 'failed');
    assert.match(runs[0]!.error ?? '', /timed out after 5s/);
  } finally {
    await hung.close();
    t.cleanup();
  }
});

test('daemon on a hung S3 endpoint: SIGTERM with a 1s shutdownGrace stops it within grace + slack, the run recorded as aborted', { timeout: 240_000 }, async () => {
  const hung = await hungServer();
  const t = tmpDir();
  try {
    await fsp.mkdir(path.join(t.dir, 'data'));
    await fsp.writeFile(path.join(t.dir, 'data/a.txt'), 'hello');
    await fsp.writeFile(
      path.join(t.dir, 'lifeboat.yaml'),
      `repositories:\n  hung: { location: "s3:${hung.endpoint}/hung-bucket" }\nsources:\n  data: { kind: files, paths: [./data] }\n` +
        `jobs:\n  data: { source: data, repository: hung, schedule: "0 0 1 1 *", timeout: 1h }\ndaemon: { catalog: ./catalog.db, shutdownGrace: 1s }\n`,
    );
    const child = spawn(process.execPath, [CLI, 'daemon', '--listen', '127.0.0.1:0', '--config', path.join(t.dir, 'lifeboat.yaml')], {
      env: { ...process.env, ...AWS_ENV, LIFEBOAT_TEST_SCRYPT_N: '1024' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const closed = new Promise<number | null>((r) => child.on('close', r));
    const guard = setTimeout(() => child.kill('SIGKILL'), 120_000);
    // the catch-up run starts at once and hangs on the endpoint
    for (let i = 0; i < 600 && hung.connections() === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(hung.connections() > 0, `the job never reached the endpoint: ${log}`);
    const t0 = Date.now();
    child.kill('SIGTERM');
    const code = await closed;
    const ms = Date.now() - t0;
    clearTimeout(guard);
    assert.equal(code, 0, log);
    assert.ok(ms < 20_000, `stopped ${ms} ms after SIGTERM (grace 1s): ${log}`);
    assert.match(log, /received SIGTERM/);
    assert.match(log, /daemon stopped/);
    const { SqliteCatalog } = await import('../src/ops/catalog/sqlite.js');
    const cat = await SqliteCatalog.open(path.join(t.dir, 'catalog.db'));
    const runs = await cat.recentRuns('data', 5);
    await cat.close();
    assert.equal(runs.length, 1, JSON.stringify(runs));
    assert.equal(runs[0]!.status, 'failed');
    assert.match(runs[0]!.error ?? '', /daemon shutting down/);
  } finally {
    await hung.close();
    t.cleanup();
  }
});

test('local storage: a file-system call that blocks forever (a FIFO in place of the config) fails at the deadline; CLI and job end', { timeout: 240_000 }, async () => {
  const t = tmpDir();
  const fifo = path.join(t.dir, 'repo/config');
  const unblock = () => {
    // open the FIFO for writing and close it: a reader blocked in open() gets EOF
    for (let i = 0; i < 8; i++) {
      try {
        closeSync(openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK));
      } catch {
        break;
      }
    }
  };
  try {
    // a real repository whose config object then blocks every reader
    const init = await runCliMeasured(['init', '--repo', path.join(t.dir, 'repo')], { env: { LIFEBOAT_PASSWORD: 'pw' } });
    assert.equal(init.code, 0, init.stderr);
    await fsp.rm(fifo);
    execFileSync('mkfifo', [fifo]);
    const s = new LocalStorage(path.join(t.dir, 'repo'), { timeouts: { requestMs: 500 } });
    const t0 = Date.now();
    await assert.rejects(s.load('config', ''), (e: unknown) => {
      assert.ok(e instanceof StorageTimeoutError, String(e));
      assert.match(e.message, /did not answer within 500ms while reading config \(a hung network mount\?\)/);
      return true;
    });
    assert.ok(Date.now() - t0 < 10_000);
    unblock();

    // the CLI: a clear error, and the process ends although a thread is still
    // blocked in the kernel (which blocks even process.exit: it ends itself with
    // SIGTERM, naming the exit code it meant)
    const r = await runCliMeasured(['snapshots', '--repo', path.join(t.dir, 'repo')], {
      env: { LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_REQUEST_TIMEOUT: '1s' },
      killAfterMs: 60_000,
    });
    unblock();
    assert.equal(r.killed, false, `hung: ${r.stderr}`);
    assert.equal(r.signal, 'SIGTERM', r.stderr);
    assert.match(r.stderr, /did not answer within 1s while reading config/);
    assert.match(r.stderr, /exit code 1, but 1 abandoned file-system call\(s\) are still blocked/);
    assert.ok(r.ms < 30_000, `took ${r.ms} ms`);

    // a job (default 2 min storage deadline) still ends at its own 3s timeout
    await fsp.mkdir(path.join(t.dir, 'data'));
    await fsp.writeFile(path.join(t.dir, 'data/a.txt'), 'hello');
    await fsp.writeFile(
      path.join(t.dir, 'lifeboat.yaml'),
      `repositories:\n  main: { location: ./repo }\nsources:\n  data: { kind: files, paths: [./data] }\njobs:\n  data: { source: data, timeout: 3s, retries: 0 }\ndaemon: { catalog: ./catalog.db }\n`,
    );
    const j = await runCliMeasured(['run', 'data', '--config', path.join(t.dir, 'lifeboat.yaml')], { env: { LIFEBOAT_PASSWORD: 'pw' }, killAfterMs: 90_000 });
    unblock();
    assert.equal(j.killed, false, `hung: ${j.stderr}`);
    assert.equal(j.signal, 'SIGTERM', j.stderr);
    assert.match(j.stderr, /job data failed: job data timed out after 3s/);
    assert.match(j.stderr, /exit code 1, but/);
    assert.ok(j.ms < 30_000, `took ${j.ms} ms`);
  } finally {
    unblock();
    t.cleanup();
  }
});
