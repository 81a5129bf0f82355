import zstd from 'zstd-napi';
import binding from 'zstd-napi/binding.js';
import type { DCtx } from 'zstd-napi/binding.js';
import { createDecipheriv, createHmac } from 'node:crypto';
import { IntegrityError } from '../errors.js';
import { NONCE_LEN, SEAL_OVERHEAD, TAG_LEN, open, seal } from './crypto.js';
import type { Compression } from './pack.js';
import { type ZdeltaNative, zdeltaNative } from './native.js';
import { decodeErrors } from './decode-errors.js';

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

/** Deltas against at most this many bytes of base (and a configured level of at most DELTA_FAST_LEVEL) use zstd level DELTA_FAST_LEVEL's own parameters: BlobCodec.encode. */
const DELTA_FAST_DICT = 2 * 1024 * 1024;
const DELTA_FAST_LEVEL = 4;
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
    // The C delta (native/zdelta.c) first: its matches found straight from the base (~0.4 ms for a
    // 1 MiB chunk of a daily dump, against ~1.25 ms for zstd level 4 here, whose match finder indexes
    // the whole base first; a two-base dictionary over DELTA_FAST_DICT took the tuned path below at
    // 10-50 ms). zstd's match finder still runs when the C delta declines, or when what it left as
    // literals compresses (new text, not random bytes: zstd may find matches within it) and is not tiny.
    const z = dict && dict.length > 0 ? zdeltaNative() : undefined;
    let tryZstd = !!dict && dict.length > 0;
    if (z && dict) {
      const r = this.deltaNative(z, data, dict);
      if (r !== undefined) {
        if (r.frame) {
          best = r.frame;
          comp = 2;
        }
        const literals = data.length - r.matched;
        tryZstd = !!r.frame && r.frame.length > data.length / 16 && r.frame.length < literals * 0.85;
      }
    }
    if (!tryZstd) {
      // (the C delta's result stands)
    } else if (dict && dict.length > 0 && dict.length <= DELTA_FAST_DICT && this.level <= DELTA_FAST_LEVEL) {
      // A base of up to 2 MiB (one or two chunks of the default chunker): zstd level 4's own
      // parameters (a 2 MiB window, 2^18-entry tables), the dictionary read in place and indexed
      // straight into the context. The tuned path below first builds a dictionary object (a copy
      // of the base, 2^20-entry tables indexed at every position) and copies its tables into the
      // context: on daily dump chunks (1 MiB, ~0.3% changed) it cost ~6 ms per chunk against
      // ~1.1 ms here, for deltas ~15% smaller (2.4 KB against 2.8 KB per chunk). The new chunk
      // sits at about the same offset in its base, so its matches lie within the window even
      // when base + chunk exceed it (a 1.5 MiB base and a 1.5 MiB chunk: each match ~1.5 MiB back).
      const d = this.deltaFast(data, dict);
      if (d && (!best || d.length < best.length)) {
        best = d;
        comp = 2;
      }
    } else if (dict && dict.length > 0) {
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
      // A base that zstd refuses as a dictionary (one starting with zstd's dictionary magic is read as
      // a formatted dictionary, and a malformed one is an error) gives no delta here, not a failed
      // backup: the blob is compressed plainly (the readers load a base the same way, so a delta
      // made against such a base would not decode either).
      let d: Buffer | undefined;
      try {
        this.delta.setParameters({ windowLog, hashLog });
        this.delta.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
        d = this.delta.compress(Buffer.from(data.buffer, data.byteOffset, data.length));
      } catch {
        d = undefined;
      }
      if (d && d.length < data.length && (!best || d.length < best.length)) {
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

  private readonly zinfo = new Float64Array(1);

  /**
   * The C delta of `data` against `dict` (native/zdelta.c, which decodes each frame again and
   * compares it with `data` before returning it): the frame (undefined when not smaller than
   * `data`) and the bytes its matches cover; undefined when it declined.
   */
  private deltaNative(z: ZdeltaNative, data: Uint8Array, dict: Uint8Array): { frame?: Buffer; matched: number } | undefined {
    const cap = data.length - 1;
    if (cap <= 0) return undefined;
    if (!this.fastOut || this.fastOut.length < cap) this.fastOut = Buffer.allocUnsafeSlow(cap);
    const n = z.delta(this.fastOut.subarray(0, cap), data, dict, this.level, this.zinfo);
    if (n < 0) return undefined;
    const matched = this.zinfo[0]!;
    return n > 0 ? { frame: Buffer.from(this.fastOut.subarray(0, n)), matched } : { matched };
  }

  private fastCtx: InstanceType<typeof binding.CCtx> | undefined;
  private fastOut: Buffer | undefined;

  /** zstd level DELTA_FAST_LEVEL with `dict`; undefined unless smaller than `data` (zstd stops at the output's end). */
  private deltaFast(data: Uint8Array, dict: Uint8Array): Buffer | undefined {
    const cap = data.length - 1;
    if (cap <= 0) return undefined;
    if (!this.fastOut || this.fastOut.length < cap) this.fastOut = Buffer.allocUnsafeSlow(cap);
    const ctx = (this.fastCtx ??= new binding.CCtx());
    let n: number;
    try {
      n = ctx.compressUsingDict(this.fastOut.subarray(0, cap), data, dict, DELTA_FAST_LEVEL);
    } catch {
      return undefined; // no room: the delta is not smaller than the data
    }
    return Buffer.from(this.fastOut.subarray(0, n));
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
        if (!dict) throw decodeErrors.noBase(what);
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
      throw decodeErrors.decompression(what, (err as Error).message, rawLength);
    }
    if (out.length !== rawLength) {
      throw decodeErrors.length(what, out.length, rawLength);
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
      else throw decodeErrors.noBase(what);
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw decodeErrors.decompression(what, (err as Error).message, rawLength);
    }
    if (n !== rawLength) throw decodeErrors.length(what, n, rawLength);
  }

  /**
   * decode() into `out`, the caller's memory of exactly `rawLength` bytes, a
   * delta (compression 2) against `dict` too: zstd reads the dictionary in
   * place (no copy into the context) and writes straight into `out`, never
   * more than it holds. The same checks and errors as decode(). A chain of
   * deltas decodes through two reused buffers this way (read-ops.ts decodeChain):
   * no allocation (and no page faults) per level.
   */
  decodeTo(sealed: Uint8Array, compression: Compression, rawLength: number, what: string, out: Buffer, dict?: Uint8Array): void {
    if (compression !== 2) return this.decodeInto(sealed, compression, rawLength, what, out);
    if (out.length !== rawLength) throw new Error(`${what}: output of ${out.length} bytes for ${rawLength}`);
    if (!dict) throw decodeErrors.noBase(what);
    const payload = open(this.encKey, sealed, what);
    let n: number;
    try {
      if (payload.length === 0) throw new Error('empty zstd payload');
      const declared = binding.getFrameContentSize(payload);
      if (declared !== null && declared > rawLength) throw new Error(`zstd frame declares ${declared} bytes, more than the ${rawLength} allowed`);
      n = this.ddelta.decompressUsingDict(out, payload, dict);
    } catch (err) {
      throw decodeErrors.decompression(what, (err as Error).message, rawLength);
    }
    if (n !== rawLength) throw decodeErrors.length(what, n, rawLength);
  }

  /**
   * Open and decompress a blob and return the keyed hash (blobId) of its
   * plaintext, holding neither the opened payload nor the plaintext: the sealed
   * bytes are deciphered OPEN_PIECE bytes at a time, each piece fed straight to
   * the decompressor (or the hash), the plaintext streaming through `scratch`.
   * Memory is a piece and the scratch buffer, whatever the blob's size (check
   * --read-data: no blob-sized allocation per blob, which piled up in the
   * allocator's arenas). Nothing deciphered leaves this function before the
   * authentication tag is checked at the end: a payload that fails it is
   * reported as unauthenticated, whatever decompressing it did (zstd is safe on
   * any input, and its output is capped at `rawLength`). Checks and errors are
   * those of decode().
   */
  decodeId(sealed: Uint8Array, compression: Compression, rawLength: number, what: string, idKey: Buffer, scratch: Buffer, dict?: Uint8Array): string {
    const buf = Buffer.isBuffer(sealed) ? sealed : Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
    if (buf.length < SEAL_OVERHEAD) throw decodeErrors.tooShort(what, buf.length);
    const d = createDecipheriv('aes-256-gcm', this.encKey, buf.subarray(0, NONCE_LEN));
    d.setAuthTag(buf.subarray(buf.length - TAG_LEN));
    const body = buf.subarray(NONCE_LEN, buf.length - TAG_LEN);
    const h = createHmac('sha256', idKey);
    const dctx = compression === 2 ? this.ddelta : this.dplain;
    // the first error decoding the payload: reported only if the payload authenticates
    let problem: unknown;
    let n = 0;
    let z: CappedStream | undefined;
    try {
      if (compression === 2) {
        if (!dict) throw decodeErrors.noBase(what);
        dctx.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
      }
      if (compression !== 0) z = new CappedStream(dctx, rawLength, scratch, (p) => h.update(p));
    } catch (err) {
      problem = err;
    }
    try {
      for (let off = 0; off < body.length; off += OPEN_PIECE) {
        const piece = d.update(body.subarray(off, Math.min(body.length, off + OPEN_PIECE)));
        if (problem !== undefined) continue; // still deciphered: the tag covers every byte
        if (!z) {
          h.update(piece);
          n += piece.length;
          continue;
        }
        try {
          z.push(piece);
        } catch (err) {
          problem = err;
        }
      }
      try {
        d.final();
      } catch {
        throw decodeErrors.authFailed(what);
      }
      if (z && problem === undefined) {
        try {
          n = z.end();
        } catch (err) {
          problem = err;
        }
      }
    } finally {
      // drop the context's copy of the dictionary (up to two blobs) right away
      if (compression === 2 && dict) this.ddelta.reset(binding.ResetDirective.sessionAndParameters);
    }
    if (problem !== undefined) {
      if (problem instanceof IntegrityError) throw problem;
      throw decodeErrors.decompression(what, (problem as Error).message, rawLength);
    }
    if (n !== rawLength) throw decodeErrors.length(what, n, rawLength);
    return h.digest('hex');
  }
}

/** Bytes of a sealed blob deciphered at a time by decodeId (small: the allocator reuses them). */
const OPEN_PIECE = 64 * 1024;

/**
 * decompressCappedInto with the compressed input arriving in pieces (push),
 * in order, then end(): the same limits, the same errors for the same input
 * (the first piece holds the whole frame header: pieces are OPEN_PIECE bytes,
 * or the whole payload when it is smaller).
 */
export class CappedStream {
  private total = 0;
  private started = false;
  /** The last decompressStream result of a call that moved bytes: 0 when a frame is complete and flushed. */
  private ret = -1;
  private readonly probe: Buffer;

  constructor(
    private readonly dctx: DCtx,
    private readonly limit: number,
    private readonly scratch: Buffer,
    private readonly sink: (piece: Buffer) => void,
  ) {
    this.probe = scratch.subarray(0, 1);
  }

  push(src: Buffer): void {
    if (src.length === 0) return;
    if (!this.started) {
      this.started = true;
      this.dctx.reset(binding.ResetDirective.sessionOnly);
      const declared = binding.getFrameContentSize(src);
      if (declared !== null && declared > this.limit) throw new Error(`zstd frame declares ${declared} bytes, more than the ${this.limit} allowed`);
    }
    let consumed = 0;
    for (;;) {
      const { produced, used, room } = this.step(src.subarray(consumed));
      consumed += used;
      // this piece is used up and the decompressor holds no output it could not write: wait for the next
      if (consumed >= src.length && produced < room) return;
      if (produced === 0 && used === 0 && consumed < src.length) throw new Error('zstd frame is truncated');
    }
  }

  /** All input pushed: flush, and the number of bytes produced (the last frame must be complete). */
  end(): number {
    if (!this.started) throw new Error('empty zstd payload');
    while (this.ret !== 0) {
      const { produced } = this.step(Buffer.alloc(0));
      if (produced === 0) throw new Error('zstd frame is truncated');
    }
    return this.total;
  }

  /** One decompressStream call; at the cap, a probe: any further output is an error. */
  private step(src: Buffer): { produced: number; used: number; room: number } {
    if (this.total >= this.limit) {
      const [ret, produced, used] = this.dctx.decompressStream(this.probe, src);
      if (produced > 0) throw new Error(`decompresses to more than the ${this.limit} bytes allowed`);
      if (used > 0) this.ret = ret;
      return { produced, used, room: 1 };
    }
    const room = Math.min(this.scratch.length, this.limit - this.total);
    const [ret, produced, used] = this.dctx.decompressStream(this.scratch.subarray(0, room), src);
    if (produced > 0) this.sink(this.scratch.subarray(0, produced));
    this.total += produced;
    // a call that moved nothing says nothing new (after a complete frame zstd asks for the next one's header)
    if (used > 0 || produced > 0) this.ret = ret;
    return { produced, used, room };
  }
}
