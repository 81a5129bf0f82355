import { nativeAddon } from '../util/native.js';
import { MAX_DATA_BLOB, MAX_PACK_SIZE, MAX_TREE_BLOB, SEAL_OVERHEAD } from './pack.js';

/**
 * An index file's columns as the C scanner (native/index-scan.c) reads them
 * from the file's JSON: P packs, N blobs (in file order, pack by pack).
 */
export interface IndexScan {
  /** P pack ids of 32 bytes. */
  packIds: Buffer;
  /** packEnd[p]: the blobs of packs 0..p (pack p's blobs end there). */
  packEnd: Uint32Array;
  /** N blob ids of 32 bytes. */
  ids: Buffer;
  /**
   * Per blob [offset, length, rawLength, flags]; flags: bits 0-1 the
   * compression, bit 2 a tree blob, bits 8-12 the sketch's length (its words
   * next in `sf`), bit 16 a delta base, bit 17 a second one (next in `bases`).
   */
  num: Uint32Array;
  sf: Uint32Array;
  bases: Buffer;
}

interface IndexScanNative {
  scan(json: Uint8Array, limits: Float64Array): IndexScan | null;
}

const LIMITS = new Float64Array([MAX_DATA_BLOB, MAX_TREE_BLOB, SEAL_OVERHEAD, MAX_PACK_SIZE]);

/**
 * The columns of an index file's JSON, read in C without JSON.parse; undefined
 * when the addon did not build, LIFEBOAT_NO_NATIVE=1, or the file is not in the
 * exact form Lifeboat writes with entries the format's limits take (white
 * space, escapes, unknown or repeated keys, other number forms, an entry
 * validateIndexFile or blobEntryProblem would refuse...). Then the caller
 * parses and checks it as before, which reports every error and refused
 * entry: this path only takes files that path would take whole, with the
 * same values.
 */
export function scanIndexJson(json: Uint8Array): IndexScan | undefined {
  const n = nativeAddon<IndexScanNative>('indexscan');
  if (!n) return undefined;
  return n.scan(json, LIMITS) ?? undefined;
}
