/**
 * Blob, pack and object ids: 64 lowercase hex digits (32 bytes). isHexId runs
 * for every entry of a pack header or an index file read in JavaScript (millions
 * on a large repository, optimized code): a character loop instead of a regular
 * expression.
 */
export function isHexId(s: unknown): s is string {
  if (typeof s !== 'string' || s.length !== 64) return false;
  for (let i = 0; i < 64; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}

/** 64 lowercase hex digits: an id in a tree, a snapshot, a log archive or a stream record (one expression for all; not global, so it keeps no state between tests). */
export const HEX_ID = /^[0-9a-f]{64}$/;

/**
 * Decode a 64-digit lowercase hex id into out[0..32). False (out unspecified) when `s` is not such an id.
 *
 * A regular expression and Buffer's native hex decoding, not a character loop: the lookups run
 * per chunk and per tree in a restore, whose main thread runs without V8's optimizing compiler
 * (util/jit.ts), and there the loop took ~4.5 µs an id against ~1.2 µs (a full restore of the
 * bench's 23,000 files: ~130 ms of its main thread; docs/benchmarks.md, "A restore's main
 * thread: index lookups' hex ids and tree names"). Optimized, the two are within 0.2 µs of each other. The expression is
 * checked first: Buffer's decoding alone would take upper-case digits and stop silently at the
 * first other character.
 */
export function decodeHexId(s: unknown, out: Buffer): boolean {
  if (typeof s !== 'string' || s.length !== 64 || !HEX_ID.test(s)) return false;
  return out.write(s, 0, 32, 'hex') === 32;
}
