import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { IncomingHttpHeaders, Server } from 'node:http';
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
 *  - It signs/validates SigV4 with the fixed account S3RVER / S3RVER.
 */
const require = createRequire(import.meta.url);

interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverCtor = new (opts: Record<string, unknown>) => S3rverInstance;

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
  /** Every request the server received (method, url, headers), in arrival order. */
  requests: RecordedRequest[];
  stop(): Promise<void>;
}

export async function startS3Server(opts: { bucket?: string } = {}): Promise<S3TestServer> {
  const S3rver = require('s3rver') as S3rverCtor;
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-s3rver-'));
  const bucket = opts.bucket ?? 'lifeboat-test';
  const srv = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: dir,
    // requests go to 127.0.0.1 with path-style addressing; no vhost magic
    vhostBuckets: false,
    configureBuckets: [{ name: bucket, configs: [] }],
  });
  let addr: { port: number };
  try {
    addr = await srv.run();
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const requests: RecordedRequest[] = [];
  srv.httpServer?.prependListener('request', (req) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers });
  });
  let stopped = false;
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    requests,
    async stop() {
      if (stopped) return;
      stopped = true;
      // SDK clients keep connections alive; don't let them hold close() open.
      srv.httpServer?.closeAllConnections();
      try {
        await srv.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
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
