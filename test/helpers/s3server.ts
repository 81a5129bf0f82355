import { createRequire } from 'node:module';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { IncomingHttpHeaders } from 'node:http';
import type { S3Options } from '../../src/storage/s3.js';

/**
 * A real S3-compatible server (s3rver 3.7, filesystem-backed) for tests.
 *
 * s3rver quirks relevant to us (verified against @aws-sdk/client-s3 v3.11xx):
 *  - With the SDK's default flexible checksums (requestChecksumCalculation
 *    'WHEN_SUPPORTED'), a PutObject/UploadPart whose body is a *stream* is sent with
 *    `Content-Encoding: aws-chunked` + a CRC32 trailer. s3rver does not understand
 *    aws-chunked and silently stores the chunk framing as object content (1000 bytes
 *    in, 1043 bytes stored). Buffer bodies get a plain x-amz-checksum-crc32 header,
 *    which s3rver ignores. S3Storage therefore uses 'WHEN_REQUIRED' by default and
 *    sends Content-MD5 itself; clients built on this server must do the same.
 *  - s3rver does not verify Content-MD5 or x-amz-checksum-* (real S3 does), so
 *    corruption-in-transit rejection cannot be exercised here; tests only check the
 *    header is sent and correct (see `requests`).
 *  - Bucket names must be 3..63 chars (InvalidBucketName otherwise).
 *  - HEAD on a missing bucket/key is a bare 404 (no error code), like real S3.
 *  - Ranged GET beyond the end: start >= size gives 416 InvalidRange; an end past
 *    the last byte is truncated (like real S3).
 *  - ListObjectsV2 continuation tokens are encrypted with DES, which OpenSSL 3
 *    (Node >= 17) only offers through the legacy provider: in a plain Node 20
 *    process every truncated listing (> 1000 keys) fails with HTTP 500
 *    InternalError. We therefore run s3rver in its own process started with
 *    --openssl-legacy-provider (which also makes it a real separate server).
 *  - `Range: bytes=0-0` returns the whole object (it treats end 0 as "no end").
 *    S3Storage tolerates servers that return a superset starting at the right
 *    offset and slices it.
 *  - SigV4 signatures are NOT verified: only the access key id is checked
 *    (unknown id: 403 InvalidAccessKeyId). The fixed account is S3RVER / S3RVER.
 *
 * A read-only key (like an IAM policy granting only s3:GetObject/ListBucket):
 * requests signed with `readOnlyAccessKeyId` (S3RVER-RO) may read and list;
 * PUT, POST and DELETE get 403 AccessDenied (answered in front of s3rver, which
 * then serves the allowed requests as the S3RVER account).
 */
const require = createRequire(import.meta.url);

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
}

export interface S3TestServer {
  /** e.g. http://127.0.0.1:41234 */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** An access key that may only read: writes are answered 403 AccessDenied. Secret: same as secretAccessKey. */
  readOnlyAccessKeyId: string;
  /**
   * An append-only key (like an IAM policy with s3:PutObject but no s3:DeleteObject,
   * plus a bucket policy denying overwrites): DELETE and PUT over an existing object
   * get 403 AccessDenied, except under locks/. Secret: same as secretAccessKey.
   */
  appendOnlyAccessKeyId: string;
  /** Every request the server has received so far (method, url, headers), in arrival order. */
  requests(): Promise<RecordedRequest[]>;
  stop(): Promise<void>;
}

// Runs in the child process (CommonJS, node -e). Protocol: JSON lines on stdout
// ({t:'ready',port} once, {t:'req',...} per request, {t:'sync'} in answer to a
// "sync" line on stdin). EOF on stdin (parent gone) or "stop" shuts it down.
const CHILD = `
const cfg = JSON.parse(process.env.LB_S3RVER_CONFIG);
const fs = require('fs');
const path = require('path');
const S3rver = require(cfg.modulePath);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
const srv = new S3rver({
  address: '127.0.0.1', port: 0, silent: true, directory: cfg.dir,
  vhostBuckets: false, configureBuckets: [{ name: cfg.bucket, configs: [] }],
});
let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  if (!srv.httpServer) process.exit(0);
  srv.httpServer.closeAllConnections();
  srv.close().catch(() => {}).finally(() => process.exit(0));
}
srv.run().then((addr) => {
  // Read-only key: answer writes with 403 AccessDenied before s3rver sees them.
  const handlers = srv.httpServer.listeners('request');
  srv.httpServer.removeAllListeners('request');
  const deny = (req, res, code, message) => {
    req.resume();
    res.writeHead(code === 'ObjectLockConfigurationNotFoundError' ? 404 : 403, { 'content-type': 'application/xml', connection: 'close' });
    res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>' + code + '</Code><Message>' + message + '</Message><RequestId>lb</RequestId></Error>');
  };
  const retained = new Map(); // key -> retain-until (ms)
  const objectFile = (key) => {
    const parts = key.split('/');
    const last = parts.pop();
    return path.join(cfg.dir, cfg.bucket, ...parts, last + '._S3rver_object');
  };
  srv.httpServer.on('request', (req, res) => {
    out({ t: 'req', method: req.method, url: req.url, headers: req.headers });
    const auth = req.headers.authorization || '';
    const u = new URL(req.url, 'http://x');
    const segs = u.pathname.split('/');
    const key = segs.length > 2 ? decodeURIComponent(segs.slice(2).join('/')) : '';
    const isLock = key.split('/').slice(0, -1).pop() === 'locks';
    // Object lock configuration of the bucket (GetObjectLockConfiguration)
    if (req.method === 'GET' && !key && u.searchParams.has('object-lock')) {
      req.resume();
      if (!cfg.objectLock) return deny(req, res, 'ObjectLockConfigurationNotFoundError', 'Object Lock configuration does not exist for this bucket');
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end('<?xml version="1.0" encoding="UTF-8"?><ObjectLockConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><ObjectLockEnabled>Enabled</ObjectLockEnabled>' +
        (cfg.objectLock.days ? '<Rule><DefaultRetention><Mode>' + cfg.objectLock.mode + '</Mode><Days>' + cfg.objectLock.days + '</Days></DefaultRetention></Rule>' : '') +
        '</ObjectLockConfiguration>');
      return;
    }
    if (key && req.method === 'PUT' && req.headers['x-amz-object-lock-mode']) {
      const until = Date.parse(String(req.headers['x-amz-object-lock-retain-until-date'] || ''));
      if (Number.isFinite(until)) retained.set(key, until);
    }
    // Object lock enforced: a retained object cannot be deleted or overwritten
    if (key && (req.method === 'DELETE' || req.method === 'PUT') && !u.searchParams.has('partNumber') && !u.searchParams.has('uploadId')) {
      const until = retained.get(key);
      if (until !== undefined && until > Date.now() && (req.method === 'DELETE' || fs.existsSync(objectFile(key)))) {
        return deny(req, res, 'AccessDenied', 'Access Denied because object protected by object lock.');
      }
    }
    // Append-only key (an IAM policy without s3:DeleteObject, PUT only where no object is): locks/ excepted
    if (auth.includes('Credential=' + cfg.appendOnlyKey + '/')) {
      if (req.method === 'DELETE' && !isLock) return deny(req, res, 'AccessDenied', 'Access Denied (append-only)');
      if (req.method === 'PUT' && key && !isLock && !u.searchParams.has('partNumber') && fs.existsSync(objectFile(key))) {
        return deny(req, res, 'AccessDenied', 'Access Denied (append-only: object exists)');
      }
      if (req.method === 'POST' && key && !isLock && u.searchParams.has('uploadId') && fs.existsSync(objectFile(key))) {
        return deny(req, res, 'AccessDenied', 'Access Denied (append-only: object exists)');
      }
      req.headers.authorization = auth.split('Credential=' + cfg.appendOnlyKey + '/').join('Credential=S3RVER/');
    }
    if (auth.includes('Credential=' + cfg.readOnlyKey + '/')) {
      if (req.method === 'PUT' || req.method === 'POST' || req.method === 'DELETE') {
        req.resume();
        res.writeHead(403, { 'content-type': 'application/xml', connection: 'close' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied</Message><RequestId>ro</RequestId></Error>');
        return;
      }
      req.headers.authorization = auth.split('Credential=' + cfg.readOnlyKey + '/').join('Credential=S3RVER/');
    }
    for (const h of handlers) h.call(srv.httpServer, req, res);
  });
  out({ t: 'ready', port: addr.port });
}, (err) => { process.stderr.write(String((err && err.stack) || err)); process.exit(1); });
let buf = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line === 'sync') out({ t: 'sync' });
    else if (line === 'stop') stop();
  }
});
process.stdin.on('end', stop);
`;

const READ_ONLY_KEY = 'S3RVER-RO';
const APPEND_ONLY_KEY = 'S3RVER-AO';

/**
 * opts.objectLock: the bucket reports (GetObjectLockConfiguration) and enforces
 * Object Lock: PUTs carrying x-amz-object-lock-* headers record a retention;
 * DELETE or overwrite of such a retained object is answered 403 AccessDenied
 * (stricter than versioned S3, where a DELETE without a version id adds a
 * delete marker and the locked version stays hidden until retention ends; the
 * default retention is only reported, not applied, so locks stay deletable).
 * Without it, the bucket answers ObjectLockConfigurationNotFoundError (lock
 * headers on PUTs are then ignored, as s3rver always did; real S3 refuses them).
 */
export async function startS3Server(opts: { bucket?: string; objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days?: number } } = {}): Promise<S3TestServer> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-s3rver-'));
  const bucket = opts.bucket ?? 'lifeboat-test';
  const child: ChildProcess = spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD], {
    env: { ...process.env, LB_S3RVER_CONFIG: JSON.stringify({ modulePath: require.resolve('s3rver'), dir, bucket, readOnlyKey: READ_ONLY_KEY, appendOnlyKey: APPEND_ONLY_KEY, objectLock: opts.objectLock ?? null }) },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const requests: RecordedRequest[] = [];
  const syncWaiters: Array<() => void> = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (d: string) => {
    if (stderr.length < 10_000) stderr += d;
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      let msg: { t: string; port?: number; method?: string; url?: string; headers?: IncomingHttpHeaders };
      try {
        msg = JSON.parse(line);
      } catch {
        return;
      }
      if (msg.t === 'ready') resolve(msg.port!);
      else if (msg.t === 'req') requests.push({ method: msg.method!, url: msg.url!, headers: msg.headers! });
      else if (msg.t === 'sync') syncWaiters.shift()?.();
    });
    child.once('error', reject);
    void exited.then((code) => {
      reject(new Error(`s3rver exited (code ${code}) before it was ready: ${stderr.trim()}`));
      for (const w of syncWaiters.splice(0)) w();
    });
  });
  let port: number;
  try {
    port = await ready;
  } catch (err) {
    child.kill();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    readOnlyAccessKeyId: READ_ONLY_KEY,
    appendOnlyAccessKeyId: APPEND_ONLY_KEY,
    async requests() {
      // Round trip through the child so every request line written before now has been read.
      if (!stopped && child.exitCode === null) {
        await new Promise<void>((resolve) => {
          syncWaiters.push(resolve);
          child.stdin!.write('sync\n');
        });
      }
      return requests.slice();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.stdin!.end('stop\n');
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A repository location on the test server plus what is needed to open it:
 *  - `opts` for openStorage(location, opts) in-process (explicit credentials,
 *    few retries so failures surface fast);
 *  - `env` for a CLI child process (credentials via the standard AWS variables).
 * Nothing is written to process.env.
 */
export function s3Location(
  srv: Pick<S3TestServer, 'endpoint' | 'bucket' | 'accessKeyId' | 'secretAccessKey'>,
  prefix = '',
): { location: string; opts: { s3: Partial<S3Options> }; env: Record<string, string> } {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return {
    location: `s3:${srv.endpoint}/${srv.bucket}${p ? `/${p}` : ''}`,
    opts: {
      s3: {
        accessKeyId: srv.accessKeyId,
        secretAccessKey: srv.secretAccessKey,
        region: 'us-east-1',
        maxAttempts: 2,
      },
    },
    env: {
      AWS_ACCESS_KEY_ID: srv.accessKeyId,
      AWS_SECRET_ACCESS_KEY: srv.secretAccessKey,
      AWS_REGION: 'us-east-1',
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    },
  };
}
