import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { engineSuite } from './helpers/engine-suite.js';
import { startS3Server, s3Location, type S3TestServer } from './helpers/s3server.js';
import { tmpDir, runCli, describeTree, makeTree } from './helpers/tmp.js';
import { openStorage } from '../src/storage/open.js';

/** The engine suite, CLI round trip and corruption detection against a real S3 server over HTTP. */
let srv: S3TestServer;
before(async () => {
  srv = await startS3Server();
});
after(async () => {
  await srv?.stop();
});

engineSuite('s3', async (dir) => {
  const loc = s3Location(srv, path.basename(dir));
  return { storage: () => openStorage(loc.location, loc.opts) };
});

describe('CLI against S3', () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir();
  });
  after(() => t.cleanup());

  function client(): S3Client {
    return new S3Client({
      endpoint: srv.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: srv.accessKeyId, secretAccessKey: srv.secretAccessKey },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
  }

  test('init, backup, restore, check; a flipped byte in a pack object is found by check --read-data', async () => {
    const loc = s3Location(srv, 'cli-e2e');
    const env = { ...loc.env, LIFEBOAT_PASSWORD: 's3-pw' };
    const data = path.join(t.dir, 'data');
    await makeTree(data, { files: 150, seed: 21 });
    await fsp.writeFile(path.join(data, 'big.bin'), randomBytes(20 * 1024 * 1024));
    let r = await runCli(['init', '--repo', loc.location], { env });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['backup', '--repo', loc.location, data], { env });
    assert.equal(r.code, 0, r.stderr);
    const out = path.join(t.dir, 'out');
    r = await runCli(['restore', 'latest', '--repo', loc.location, '--target', out], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await describeTree(path.join(out, data)), await describeTree(data));
    r = await runCli(['check', '--repo', loc.location, '--read-data'], { env });
    assert.equal(r.code, 0, r.stderr);

    // damage one pack object through the S3 API
    const s3 = client();
    const list = await s3.send(new ListObjectsV2Command({ Bucket: srv.bucket, Prefix: 'cli-e2e/data/' }));
    const victim = list.Contents!.sort((a, b) => (b.Size ?? 0) - (a.Size ?? 0))[0]!.Key!;
    const obj = await s3.send(new GetObjectCommand({ Bucket: srv.bucket, Key: victim }));
    const body = Buffer.from(await obj.Body!.transformToByteArray());
    body[12345] ^= 0x10;
    await s3.send(new PutObjectCommand({ Bucket: srv.bucket, Key: victim, Body: body }));
    r = await runCli(['check', '--repo', loc.location, '--read-data'], { env });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`pack ${path.basename(victim)}`));
    assert.match(r.stderr, /affects snapshot/);
    s3.destroy();
  });

  test('wrong password and unreachable endpoint give documented exit codes', async () => {
    const loc = s3Location(srv, 'cli-pw');
    let r = await runCli(['init', '--repo', loc.location], { env: { ...loc.env, LIFEBOAT_PASSWORD: 'a' } });
    assert.equal(r.code, 0, r.stderr);
    r = await runCli(['snapshots', '--repo', loc.location], { env: { ...loc.env, LIFEBOAT_PASSWORD: 'b' } });
    assert.equal(r.code, 12);
    r = await runCli(['snapshots', '--repo', 's3:http://127.0.0.1:1/bucket'], { env: { ...loc.env, LIFEBOAT_PASSWORD: 'a' } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach S3 endpoint/);
  });
});
