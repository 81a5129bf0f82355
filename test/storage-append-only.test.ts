import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { writeFileSync, mkdirSync } from 'node:fs';
import { makeTree, runCliMeasured, tmpDir, type MeasuredResult } from './helpers/tmp.js';
import { startS3Server, s3Location, type S3TestServer } from './helpers/s3server.js';
import { rcloneMissing, rcloneLocation, RCLONE_ENV, useRcloneEnv } from './helpers/rclone.js';
import { openStorage } from '../src/storage/open.js';
import { AppendOnlyError } from '../src/storage/retry.js';
import { LifeboatError } from '../src/errors.js';
import type { Storage } from '../src/storage/types.js';

/**
 * Append-only repositories (ransomware protection): the backup host's
 * credentials can add but never delete or overwrite; locks still come and go;
 * forget/prune run from a trusted host with full credentials.
 */
const GUARD = { killAfterMs: 120_000 };
const name = (n: number) => 'cd'.repeat(31) + n.toString(16).padStart(2, '0');

function ok(r: MeasuredResult, what: string): void {
  assert.equal(r.killed, false, `${what} hung: ${r.stderr}`);
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
}
function refused(r: MeasuredResult, what: string, re: RegExp): void {
  assert.equal(r.killed, false, `${what} hung`);
  assert.equal(r.code, 1, `${what} should fail with exit 1: ${r.stdout} ${r.stderr}`);
  assert.match(r.stderr, re, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `${what}: no stack trace`);
}
const inner = (st: Storage): Storage => (st as unknown as { inner: Storage }).inner;

describe('append-only: S3 with an append-only key', () => {
  let t: ReturnType<typeof tmpDir>;
  let srv: S3TestServer;
  before(async () => {
    t = tmpDir('lb-ao-');
    srv = await startS3Server();
  });
  after(async () => {
    await srv.stop();
    t.cleanup();
  });

  it('the server refuses every delete and overwrite of the append-only key (locks excepted), reported as append-only', async () => {
    const loc = s3Location(srv, 'raw');
    const full = openStorage(loc.location, loc.opts);
    await full.save('index', name(1), Buffer.from('one'));
    await full.close();
    const ao = openStorage(loc.location, { s3: { ...loc.opts.s3, accessKeyId: srv.appendOnlyAccessKeyId }, appendOnly: true });
    const raw = inner(ao); // past the client-side guard: the server alone must refuse
    for (const attempt of [() => raw.remove('index', name(1)), () => raw.save('index', name(1), Buffer.from('two'))]) {
      await assert.rejects(attempt(), (err: unknown) => {
        assert.ok(err instanceof AppendOnlyError, String(err));
        assert.match(err.message, /the credentials are append-only; run forget\/prune from a trusted host/);
        return true;
      });
    }
    // the client-side guard refuses before any request
    await assert.rejects(ao.remove('index', name(1)), /refused to delete index\/.* append-only/);
    await assert.rejects(ao.save('index', name(1), Buffer.from('two')), /refused to overwrite index\/.* append-only/);
    await raw.save('lock', name(2), Buffer.from('l'));
    await raw.save('lock', name(2), Buffer.from('l2'));
    await raw.remove('lock', name(2));
    await raw.save('index', name(3), Buffer.from('three'));
    await ao.close();
    const check = openStorage(loc.location, loc.opts);
    assert.equal((await check.load('index', name(1))).toString(), 'one');
    await check.close();
  });

  it('CLI: backups work with append-only credentials, forget/prune are refused clearly, the trusted host prunes', async () => {
    const loc = s3Location(srv, 'cli');
    const src = path.join(t.dir, 'src');
    await makeTree(src, { files: 40, seed: 5 });
    const full = { ...loc.env, LIFEBOAT_PASSWORD: 'pw' };
    const backupHost = { ...full, AWS_ACCESS_KEY_ID: srv.appendOnlyAccessKeyId };
    ok(await runCliMeasured(['init', '--repo', loc.location], { env: full, ...GUARD }), 'init (full credentials)');
    for (let i = 0; i < 3; i++) {
      writeFileSync(path.join(src, `changing-${i}.txt`), `version ${i}\n`);
      ok(await runCliMeasured(['backup', '--append-only', '--repo', loc.location, src], { env: backupHost, ...GUARD }), `backup ${i} (append-only)`);
    }
    // the append-only host cannot destroy history, with or without --append-only
    refused(await runCliMeasured(['forget', '--append-only', '--keep-last', '1', '--repo', loc.location], { env: backupHost, ...GUARD }), 'forget --append-only', /refused to delete snapshots\/.* append-only/);
    refused(await runCliMeasured(['prune', '--append-only', '--repo', loc.location], { env: backupHost, ...GUARD }), 'prune --append-only', /"prune" deletes data and cannot run .* append-only/);
    refused(await runCliMeasured(['forget', '--keep-last', '1', '--repo', loc.location], { env: backupHost, ...GUARD }), 'forget with append-only key', /S3 refused a write \(AccessDenied\) while removing .*snapshots\//);
    const snaps = await runCliMeasured(['snapshots', '--json', '--repo', loc.location], { env: full, ...GUARD });
    ok(snaps, 'snapshots');
    assert.equal((JSON.parse(snaps.stdout) as unknown[]).length, 3, 'no snapshot was lost');
    // no lock is left behind by the refused runs
    const locks = openStorage(loc.location, loc.opts);
    assert.deepEqual(await locks.list('lock'), []);
    await locks.close();
    // the trusted host
    ok(await runCliMeasured(['forget', '--keep-last', '1', '--prune', '--repo', loc.location], { env: full, ...GUARD }), 'forget --prune (full credentials)');
    const after = await runCliMeasured(['snapshots', '--json', '--repo', loc.location], { env: full, ...GUARD });
    assert.equal((JSON.parse(after.stdout) as unknown[]).length, 1);
    ok(await runCliMeasured(['check', '--read-data', '--repo', loc.location], { env: full, ...GUARD }), 'check --read-data');
  });
});

describe('append-only: rclone serve --append-only', { skip: rcloneMissing() }, () => {
  let t: ReturnType<typeof tmpDir>;
  before(() => {
    t = tmpDir('lb-ao-rclone-');
    useRcloneEnv();
  });
  after(() => t.cleanup());

  it('CLI: backup works, forget is refused by the client and rclone, prune from a trusted host works', async () => {
    const repo = rcloneLocation(path.join(t.dir, 'repo'));
    const src = path.join(t.dir, 'src');
    mkdirSync(src);
    const env = { ...RCLONE_ENV, LIFEBOAT_PASSWORD: 'pw' };
    ok(await runCliMeasured(['init', '--repo', repo], { env, ...GUARD }), 'init');
    for (let i = 0; i < 2; i++) {
      writeFileSync(path.join(src, 'f.txt'), `v${i}`);
      ok(await runCliMeasured(['backup', '--append-only', '--repo', repo, src], { env, ...GUARD }), `backup ${i}`);
    }
    refused(await runCliMeasured(['forget', '--append-only', '--keep-last', '1', '--repo', repo], { env, ...GUARD }), 'forget', /append-only/);
    // rclone itself refuses (the client guard bypassed)
    const st = openStorage(repo, { appendOnly: true });
    const snaps = await st.list('snapshot');
    await assert.rejects(inner(st).remove('snapshot', snaps[0]!.name), (err: unknown) => err instanceof LifeboatError && /rclone serve --append-only/.test(err.message));
    await st.close();
    ok(await runCliMeasured(['forget', '--keep-last', '1', '--prune', '--repo', repo], { env, ...GUARD }), 'forget --prune (trusted)');
    ok(await runCliMeasured(['check', '--read-data', '--repo', repo], { env, ...GUARD }), 'check --read-data');
  });
});
