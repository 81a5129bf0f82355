import zstd from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import type { DCtx } from 'zstd-napi/binding.js';
import { createHmac } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { open, seal } from './crypto.js';
import type { Compression } from './pack.js';

/**
 * Decompress zstd frame(s) with the output capped at `limit` bytes: streaming,
 * it stops as soon as the output would exceed the limit (a frame that declares
 * a larger content size is refused before any work), so a decompression bomb
 * costs at most `limit` bytes of memory. `expected`, when known, sizes the
 * first output buffer exactly. Throws a plain Error on any malformed input.
 */
export function decompressCapped(dctx: DCtx, src: Uint8Array, limit: number, expected?: number): Buffer {
  dctx.reset(binding.ResetDirective.sessionOnly);
  if (src.length === 0) throw new Error('empty zstd payload');
  const declared = binding.getFrameContentSize(src);
  if (declared !== null && declared > limit) throw new Error(`zstd frame declares ${declared} bytes, more than the ${limit} allowed`);
  const chunks: Buffer[] = [];
  let total = 0; // bytes in finished chunks
  let buf = Buffer.allocUnsafe(Math.min(limit, expected ?? declared ?? Math.max(64 * 1024, src.length * 4)));
  let pos = 0;
  let consumed = 0;
  let frameDone = false;
  const probe = Buffer.allocUnsafe(1);
  for (;;) {
    if (pos === buf.length) {
      if (total + pos >= limit) {
        // At the cap: any further output means the payload is larger than allowed.
        const [ret, produced, used] = dctx.decompressStream(probe, src.subarray(consumed));
        consumed += used;
        if (produced > 0) throw new Error(`decompresses to more than the ${limit} bytes allowed`);
        frameDone = ret === 0;
        if (frameDone && consumed >= src.length) break;
        if (used === 0 && consumed >= src.length) throw new Error('zstd frame is truncated');
        continue;
      }
      chunks.push(buf);
      total += pos;
      buf = Buffer.allocUnsafe(Math.min(limit - total, Math.max(64 * 1024, total)));
      pos = 0;
    }
    const [ret, produced, used] = dctx.decompressStream(buf.subarray(pos), src.subarray(consumed));
    pos += produced;
    consumed += used;
    frameDone = ret === 0;
    if (frameDone && consumed >= src.length) break;
    if (produced === 0 && used === 0 && pos < buf.length) throw new Error('zstd frame is truncated');
  }
  if (chunks.length === 0) return pos === buf.length ? buf : buf.subarray(0, pos);
  chunks.push(buf.subarray(0, pos));
  return Buffer.concat(chunks, total + pos);
}

/**
 * Decompress zstd frame(s) into `out` (the caller's memory, exactly the
 * expected size): the output never exceeds `out` (one more byte means the
 * payload is larger than declared: an error). Returns the bytes produced.
 * Throws a plain Error on any malformed input.
 */
export function decompressExact(dctx: DCtx, src: Uint8Array, out: Buffer): number {
  dctx.reset(binding.ResetDirective.sessionOnly);
  if (src.length === 0) throw new Error('empty zstd payload');
  const limit = out.length;
  const declared = binding.getFrameContentSize(src);
  if (declared !== null && declared > limit) throw new Error(`zstd frame declares ${declared} bytes, more than the ${limit} allowed`);
  let pos = 0;
  let consumed = 0;
  for (;;) {
    if (pos === limit) {
      // At the cap: any further output means the payload is larger than allowed.
      const [ret, produced, used] = dctx.decompressStream(probeByte, src.subarray(consumed));
      consumed += used;
      if (produced > 0) throw new Error(`decompresses to more than the ${limit} bytes allowed`);
      if (ret === 0 && consumed >= src.length) break;
      if (used === 0 && consumed >= src.length) throw new Error('zstd frame is truncated');
      continue;
    }
    const [ret, produced, used] = dctx.decompressStream(out.subarray(pos), src.subarray(consumed));
    pos += produced;
    consumed += used;
    if (ret === 0 && consumed >= src.length) break;
    if (produced === 0 && used === 0) throw new Error('zstd frame is truncated');
  }
  return pos;
}
const probeByte = Buffer.alloc(1);

/**
 * decompressCapped without keeping the output: the plaintext passes through one
 * reusable `scratch` buffer in pieces handed to `sink` (check --read-data
 * hashes them), so memory does not grow with the blob. Same limits and the
 * same errors as decompressCapped for the same input. Returns the number of
 * bytes produced.
 */
export function decompressCappedInto(dctx: DCtx, src: Uint8Array, limit: number, scratch: Buffer, sink: (piece: Buffer) => void): number {
  dctx.reset(binding.ResetDirective.sessionOnly);
  if (src.length === 0) throw new Error('empty zstd payload');
  const declared = binding.getFrameContentSize(src);
  if (declared !== null && declared > limit) throw new Error(`zstd frame declares ${declared} bytes, more than the ${limit} allowed`);
  const probe = scratch.subarray(0, 1);
  let total = 0;
  let consumed = 0;
  for (;;) {
    if (total >= limit) {
      // At the cap: any further output means the payload is larger than allowed.
      const [ret, produced, used] = dctx.decompressStream(probe, src.subarray(consumed));
      consumed += used;
      if (produced > 0) throw new Error(`decompresses to more than the ${limit} bytes allowed`);
      if (ret === 0 && consumed >= src.length) break;
      if (used === 0 && consumed >= src.length) throw new Error('zstd frame is truncated');
      continue;
    }
    const room = Math.min(scratch.length, limit - total);
    const [ret, produced, used] = dctx.decompressStream(scratch.subarray(0, room), src.subarray(consumed));
    if (produced > 0) sink(scratch.subarray(0, produced));
    total += produced;
    consumed += used;
    if (ret === 0 && consumed >= src.length) break;
    if (produced === 0 && used === 0) throw new Error('zstd frame is truncated');
  }
  return total;
}

/**
 * Data blobs at least this large carry a resemblance sketch (sketch.ts), when
 * zstd could shrink them (the rule of every encoder: repository.ts, worker.ts,
 * engine/small-files-worker.ts).
 */
export const SKETCH_MIN = 64 * 1024;

/**
 * Blob encoding shared by the main thread and the worker threads:
 * compress (plain zstd, or zstd with a base blob's plaintext as dictionary for
 * delta blobs), then seal. Decoding reverses it. Pure functions over buffers.
 */
export interface Encoded {
  sealed: Buffer;
  compression: Compression;
}

/** Blobs from this size are probed for incompressible data before plain compression (BlobCodec.incompressible). */
export const PROBE_MIN = 64 * 1024;
const PROBE = 4096;

export class BlobCodec {
  private readonly plain: zstd.Compressor;
  private readonly delta: zstd.Compressor;
  private readonly dplain: DCtx;
  private readonly ddelta: DCtx;
  /** zstd level 1 for the incompressibility probes. */
  private readonly probe: zstd.Compressor;

  constructor(
    private readonly encKey: Buffer,
    private readonly level: number,
  ) {
    this.plain = new zstd.Compressor();
    this.plain.setParameters({ compressionLevel: level });
    this.delta = new zstd.Compressor();
    this.delta.setParameters({ compressionLevel: level });
    this.probe = new zstd.Compressor();
    this.probe.setParameters({ compressionLevel: 1 });
    this.dplain = new binding.DCtx();
    this.ddelta = new binding.DCtx();
  }

  /**
   * Encode a blob. With `dict`, try a delta against it; keep the delta only if
   * it is smaller than plain compression would be (plain is computed only when
   * the delta is not obviously better). Never stores more than raw + overhead.
   */
  encode(data: Uint8Array, dict?: Uint8Array): Encoded {
    let best: Buffer | undefined;
    let comp: Compression = 0;
    if (dict && dict.length > 0) {
      // The window must span dictionary + input, or matches far back in the base are unusable.
      // A larger hash table lets the match finder see most of the base (zstd's default for
      // level 3 indexes too few positions of a 1 MiB dictionary: deltas came out 10x larger).
      const span = Math.ceil(Math.log2(dict.length + data.length + 1));
      const windowLog = Math.min(27, Math.max(20, span));
      const hashLog = Math.min(20, Math.max(17, span - 2));
      // No long-distance matching: measured on PostgreSQL data files (a base backup's tar) it
      // made deltas 2-5x LARGER (its 32-byte matches crowd out the regular match finder's longer
      // ones in pages of repeated rows) and cost a quarter of a daily base backup's CPU; on SQL
      // and pg_dump -Fc dumps deltas came out the same or smaller without it (docs/benchmarks.md).
      // (Level 1's fast strategy was tried: deltas of a 5% file change the same, of a daily dump 7%
      // smaller, 20-35% less CPU, but of PostgreSQL heap pages as large as plain compression: kept.)
      this.delta.setParameters({ windowLog, hashLog });
      this.delta.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
      const d = this.delta.compress(Buffer.from(data.buffer, data.byteOffset, data.length));
      if (d.length < data.length) {
        best = d;
        comp = 2;
      }
    }
    // Plain compression is skipped when the delta already saved half: the delta's window holds
    // the input too, so plain compression could only win by what the base's entries crowd out of
    // zstd's tables (on the 46 changed chunks of a 5% file change, 61-73% saved, plain never won
    // and cost 0.13 CPU s). Nor is it tried on data the probes find incompressible.
    if ((!best || best.length > data.length / 2) && !this.incompressible(data)) {
      const p = this.plain.compress(Buffer.from(data.buffer, data.byteOffset, data.length));
      if (p.length < data.length && (!best || p.length < best.length)) {
        best = p;
        comp = 1;
      }
    }
    const payload = best ?? data;
    return { sealed: seal(this.encKey, payload), compression: best ? comp : 0 };
  }

  /**
   * True when `data` (at least PROBE_MIN bytes) looks incompressible: three PROBE-byte
   * samples (start, middle, end) each fail to shrink at all at zstd level 1 (zstd
   * then stores a raw block: output = input + frame header). Random, compressed and
   * encrypted data: plain compression at the repository's level would not shrink the
   * whole either (or by a few bytes), and cost ~1.4 ms per MiB in the encode worker
   * (a first backup of 575 MB with 150 MB of such data: ~0.2 CPU s of the busiest
   * thread). A sample with any redundancy (text, code, media headers) sends the whole
   * blob to the compressor as before. The probes cost ~30 µs per MiB blob.
   */
  private incompressible(data: Uint8Array): boolean {
    if (data.length < PROBE_MIN) return false;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
    for (const at of [0, (data.length >> 1) - (PROBE >> 1), data.length - PROBE]) {
      if (this.probe.compress(buf.subarray(at, at + PROBE)).length <= PROBE) return false;
    }
    return true;
  }

  /**
   * Open and decompress a blob. The output never exceeds `rawLength` (the
   * caller has checked it against the format maximum): decompression stops as
   * soon as a payload would produce more.
   */
  decode(sealed: Uint8Array, compression: Compression, rawLength: number, what: string, dict?: Uint8Array): Buffer {
    const payload = open(this.encKey, sealed, what);
    let out: Buffer;
    try {
      if (compression === 0) out = payload;
      else if (compression === 1) out = decompressCapped(this.dplain, payload, rawLength, rawLength);
      else {
        if (!dict) throw new IntegrityError(`${what}: delta blob decoded without its base`);
        try {
          this.ddelta.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
          out = decompressCapped(this.ddelta, payload, rawLength, rawLength);
        } finally {
          // drop the context's copy of the dictionary (up to two blobs) right away
          this.ddelta.reset(binding.ResetDirective.sessionAndParameters);
        }
      }
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new IntegrityError(`${what}: decompression failed (${(err as Error).message}; the index declares ${rawLength} bytes)`);
    }
    if (out.length !== rawLength) {
      throw new IntegrityError(`${what}: decoded to ${out.length} bytes, index says ${rawLength}`);
    }
    return out;
  }

  /**
   * decode() of a full blob (no dictionary) into `out`, the caller's memory of
   * exactly `rawLength` bytes: the same checks and errors, no output buffer of its own.
   */
  decodeInto(sealed: Uint8Array, compression: Compression, rawLength: number, what: string, out: Buffer): void {
    if (out.length !== rawLength) throw new Error(`${what}: output of ${out.length} bytes for ${rawLength}`);
    const payload = open(this.encKey, sealed, what);
    let n: number;
    try {
      if (compression === 0) {
        n = payload.length;
        if (n === rawLength) payload.copy(out);
      } else if (compression === 1) n = decompressExact(this.dplain, payload, out);
      else throw new IntegrityError(`${what}: delta blob decoded without its base`);
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new IntegrityError(`${what}: decompression failed (${(err as Error).message}; the index declares ${rawLength} bytes)`);
    }
    if (n !== rawLength) throw new IntegrityError(`${what}: decoded to ${n} bytes, index says ${rawLength}`);
  }

  /**
   * Open and decompress a blob and return the keyed hash (blobId) of its
   * plaintext, without holding the plaintext: it streams through `scratch`.
   * Checks and errors are those of decode().
   */
  decodeId(sealed: Uint8Array, compression: Compression, rawLength: number, what: string, idKey: Buffer, scratch: Buffer, dict?: Uint8Array): string {
    const payload = open(this.encKey, sealed, what);
    const h = createHmac('sha256', idKey);
    let n: number;
    try {
      if (compression === 0) {
        h.update(payload);
        n = payload.length;
      } else if (compression === 1) n = decompressCappedInto(this.dplain, payload, rawLength, scratch, (p) => h.update(p));
      else {
        if (!dict) throw new IntegrityError(`${what}: delta blob decoded without its base`);
        try {
          this.ddelta.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
          n = decompressCappedInto(this.ddelta, payload, rawLength, scratch, (p) => h.update(p));
        } finally {
          this.ddelta.reset(binding.ResetDirective.sessionAndParameters);
        }
      }
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new IntegrityError(`${what}: decompression failed (${(err as Error).message}; the index declares ${rawLength} bytes)`);
    }
    if (n !== rawLength) throw new IntegrityError(`${what}: decoded to ${n} bytes, index says ${rawLength}`);
    return h.digest('hex');
  }
}
