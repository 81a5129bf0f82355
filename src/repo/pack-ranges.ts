/**
 * Split a pack's blob area into contiguous ranges read one at a time (check
 * --read-data streams a pack instead of loading it whole). Every byte of
 * [0, blobArea) is in exactly one range, in order (the pack's SHA-256 is
 * computed over them); ranges end at blob boundaries, so each blob lies wholly
 * inside the range it starts in and is decoded straight from it, without a copy.
 * A range is at most `target` bytes, or one blob (plus a gap shorter than
 * `target`) when that blob is larger. A blob that starts inside an earlier
 * range and reaches past its end (overlapping blobs: only in a damaged or
 * hostile pack) is a stray, read on its own.
 */
export interface PackRange<B> {
  start: number;
  end: number;
  /** Blobs wholly inside [start, end), by offset. */
  blobs: B[];
}

export function planPackRanges<B extends { offset: number; length: number }>(
  blobs: readonly B[],
  blobArea: number,
  target: number,
): { ranges: Array<PackRange<B>>; strays: B[] } {
  const sorted = [...blobs].sort((a, b) => a.offset - b.offset || a.length - b.length);
  const ranges: Array<PackRange<B>> = [];
  const strays: B[] = [];
  let i = 0;
  let cur = 0;
  while (cur < blobArea) {
    const r: PackRange<B> = { start: cur, end: cur, blobs: [] };
    while (i < sorted.length) {
      const b = sorted[i]!;
      const be = b.offset + b.length;
      if (b.offset < cur || be > blobArea) strays.push(b); // starts in an earlier range (or lies outside the area)
      else if (be <= r.end) r.blobs.push(b);
      else if (be - cur <= target || (r.blobs.length === 0 && b.offset - cur < target)) {
        r.end = be;
        r.blobs.push(b);
      } else break;
      i++;
    }
    if (r.end === cur) r.end = Math.min(blobArea, cur + target); // a gap without blobs
    ranges.push(r);
    cur = r.end;
  }
  while (i < sorted.length) strays.push(sorted[i++]!);
  return { ranges, strays };
}
