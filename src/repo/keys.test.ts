import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { IntegrityError, WrongPasswordError } from '../errors.js';
import { LocalStorage } from '../storage/local.js';
import { newMasterKey } from './crypto.js';
import { createKeyFile, keyDerivations, openWithPassword, prewarmKeys } from './keys.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

async function repoWithKey(password: string) {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-keys-'));
  dirs.push(dir);
  const storage = new LocalStorage(dir);
  const master = newMasterKey();
  const name = await createKeyFile(storage, password, master);
  return { dir, storage, master, name };
}
const dirs: string[] = [];
test.after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

test('prewarmKeys: the open takes the derivation started ahead instead of deriving again', async () => {
  const r = await repoWithKey('right');
  const before = keyDerivations();
  assert.equal(await prewarmKeys(r.storage, 'right'), 1);
  assert.equal(keyDerivations().waiting, 1);
  const { key, keyName } = await openWithPassword(r.storage, 'right');
  assert.equal(keyName, r.name);
  assert.deepEqual(key, r.master);
  const after = keyDerivations();
  assert.equal(after.started - before.started, 1, 'one scrypt for the prewarm and the open together');
  assert.equal(after.used - before.used, 1);
  assert.equal(after.waiting, 0);
});

test('prewarmKeys: a wrong guess costs a derivation, never the open; nothing is kept after it', async () => {
  const r = await repoWithKey('right');
  const before = keyDerivations();
  assert.equal(await prewarmKeys(r.storage, 'wrong'), 1);
  const { key } = await openWithPassword(r.storage, 'right');
  assert.deepEqual(key, r.master);
  const after = keyDerivations();
  assert.equal(after.started - before.started, 2);
  assert.equal(after.used - before.used, 0);
  assert.equal(after.waiting, 0, 'the wrong guess is dropped by the open');
  // and the other way round: the prewarmed right key does not open for a wrong password
  await prewarmKeys(r.storage, 'right');
  await assert.rejects(openWithPassword(r.storage, 'wrong'), WrongPasswordError);
  assert.equal(keyDerivations().waiting, 0);
});

test('prewarmKeys: no keys, an unreadable or malformed key file: nothing started, the open reports as before', async () => {
  const empty = mkdtempSync(path.join(tmpdir(), 'lb-keys-'));
  try {
    assert.equal(await prewarmKeys(new LocalStorage(empty), 'pw'), 0);
    assert.equal(await prewarmKeys(new LocalStorage(path.join(empty, 'missing')), 'pw'), 0);
    assert.equal(await prewarmKeys(new LocalStorage(empty), ''), 0);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  const r = await repoWithKey('right');
  writeFileSync(path.join(r.dir, 'keys', r.name), '{"v":1,"kdf":"scrypt","N":1e9,"r":8,"p":1,"salt":"","data":""}');
  const before = keyDerivations();
  assert.equal(await prewarmKeys(r.storage, 'right'), 0);
  assert.equal(keyDerivations().started, before.started, 'no scrypt started for out-of-range parameters');
  await assert.rejects(openWithPassword(r.storage, 'right'), /scrypt parameters out of range/);
});

test('prewarmKeys overtaken by the open (a slow list): it starts nothing, and nothing is left behind', async () => {
  const r = await repoWithKey('right');
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  // the prewarm's list answers only after the open is over
  const slow = Object.create(r.storage) as LocalStorage;
  slow.list = async (type) => {
    await gate;
    return r.storage.list(type);
  };
  const before = keyDerivations();
  const pre = prewarmKeys(slow, 'right');
  const { key } = await openWithPassword(r.storage, 'right');
  assert.deepEqual(key, r.master);
  release();
  assert.equal(await pre, 0);
  const after = keyDerivations();
  assert.equal(after.started - before.started, 1, 'the open derived; the late prewarm did not');
  assert.equal(after.waiting, 0, 'no derived key outlives the open');
});

test('openWithPassword: a master key that `accept` rejects is passed over for the next key file; rejected by all, its error is thrown', async () => {
  const r = await repoWithKey('right');
  // a second key file under the same password wrapping another master key, listed first
  const other = newMasterKey();
  const otherName = await createKeyFile(r.storage, 'right', other);
  const first = Object.create(r.storage) as LocalStorage;
  first.list = async (type) => (await r.storage.list(type)).sort((a, b) => (a.name === otherName ? -1 : b.name === otherName ? 1 : 0));
  assert.equal((await first.list('key'))[0]!.name, otherName);
  const tried: Buffer[] = [];
  const accept = (k: { encKey: Buffer }) => {
    tried.push(k.encKey);
    if (!k.encKey.equals(r.master.encKey)) throw new IntegrityError('config: authentication failed (data modified, truncated or from another repository)');
  };
  const { key, keyName } = await openWithPassword(first, 'right', accept);
  assert.equal(keyName, r.name);
  assert.deepEqual(key, r.master);
  assert.deepEqual(tried, [other.encKey, r.master.encKey]);
  // without accept the first key file that unwraps is taken (as before)
  assert.equal((await openWithPassword(first, 'right')).keyName, otherName);
  // nothing accepted: the rejection, not "wrong password"
  await assert.rejects(openWithPassword(first, 'right', () => { throw new IntegrityError('config: authentication failed'); }), /config: authentication failed/);
  // a rejection that is not an authentication failure (a key the config opens under, its content bad) is the one
  // reported, whether its key file is tried before the other or after it
  const last = Object.create(r.storage) as LocalStorage;
  last.list = async (type) => (await first.list(type)).reverse();
  assert.equal((await last.list('key'))[0]!.name, r.name);
  for (const order of [first, last]) {
    await assert.rejects(
      openWithPassword(order, 'right', (k) => {
        throw new IntegrityError(k.encKey.equals(r.master.encKey) ? 'config: cannot decode' : 'config: authentication failed');
      }),
      /config: cannot decode/,
    );
  }
  await assert.rejects(openWithPassword(first, 'wrong', accept), WrongPasswordError);
});
