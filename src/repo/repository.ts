import { randomBytes } from 'node:crypto';
import { availableParallelism, hostname, tmpdir, userInfo } from 'node:os';
import zstd from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import { IntegrityError, LifeboatError, type LockLostError, NoRepositoryError, NotFoundError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import { AppendOnlyError } from '../storage/retry.js';
import { ByteBudget, LruCache, Semaphore, mapLimit } from '../util/sync.js';
import { ReadCache } from './blob-cache.js';
import { BufferReclaimer } from '../util/reclaim.js';
import { Chunker, type ChunkerParams, DEFAULT_CHUNKER, gearTable, validateChunkerParams } from './chunker.js';
import { BlobCodec, SKETCH_MIN, decompressCapped } from './codec.js';
import { type MasterKey, blobId, newMasterKey, open, openInPlace, seal, sha256 } from './crypto.js';
import { hmacSha256Async } from '../util/stream-hash.js';
import { type IndexEntry, type IndexFilePack, MasterIndex, validateIndexFile } from './index.js';
import { scanIndexJson } from './index-scan.js';
import { createKeyFile, openWithPassword } from './keys.js';
import { DEFAULT_LEASE_MS, Lock, READ_ONLY_OPERATIONS } from './lock.js';
import { type SketchIndex, superFeatures, superFeaturesAsync } from './sketch.js';
import { bytesNative } from './native.js';
import { type ChainMsg, decodeChain } from './chain.js';
import {
  type BlobType,
  type Compression,
  MAX_DATA_BLOB,
  MAX_DELTA_DEPTH,
  MAX_INDEX_JSON,
  MAX_JSON,
  MAX_TREE_BLOB,
  type PackBlob,
  SEAL_OVERHEAD,
  basesOf,
  chainBytesLimit,
} from './pack.js';
import { PackFileWriter } from './pack-file.js';
import { WorkerPool, ownsBuffer } from './pool.js';
import { NativeReadPool, type ReadPool, codecNative, freeNow } from './native-read-pool.js';
import { NativeEncodePool, encodeNative } from './native-encode-pool.js';
import { type SlabPool, decodeRange } from './chunk-decode.js';
import { hugeBuffer } from '../util/huge-buffer.js';
import { type Snapshot, type SnapshotWithId, validateSnapshot } from './snapshot.js';
import { type Tree, decodeTree, encodeTree } from './tree.js';
import { PROGRAM } from './version.js';
import { byCodeUnit } from '../util/compare.js';

export const FORMAT_VERSION = 1;
/** Data blobs at least this large carry a resemblance sketch (defined beside the codec, for the workers). */
export { SKETCH_MIN };
/** Data blobs smaller than this are never stored as deltas. */
export const DELTA_MIN = 4096;
/** Blobs smaller than this (without a delta base) are encoded in batches, many per worker message. */
export const BATCH_BLOB_MAX = 256 * 1024;
/** A batch is sent when it holds this many bytes or BATCH_MAX_ITEMS blobs (or a worker is idle). */
const BATCH_BYTES = 1024 * 1024;
const BATCH_MAX_ITEMS = 256;
/**
 * Bytes of blobs a repository encodes or decodes on the main thread before it
 * starts its first worker thread. A worker costs 0.1-0.2 CPU s to start and
 * ~10 MB of RSS: more than a command with little to encode or decode spends on
 * it (an unchanged backup writes a few new trees and reads a few large parent
 * trees). Once this is used up, or any worker runs, the work goes to workers.
 */
const INLINE_BEFORE_WORKERS = 2 * 1024 * 1024;
/** MiB of delta bases the write path keeps (baseCache): with the encode worker, with the C encoder. */
const BASE_CACHE = 12;
const BASE_CACHE_NATIVE = 2;
/**
 * Decodes (a chain in one job counts as one) one delta's bases may take in ownedBases: a daily dump's chunk on a
 * two-base day takes 3; a lattice of two-base levels would take 2^depth, and goes through the read cache instead.
 */
const MAX_OWNED_DECODES = 8;
/**
 * A chain's root is renewed when it has drifted: a chunk whose chain is at its depth limit is
 * encoded as a delta against the root (chooseBases); if that delta is larger than this share of
 * the root's stored size, the chunk is stored in full instead and starts a chain of its own. A
 * daily dump's delta against a months-old root grows by the day's drift every day (about 1.1 MB
 * a day on the bench dump) until it stops being smaller than the full blob (~40 days); renewed at
 * 40%, the bytes added in the long run fall by about a fifth, a renewed day restores from a full
 * blob, and the old root is no longer pinned by every later snapshot, so retention can free it
 * (docs/benchmarks.md, "Roots renewed"). LIFEBOAT_RENEW_ROOT: another share (0: never renew).
 */
export function renewRootShare(): number {
  const v = Number(process.env.LIFEBOAT_RENEW_ROOT ?? 0.4);
  return Number.isFinite(v) && v >= 0 ? v : 0.4;
}
/** Chunks from this size on are sketched on the libuv thread pool (encodeAndPack). */
const ASYNC_SKETCH_MIN = 128 * 1024;
/**
 * The same for decoding (restore, check, the parent trees of a backup): opening,
 * decompressing and hashing cost ~3 ms per MiB, so a decode worker's start-up
 * pays for itself only past tens of MiB. A restore of 6.5 MB (800 files) without
 * a worker: peak RSS 91 -> 79 MB, user CPU -0.05 s (branch floor6). Not with the
 * C read pool, which has no worker to start (decodeInline).
 */
const INLINE_DECODE_BEFORE_WORKERS = 8 * 1024 * 1024;
/**
 * Whether the delta search computes a new chunk's sketch in this process's C (on this
 * thread, or for a large chunk on the libuv thread pool): when the C sketch is loaded
 * (LIFEBOAT_SKETCH_INLINE=0 sends it to a worker as before).
 */
export function sketchInline(): boolean {
  return process.env.LIFEBOAT_SKETCH_INLINE !== '0' && bytesNative() !== undefined;
}
/** Packs uploaded at once. */
const UPLOAD_SLOTS = 2;
/**
 * Sealed packs not yet stored at most (uploading, or ready for the next free
 * slot), beside the one being filled. Packs are built in temporary files
 * (PackFileWriter): a local repository's packs are never in memory; for other
 * storages a pack is read back into memory only while it uploads
 * (UPLOAD_SLOTS x pack size). The bound keeps reading from running ahead of a
 * slow or throttled storage, and the temporary files' disk use small.
 */
const MAX_UNSAVED_PACKS = UPLOAD_SLOTS + 1;

interface EncodeJob {
  data: Buffer;
  sketch: boolean;
  resolve: (r: { sealed: Buffer; compression: Compression; sf?: number[] }) => void;
  reject: (e: Error) => void;
}
export { PROGRAM };

/**
 * A pack this repository stored that is not in an index file yet. `slots`: its entries, in the
 * pack's order, as slots of the index of that `generation` (MasterIndex.packBlobAt), or -1 - k for
 * `blobs[k]` (an entry the index did not take). Without `slots`, `blobs` are all its entries.
 */
type PendingPack = { id: string; blobs: PackBlob[]; generation: number; slots?: Int32Array };

/** The repository config object (sealed with the master key). See docs/format.md. */
export interface RepoConfig {
  v: 1;
  id: string;
  created: string;
  chunker: ChunkerParams & { seed: string };
  packSize: number;
  compressionLevel: number;
  maxDeltaDepth: number;
}

export interface InitOptions {
  chunker?: Partial<ChunkerParams>;
  packSize?: number;
  compressionLevel?: number;
  maxDeltaDepth?: number;
}

export interface RepoStats {
  blobsNew: number;
  blobsDelta: number;
  dataAddedRaw: number;
  dataAdded: number;
}

export interface SaveResult {
  id: string;
  isNew: boolean;
}

/** Sealed JSON file encoding: 1 byte (0 = JSON, 1 = zstd JSON) + payload, then sealed. */
export function sealJson(key: Buffer, obj: unknown, compress: boolean): Buffer {
  const json = Buffer.from(JSON.stringify(obj));
  const body = compress ? Buffer.concat([Buffer.from([1]), zstd.compress(json)]) : Buffer.concat([Buffer.from([0]), json]);
  return seal(key, body);
}

let jsonDctx: InstanceType<typeof zstdBinding.DCtx> | undefined;
let indexCctx: InstanceType<typeof zstdBinding.CCtx> | undefined;

/**
 * An index file's packs sealed as `sealJson(key, { v: 1, packs }, true)` seals them: the same JSON
 * text, zstd (level 3, the frame declaring its size, which the reader allocates from), sealed. But
 * the text is made and compressed one pack at a time: the whole of it as one string, then one
 * Buffer, then zstd's output and the body was ~35 MB for the 50,000 entries a backup publishes at
 * once, and that moment was the peak of a first backup of 100,000 small files and of prune
 * (docs/benchmarks.md, "Listings written as they go"). Each pack is stringified twice:
 * once for the size the frame declares, once for its bytes.
 */
export function sealIndexFile(key: Buffer, packs: readonly IndexFilePack[]): Buffer {
  return sealIndexPacks(key, packs.length, (i) => packs[i]!);
}

/** sealIndexFile of `count` packs, each made when it is written by `packAt(i)` (twice: see above). */
export function sealIndexPacks(key: Buffer, count: number, packAt: (i: number) => IndexFilePack): Buffer {
  const head = Buffer.from('{"v":1,"packs":[');
  const comma = Buffer.from(',');
  const tail = Buffer.from(']}');
  let total = head.length + tail.length + Math.max(0, count - 1);
  for (let i = 0; i < count; i++) total += Buffer.byteLength(JSON.stringify(packAt(i)));
  const cctx = (indexCctx ??= new zstdBinding.CCtx());
  cctx.reset(zstdBinding.ResetDirective.sessionOnly);
  cctx.setParameter(zstdBinding.CParameter.compressionLevel, 3);
  cctx.setPledgedSrcSize(total);
  // (pages of it that zstd does not write to are never touched: only the compressed size is resident)
  const body = Buffer.allocUnsafe(1 + zstdBinding.compressBound(total));
  body[0] = 1;
  let pos = 1;
  let fed = 0;
  const feed = (src: Buffer, end: boolean) => {
    fed += src.length;
    for (;;) {
      const [left, produced, consumed] = cctx.compressStream2(body.subarray(pos), src, end ? zstdBinding.EndDirective.end : zstdBinding.EndDirective.continue);
      pos += produced;
      src = src.subarray(consumed);
      if (end ? left === 0 : src.length === 0) return;
      if (produced === 0 && consumed === 0 && pos >= body.length) throw new Error('index file: zstd output larger than its bound');
    }
  };
  feed(head, false);
  for (let i = 0; i < count; i++) {
    if (i > 0) feed(comma, false);
    feed(Buffer.from(JSON.stringify(packAt(i))), false);
  }
  feed(tail, true);
  if (fed !== total) throw new Error(`index file: ${fed} bytes of JSON written, ${total} declared`);
  return seal(key, body.subarray(0, pos));
}

/**
 * Open a sealed JSON object. Its plaintext is capped at `maxBytes` (format
 * maxima MAX_JSON / MAX_INDEX_JSON): a larger object, or a zstd payload that
 * would decompress to more, is refused before (or while, never after) inflating it.
 */
export function openJson(key: Buffer, sealed: Buffer, what: string, maxBytes = MAX_JSON): unknown {
  return parseJson(openJsonBytes(key, sealed, what, maxBytes), what);
}

/**
 * The JSON text of a sealed JSON object (openJson without the parse). `inPlace`: deciphered over the
 * sealed bytes (crypto.ts openInPlace), which are consumed; the text is then a new buffer (zstd) or a
 * view of `sealed` (stored uncompressed).
 */
export function openJsonBytes(key: Buffer, sealed: Buffer, what: string, maxBytes = MAX_JSON, inPlace = false): Buffer {
  if (sealed.length > maxBytes + SEAL_OVERHEAD + 1) {
    throw new IntegrityError(`${what}: ${sealed.length} bytes is larger than the format maximum (${maxBytes} bytes of JSON)`);
  }
  return jsonOfBody(inPlace ? openInPlace(key, sealed, what) : open(key, sealed, what), what, maxBytes);
}

/** A sealed JSON object's plaintext (an encoding byte, then the text or its zstd frame) as its JSON text. */
function jsonOfBody(body: Buffer, what: string, maxBytes: number): Buffer {
  if (body.length < 1) throw new IntegrityError(`${what}: empty`);
  try {
    if (body[0] === 0) return body.subarray(1);
    if (body[0] === 1) return decompressCapped((jsonDctx ??= new zstdBinding.DCtx()), body.subarray(1), maxBytes);
    throw new Error(`unknown encoding ${body[0]}`);
  } catch (err) {
    throw new IntegrityError(`${what}: cannot decode (${(err as Error).message})`);
  }
}

/**
 * Free buffers nothing refers to any more now, not at a later collection (native-read-pool.ts freeNow:
 * the C codec's detach); only one that is the whole of its own, unshared memory. The caller holds no
 * other view of them.
 */
function freeOwned(...bufs: ArrayBufferView[]): number {
  let freed = 0;
  for (const b of bufs) if (b.byteLength > 0 && ownsBuffer(b as Uint8Array) && freeNow(b.buffer as ArrayBuffer)) freed++;
  return freed;
}

/** JSON text from openJsonBytes, parsed (a malformed one is an IntegrityError, as from openJson). */
function parseJson(json: Buffer, what: string): unknown {
  try {
    return JSON.parse(json.toString('utf8'));
  } catch (err) {
    throw new IntegrityError(`${what}: cannot decode (${(err as Error).message})`);
  }
}

export class RepositoryExistsError extends LifeboatError {
  constructor(location: string) {
    super(`a repository already exists at ${location}; refusing to overwrite it`);
    this.name = 'RepositoryExistsError';
  }
}

export class Repository {
  readonly index = new MasterIndex();
  /** Index files that could not be read or authenticated when the index was loaded (name -> error). */
  readonly indexErrors = new Map<string, unknown>();
  readonly stats: RepoStats = { blobsNew: 0, blobsDelta: 0, dataAddedRaw: 0, dataAdded: 0 };
  private readonly gear: Int32Array;
  private readonly codec: BlobCodec;
  private poolInstance: WorkerPool | undefined;
  private readPoolInstance: ReadPool | undefined;
  /** The C encoder (native-encode-pool.ts); null when it is not used (then the encode worker). */
  private nativeEncoderInstance: NativeEncodePool | null | undefined;
  /**
   * Decoded trees and delta bases. A chain is resolved in stream order, so the
   * bases in use at any time are those of the few blobs in flight: 32 MiB holds
   * them for the default window (bounded memory whatever the repository size).
   */
  /** Trees (LIFEBOAT_BLOB_CACHE_MB, 32 MiB) and delta bases read for a chain (LIFEBOAT_BASE_CACHE_MB, 4 MiB). */
  private readonly cache = new ReadCache((Number(process.env.LIFEBOAT_BLOB_CACHE_MB) || 32) * 1024 * 1024, (Number(process.env.LIFEBOAT_BASE_CACHE_MB) || 4) * 1024 * 1024);
  /** The packs being filled (created on the first blob of each type). */
  private readonly packers: Partial<Record<BlobType, PackFileWriter>> = {};
  private packTargetP: Promise<{ dir: string; publish: boolean }> | undefined;
  private readonly pendingIds = new Set<string>();
  private readonly outstanding = new Set<Promise<void>>();
  /** Bytes of blobs queued or being encoded: bounds memory whatever the source size. */
  private readonly sealBudget: ByteBudget;
  /** Small blobs waiting to be encoded together. */
  private batch: { jobs: EncodeJob[]; bytes: number } | undefined;
  private batchScheduled = false;
  /** Encode jobs of this repository in the worker pool. */
  private poolJobs = 0;
  /** What is left of INLINE_BEFORE_WORKERS (or of the budget given to inlineUpTo). */
  private inlineBudget = INLINE_BEFORE_WORKERS;
  /** What is left of INLINE_DECODE_BEFORE_WORKERS (or of the budget given to inlineUpTo). */
  private inlineDecodeBudget = INLINE_DECODE_BEFORE_WORKERS;
  private readonly uploadSlots = new Semaphore(UPLOAD_SLOTS);
  /** Packs sealed and not yet stored (in an upload slot or waiting for one): held in memory. */
  private packsUnsaved = 0;
  private packSavedWaiters: Array<() => void> = [];
  /** Packs stored and in the index, not yet in an index file (their entries: slots of the index, see PendingPack). */
  private newPacks: PendingPack[] = [];
  private newPacksBlobs = 0;
  /**
   * A long backup publishes an index file every this many new blobs (not only
   * at flush): the entries waiting for their index file stay bounded (the packs
   * are already stored, so an index file may be written at any time).
   */
  indexFlushBlobs = 50_000;
  private bgError: unknown;

  private constructor(
    readonly storage: Storage,
    readonly key: MasterKey,
    readonly keyName: string,
    readonly config: RepoConfig,
  ) {
    this.gear = gearTable(Buffer.from(config.chunker.seed, 'hex'));
    this.codec = new BlobCodec(key.encKey, config.compressionLevel);
    // Bounded in-flight blobs keep memory flat regardless of source size.
    this.sealBudget = new ByteBudget((Number(process.env.LIFEBOAT_INFLIGHT_MB) || 4) * 1024 * 1024);
  }

  static async init(storage: Storage, password: string, opts: InitOptions = {}): Promise<Repository> {
    if (await storage.exists('config', '')) throw new RepositoryExistsError(storage.location);
    const chunker = { ...DEFAULT_CHUNKER, ...opts.chunker };
    const bad = validateChunkerParams(chunker);
    if (bad) throw new LifeboatError(`invalid chunker parameters: ${bad}`, 2);
    const packSize = opts.packSize ?? 16 * 1024 * 1024;
    if (!(packSize >= 1024 * 1024 && packSize <= 512 * 1024 * 1024)) {
      throw new LifeboatError('pack size must be between 1 MiB and 512 MiB', 2);
    }
    const level = opts.compressionLevel ?? 3;
    if (!(Number.isInteger(level) && level >= 1 && level <= 19)) throw new LifeboatError('compression level must be 1..19', 2);
    await storage.create();
    const master = newMasterKey();
    const config: RepoConfig = {
      v: 1,
      id: randomBytes(16).toString('hex'),
      created: new Date().toISOString(),
      chunker: { ...chunker, seed: randomBytes(32).toString('hex') },
      packSize,
      compressionLevel: level,
      maxDeltaDepth: opts.maxDeltaDepth ?? 4,
    };
    const keyName = await createKeyFile(storage, password, master);
    // The config object is written last, create-only: its presence marks a complete
    // repository, and of two concurrent inits exactly one wins.
    const sealed = sealJson(master.encKey, config, false);
    // ... and it is read back: an S3-compatible server that ignores If-None-Match lets a
    // concurrent init's config replace this one. This init then lost too, as it does when the
    // create-only write refuses: it removes its key and the caller opens the other one's.
    const won = (await storage.saveNew('config', '', sealed)) && (await storage.load('config', '')).equals(sealed);
    if (!won) {
      await storage.remove('key', keyName).catch(() => {});
      throw new RepositoryExistsError(storage.location);
    }
    return new Repository(storage, master, keyName, config);
  }

  static async open(storage: Storage, password: string, opts: { loadIndex?: boolean } = {}): Promise<Repository> {
    if (!(await storage.exists('config', ''))) throw new NoRepositoryError(storage.location);
    const sealed = await storage.load('config', '');
    let cfg: RepoConfig | undefined;
    // the master key is the one the config authenticates under (a key file left by an init that
    // lost the race to write the config wraps another one under the same password)
    const { key, keyName } = await openWithPassword(storage, password, (k) => {
      cfg = openJson(k.encKey, sealed, 'config') as RepoConfig;
    });
    if (!cfg || cfg.v !== FORMAT_VERSION) {
      throw new LifeboatError(`repository format version ${String(cfg?.v)} is not supported by ${PROGRAM} (supports ${FORMAT_VERSION})`);
    }
    const repo = new Repository(storage, key, keyName, cfg);
    if (opts.loadIndex !== false) await repo.ensureIndex();
    return repo;
  }

  private indexLoad: Promise<void> | undefined;

  /**
   * Load the index unless it is loaded (or loading): for a repository opened
   * with `loadIndex: false` that turns out to need it (a WAL fetch whose
   * location hints are stale, see log-archive.ts).
   */
  ensureIndex(): Promise<void> {
    this.indexLoad ??= this.loadIndex().catch((err) => {
      this.indexLoad = undefined;
      throw err;
    });
    return this.indexLoad;
  }

  /**
   * The C encoder on libuv's thread pool (native/encode.c), or undefined: the addon did not
   * build, LIFEBOAT_NO_NATIVE=1 or LIFEBOAT_NATIVE_ENCODE=0 (then blobs go to the encode worker,
   * `pool`). With it a backup starts no encode worker (unless a caller asks for `pool` itself:
   * engine/small-files.ts's worker extension, a delta base's chain sent to a started worker).
   */
  get nativeEncoder(): NativeEncodePool | undefined {
    if (this.nativeEncoderInstance === undefined) {
      const addon = encodeNative();
      this.nativeEncoderInstance = addon ? new NativeEncodePool(addon, this.key, this.config.compressionLevel) : null;
    }
    return this.nativeEncoderInstance ?? undefined;
  }

  get pool(): WorkerPool {
    if (!this.poolInstance) this.poolInstance = new WorkerPool(this.key, this.config.compressionLevel);
    return this.poolInstance;
  }

  /**
   * The encode pool, its workers answering the ops of `extension` too (see
   * worker.ts): if it has not started yet, it is created so. Undefined if it
   * already runs without that extension (the caller starts its own).
   */
  poolWith(extension: URL): WorkerPool | undefined {
    if (!this.poolInstance) this.poolInstance = new WorkerPool(this.key, this.config.compressionLevel, undefined, 'worker.js', extension);
    return this.poolInstance.extension?.href === extension.href ? this.poolInstance : undefined;
  }

  /**
   * Decode workers for the read path (restore, check): one per core beyond the
   * main thread (at most 4). On two cores that is one: the main thread (reads,
   * writes, small blobs) is the busier side there, and a second worker cost
   * about 40 MB of RSS for no measured gain (docs/benchmarks.md);
   * LIFEBOAT_DECODE_WORKERS overrides. A backup that reads delta bases uses
   * its encode pool instead. With the C codec (native/codec.c, unless
   * LIFEBOAT_NO_NATIVE=1 or LIFEBOAT_NATIVE_READ=0) no worker at all: the
   * decode runs in libuv work items of this isolate (native-read-pool.ts).
   */
  get readPool(): ReadPool {
    if (this.poolInstance) return this.poolInstance;
    if (!this.readPoolInstance) {
      const addon = codecNative();
      if (addon) {
        this.readPoolInstance = new NativeReadPool(addon, this.key);
        return this.readPoolInstance;
      }
      const n = Number(process.env.LIFEBOAT_DECODE_WORKERS) || Math.max(1, Math.min(4, availableParallelism() - 1));
      this.readPoolInstance = new WorkerPool(this.key, this.config.compressionLevel, n, 'decode-worker.js');
    }
    return this.readPoolInstance;
  }

  /**
   * Chunker windows given back by finished chunkers (releaseChunker), reused by the next
   * ones: a large file's window is otherwise dropped after it, and V8 frees such
   * long-lived buffers only at its next full collection (a first backup held several).
   */
  private readonly chunkerWindows: Buffer[] = [];

  newChunker(): Chunker {
    return new Chunker(this.gear, this.config.chunker, this.chunkerWindows.pop());
  }

  /** Give a finished chunker's window back (see chunkerWindows); at most 2 are kept. */
  releaseChunker(c: Chunker): void {
    const w = c.release();
    if (w && this.chunkerWindows.length < 2) this.chunkerWindows.push(w);
  }

  blobId(data: Uint8Array): string {
    return blobId(this.key.idKey, data);
  }

  /**
   * The blob id of `data` computed on the thread pool (native/hash.c), beside this
   * thread; undefined without the addon (then blobId). Until it settles `data` must
   * be left alone (not changed, not given to saveBlob, which may transfer it).
   */
  blobIdAsync(data: Uint8Array): Promise<string> | undefined {
    return hmacSha256Async(this.key.idKey, data)?.then((mac) => mac.toString('hex'));
  }

  // ---------------------------------------------------------------- index

  /**
   * Load every index file. A damaged index file is skipped and recorded in
   * indexErrors (so unaffected snapshots stay restorable); `check` reports it and
   * `repair index` rebuilds the index from the pack headers.
   */
  async loadIndex(): Promise<void> {
    const files = await this.storage.list('index');
    await mapLimit(files, 8, async (f) => {
      try {
        if (f.size > MAX_INDEX_JSON + SEAL_OVERHEAD + 1) {
          throw new IntegrityError(`index ${f.name}: ${f.size} bytes is larger than the format maximum for an index file`);
        }
        const raw = await this.storage.load('index', f.name);
        if (sha256(raw) !== f.name) throw new IntegrityError(`index ${f.name}: file content does not match its name`);
        // deciphered in place, and each buffer freed once the next is made from it: the sealed bytes, the
        // plaintext, the JSON text and the scanner's columns were all alive at once and then left to the
        // collector (~30 MB for a file of 100,000 entries, the peak of check, stats and prune at 100,000
        // files; docs/benchmarks.md, "Walks' garbage collected, prune's unchanged index kept, index files read in place")
        const json = openJsonBytes(this.key.encKey, raw, `index ${f.name}`, MAX_INDEX_JSON, true);
        if (json.buffer !== raw.buffer) freeOwned(raw);
        // the C scanner takes a file in the form Lifeboat writes; anything else is parsed and checked as before
        const scanned = scanIndexJson(json);
        if (scanned) {
          this.index.addScanned(f.name, scanned);
          freeOwned(json, scanned.ids, scanned.num, scanned.sf, scanned.bases);
        } else this.index.addFile(f.name, validateIndexFile(parseJson(json, `index ${f.name}`), f.name));
      } catch (err) {
        if (err instanceof IntegrityError || err instanceof NotFoundError) this.indexErrors.set(f.name, err);
        else throw err;
      }
    });
    this.index.computeDepths();
    this.index.releaseSpare();
  }

  /**
   * Re-read the index from storage. Operations that decide what is garbage
   * (prune) or copy what others wrote meanwhile (WAL copies) call this after
   * taking their lock: other processes may have added packs and index files
   * since this repository was opened.
   */
  async reloadIndex(): Promise<void> {
    // the packs still waiting for their index file keep their entries whole: clear() ends their slots
    for (const p of this.newPacks) if (p.slots) Object.assign(p, { slots: undefined, blobs: this.pendingBlobs(p) });
    this.index.clear();
    this.indexErrors.clear();
    this.indexLoad = undefined;
    await this.ensureIndex();
  }

  async writeIndexFile(packs: IndexFilePack[]): Promise<string> {
    return this.saveIndexFile(sealIndexFile(this.key.encKey, packs), packs);
  }

  /** The entries of a pack waiting for its index file, as the index file lists them (in the pack's order). */
  private pendingBlobs(p: PendingPack): PackBlob[] {
    if (!p.slots) return p.blobs;
    if (p.generation !== this.index.generation) throw new Error(`internal error: pack ${p.id}'s index slots outlived the index`);
    return Array.from(p.slots, (s) => (s >= 0 ? this.index.packBlobAt(s) : p.blobs[-1 - s]!));
  }

  /** An index file for packs this repository stored: their entries made from the index one pack at a time. */
  private writePendingIndex(packs: PendingPack[]): Promise<string> {
    const bytes = sealIndexPacks(this.key.encKey, packs.length, (i) => ({ id: packs[i]!.id, blobs: this.pendingBlobs(packs[i]!) }));
    return this.saveIndexFile(bytes, packs);
  }

  private async saveIndexFile(bytes: Buffer, packs: readonly { id: string }[]): Promise<string> {
    const name = sha256(bytes);
    await this.storage.save('index', name, bytes);
    this.index.files.set(
      name,
      packs.map((p) => p.id),
    );
    return name;
  }

  // ---------------------------------------------------------------- blobs

  hasBlob(id: string): boolean {
    return this.index.has(id) || this.pendingIds.has(id);
  }

  private throwIfFailed(): void {
    if (this.bgError) throw this.bgError;
  }

  /**
   * Store a blob unless the repository already has it. Returns as soon as the
   * blob is queued; flush() waits for everything and publishes the index.
   * `data` may be transferred to a worker thread: do not use it afterwards.
   * `deltaBases` proposes existing blobs with similar content (e.g. the parent
   * snapshot's chunk at the same offset) to store the new blob as a delta.
   */
  async saveBlob(
    type: BlobType,
    data: Buffer,
    opts: {
      id?: string;
      deltaBases?: string[] | (() => string[]);
      similar?: SketchIndex;
      onSimilar?: (baseId: string) => void;
      /** false: no resemblance sketch (data no later version will look for a delta base in, e.g. archived WAL). */
      sketch?: boolean;
      /**
       * true: `data` is the caller's alone and the caller holds no view of it once saveBlob returned
       * (a chunk cut from a chunker's window): the repository frees it once stored (release()).
       */
      owned?: boolean;
    } = {},
  ): Promise<SaveResult> {
    this.throwIfFailed();
    // Backpressure from the storage: while the sealed packs waiting for upload are
    // at their bound, no new blob is taken, so reading never runs further ahead of
    // a slow (or --limit-upload throttled) backend than that bound.
    while (this.packsUnsaved >= MAX_UNSAVED_PACKS) {
      await new Promise<void>((resolve) => this.packSavedWaiters.push(resolve));
      this.throwIfFailed();
    }
    const max = type === 'tree' ? MAX_TREE_BLOB : MAX_DATA_BLOB;
    if (data.length > max) throw new LifeboatError(`a ${type} blob of ${data.length} bytes exceeds the format maximum of ${max} bytes`);
    const id = opts.id ?? blobId(this.key.idKey, data);
    if (this.hasBlob(id)) {
      if (opts.owned) this.release(data);
      return { id, isNew: false };
    }
    this.pendingIds.add(id);
    const cost = data.length + 1024;
    await this.sealBudget.acquire(cost);
    const p = this.encodeAndPack(type, id, data, opts.deltaBases, opts.similar, opts.onSimilar, opts.sketch !== false, opts.owned === true)
      .catch((err) => {
        this.bgError ??= err;
      })
      .finally(() => {
        this.sealBudget.release(cost);
        this.outstanding.delete(p);
      });
    this.outstanding.add(p);
    return { id, isNew: true };
  }

  /**
   * Pick the bases for a delta (at most 2): each proposed blob, or the root of
   * its chain when the chain is already at max depth, so depth stays bounded.
   * `renewAbove`: when a base is such a root, the delta's sealed size above which
   * the blob is stored in full instead (renewRootShare() of the root's stored size;
   * 0: keep any delta that saves bytes).
   */
  private chooseBases(candidates: string[] | undefined, rawLength: number): { bases: string[]; renewAbove: number } {
    const maxDepth = Math.min(this.config.maxDeltaDepth, MAX_DELTA_DEPTH);
    const out: string[] = [];
    let renewAbove = 0;
    if (!candidates || !(maxDepth > 0) || rawLength < DELTA_MIN) return { bases: out, renewAbove };
    const share = renewRootShare();
    for (const c of candidates.slice(0, 2)) {
      let e = this.index.get(c);
      if (!e || e.type !== 'data' || !Number.isFinite(e.depth)) continue;
      let id = c;
      let rerooted = false;
      if (e.depth + 1 > maxDepth) {
        // Walk to the chain's root; bounded, so a damaged (cyclic) index cannot trap the walk.
        for (let steps = 0; e && e.base && steps <= MAX_DELTA_DEPTH; steps++) {
          id = e.base;
          e = this.index.get(id);
        }
        if (!e || e.base) continue;
        rerooted = true;
      }
      if (out.includes(id)) continue;
      out.push(id);
      // (the largest of two roots: the delta is judged against the more the full blobs would cost)
      if (rerooted && share > 0) renewAbove = Math.max(renewAbove, Math.floor(share * e.length));
    }
    return { bases: out, renewAbove };
  }

  /**
   * The dictionary of a delta: the bases' plaintexts, concatenated in order.
   * `verify` false: the bases' own hashes are not checked (the caller checks
   * the hash of the blob decoded with this dictionary, which a wrong base fails).
   */
  async loadDict(bases: string[], level = 0, verify = true): Promise<Buffer> {
    if (level > MAX_DELTA_DEPTH) throw new IntegrityError(`delta chain deeper than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`);
    const parts = await this.loadDictParts(bases, level, verify);
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** The bases' plaintexts (a decode worker joins them: no copy on the main thread). */
  private loadDictParts(bases: string[], level: number, verify: boolean, onMain = false): Promise<Buffer[]> {
    if (level > MAX_DELTA_DEPTH) throw new IntegrityError(`delta chain deeper than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`);
    // a backup's bases (onMain) are not kept in the read cache: they are not read again
    return Promise.all(bases.map((b) => this.loadBlobAt(b, level, onMain ? 'never' : true, verify, onMain)));
  }

  /**
   * Private base loads in flight or in use (ownDictParts): `users` decodes hold `p`'s plaintext;
   * the last to finish frees it (dropOwn). Concurrent deltas on one base (a restore's batch of a
   * mutated file's chunks) share one load, as the read cache's loads share `inflight`.
   */
  private readonly ownBases = new Map<string, { p: Promise<Buffer>; users: number }>();
  /** Private base loads started (ownDictParts; tests check concurrent deltas share one). */
  ownBaseLoads = 0;

  /**
   * The bases of a delta whose plaintext is its caller's alone (loadOwnedBlob: a restore's
   * delta, a backup's delta base) when it is not read in one go (readChain: a two-base delta).
   * A base too large for the read cache (more than a quarter of it) is read for the decodes that
   * need it now (`own`: joined by concurrent ones), not cached, and freed once the last of them
   * is done (dropOwn): such bases were left to V8's collections (shared buffers, to be cached,
   * that the cache then refused), +15-35 MB peak RSS in a full restore after a 5% change
   * (docs/benchmarks.md, "Two-base deltas' bases freed"). Smaller ones go through the read cache as before.
   */
  private async ownDictParts(bases: string[], level: number, onMain: boolean): Promise<{ parts: Buffer[]; own: string[] }> {
    if (level > MAX_DELTA_DEPTH) throw new IntegrityError(`delta chain deeper than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`);
    const own: string[] = [];
    const loads = bases.map((b) => {
      const be = this.index.get(b);
      if (!be || this.cache.get(b) || this.cache.keepsData(be.rawLength)) return this.loadBlobAt(b, level, onMain ? 'never' : true, false, onMain);
      let o = this.ownBases.get(b);
      if (!o) {
        o = { p: Promise.resolve().then(async () => (await this.readBlob(b, level, 'never', false, onMain)).data), users: 0 };
        this.ownBases.set(b, o);
        this.ownBaseLoads++;
      }
      o.users++;
      own.push(b);
      return o.p;
    });
    try {
      return { parts: await Promise.all(loads), own };
    } catch (err) {
      await Promise.allSettled(loads);
      this.dropOwn(own);
      throw err;
    }
  }

  /** A decode is done with these private bases (ownDictParts): the last user of one frees it. */
  private dropOwn(own: string[]): void {
    for (const b of own) {
      const o = this.ownBases.get(b);
      if (!o || --o.users > 0) continue;
      this.ownBases.delete(b);
      o.p.then((buf) => this.release(buf), () => undefined);
    }
  }

  /**
   * Delta bases for the write path, from a small cache of their own: neighbouring
   * new chunks usually share a base, and a backup must not fill the read cache
   * (up to 96 MiB) with data it will not read again. Small: a base is rarely used more than twice.
   * With the C encoder (no worker: every delta's base is loaded here, where the encode worker took
   * a single base as its chain and decoded it itself) 2 MiB, a chunk or two: with 12 MiB a daily
   * dump's backup peaked ~50 MB higher (202 against 143-164 MB, the same CPU; branch nencode).
   */
  private baseCacheInstance: LruCache<Buffer> | undefined;
  private get baseCache(): LruCache<Buffer> {
    return (this.baseCacheInstance ??= new LruCache<Buffer>((this.nativeEncoder ? BASE_CACHE_NATIVE : BASE_CACHE) * 1024 * 1024));
  }
  /** The last large chunk's sketch on the thread pool: the next one's result is taken after it (encodeAndPack). */
  private sketchOrder: Promise<void> = Promise.resolve();
  /** Each sealed blob is dropped once written to its pack: collect them promptly (see reclaim.ts). */
  private readonly reclaimer = new BufferReclaimer();

  /**
   * Bases decoded off the main thread at once (LIFEBOAT_BASE_DECODES, 1; 0: on the main thread): with the C encoder the main
   * thread is the busy side of a backup (chunking, hashing, the index, the trees), and a base decoded on
   * it (zstd-napi, node's cipher and HMAC) took ~10% of it on a re-backup after a 5% change. One at a
   * time: with no bound, the bases of every file in flight were decoded together (+48 MB peak RSS).
   */
  private readonly baseDecodes = process.env.LIFEBOAT_BASE_DECODES === '0' ? undefined : new Semaphore(Number(process.env.LIFEBOAT_BASE_DECODES) || 1);

  /** One base's plaintext (verified): in the C read pool beside the C encoder, else on this thread (the encode worker is the busy side). */
  private async loadBase(b: string): Promise<{ data: Buffer; owned: boolean }> {
    if (!this.baseDecodes || !this.nativeEncoder || !this.readPool.native) return { data: await this.loadBlobAt(b, 0, false, true, true), owned: false };
    await this.baseDecodes.acquire();
    try {
      // the caller's alone (not joined to another load of it in flight, not from the read cache): freed after its encode
      return { data: (await this.readBlob(b, 0, 'never', true)).data, owned: true };
    } finally {
      this.baseDecodes.release();
    }
  }

  /**
   * The dictionary of a delta encode, and whether it is this encode's alone (then it is freed
   * once the encode is done: release()). A base the base cache keeps is not.
   */
  private async loadBases(bases: string[]): Promise<{ dict: Buffer; owned: boolean }> {
    const parts = await Promise.all(
      bases.map(async (b) => {
        const hit = this.baseCache.get(b);
        if (hit) return { data: hit, owned: false };
        const r = await this.loadBase(b);
        return { data: r.data, owned: r.owned && !this.baseCache.set(b, r.data) };
      }),
    );
    if (parts.length === 1) return { dict: parts[0]!.data, owned: parts[0]!.owned };
    // joined in huge pages where they can be had: written whole at once, in 4 KiB pages the copy took one
    // page fault every 4 KiB (~12 us each on the bench's machines): 0.64 s of this thread in a re-backup after
    // a 5% change (docs/benchmarks.md, "A delta's two bases joined in huge pages")
    const total = parts.reduce((a, p) => a + p.data.length, 0);
    const huge = hugeBuffer(total);
    this.basesJoined[huge ? 'huge' : 'heap']++;
    const dict = huge ?? Buffer.allocUnsafeSlow(total);
    let at = 0;
    for (const p of parts) at += p.data.copy(dict, at);
    for (const p of parts) if (p.owned) this.release(p.data);
    return { dict, owned: true };
  }

  private async encodeAndPack(
    type: BlobType,
    id: string,
    data: Buffer,
    proposed?: string[] | (() => string[]),
    similar?: SketchIndex,
    onSimilar?: (baseId: string) => void,
    sketch = true,
    owned = false,
  ): Promise<void> {
    const rawLength = data.length;
    const sketched = type === 'data' && rawLength >= SKETCH_MIN && sketch;
    let sf: number[] | undefined;
    let deltaBases: string[] | undefined;
    if (sketched && similar && similar.size > 0) {
      // Find a base by content (robust to inserted/deleted data); fall back to the offset guess.
      // With the C sketch (native/bytes.c, ~1 ms per MiB) it is computed here: as a worker job it
      // queued behind the previous chunks' delta encodes in the same (on 2 cores, only) worker and
      // cost two more transfers and thread wake-ups per chunk, on the path of every changed chunk
      // of a second base backup (branch pitrbase, docs/benchmarks.md). The JS fallback stays off this thread.
      // A large chunk's sketch runs on the libuv thread pool (native/bytes.c sketchAsync) while this
      // thread cuts and hashes the next chunks (branch dump6); the results are taken in the order
      // of the chunks (sketchOrder), so the offset learned from each match (onSimilar) stays in stream order.
      const later = sketchInline() && rawLength >= ASYNC_SKETCH_MIN ? superFeaturesAsync(data) : undefined;
      if (later) {
        const inOrder = this.sketchOrder.then(() => later);
        this.sketchOrder = inOrder.then(
          () => undefined,
          () => undefined,
        );
        sf = await inOrder;
      } else if (sketchInline()) sf = superFeatures(data);
      else ({ sf, data } = await this.pool.sketch(data));
      const found = similar.find(sf);
      if (found.length) {
        deltaBases = found;
        onSimilar?.(found[0]!);
      }
    }
    // The offset guess is evaluated late: by now earlier chunks' sketch matches have refined it.
    deltaBases ??= typeof proposed === 'function' ? proposed() : proposed;
    const chosen = type === 'data' ? this.chooseBases(deltaBases, rawLength) : undefined;
    let bases = chosen ? chosen.bases : [];
    const renewAbove = chosen ? chosen.renewAbove : 0;
    if (bases.length === 1 && rawLength >= 16 * 1024 && !this.nativeEncoder && this.workersStarted > 0) {
      // (Not with the C encoder: there a started worker can only be the read pool's, and this would start an
      // encode worker thread beside the C encoder: +10 MB of heap and ~30 MB of buffers in a daily dump's backup.)
      // One base, in the encode worker: only its chain's sealed bytes go there, the worker decodes
      // the chain (read-ops.ts decodeChain), checks the base's hash and delta-compresses against it;
      // no plaintext base crosses threads (a failed base: the blob is stored in full, as below).
      const e = this.index.get(bases[0]!);
      const chain = e && e.type === 'data' && !this.index.chainProblem(bases[0]!) ? await this.chainMsg(bases[0]!, e, true).catch(() => undefined) : undefined;
      if (chain) {
        // (the worker takes the buffer it is given: a copy where a full encode may follow)
        let enc = await this.countJob(this.pool.encode(renewAbove > 0 ? Buffer.from(data) : data, undefined, sketched && !sf, { chain, base: bases[0]! }));
        if (this.renews(enc, renewAbove)) {
          enc = await this.encodeWith(data, undefined, sketched && !sf);
          bases = [];
        }
        await this.addEncoded(type, id, rawLength, enc, bases, sf ?? enc.sf);
        return;
      }
    }
    let dict: Buffer | undefined;
    let dictOwned = false;
    if (bases.length) {
      try {
        ({ dict, owned: dictOwned } = await this.loadBases(bases));
      } catch {
        dict = undefined; // a damaged base is reported by check; store this blob in full
      }
    }
    let enc: { sealed: Buffer; compression: Compression; sf?: number[] };
    const native = this.nativeEncoder;
    // a delta against a re-rooted chain's root may be judged too large: the plaintext is kept for the full encode
    const mayRenew = renewAbove > 0 && dict !== undefined;
    // whether encodeWith gives this blob to the C encoder: then its inputs are freed here once it is done
    const viaNative = native !== undefined && (dict !== undefined || rawLength >= BATCH_BLOB_MAX);
    try {
      enc = await this.encodeWith(data, dict, sketched && !sf, mayRenew);
    } finally {
      if (viaNative) {
        // the C encode is done with them (or failed): free them now, not at a collection V8 puts off
        if (dict && dictOwned) this.release(dict);
        if (owned && !mayRenew) this.release(data);
      }
    }
    if (mayRenew) {
      try {
        if (this.renews(enc, renewAbove)) {
          // the root has drifted too far: this chunk is stored in full and is the root of its chain from now on
          const delta = enc.sealed;
          enc = await this.encodeWith(data, undefined, sketched && !sf);
          this.release(delta);
          bases = [];
        }
      } finally {
        if (owned && viaNative) this.release(data);
      }
    }
    sf ??= enc.sf;
    await this.addEncoded(type, id, rawLength, enc, bases, sf);
  }

  /**
   * Store a blob that was read, hashed and encoded (compressed and sealed, no
   * delta) off the main thread, e.g. a small file read by a worker
   * (engine/small-files.ts). `id` must be the keyed hash of its plaintext;
   * `sf` its resemblance sketch, by the rule of saveBlob (a data blob of at
   * least SKETCH_MIN bytes that zstd could shrink), else none.
   * Unless the repository already has it, it is added to the pack being
   * filled; as saveBlob, it returns once queued (flush() publishes it).
   */
  async saveEncoded(type: BlobType, id: string, rawLength: number, enc: { sealed: Buffer; compression: Compression; sf?: number[] }): Promise<SaveResult> {
    this.throwIfFailed();
    while (this.packsUnsaved >= MAX_UNSAVED_PACKS) {
      await new Promise<void>((resolve) => this.packSavedWaiters.push(resolve));
      this.throwIfFailed();
    }
    const max = type === 'tree' ? MAX_TREE_BLOB : MAX_DATA_BLOB;
    if (rawLength > max) throw new LifeboatError(`a ${type} blob of ${rawLength} bytes exceeds the format maximum of ${max} bytes`);
    if (enc.compression === 2) throw new LifeboatError('saveEncoded: a delta blob needs its bases');
    if (this.hasBlob(id)) return { id, isNew: false };
    this.pendingIds.add(id);
    const p = this.addEncoded(type, id, rawLength, enc, [], enc.sf)
      .catch((err) => {
        this.bgError ??= err;
      })
      .finally(() => this.outstanding.delete(p));
    this.outstanding.add(p);
    return { id, isNew: true };
  }

  private async addEncoded(
    type: BlobType,
    id: string,
    rawLength: number,
    enc: { sealed: Buffer; compression: Compression },
    bases: string[],
    sf: number[] | undefined,
  ): Promise<void> {
    // (no conditional spreads: they give each entry a hidden class of its own; see pack.ts packBlob)
    const entry: Omit<PackBlob, 'offset' | 'length'> = { id, type, rawLength, compression: enc.compression };
    if (enc.compression === 2) {
      entry.base = bases[0]!;
      if (bases[1]) entry.base2 = bases[1];
    }
    if (sf && sf.length) entry.sf = sf;
    const target = await this.packTarget();
    const packer = (this.packers[type] ??= new PackFileWriter(target.dir, !target.publish));
    // The blob's place in the pack is taken now (synchronously); the pack that
    // reaches packSize is closed to further blobs at once, so it holds at most
    // packSize + one blob whatever the number of writes in flight.
    const written = packer.add(entry, enc.sealed);
    const full = packer.size >= this.config.packSize && this.packers[type] === packer;
    if (full) this.packers[type] = undefined;
    try {
      await written;
    } catch (err) {
      if (full) await packer.discard();
      throw err;
    }
    this.reclaimer.dropped(enc.sealed.length);
    this.stats.blobsNew++;
    if (enc.compression === 2) this.stats.blobsDelta++;
    this.stats.dataAddedRaw += rawLength;
    this.stats.dataAdded += enc.sealed.length;
    if (full) await this.finishPack(packer);
  }

  /**
   * Where packs are built: in the storage's own temporary directory when it can
   * publish a file (local: rename into place), else in LIFEBOAT_TMPDIR or the
   * system temporary directory, unlinked at once and read back for upload.
   */
  private packTarget(): Promise<{ dir: string; publish: boolean }> {
    if (!this.packTargetP) {
      const st = this.storage;
      const p = (async () => {
        if (st.tempDir && st.saveFile) return { dir: await st.tempDir(), publish: true };
        return { dir: process.env.LIFEBOAT_TMPDIR || tmpdir(), publish: false };
      })();
      p.catch(() => {
        if (this.packTargetP === p) this.packTargetP = undefined; // retried by the next blob
      });
      this.packTargetP = p;
    }
    return this.packTargetP;
  }

  private async countJob<T>(p: Promise<T>): Promise<T> {
    this.poolJobs++;
    try {
      return await p;
    } finally {
      this.poolJobs--;
      this.kickBatch();
    }
  }

  /**
   * A blob's encode (compress and seal): small blobs without a base in batches, else the C encoder,
   * else an encode worker (`copy`: a copy of `data` goes there, the worker taking the buffer it is
   * given), else this thread.
   */
  private async encodeWith(data: Buffer, dict: Buffer | undefined, sketch: boolean, copy = false): Promise<{ sealed: Buffer; compression: Compression; sf?: number[] }> {
    if (!dict && data.length < BATCH_BLOB_MAX) return this.encodeBatched(data, sketch);
    if (this.nativeEncoder) return this.countJob(this.nativeEncoder.encode(data, dict, sketch));
    if (data.length >= 16 * 1024 && !this.runInline(data.length)) return this.countJob(this.pool.encode(copy ? Buffer.from(data) : data, dict, sketch));
    return this.encodeInline(data, dict, sketch);
  }

  /** Whether a delta against a re-rooted chain's root is too large to keep (chooseBases renewAbove); counted in rootsRenewed. */
  private renews(enc: { sealed: Buffer; compression: Compression }, renewAbove: number): boolean {
    if (!(renewAbove > 0 && enc.compression === 2 && enc.sealed.length > renewAbove)) return false;
    this.rootsRenewed++;
    return true;
  }

  /**
   * Queue a small blob for batch encoding. A batch goes to the workers when it
   * is full, or as soon as a worker has nothing to do: while they are busy,
   * small blobs accumulate, so each message carries many of them.
   */
  private encodeBatched(data: Buffer, sketch: boolean): Promise<{ sealed: Buffer; compression: Compression; sf?: number[] }> {
    return new Promise((resolve, reject) => {
      const b = (this.batch ??= { jobs: [], bytes: 0 });
      b.jobs.push({ data, sketch, resolve, reject });
      b.bytes += data.length;
      if (b.bytes >= BATCH_BYTES || b.jobs.length >= BATCH_MAX_ITEMS) this.sendBatch();
      else if (!this.batchScheduled) {
        this.batchScheduled = true;
        setImmediate(() => {
          this.batchScheduled = false;
          this.kickBatch();
        });
      }
    });
  }

  /**
   * Encode and decode up to `bytes` on the main thread before starting a
   * worker (instead of INLINE_BEFORE_WORKERS), for a process that handles one
   * small unit of work and exits, e.g. `wal-push` / `wal-fetch` of one 16 MiB
   * segment: a worker thread's start-up and the copies to and from it cost
   * more than the overlap it buys there. Call before the first blob.
   */
  inlineUpTo(bytes: number): void {
    this.inlineAsked = true;
    if (this.workersStarted === 0) this.inlineBudget = this.inlineDecodeBudget = bytes;
  }

  /** inlineUpTo was called: decodeInline keeps to its budget, C read pool or not. */
  private inlineAsked = false;

  /** Encode worker threads this repository has started (none beside the C encoder). */
  get encodeWorkersStarted(): number {
    return this.poolInstance?.started ?? 0;
  }

  /** Worker threads this repository has started (encode and decode pools); the C read pool counts 1 once it took a job. */
  get workersStarted(): number {
    return (this.poolInstance?.started ?? 0) + (this.readPoolInstance?.started ?? 0);
  }

  /** Worker threads alone (what a start-up costs): the C read pool runs on libuv's threads and starts none. */
  get workerThreadsStarted(): number {
    return (this.poolInstance?.started ?? 0) + (this.readPoolInstance instanceof WorkerPool ? this.readPoolInstance.started : 0);
  }

  /**
   * runInline for a decode of `bytes` on the read path (a delta chain, a pack range, a blob of
   * 64 KiB or more): never inline with the C read pool (native/codec.c), which has no worker to
   * start and decodes in less CPU than the JavaScript codec on this thread (a chain's levels
   * without copies between them). A day-3 dump restore decoded its first 8 MiB of chains here,
   * one after the other: ~80 ms of this thread while the pool waited. A budget given by
   * inlineUpTo (one WAL segment per process) is kept to.
   */
  private decodeInline(bytes: number): boolean {
    if (!this.inlineAsked && !this.poolInstance && codecNative()) return false;
    return this.runInline(bytes, true);
  }

  /**
   * True if `bytes` of encoding (or with `decode`, decoding) should run on the
   * main thread: while no worker has been started and the inline budget lasts
   * (see INLINE_BEFORE_WORKERS, INLINE_DECODE_BEFORE_WORKERS).
   */
  private runInline(bytes: number, decode = false): boolean {
    if (this.workersStarted > 0) return false;
    const left = decode ? this.inlineDecodeBudget : this.inlineBudget;
    const now = bytes > left ? 0 : left - bytes;
    if (decode) this.inlineDecodeBudget = now;
    else this.inlineBudget = now;
    return bytes <= left;
  }

  private kickBatch(): void {
    if (this.batch && this.poolJobs < (this.nativeEncoder ?? this.pool).size) this.sendBatch();
  }

  private sendBatch(): void {
    const b = this.batch;
    if (!b) return;
    this.batch = undefined;
    const native = this.nativeEncoder;
    if (!native && this.runInline(b.bytes)) {
      for (const j of b.jobs) {
        try {
          j.resolve(this.encodeInline(j.data, undefined, j.sketch));
        } catch (err) {
          j.reject(err as Error);
        }
      }
      return;
    }
    const items = b.jobs.map((j) => ({ data: j.data, sketch: j.sketch }));
    this.countJob(native ? native.encodeBatch(items) : this.pool.encodeBatch(items)).then(
      (results) =>
        results.forEach((r, i) => {
          const j = b.jobs[i]!;
          if (r instanceof Error) j.reject(r);
          else j.resolve(r);
        }),
      (err: Error) => {
        for (const j of b.jobs) j.reject(err);
      },
    );
  }

  /** What a worker's encode op does (worker.ts), on this thread. */
  private encodeInline(data: Buffer, dict: Buffer | undefined, sketch: boolean): { sealed: Buffer; compression: Compression; sf?: number[] } {
    const r = this.codec.encode(data, dict);
    // as in the worker: no sketch for data zstd could not shrink
    const sf = sketch && r.compression !== 0 ? superFeatures(data) : undefined;
    return sf ? { ...r, sf } : r;
  }

  /** Seal a detached pack, store it, and record it in the index (an index file follows its packs). */
  private async finishPack(pw: PackFileWriter | undefined): Promise<void> {
    if (!pw) return;
    if (pw.count === 0) return pw.discard();
    this.packsUnsaved++;
    let id: string;
    let blobs: PackBlob[];
    try {
      const target = await this.packTarget();
      const f = await pw.finalize(this.key.encKey);
      ({ id, blobs } = f);
      await this.uploadSlots.with(async () => {
        if (target.publish) await this.storage.saveFile!('data', f.id, pw.path, f.size);
        else await this.storage.save('data', f.id, await pw.read());
      });
    } finally {
      await pw.discard();
      this.packsUnsaved--;
      const waiters = this.packSavedWaiters;
      this.packSavedWaiters = [];
      for (const w of waiters) w();
    }
    const slots = new Int32Array(blobs.length);
    this.index.addPack(id, blobs, false, slots);
    for (const b of blobs) this.pendingIds.delete(b.id);
    // Until its index file is written, a pack's entries are its blobs' slots in the index (4 B
    // each), not the entry objects (~0.5 kB with a sketch): a 20 GB stream's 16,000 entries, or
    // the 50,000 of a backup of small files, otherwise stayed on the JavaScript heap until then.
    // The rare entry the index did not take (a blob it had already) is kept whole.
    const odd: PackBlob[] = [];
    for (let j = 0; j < slots.length; j++) {
      if (slots[j]! < 0) {
        slots[j] = -1 - odd.length;
        odd.push(blobs[j]!);
      }
    }
    this.newPacks.push({ id, slots, blobs: odd, generation: this.index.generation });
    this.newPacksBlobs += blobs.length;
    if (this.newPacksBlobs >= this.indexFlushBlobs) await this.publishNewPacks();
  }

  /** Write one index file for the packs waiting for theirs (none waiting: nothing written). */
  private async publishNewPacks(): Promise<void> {
    if (this.newPacks.length === 0) return;
    const packs = this.newPacks;
    this.newPacks = [];
    this.newPacksBlobs = 0;
    await this.writePendingIndex(packs);
  }

  /** Wait for all queued blobs, write the last packs and publish an index file for them. */
  async flush(): Promise<void> {
    while (this.outstanding.size > 0) await Promise.all([...this.outstanding]);
    this.throwIfFailed();
    this.baseCache.clear();
    const { data, tree } = this.packers;
    this.packers.data = this.packers.tree = undefined;
    await Promise.all([this.finishPack(data), this.finishPack(tree)]);
    await this.publishNewPacks();
  }

  /** Drop queued-but-unflushed state after a failed backup (written packs stay for prune to reclaim). */
  async abandon(): Promise<void> {
    while (this.outstanding.size > 0) await Promise.allSettled([...this.outstanding]);
    const { data, tree } = this.packers;
    this.packers.data = this.packers.tree = undefined;
    await Promise.all([data?.discard(), tree?.discard()]);
    this.pendingIds.clear();
    this.baseCache.clear();
    this.bgError = undefined;
  }

  /**
   * Decode a sealed blob on the main thread (no hash check: callers verify).
   * The output is capped at `rawLength`, itself checked against the format maximum.
   */
  decodeBlob(sealed: Buffer, compression: 0 | 1 | 2, rawLength: number, what: string, dict?: Buffer): Buffer {
    if (!(rawLength <= MAX_TREE_BLOB)) throw new IntegrityError(`${what}: rawLength ${rawLength} exceeds the format maximum`);
    return this.codec.decode(sealed, compression, rawLength, what, dict);
  }

  indexEntry(id: string): IndexEntry | undefined {
    return this.index.get(id);
  }

  /** Pack sizes (stat once per pack): every index entry's range is checked against the real object before it is read. */
  private readonly packSizes = new Map<string, Promise<number>>();

  private packSize(pack: string): Promise<number> {
    let p = this.packSizes.get(pack);
    if (!p) {
      p = this.storage.stat('data', pack).then((st) => st.size);
      p.catch(() => this.packSizes.delete(pack)); // a transient error is retried by the next read
      this.packSizes.set(pack, p);
    }
    return p;
  }

  /**
   * Where a full (not delta) blob lies, for a restore that reads packs in
   * ranges (engine/restore-plan.ts). Undefined for a delta, a blob missing
   * from the index, or an entry that fails a check: the caller loads those
   * with loadBlob, which resolves the chain or reports the problem.
   */
  fullBlobLocation(id: string): { pack: string; offset: number; length: number; compression: Compression; rawLength: number } | undefined {
    const e = this.index.get(id);
    if (!e || e.compression === 2 || e.depth !== 0 || e.base !== undefined) return undefined;
    const max = e.type === 'tree' ? MAX_TREE_BLOB : MAX_DATA_BLOB;
    if (!(e.rawLength <= max) || e.length > e.rawLength + SEAL_OVERHEAD) return undefined;
    return e;
  }

  /** A pack's size (stat once per pack; a missing pack is an IntegrityError naming `what`). */
  async packBytes(pack: string, what: string): Promise<number> {
    try {
      return await this.packSize(pack);
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`${what}: pack file is missing`);
      throw err;
    }
  }

  /**
   * Read [start, end) of a pack's blob area; the caller has checked every blob
   * in it against packBytes() (the same check as loadBlob's). A missing or
   * short pack is an IntegrityError saying only that (the caller names the blobs).
   */
  async readPackRange(pack: string, start: number, end: number): Promise<Buffer> {
    try {
      return await this.storage.load('data', pack, { offset: start, length: end - start });
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`pack file is missing`);
      if (err instanceof LifeboatError && /short read/.test(err.message)) throw new IntegrityError(`pack is truncated`);
      throw err;
    }
  }

  /**
   * Decode the full blobs of one ranged read (offsets relative to `chunk`) in a
   * read-pool worker; each plaintext is checked against its keyed id there
   * (the hash) and here (the comparison). Per blob: its plaintext or the
   * IntegrityError that refused it.
   */
  async decodeRange(
    chunk: Buffer,
    blobs: ReadonlyArray<{ id: string; pack: string; offset: number; length: number; compression: Compression; rawLength: number }>,
    slabs?: SlabPool,
  ): Promise<{ blobs: Array<Buffer | IntegrityError>; slab: ArrayBuffer }> {
    const jobs = blobs.map((b) => ({ offset: b.offset, length: b.length, compression: b.compression, rawLength: b.rawLength, what: `blob ${b.id} in pack ${b.pack}` }));
    const raw = blobs.reduce((a, b) => a + b.rawLength, 0);
    // a small restore decodes on the main thread (INLINE_DECODE_BEFORE_WORKERS) when the reads go to decode workers (decodeInline)
    const { results, slab } = this.decodeInline(raw)
      ? decodeRange(this.codec, this.key.idKey, chunk, jobs, slabs?.take(raw), slabs?.size ?? 0)
      : await this.readPool.decodeRange(chunk, jobs, slabs?.take(raw), slabs?.size ?? 0);
    const out = results.map((r, i) => {
      const b = blobs[i]!;
      if ('error' in r) return r.error.name === 'IntegrityError' ? new IntegrityError(r.error.message) : new IntegrityError(`${jobs[i]!.what}: ${r.error.message}`);
      if (r.id !== b.id) return new IntegrityError(`${jobs[i]!.what}: content does not match its id (hash mismatch)`);
      if (!(Number.isSafeInteger(r.at) && r.at >= 0 && r.at + b.rawLength <= slab.byteLength)) return new IntegrityError(`${jobs[i]!.what}: worker returned a malformed result`);
      return Buffer.from(slab, r.at, b.rawLength);
    });
    return { blobs: out, slab };
  }

  /**
   * A full (not delta) blob read where a log entry says it is, without the
   * index (log-archive.ts `at`). The location is untrusted and only a hint:
   * it is checked against the format limits and the pack's size, the range
   * decoded with its length capped at `rawLength`, and the plaintext accepted
   * only when its keyed hash is `id`. Undefined when the blob is not there
   * (the pack was pruned or repacked, the hint is wrong): the caller asks the
   * index instead. Errors of the storage itself (a timeout) are thrown.
   */
  async loadBlobHinted(id: string, at: { pack: string; offset: number; length: number; compression: Compression }, rawLength: number): Promise<Buffer | undefined> {
    const { pack, offset, length, compression } = at;
    if (!(rawLength > 0 && rawLength <= MAX_DATA_BLOB && length > 0 && length <= rawLength + SEAL_OVERHEAD && offset >= 0)) return undefined;
    const what = `blob ${id} in pack ${pack}`;
    try {
      if (offset + length + 4 > (await this.packSize(pack))) return undefined;
      const sealed = await this.storage.load('data', pack, { offset, length });
      let data: Buffer;
      let got: string | undefined;
      if (this.runInline(rawLength, true)) {
        data = this.codec.decode(sealed, compression, rawLength, what);
        got = blobId(this.key.idKey, data);
      } else ({ data, id: got } = await this.readPool.decode(sealed, compression, rawLength, what, undefined, { hash: true }));
      return got === id ? data : undefined;
    } catch (err) {
      if (err instanceof NotFoundError || err instanceof IntegrityError || (err instanceof LifeboatError && /short read/.test(err.message))) return undefined;
      throw err;
    }
  }

  /** Loads in flight, shared: a delta lattice (two bases per level) costs one load per blob, not one per path. */
  private readonly inflight = new Map<string, Promise<{ data: Buffer; verified: boolean }>>();

  /**
   * Load a blob and verify it: the seal's MAC, the decoded length and the keyed
   * hash of the plaintext must all match, for the blob and every delta base.
   * Everything read from the index is checked first: the entry against the
   * format limits (at index load), the delta chain for cycles and depth, and
   * the entry's range against the pack's real size.
   */
  async loadBlob(id: string, opts: { cacheable?: boolean; noCache?: boolean } = {}): Promise<Buffer> {
    return this.loadBlobAt(id, 0, opts.noCache ? 'never' : !!opts.cacheable);
  }

  /**
   * loadBlob, the plaintext the caller's alone: not taken from the read cache, not shared with
   * a load of the same blob in flight, not cached. The caller may free it with release() once
   * it is done with it (a restore: as soon as it is written). A plaintext decoded on this thread
   * under 4 KiB sits in Node's shared pool of small buffers (Buffer.allocUnsafe), which release()
   * cannot free: it is copied into memory of its own, so that every owned blob can be freed.
   */
  async loadOwnedBlob(id: string): Promise<Buffer> {
    const data = (await this.readBlob(id, 0, 'never', true)).data;
    if (data.byteLength === 0 || ownsBuffer(data)) return data;
    const own = Buffer.allocUnsafeSlow(data.byteLength);
    data.copy(own);
    return own;
  }

  /** Buffers freed by release() (tests check the restore frees what it loaded). */
  released = 0;
  /** Chunks stored in full because the delta against their chain's root had grown too large (chooseBases). */
  rootsRenewed = 0;

  /**
   * Free a buffer from loadOwnedBlob now, not at a later garbage collection (the C codec's
   * detach; without it, nothing: the collector frees it). Only a buffer that is the whole of
   * its own, non-shared memory is freed; the caller must hold no other view of it. A restore of
   * a delta-chain dump (one loose load per chunk) held ~40 MB of written plaintexts that
   * V8's collections did not free before the next ones were read (docs/benchmarks.md, dumprss7).
   */
  release(buf: Buffer): void {
    this.released += freeOwned(buf);
  }

  /**
   * `verify` false (delta bases only): the plaintext's hash may go unchecked;
   * such a blob is cached as unverified and hashed before it is ever handed
   * out as a blob in its own right.
   */
  private async loadBlobAt(id: string, level: number, cacheable: boolean | 'never', verify = true, onMain = false): Promise<Buffer> {
    const cached = this.cache.get(id);
    if (cached) {
      if (verify && !cached.verified) {
        this.checkHash(id, cached.data);
        this.cache.markVerified(id);
      }
      return cached.data;
    }
    let p = this.inflight.get(id);
    if (!p) {
      // Registered before the read starts (on a later microtask): bases requested meanwhile join it.
      p = Promise.resolve()
        .then(() => this.readBlob(id, level, cacheable, verify, onMain))
        .finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    const r = await p;
    if (verify && !r.verified) {
      this.checkHash(id, r.data); // joined a base's unchecked load
      this.cache.markVerified(id);
    }
    return r.data;
  }

  /** A blob's sealed bytes, its index entry's range checked against the pack's real size first. */
  private async readSealed(e: IndexEntry, what: string): Promise<Buffer> {
    let size: number;
    try {
      size = await this.packSize(e.pack);
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`${what}: pack file is missing`);
      throw err;
    }
    if (e.offset + e.length + 4 > size) {
      throw new IntegrityError(`${what}: index entry (offset ${e.offset}, length ${e.length}) lies beyond the end of the ${size}-byte pack (truncated pack or damaged index)`);
    }
    try {
      return await this.storage.load('data', e.pack, { offset: e.offset, length: e.length });
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`${what}: pack file is missing`);
      if (err instanceof LifeboatError && /short read/.test(err.message)) throw new IntegrityError(`${what}: pack is truncated`);
      throw err;
    }
  }

  /**
   * A single-base delta blob's index entry and sealed bytes (check --read-data: a delta verified forward,
   * from its base's plaintext in the range of the base's pack being read; read-pack.ts). Undefined when the
   * index entry is not such a delta or is impossible under the format limits; storage errors are thrown.
   */
  async deltaSealed(id: string): Promise<{ e: IndexEntry; sealed: Buffer } | undefined> {
    const e = this.index.get(id);
    if (!e || e.type !== 'data' || e.compression !== 2 || !e.base || e.base2 || this.index.chainProblem(id)) return undefined;
    if (e.rawLength > MAX_DATA_BLOB || e.length > e.rawLength + SEAL_OVERHEAD) return undefined;
    return { e, sealed: await this.readSealed(e, `blob ${id} in pack ${e.pack}`) };
  }

  /** Delta blobs read by readChain (tests check the one-go path is taken). */
  chainReads = 0;

  /** The dictionaries of deltas on two bases joined by loadBases: in huge pages, or on the heap (tests). */
  readonly basesJoined = { huge: 0, heap: 0 };

  /**
   * A delta at the end of a chain of single-base deltas (a daily dump's chunk: day N on day
   * N-1 ... on day 0), read and decoded in one go: every level's sealed bytes are read at once
   * (not one level after the other) and decoded in one job (read-ops.ts decodeChain: two reused
   * buffers, no base copied between threads); only the last plaintext is hashed, as on the
   * level-by-level path, whose bases go unchecked too. Undefined (the caller takes the
   * level-by-level path, which also says which blob is at fault) for anything else: a base with
   * two bases, an entry the format forbids, a chain whose sealed bytes exceed twice the blob
   * (the memory the level-by-level path holds), a read or decode error, or a hash mismatch.
   * Each entry is checked as readBlob checks one.
   */
  private async readChain(id: string, e: IndexEntry, verify: boolean, onMain: boolean): Promise<{ data: Buffer; verified: boolean } | undefined> {
    const msg = await this.chainMsg(id, e, verify);
    if (!msg) return undefined;
    const r = onMain || this.decodeInline(e.rawLength) ? decodeChain(this.codec, this.key.idKey, msg) : await this.readPool.decodeChain(msg);
    if (r.id !== undefined && r.id !== id) return undefined;
    this.chainReads++;
    return { data: r.data, verified: r.id !== undefined };
  }

  /**
   * A delta blob's bases as chains to decode where the blob is verified (check --read-data,
   * chunk-verify.ts): per base, its sealed bytes and those of its own bases down to a full blob,
   * read at once, not decoded here and not cached; the bases' own hashes are not computed (the
   * blob built on them is hashed). Undefined when a base is not on a readable single-base chain:
   * then loadDict (level by level, with its errors).
   */
  async baseChains(bases: string[]): Promise<ChainMsg[] | undefined> {
    if (bases.length === 0) return undefined;
    const chains = await Promise.all(
      bases.map((b) => {
        const e = this.index.get(b);
        if (!e || e.type !== 'data' || this.index.chainProblem(b) || 1 + e.depth > MAX_DELTA_DEPTH) return undefined;
        return this.chainMsg(b, e, false).catch(() => undefined);
      }),
    );
    return chains.every((c) => c !== undefined) ? (chains as ChainMsg[]) : undefined;
  }

  /**
   * A delta's bases decoded for that one delta (check --read-data with the C codec) where baseChains cannot
   * send them as chains: a base with two bases, or on a chain through one (a daily dump's chunk whose previous
   * day's chunk was a delta on two). Each base's plaintext is the caller's alone: not cached, not shared with a
   * load in flight; the caller frees them with release() once the delta is verified. As with baseChains, the
   * bases' own hashes are not computed (the blob built on them is hashed). Each single-base chain within is
   * decoded in one job (decodeChain); a level with two bases from its bases' plaintexts, freed once it is
   * decoded. Undefined without the C codec, or when the bases take more than MAX_OWNED_DECODES decodes (a
   * lattice of two-base levels: 2^depth paths): then loadDict, whose loads in flight and read cache decode each
   * blob once. Through the read cache (shared buffers, cached and then garbage), 8 such deltas of the bench's
   * day-3 dump were ~45 MB of its check's peak.
   */
  async ownedBases(bases: string[]): Promise<Buffer[] | undefined> {
    if (!this.readPool.native || bases.length === 0) return undefined;
    type Node = { id: string; e: IndexEntry; chain?: { ids: string[]; entries: IndexEntry[] }; parts?: Node[] };
    let budget = MAX_OWNED_DECODES;
    const plan = (ids: readonly string[], level: number): Node[] | undefined => {
      const out: Node[] = [];
      for (const id of ids) {
        const e = this.index.get(id);
        if (--budget < 0 || !e || e.type !== 'data' || this.index.chainProblem(id) || level + e.depth > MAX_DELTA_DEPTH) return undefined;
        if (e.rawLength > MAX_DATA_BLOB || e.length > e.rawLength + SEAL_OVERHEAD) return undefined;
        const chain = this.chainEntries(id, e);
        if (chain) out.push({ id, e, chain });
        else if (e.compression === 2) {
          const parts = plan(basesOf(e), level + 1);
          if (!parts) return undefined;
          out.push({ id, e, parts });
        } else return undefined;
      }
      return out;
    };
    const nodes = plan(bases, 1);
    if (!nodes) return undefined;
    /** Each node's plaintext; when one fails, the others that were decoded are freed. */
    const all = async (list: Node[]): Promise<Buffer[]> => {
      const got = await Promise.allSettled(list.map(decode));
      const bad = got.find((g): g is PromiseRejectedResult => g.status === 'rejected');
      if (!bad) return got.map((g) => (g as PromiseFulfilledResult<Buffer>).value);
      for (const g of got) if (g.status === 'fulfilled') this.release(g.value);
      throw bad.reason;
    };
    const decode = async (n: Node): Promise<Buffer> => {
      if (n.chain) return (await this.readPool.decodeChain(await this.readChainMsg(n.chain.ids, n.chain.entries, false))).data;
      const parts = await all(n.parts!);
      try {
        const what = `blob ${n.id} in pack ${n.e.pack}`;
        const sealed = await this.readSealed(n.e, what);
        return (await this.readPool.decode(sealed, n.e.compression, n.e.rawLength, what, parts, { hash: false })).data;
      } finally {
        for (const p of parts) this.release(p);
      }
    };
    return all(nodes);
  }

  /** The chain ending in blob `id` (root first) with every level's sealed bytes, read at once; undefined as readChain says. */
  private async chainMsg(id: string, e: IndexEntry, verify: boolean): Promise<ChainMsg | undefined> {
    const chain = this.chainEntries(id, e);
    return chain && this.readChainMsg(chain.ids, chain.entries, verify);
  }

  /** The entries of the single-base chain ending in blob `id` (root first), or undefined (see readChain). */
  private chainEntries(id: string, e: IndexEntry): { ids: string[]; entries: IndexEntry[] } | undefined {
    if (e.rawLength > MAX_DATA_BLOB || e.length > e.rawLength + SEAL_OVERHEAD) return undefined;
    const ids = [id];
    const entries = [e];
    let sealedBytes = e.length;
    for (let x = e; x.compression === 2; ) {
      if (!x.base || x.base2) return undefined;
      const b = this.index.get(x.base);
      if (!b || b.type !== 'data' || b.rawLength > MAX_DATA_BLOB || b.length > b.rawLength + SEAL_OVERHEAD) return undefined;
      sealedBytes += b.length;
      if (entries.length > MAX_DELTA_DEPTH || sealedBytes > chainBytesLimit(e.rawLength)) return undefined;
      ids.push(x.base);
      entries.push(b);
      x = b;
    }
    ids.reverse();
    entries.reverse();
    return { ids, entries };
  }

  /** A chain's message: every level's sealed bytes read at once (`ids`, `entries`: root first). */
  private async readChainMsg(ids: string[], entries: IndexEntry[], verify: boolean): Promise<ChainMsg> {
    const what = entries.map((x, i) => `blob ${ids[i]} in pack ${x.pack}`);
    return {
      sealed: await Promise.all(entries.map((x, i) => this.readSealed(x, what[i]!))),
      compression: entries.map((x) => x.compression),
      rawLength: entries.map((x) => x.rawLength),
      what,
      ids,
      ...(verify ? {} : { noHash: true }),
    };
  }

  private checkHash(id: string, data: Buffer): void {
    if (blobId(this.key.idKey, data) !== id) {
      throw new IntegrityError(`blob ${id} in pack ${this.index.get(id)?.pack ?? '?'}: content does not match its id (hash mismatch)`);
    }
  }

  /**
   * `onMain`: decoded on this thread (a backup's delta base: its one encode worker is the busy
   * side there, delta-compressing). A delta at the end of a chain of single-base deltas is read
   * and decoded in one go (readChain); anything else level by level, bases first.
   */
  private async readBlob(id: string, level: number, cacheable: boolean | 'never', verify: boolean, onMain = false): Promise<{ data: Buffer; verified: boolean }> {
    const e = this.index.get(id);
    if (!e) {
      const rej = this.index.rejected.get(id);
      if (rej) throw new IntegrityError(rej.reason);
      throw new IntegrityError(`blob ${id} is not in the index (missing or damaged index/pack)`);
    }
    const what = `blob ${id} in pack ${e.pack}`;
    const chain = this.index.chainProblem(id);
    if (chain) throw new IntegrityError(`${what}: ${chain}`);
    if (level + e.depth > MAX_DELTA_DEPTH) {
      throw new IntegrityError(`${what}: delta chain deeper than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`);
    }
    const max = e.type === 'tree' ? MAX_TREE_BLOB : MAX_DATA_BLOB;
    if (e.rawLength > max || e.length > e.rawLength + SEAL_OVERHEAD) throw new IntegrityError(`${what}: index entry is impossible (length ${e.length}, rawLength ${e.rawLength})`);
    // The blob asked for is read in one go (readChain). The bases of a two-base blob stay level by
    // level through the read cache: reading each of them in one go too (branch delta5) cut a day-3
    // dump restore's peak RSS by ~25 MB but cost ~0.25 CPU s (12%), as neighbouring blobs share
    // those chains' inner levels and decoded them again (bench/results/steps-all-2026-12-01c.md)
    if (e.compression === 2 && level === 0) {
      const r = await this.readChain(id, e, verify, onMain).catch(() => undefined);
      if (r) {
        if (cacheable === true) this.cache.set(id, r.data, r.verified, e.type === 'tree');
        return r;
      }
    }
    let dict: Buffer[] | undefined;
    /** Private bases (ownDictParts) this decode holds: given back once it is done. */
    let own: string[] | undefined;
    if (e.compression === 2) {
      // Bases first: only one level's sealed bytes are held while the chain is resolved.
      try {
        if (cacheable === 'never') ({ parts: dict, own } = await this.ownDictParts(basesOf(e), level + 1, onMain));
        else dict = await this.loadDictParts(basesOf(e), level + 1, false, onMain);
      } catch (err) {
        throw new IntegrityError(`${what}: its delta base is unreadable: ${(err as Error).message}`);
      }
    }
    let data: Buffer;
    let got: string | undefined;
    try {
      const sealed = await this.readSealed(e, what);
      // Trees are always checked: they are parsed right away.
      const hash = verify || e.type === 'tree';
      if (e.rawLength >= 64 * 1024 && !onMain && !this.decodeInline(e.rawLength)) {
        // a blob to be cached (a delta base) comes back shared: as a later delta's dictionary it is not copied per job
        // Not in a backup's encode pool: there the shared bases piled up (a SharedArrayBuffer is freed only once
        // both threads have collected it; the third daily dump of bench/steps-all.sh peaked at ~380 MB instead of ~270).
        const shared = cacheable === true && !this.poolInstance;
        ({ data, id: got } = await this.readPool.decode(sealed, e.compression, e.rawLength, what, dict, { hash, shared }));
      } else {
        data = this.codec.decode(sealed, e.compression, e.rawLength, what, dict && (dict.length === 1 ? dict[0] : Buffer.concat(dict)));
        if (hash) got = blobId(this.key.idKey, data);
      }
    } finally {
      // the decode is over (the read pool's job too): this one no longer holds its private bases
      if (own) this.dropOwn(own);
    }
    const verified = got !== undefined;
    if (verified && got !== id) {
      if (dict) {
        // The bases were not checked on their own: find out whether one of them is wrong, and say which.
        this.cache.dropUnverified();
        try {
          await this.loadDict(basesOf(e), level + 1, true);
        } catch (err) {
          throw new IntegrityError(`${what}: its delta base is unreadable: ${(err as Error).message}`);
        }
      }
      throw new IntegrityError(`${what}: content does not match its id (hash mismatch)`);
    }
    if (cacheable !== 'never' && (e.type === 'tree' || cacheable)) this.cache.set(id, data, verified, e.type === 'tree');
    return { data, verified };
  }

  // ---------------------------------------------------------------- trees

  async saveTree(tree: Tree): Promise<string> {
    return (await this.saveBlob('tree', encodeTree(tree))).id;
  }

  /** `cache: false`: the tree is not kept in the blob cache (a walk that visits every tree once). */
  async loadTree(id: string, opts: { cache?: boolean } = {}): Promise<Tree> {
    const e = this.index.get(id);
    if (e && e.type !== 'tree') throw new IntegrityError(`blob ${id} is referenced as a tree but is a data blob`);
    return decodeTree(await this.loadBlob(id, { noCache: opts.cache === false }), id);
  }

  // ---------------------------------------------------------------- snapshots

  async saveSnapshot(s: Omit<Snapshot, 'v' | 'program' | 'hostname' | 'username'> & Partial<Snapshot>): Promise<string> {
    let user = 'unknown';
    try {
      user = userInfo().username;
    } catch {
      /* ignore */
    }
    const snap: Snapshot = { v: 1, program: PROGRAM, hostname: hostname(), username: user, ...s } as Snapshot;
    const bytes = sealJson(this.key.encKey, snap, true);
    const name = sha256(bytes);
    await this.storage.save('snapshot', name, bytes);
    return name;
  }

  async loadSnapshot(id: string): Promise<SnapshotWithId> {
    const raw = await this.storage.load('snapshot', id);
    if (sha256(raw) !== id) throw new IntegrityError(`snapshot ${id}: file content does not match its name`);
    return { ...validateSnapshot(openJson(this.key.encKey, raw, `snapshot ${id}`), id), id };
  }

  /** Receives warnings about damaged objects that were skipped (the CLI prints them). */
  onWarning: ((msg: string) => void) | undefined;

  /**
   * All readable snapshots. A damaged snapshot file is skipped (reported through
   * onError, or onWarning by default) so it cannot block restoring the others;
   * `check` reports it by name.
   */
  async listSnapshots(opts: { onError?: (id: string, err: unknown) => void } = {}): Promise<SnapshotWithId[]> {
    const files = await this.storage.list('snapshot');
    const out: SnapshotWithId[] = [];
    await mapLimit(files, 8, async (f) => {
      try {
        out.push(await this.loadSnapshot(f.name));
      } catch (err) {
        if (opts.onError) opts.onError(f.name, err);
        else if (err instanceof IntegrityError || err instanceof NotFoundError) {
          this.onWarning?.(`snapshot ${f.name.slice(0, 12)} is damaged and was skipped: ${(err as Error).message}`);
        } else throw err;
      }
    });
    return out.sort((a, b) => byCodeUnit(a.time, b.time) || byCodeUnit(a.id, b.id));
  }

  /** Resolve "latest", a full id or a unique id prefix (optionally filtered). */
  async findSnapshot(ref: string, filter: SnapshotFilter = {}): Promise<SnapshotWithId> {
    const all = filterSnapshots(await this.listSnapshots(), filter);
    if (ref === 'latest') {
      const s = all[all.length - 1];
      if (!s) throw new LifeboatError(`no snapshot matches${describeFilter(filter)}`);
      return s;
    }
    if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new LifeboatError(`invalid snapshot id "${ref}" (expected hex id, prefix, or "latest")`, 2);
    const hits = all.filter((s) => s.id.startsWith(ref));
    if (hits.length === 0) throw new LifeboatError(`no snapshot with id ${ref}${describeFilter(filter)}`);
    if (hits.length > 1) throw new LifeboatError(`snapshot id prefix ${ref} is ambiguous (${hits.length} matches)`, 2);
    return hits[0]!;
  }

  async removeSnapshot(id: string): Promise<void> {
    await this.storage.remove('snapshot', id);
  }

  // ---------------------------------------------------------------- locks

  /** How long lock() waits for a conflicting lock by default (the CLI's --retry-lock). */
  lockRetryMs = 0;

  /**
   * --no-lock: operations that only read (READ_ONLY_OPERATIONS: restore, check,
   * ...) take no lock; any other operation refuses to run.
   */
  noLock = false;
  private readOnlyNoticed = false;
  /** Lease of the locks this process takes (lock.ts DEFAULT_LEASE_MS; the CLI reads LIFEBOAT_LOCK_LEASE). */
  lockLeaseMs = DEFAULT_LEASE_MS;
  /** The host name locks record (a fleet agent's host id; default os.hostname()). */
  lockHost = hostname();
  /**
   * Called when a lock of this process is lost (its lease ran out without a
   * refresh). The lock's check() throws from then on and its signal is aborted;
   * the CLI also ends an exclusive operation at once.
   */
  onLockLost: ((err: LockLostError, lock: Lock) => void) | undefined;

  /**
   * Take the repository lock for an operation. A reading operation on a
   * repository that cannot be written (the lock cannot be created: read-only
   * mount, read-only credentials) goes on without one, saying so once.
   */
  async lock(exclusive: boolean, operation: string, retryMs = this.lockRetryMs): Promise<Lock> {
    if (exclusive && this.storage.appendOnly) {
      // prune, repair index, wal-prune delete objects: refuse before anything is written
      throw new AppendOnlyError(
        `"${operation}" deletes data and cannot run on ${this.storage.location}: the repository is opened append-only; run it from a trusted host with full credentials and without --append-only / appendOnly`,
      );
    }
    const readOnly = !exclusive && READ_ONLY_OPERATIONS.has(operation);
    const info = { ...Lock.newInfo(exclusive, operation, this.lockLeaseMs, this.lockHost), nonce: '' };
    if (this.noLock) {
      if (!readOnly) {
        throw new LifeboatError(
          `--no-lock: "${operation}" writes to the repository and needs its lock; --no-lock is only for reading commands (snapshots, ls, restore, check, drill)`,
          2,
        );
      }
      return Lock.none(this.storage, this.key.encKey, info);
    }
    return Lock.acquire(this.storage, this.key.encKey, {
      exclusive,
      operation,
      retryMs,
      leaseMs: this.lockLeaseMs,
      host: this.lockHost,
      readOnlyOk: readOnly,
      onNotice: (msg) => (this.onWarning ? this.onWarning(msg) : process.stderr.write(`warning: ${msg}\n`)),
      onLost: (err, lock) => this.onLockLost?.(err, lock),
      onReadOnly: (msg) => {
        if (this.readOnlyNoticed) return;
        this.readOnlyNoticed = true;
        if (this.onWarning) this.onWarning(msg);
        else process.stderr.write(`warning: ${msg}\n`);
      },
    });
  }

  async close(): Promise<void> {
    this.cache.clear();
    this.chunkerWindows.length = 0;
    while (this.outstanding.size > 0) await Promise.allSettled([...this.outstanding]);
    const { data, tree } = this.packers; // unflushed packs (a failed backup): their temporary files go
    this.packers.data = this.packers.tree = undefined;
    await Promise.all([data?.discard(), tree?.discard()]);
    if (this.poolInstance) await this.poolInstance.close();
    this.poolInstance = undefined;
    if (this.readPoolInstance) await this.readPoolInstance.close();
    this.readPoolInstance = undefined;
    await this.storage.close();
  }
}

export interface SnapshotFilter {
  host?: string;
  paths?: string[];
  tags?: string[];
  /** Source name (snapshot.source.name) for database/stream sources. */
  source?: string;
}

export function filterSnapshots<T extends Snapshot>(snaps: T[], f: SnapshotFilter): T[] {
  return snaps.filter((s) => {
    if (f.host && s.hostname !== f.host) return false;
    if (f.tags && f.tags.length && !f.tags.every((t) => s.tags.includes(t))) return false;
    // a files source's snapshots carry the tag source:NAME (no stream metadata); a stream source's carry source.name
    if (f.source && s.source?.name !== f.source && !s.tags.includes(`source:${f.source}`)) return false;
    if (f.paths && f.paths.length) {
      const a = [...s.paths].sort().join('\0');
      const b = [...f.paths].sort().join('\0');
      if (a !== b) return false;
    }
    return true;
  });
}

function describeFilter(f: SnapshotFilter): string {
  const parts: string[] = [];
  if (f.host) parts.push(`host ${f.host}`);
  if (f.source) parts.push(`source ${f.source}`);
  if (f.paths?.length) parts.push(`paths ${f.paths.join(',')}`);
  if (f.tags?.length) parts.push(`tags ${f.tags.join(',')}`);
  return parts.length ? ` (filter: ${parts.join('; ')})` : '';
}
