import { createCipheriv, createDecipheriv, createHmac, createHash, pbkdf2Sync, randomBytes, scrypt as scryptCb } from 'node:crypto';
import { kdfNative } from './native.js';
import { decodeErrors } from './decode-errors.js';

/**
 * Authenticated encryption for everything Lifeboat stores.
 * Sealed format: nonce (12 bytes) || AES-256-GCM ciphertext || tag (16 bytes).
 */
export const NONCE_LEN = 12;
export const TAG_LEN = 16;
export const SEAL_OVERHEAD = NONCE_LEN + TAG_LEN;

export interface MasterKey {
  /** AES-256-GCM key for every sealed object. */
  encKey: Buffer;
  /** HMAC-SHA256 key for blob ids (ids are keyed so they reveal nothing about content). */
  idKey: Buffer;
}

export function newMasterKey(): MasterKey {
  return { encKey: randomBytes(32), idKey: randomBytes(32) };
}

/**
 * Nonces come from one CSPRNG draw of NONCE_BATCH nonces at a time (a draw per
 * blob was a measurable share of sealing many small blobs); every 12-byte
 * slice of a fresh draw is used once, so nonces stay random and unrepeated.
 */
const NONCE_BATCH = 256;
let nonces = Buffer.alloc(0);
let noncePos = 0;
function nextNonce(): Buffer {
  if (noncePos + NONCE_LEN > nonces.length) {
    nonces = randomBytes(NONCE_BATCH * NONCE_LEN);
    noncePos = 0;
  }
  return nonces.subarray(noncePos, (noncePos += NONCE_LEN));
}

export function seal(key: Buffer, plaintext: Uint8Array, aad?: Uint8Array): Buffer {
  const nonce = nextNonce();
  const c = createCipheriv('aes-256-gcm', key, nonce);
  if (aad) c.setAAD(aad);
  const body = c.update(plaintext);
  const fin = c.final();
  const tag = c.getAuthTag();
  return fin.length ? Buffer.concat([nonce, body, fin, tag]) : Buffer.concat([nonce, body, tag]);
}

/** Decrypts and authenticates; throws IntegrityError if the data was modified or the key is wrong. */
export function open(key: Buffer, sealed: Uint8Array, what: string, aad?: Uint8Array): Buffer {
  if (sealed.length < SEAL_OVERHEAD) {
    throw decodeErrors.tooShort(what, sealed.length);
  }
  const buf = Buffer.isBuffer(sealed) ? sealed : Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  const nonce = buf.subarray(0, NONCE_LEN);
  const tag = buf.subarray(buf.length - TAG_LEN);
  const d = createDecipheriv('aes-256-gcm', key, nonce);
  if (aad) d.setAAD(aad);
  d.setAuthTag(tag);
  try {
    const body = d.update(buf.subarray(NONCE_LEN, buf.length - TAG_LEN));
    const fin = d.final();
    return fin.length ? Buffer.concat([body, fin]) : body;
  } catch {
    throw decodeErrors.authFailed(what);
  }
}

/** Ciphertext deciphered per update() by openInPlace. */
const IN_PLACE_PIECE = 1 << 20;

/**
 * open() without a second buffer: the plaintext is written over the ciphertext
 * in `sealed` (GCM's output is as long as its input, piece by piece) and
 * returned as a view of it, [NONCE_LEN, length - TAG_LEN). `sealed` is
 * consumed: on failure it holds garbage and nothing of it may be used. For a
 * large object read once (an index file: its sealed bytes, plaintext and JSON
 * text were all alive at once, ~25 MB for 100,000 entries).
 */
export function openInPlace(key: Buffer, sealed: Buffer, what: string): Buffer {
  if (sealed.length < SEAL_OVERHEAD) throw decodeErrors.tooShort(what, sealed.length);
  const end = sealed.length - TAG_LEN;
  const d = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, NONCE_LEN));
  d.setAuthTag(sealed.subarray(end));
  try {
    let at = NONCE_LEN;
    for (let o = NONCE_LEN; o < end; o += IN_PLACE_PIECE) {
      const piece = d.update(sealed.subarray(o, Math.min(end, o + IN_PLACE_PIECE)));
      piece.copy(sealed, at);
      at += piece.length;
    }
    const fin = d.final();
    fin.copy(sealed, at);
    at += fin.length;
    if (at !== end) throw new Error(`deciphered ${at - NONCE_LEN} bytes of ${end - NONCE_LEN}`);
  } catch {
    throw decodeErrors.authFailed(what);
  }
  return sealed.subarray(NONCE_LEN, end);
}

/** Keyed blob id: HMAC-SHA256(idKey, plaintext), hex. */
export function blobId(idKey: Buffer, data: Uint8Array): string {
  return createHmac('sha256', idKey).update(data).digest('hex');
}

/** Unkeyed SHA-256 hex, used to name storage objects (packs, index files, snapshots, keys). */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 15, r: 8, p: 1 };

/** Blocks of scrypt's table kept by the C ROMix (native/kdf.c): 1/4 of the memory (8 MiB at N = 2^15, r = 8), node's speed. */
export const SCRYPT_KEEP_EVERY = 4;

/**
 * scrypt (RFC 7914) of the password: PBKDF2-HMAC-SHA256, ROMix, PBKDF2-HMAC-SHA256.
 * With the C addon the ROMix keeps every SCRYPT_KEEP_EVERY-th block of its table and
 * recomputes the rest (same key, a quarter of the memory: scrypt's 32 MiB were the
 * peak RSS of every light command); else node's crypto.scrypt. `native: false`
 * forces node's (tests compare the two).
 */
export async function deriveKey(password: string, salt: Buffer, params: ScryptParams, native = true): Promise<Buffer> {
  const kdf = native ? kdfNative() : undefined;
  const { N, r, p } = params;
  const int = (v: number, max: number) => Number.isSafeInteger(v) && v >= 1 && v <= max;
  // the addon's limits (it checks them again); anything else goes to node's scrypt, which reports it
  if (kdf && int(N, 1 << 24) && N >= 2 && (N & (N - 1)) === 0 && int(r, 64) && int(p, 1024) && N * r * 128 <= 2 ** 30 && p * 128 * r <= 16 << 20) {
    const pw = Buffer.from(password, 'utf8');
    const b = pbkdf2Sync(pw, salt, 1, p * 128 * r, 'sha256');
    const x = await kdf.romix(b, N, r, Math.min(SCRYPT_KEEP_EVERY, N));
    b.fill(0);
    const key = pbkdf2Sync(pw, x, 1, 32, 'sha256');
    x.fill(0);
    return key;
  }
  return new Promise((resolve, reject) => {
    scryptCb(
      Buffer.from(password, 'utf8'),
      salt,
      32,
      { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r + (32 << 20) },
      (err, key) => (err ? reject(err) : resolve(key)),
    );
  });
}
