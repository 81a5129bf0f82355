import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpDir } from './helpers/tmp.js';
import { startS3Server, s3Location } from './helpers/s3server.js';
import { LocalStorage } from '../src/storage/local.js';
import { openStorage } from '../src/storage/open.js';
import type { Storage } from '../src/storage/types.js';

async function contract(st: Storage): Promise<void> {
  await st.create();
  assert.equal(await st.saveNew('config', '', Buffer.from('first')), true);
  assert.equal(await st.saveNew('config', '', Buffer.from('second')), false);
  assert.equal((await st.load('config', '')).toString(), 'first', 'saveNew must never replace an existing object');
}

test('saveNew is create-only (local: exactly one of many concurrent creators wins)', async () => {
  const t = tmpDir();
  try {
    await contract(new LocalStorage(`${t.dir}/a`));
    const st = new LocalStorage(`${t.dir}/b`);
    await st.create();
    const wins = await Promise.all(Array.from({ length: 8 }, (_, i) => new LocalStorage(`${t.dir}/b`).saveNew('config', '', Buffer.from(`w${i}`))));
    assert.equal(wins.filter(Boolean).length, 1);
    const content = (await st.load('config', '')).toString();
    assert.equal(`w${wins.indexOf(true)}`, content);
  } finally {
    t.cleanup();
  }
});

test('saveNew is create-only (S3)', async () => {
  const srv = await startS3Server();
  try {
    const loc = s3Location(srv, 'savenew');
    await contract(openStorage(loc.location, loc.opts));
  } finally {
    await srv.stop();
  }
});
