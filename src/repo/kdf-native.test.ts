import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pbkdf2Sync, randomBytes, scryptSync } from 'node:crypto';
import { existsSync } from 'node:fs';
import { deriveKey } from './crypto.js';
import { kdfNative } from './native.js';

// scrypt's ROMix in C with a smaller table (native/kdf.c) against node's crypto.scrypt: a key file's
// key must come out the same whichever one derives it, or the repository does not open.
const addon = new URL('../../../native/build/Release/kdf.node', import.meta.url).pathname;
const skip =
  process.env.LIFEBOAT_NO_NATIVE === '1' ? 'LIFEBOAT_NO_NATIVE=1' : !existsSync(addon) ? 'native/ did not build (no compiler): node scrypt is used' : false;

function native() {
  const n = kdfNative();
  assert.ok(n, `${addon} exists but did not load`);
  return n;
}

/** scrypt with the C ROMix keeping every k-th block. */
async function scryptC(pw: Buffer, salt: Buffer, N: number, r: number, p: number, dk: number, k: number): Promise<Buffer> {
  const b = pbkdf2Sync(pw, salt, 1, p * 128 * r, 'sha256');
  return pbkdf2Sync(pw, await native().romix(b, N, r, k), 1, dk, 'sha256');
}

test('RFC 7914 test vectors, both paths', async () => {
  const vectors: [string, string, number, number, number, string][] = [
    ['', '', 16, 1, 1, '77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906'],
    ['password', 'NaCl', 1024, 8, 16, 'fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640'],
    ['pleaseletmein', 'SodiumChloride', 16384, 8, 1, '7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887'],
  ];
  for (const [pw, salt, N, r, p, want] of vectors) {
    assert.equal(scryptSync(pw, salt, 64, { N, r, p, maxmem: 1 << 26 }).toString('hex'), want);
    if (skip) continue;
    for (const k of [1, 2, 4, 8, N]) {
      if (k > N) continue;
      assert.equal((await scryptC(Buffer.from(pw), Buffer.from(salt), N, r, p, 64, k)).toString('hex'), want, `N=${N} r=${r} p=${p} k=${k}`);
    }
  }
});

test('deriveKey: the C ROMix and node scrypt give the same key (random passwords, salts, parameters)', { skip }, async () => {
  const cases: [number, number, number][] = [
    [1 << 15, 8, 1], // the repository's parameters (DEFAULT_SCRYPT)
    [2, 1, 1],
    [4, 3, 2],
  ];
  for (let i = 0; i < 20; i++) cases.push([2 ** (1 + Math.floor(Math.random() * 11)), 1 + Math.floor(Math.random() * 9), 1 + Math.floor(Math.random() * 3)]);
  for (const [N, r, p] of cases) {
    const pw = randomBytes(Math.floor(Math.random() * 40)).toString('base64');
    const salt = randomBytes(32);
    const viaNode = await deriveKey(pw, salt, { N, r, p }, false);
    const viaC = await deriveKey(pw, salt, { N, r, p });
    assert.equal(viaC.toString('hex'), viaNode.toString('hex'), `N=${N} r=${r} p=${p}`);
    assert.equal(viaC.toString('hex'), scryptSync(pw, salt, 32, { N, r, p, maxmem: 1 << 28 }).toString('hex'));
  }
});

test('romix: bad arguments throw, nothing crashes; the input is not changed', { skip }, async () => {
  const n = native();
  const b = randomBytes(128 * 8);
  const copy = Buffer.from(b);
  const bad: unknown[][] = [
    [b, 1000, 8, 4], // N not a power of two
    [b, 1, 8, 1], // N < 2
    [b, 1024, 0, 4], // r = 0
    [b, 1024, 65, 4], // r > 64
    [b, 1024, 8, 3], // k not a power of two
    [b, 1024, 8, 2048], // k > N
    [b, 1024, 8, 0],
    [b.subarray(1), 1024, 8, 4], // not whole blocks
    [Buffer.alloc(0), 1024, 8, 4],
    [b, 2 ** 24, 64, 4], // N*r*128 over 1 GiB
    [b, 2 ** 25, 8, 4],
    [b, 1024.5, 8, 4],
    [b, NaN, 8, 4],
    [new Uint16Array(512), 1024, 8, 4],
    ['x', 1024, 8, 4],
    [b, 1024, 8],
  ];
  for (const args of bad) {
    assert.throws(() => (n.romix as (...a: unknown[]) => unknown)(...args), TypeError, JSON.stringify(args.slice(1)));
  }
  await n.romix(b, 1024, 8, 4);
  assert.deepEqual(b, copy);
});
