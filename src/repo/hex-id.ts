/**
 * Blob, pack and object ids: 64 lowercase hex digits (32 bytes). These checks
 * run for every index entry when a repository is opened (millions on a large
 * repository): a character loop instead of a regular expression, and the
 * check and the decoding in one pass.
 */
export function isHexId(s: unknown): s is string {
  if (typeof s !== 'string' || s.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Decode a 64-digit lowercase hex id into out[0..32). False (out unspecified) when `s` is not such an id. */
export function decodeHexId(s: unknown, out: Uint8Array): boolean {
  if (typeof s !== 'string' || s.length !== 64) return false;
  for (let i = 0; i < 32; i++) {
    const hi = nibble(s.charCodeAt(2 * i));
    const lo = nibble(s.charCodeAt(2 * i + 1));
    if ((hi | lo) < 0) return false;
    out[i] = (hi << 4) | lo;
  }
  return true;
}
