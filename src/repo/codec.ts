import zstd from 'zstd-napi';
import { IntegrityError } from '../errors.js';
import { open, seal } from './crypto.js';
import type { Compression } from './pack.js';

/**
 * Blob encoding shared by the main thread and the worker threads:
 * compress (plain zstd, or zstd with a base blob's plaintext as dictionary for
 * delta blobs), then seal. Decoding reverses it. Pure functions over buffers.
 */
export interface Encoded {
  sealed: Buffer;
  compression: Compression;
}

export class BlobCodec {
  private readonly plain: zstd.Compressor;
  private readonly delta: zstd.Compressor;
  private readonly dplain: zstd.Decompressor;
  private readonly ddelta: zstd.Decompressor;

  constructor(
    private readonly encKey: Buffer,
    private readonly level: number,
  ) {
    this.plain = new zstd.Compressor();
    this.plain.setParameters({ compressionLevel: level });
    this.delta = new zstd.Compressor();
    this.delta.setParameters({ compressionLevel: level });
    this.dplain = new zstd.Decompressor();
    this.ddelta = new zstd.Decompressor();
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
      // Long-distance matching finds the base's aligned copy even in very repetitive data
      // (e.g. pgbench rows), where the regular match finder gets lost in local repeats.
      this.delta.setParameters({ windowLog, hashLog, enableLongDistanceMatching: true, ldmMinMatch: 32 });
      this.delta.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
      const d = this.delta.compress(Buffer.from(data.buffer, data.byteOffset, data.length));
      if (d.length < data.length) {
        best = d;
        comp = 2;
      }
    }
    // Plain compression is skipped when the delta already saved > 90%.
    if (!best || best.length > data.length / 10) {
      const p = this.plain.compress(Buffer.from(data.buffer, data.byteOffset, data.length));
      if (p.length < data.length && (!best || p.length < best.length)) {
        best = p;
        comp = 1;
      }
    }
    const payload = best ?? data;
    return { sealed: seal(this.encKey, payload), compression: best ? comp : 0 };
  }

  decode(sealed: Uint8Array, compression: Compression, rawLength: number, what: string, dict?: Uint8Array): Buffer {
    const payload = open(this.encKey, sealed, what);
    let out: Buffer;
    try {
      if (compression === 0) out = payload;
      else if (compression === 1) out = this.dplain.decompress(payload);
      else {
        if (!dict) throw new IntegrityError(`${what}: delta blob decoded without its base`);
        this.ddelta.loadDictionary(Buffer.from(dict.buffer, dict.byteOffset, dict.length));
        out = this.ddelta.decompress(payload);
      }
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new IntegrityError(`${what}: decompression failed (${(err as Error).message})`);
    }
    if (out.length !== rawLength) {
      throw new IntegrityError(`${what}: decoded to ${out.length} bytes, index says ${rawLength}`);
    }
    return out;
  }
}
