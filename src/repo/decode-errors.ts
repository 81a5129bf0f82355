import { IntegrityError } from '../errors.js';

/**
 * The errors of opening and decoding a sealed blob, one wording for every path that
 * decodes: crypto.ts open, codec.ts BlobCodec, and the C codec's codes
 * (native-read-pool.ts), whose outcomes the tests compare blob by blob.
 */
export const decodeErrors = {
  tooShort: (what: string, bytes: number) => new IntegrityError(`${what}: too short to be a sealed object (${bytes} bytes)`),
  authFailed: (what: string) => new IntegrityError(`${what}: authentication failed (data modified, truncated or from another repository)`),
  noBase: (what: string) => new IntegrityError(`${what}: delta blob decoded without its base`),
  decompression: (what: string, message: string, rawLength: number) =>
    new IntegrityError(`${what}: decompression failed (${message}; the index declares ${rawLength} bytes)`),
  length: (what: string, bytes: number, rawLength: number) => new IntegrityError(`${what}: decoded to ${bytes} bytes, index says ${rawLength}`),
};

/** Whether `err` is an authentication failure (decodeErrors.authFailed: wrong key, or the bytes were changed). */
export function isAuthFailure(err: unknown): boolean {
  return err instanceof IntegrityError && /authentication failed/.test(err.message);
}
