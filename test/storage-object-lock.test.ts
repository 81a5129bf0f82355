import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { writeFileSync } from 'node:fs';
import { runCliMeasured, tmpDir } from './helpers/tmp.js';
import { startS3Server, s3Location, type S3TestServer } from './helpers/s3server.js';
import { openStorage } from '../src/storage/open.js';
import { AppendOnlyError } from '../src/storage/retry.js';
import { LifeboatError } from '../src/errors.js';

/**
 * Object Lock is checked, not assumed: init, check and plan check read the
 * bucket's lock configuration and fail when the repository promises retention
 * the bucket does not enforce. New objects carry per-object retention and the
 * configured storage class.
 */
const GUARD = { killAfterMs: 120_000 };
const LOCK = { mode: 'COMPLIANCE' as const, days: 30 };

describe('S3 Object Lock and storage class', () => {
  let t: ReturnType<typeof tmpDir>;
  let locked: S3TestServer;
  let plain: S3TestServer;
  before(async () => {
    t = tmpDir('lb-lock-');
    [locked, plain] = await Promise.all([startS3Server({ objectLock: { mode: 'GOVERNANCE', days: 1 } }), startS3Server()]);
  });
  after(async () => {
    await Promise.all([locked.stop(), plain.stop()]);
    t.cleanup();
  });

  it('a bucket that enforces Object Lock passes; new objects carry retention and the storage class; deleting a retained object is refused', async () => {
    const loc = s3Location(locked, 'repo');
    const st = openStorage(loc.location, { s3: { ...loc.opts.s3, objectLock: LOCK, storageClass: 'STANDARD_IA' } });
    await st.create();
    const lines = await st.checkImmutability!();
    assert.match(lines[0]!, /enforces Object Lock \(default retention GOVERNANCE 1 days\); new objects get COMPLIANCE 30 days/);
    assert.match(lines[1]!, /weaker than the repository's/);
    const id = 'ef'.repeat(32);
    await st.save('index', id, Buffer.from('x'));
    await st.save('lock', id, Buffer.from('l'));
    const puts = (await locked.requests()).filter((r) => r.method === 'PUT' && r.url.includes(id));
    const idx = puts.find((r) => r.url.includes('/index/'))!;
    const lock = puts.find((r) => r.url.includes('/locks/'))!;
    assert.equal(idx.headers['x-amz-object-lock-mode'], 'COMPLIANCE');
    const until = Date.parse(String(idx.headers['x-amz-object-lock-retain-until-date']));
    assert.ok(Math.abs(until - (Date.now() + 30 * 86_400_000)) < 3_600_000, `retain until ${idx.headers['x-amz-object-lock-retain-until-date']}`);
    assert.equal(idx.headers['x-amz-storage-class'], 'STANDARD_IA');
    assert.equal(lock.headers['x-amz-object-lock-mode'], undefined, 'locks are not retained');
    assert.equal(lock.headers['x-amz-storage-class'], undefined, 'locks stay in the default class');
    await assert.rejects(st.remove('index', id), (err: unknown) => err instanceof AppendOnlyError && /protected by Object Lock retention/.test(err.message));
    await st.remove('lock', id);
    await st.close();
  });

  it('a bucket without Object Lock fails loudly at init, check and plan check when the config promises it', async () => {
    const loc = s3Location(plain, 'repo');
    const st = openStorage(loc.location, { s3: { ...loc.opts.s3, objectLock: LOCK } });
    await assert.rejects(st.create(), (err: unknown) => {
      assert.ok(err instanceof LifeboatError);
      assert.match(err.message, /does not enforce Object Lock, but the repository configuration promises COMPLIANCE 30 days retention/);
      return true;
    });
    await st.close();
    // without the promise the same bucket is fine and says so
    const st2 = openStorage(loc.location, loc.opts);
    assert.match((await st2.checkImmutability!())[0]!, /no Object Lock \(not configured/);
    await st2.close();

    // CLI: a repository created without lock, then configured with objectLock: check and plan check fail
    const cfgFile = path.join(t.dir, 'lifeboat.yaml');
    const yaml = (srv: S3TestServer, p: string) => [
      'repositories:',
      '  main:',
      `    location: ${s3Location(srv, p).location}`,
      '    s3:',
      '      objectLock: { mode: COMPLIANCE, days: 30 }',
      'sources:',
      `  data: { kind: files, paths: [${JSON.stringify(t.dir)}] }`,
      'jobs:',
      '  data: { source: data, repository: main }',
      '',
    ].join('\n');
    const env = { ...loc.env, LIFEBOAT_PASSWORD: 'pw' };
    writeFileSync(cfgFile, yaml(plain, 'cli'));
    const init = await runCliMeasured(['init', '--config', cfgFile, '--repo', 'main'], { env, ...GUARD });
    assert.equal(init.code, 1, init.stderr);
    assert.match(init.stderr, /does not enforce Object Lock/);
    // the repository exists (created by an older config without objectLock): check still catches it
    const ok = await runCliMeasured(['init', '--repo', s3Location(plain, 'cli').location], { env, ...GUARD });
    assert.equal(ok.code, 0, ok.stderr);
    const check = await runCliMeasured(['check', '--config', cfgFile, '--repo', 'main'], { env, ...GUARD });
    assert.notEqual(check.code, 0);
    assert.match(check.stdout + check.stderr, /does not enforce Object Lock/);
    const plan = await runCliMeasured(['plan', 'check', '--config', cfgFile], { env, ...GUARD });
    assert.equal(plan.code, 1);
    assert.match(plan.stdout + plan.stderr, /repository main: object lock FAIL: .*does not enforce Object Lock/);
    // the same config against a bucket that enforces the lock
    writeFileSync(cfgFile, yaml(locked, 'cli'));
    const init2 = await runCliMeasured(['init', '--config', cfgFile, '--repo', 'main'], { env, ...GUARD });
    assert.equal(init2.code, 0, init2.stderr);
    const check2 = await runCliMeasured(['check', '--config', cfgFile, '--repo', 'main'], { env, ...GUARD });
    assert.equal(check2.code, 0, check2.stderr);
    const plan2 = await runCliMeasured(['plan', 'check', '--config', cfgFile], { env, ...GUARD });
    assert.match(plan2.stdout, /repository main: object lock ok: bucket "lifeboat-test" enforces Object Lock/);
  });

  it('refuses archive storage classes that need a restore before reading', () => {
    assert.throws(() => openStorage('s3:http://127.0.0.1:9/bkt', { s3: { storageClass: 'DEEP_ARCHIVE' } }), /storage class "DEEP_ARCHIVE" is not supported/);
  });
});
