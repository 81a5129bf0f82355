import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { IntegrityError, LifeboatError, WrongPasswordError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import { DEFAULT_SCRYPT, type MasterKey, type ScryptParams, deriveKey, open, seal, sha256 } from './crypto.js';
import { MAX_KEY_FILE } from './pack.js';
import { isAuthFailure } from './decode-errors.js';
import { byCodeUnit } from '../util/compare.js';

/**
 * Key files (keys/<sha256 of file>): the repository master key wrapped with a
 * key derived from a password by scrypt. Several key files may wrap the same
 * master key (one per person/machine); removing a key file revokes that password.
 */
export interface KeyFile {
  v: 1;
  created: string;
  hostname: string;
  username: string;
  kdf: 'scrypt';
  N: number;
  r: number;
  p: number;
  salt: string;
  data: string;
}

export interface KeyInfo {
  name: string;
  created: string;
  hostname: string;
  username: string;
  current: boolean;
}

function scryptParams(): ScryptParams {
  // Tests may lower the cost with LIFEBOAT_TEST_SCRYPT_N; never below 2^10.
  const n = Number(process.env.LIFEBOAT_TEST_SCRYPT_N);
  if (Number.isInteger(n) && n >= 1024 && (n & (n - 1)) === 0) return { ...DEFAULT_SCRYPT, N: n };
  return DEFAULT_SCRYPT;
}

export async function createKeyFile(storage: Storage, password: string, master: MasterKey): Promise<string> {
  if (!password) throw new LifeboatError('empty password: a repository password is required');
  const params = scryptParams();
  const salt = randomBytes(32);
  const kek = await derive(password, salt, params);
  const payload = Buffer.from(JSON.stringify({ encKey: master.encKey.toString('base64'), idKey: master.idKey.toString('base64') }));
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    /* no passwd entry */
  }
  const kf: KeyFile = {
    v: 1,
    created: new Date().toISOString(),
    hostname: hostname(),
    username: user,
    kdf: 'scrypt',
    N: params.N,
    r: params.r,
    p: params.p,
    salt: salt.toString('base64'),
    data: seal(kek, payload).toString('base64'),
  };
  const bytes = Buffer.from(JSON.stringify(kf, null, 1));
  const name = sha256(bytes);
  await storage.save('key', name, bytes);
  return name;
}

export function parseKeyFile(bytes: Buffer, name: string): KeyFile {
  let k: Partial<KeyFile>;
  try {
    k = JSON.parse(bytes.toString('utf8')) as Partial<KeyFile>;
  } catch {
    throw new IntegrityError(`key ${name}: not valid JSON`);
  }
  const int = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v > 0;
  if (!k || k.v !== 1 || k.kdf !== 'scrypt' || !int(k.N) || !int(k.r) || !int(k.p)) {
    throw new IntegrityError(`key ${name}: unsupported or malformed key file`);
  }
  // Bound the KDF cost so a crafted key file cannot exhaust memory: N*r*128 <= 1 GiB.
  if ((k.N as number) > 1 << 22 || (k.r as number) > 32 || (k.p as number) > 16 || (k.N as number) * (k.r as number) * 128 > 1 << 30) {
    throw new IntegrityError(`key ${name}: scrypt parameters out of range`);
  }
  if (typeof k.salt !== 'string' || typeof k.data !== 'string') throw new IntegrityError(`key ${name}: missing salt or data`);
  return k as KeyFile;
}

/**
 * Key derivations started ahead of the repository's open (prewarmKeys), by key file and
 * password; each is taken by the first unwrapKeyFile of the same key file and password and
 * then forgotten, so no derived key outlives the open that needed it.
 */
const warm = new Map<string, Promise<Buffer>>();
let derivations = 0;
let warmUsed = 0;
/** openWithPassword calls begun: a prewarm that an open overtook (a slow list or read) starts nothing. */
let opens = 0;

function warmId(kf: KeyFile, password: string): string {
  return sha256(Buffer.from(`${kf.N},${kf.r},${kf.p},${kf.salt}\0${password}`, 'utf8'));
}

/** Every scrypt of this module (counted for keyDerivations). */
function derive(password: string, salt: Buffer, params: ScryptParams): Promise<Buffer> {
  derivations++;
  return deriveKey(password, salt, params);
}

function deriveFor(kf: KeyFile, password: string): Promise<Buffer> {
  return derive(password, Buffer.from(kf.salt, 'base64'), { N: kf.N, r: kf.r, p: kf.p });
}

/** Scrypt derivations this process started for key files, prewarmed ones an open took, and prewarmed ones still waiting (tests). */
export function keyDerivations(): { started: number; used: number; waiting: number } {
  return { started: derivations, used: warmUsed, waiting: warm.size };
}

/**
 * Start the key derivation of the first `max` key files (in the order openWithPassword tries
 * them) while the process goes on loading the rest of its code: scrypt (≈ 90 ms of a pool
 * thread at N = 2^15) then overlaps the module loading of a short command (wal-push,
 * wal-fetch) instead of following it. Reads only: a key file it cannot list, read or
 * parse is left to the open, which reports it. Resolves once the derivations have started.
 */
export async function prewarmKeys(storage: Storage, password: string, max = 1): Promise<number> {
  if (!password) return 0;
  const at = opens;
  let started = 0;
  for (const f of (await storage.list('key')).slice(0, max)) {
    if (f.size > MAX_KEY_FILE) continue;
    let kf: KeyFile;
    try {
      kf = parseKeyFile(await storage.load('key', f.name), f.name);
    } catch {
      continue;
    }
    // an open began meanwhile: it derives for itself, and a late entry would outlive it
    if (opens !== at) break;
    const id = warmId(kf, password);
    if (warm.has(id)) continue;
    const p = deriveFor(kf, password);
    p.catch(() => {});
    warm.set(id, p);
    started++;
  }
  return started;
}

export async function unwrapKeyFile(kf: KeyFile, name: string, password: string): Promise<MasterKey> {
  const id = warmId(kf, password);
  const pre = warm.get(id);
  if (pre) {
    warm.delete(id);
    warmUsed++;
  }
  // a prewarmed derivation that failed is done again here, and its error reported from here
  const kek = pre ? await pre.catch(() => deriveFor(kf, password)) : await deriveFor(kf, password);
  const plain = open(kek, Buffer.from(kf.data, 'base64'), `key ${name}`);
  const m = JSON.parse(plain.toString('utf8')) as { encKey: string; idKey: string };
  const key = { encKey: Buffer.from(m.encKey, 'base64'), idKey: Buffer.from(m.idKey, 'base64') };
  if (key.encKey.length !== 32 || key.idKey.length !== 32) throw new IntegrityError(`key ${name}: master key has wrong length`);
  return key;
}

/**
 * Try every key file; returns the master key and the name of the key file that opened.
 *
 * `accept` (the repository's open passes a check that the config authenticates under the
 * master key) is asked about every master key the password unwraps; one it rejects is passed
 * over for the next key file. A key file can wrap another master key under the same password:
 * the one written by an init that lost the race to create the config (Repository.init removes
 * it again, but another process may list it meanwhile, and a kill -9 can leave it for good).
 * If the password unwraps keys but `accept` rejects them all, its error is thrown: the first one
 * that is not an authentication failure (the config is damaged), else the last.
 */
export async function openWithPassword(
  storage: Storage,
  password: string,
  accept?: (key: MasterKey) => void,
): Promise<{ key: MasterKey; keyName: string }> {
  opens++;
  const files = await storage.list('key');
  if (files.length === 0) throw new LifeboatError(`repository at ${storage.location} has no key files`, 10);
  let lastErr: unknown;
  let rejected: unknown;
  try {
    for (const f of files) {
      let key: MasterKey;
      try {
        if (f.size > MAX_KEY_FILE) throw new IntegrityError(`key ${f.name}: ${f.size} bytes is larger than the format maximum for a key file (${MAX_KEY_FILE})`);
        const kf = parseKeyFile(await storage.load('key', f.name), f.name);
        key = await unwrapKeyFile(kf, f.name, password);
      } catch (err) {
        lastErr = err;
        continue;
      }
      try {
        accept?.(key);
      } catch (err) {
        // a master key the config does not authenticate under says less than one it does (whose config is then damaged)
        if (rejected === undefined || isAuthFailure(rejected)) rejected = err;
        continue;
      }
      return { key, keyName: f.name };
    }
  } finally {
    // what is left was a wrong guess (another repository or password): no derived key is kept
    warm.clear();
  }
  if (rejected !== undefined) throw rejected;
  if (lastErr instanceof IntegrityError && !isAuthFailure(lastErr)) throw lastErr;
  throw new WrongPasswordError();
}

export async function listKeys(storage: Storage, currentName?: string): Promise<KeyInfo[]> {
  const out: KeyInfo[] = [];
  for (const f of await storage.list('key')) {
    if (f.size > MAX_KEY_FILE) throw new IntegrityError(`key ${f.name}: ${f.size} bytes is larger than the format maximum for a key file (${MAX_KEY_FILE})`);
    const kf = parseKeyFile(await storage.load('key', f.name), f.name);
    out.push({ name: f.name, created: kf.created, hostname: kf.hostname, username: kf.username, current: f.name === currentName });
  }
  return out.sort((a, b) => byCodeUnit(a.created, b.created));
}
