import { randomBytes } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import zstd from 'zstd-napi';
import zstdBinding from 'zstd-napi/binding.js';
import { IntegrityError, LifeboatError, NoRepositoryError, NotFoundError } from '../errors.js';
import type { Storage } from '../storage/types.js';
import { LruCache, Semaphore, mapLimit } from '../util/sync.js';
import { Chunker, type ChunkerParams, DEFAULT_CHUNKER, gearTable, validateChunkerParams } from './chunker.js';
import { BlobCodec, decompressCapped } from './codec.js';
import { type MasterKey, blobId, newMasterKey, open, seal, sha256 } from './crypto.js';
import { type IndexEntry, type IndexFile, type IndexFilePack, MasterIndex, validateIndexFile } from './index.js';
import { createKeyFile, openWithPassword } from './keys.js';
import { Lock, READ_ONLY_OPERATIONS } from './lock.js';
import type { SketchIndex } from './sketch.js';
import {
  type BlobType,
  MAX_DATA_BLOB,
  MAX_DELTA_DEPTH,
  MAX_INDEX_JSON,
  MAX_JSON,
  MAX_TREE_BLOB,
  PackWriter,
  SEAL_OVERHEAD,
  basesOf,
} from './pack.js';
import { WorkerPool } from './pool.js';
import { type Snapshot, type SnapshotWithId, validateSnapshot } from './snapshot.js';
import { type Tree, decodeTree, encodeTree } from './tree.js';

export const FORMAT_VERSION = 1;
/** Data blobs at least this large carry a resemblance sketch. */
export const SKETCH_MIN = 64 * 1024;
export const PROGRAM = 'lifeboat 0.1.0';

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

/**
 * Open a sealed JSON object. Its plaintext is capped at `maxBytes` (format
 * maxima MAX_JSON / MAX_INDEX_JSON): a larger object, or a zstd payload that
 * would decompress to more, is refused before (or while, never after) inflating it.
 */
export function openJson(key: Buffer, sealed: Buffer, what: string, maxBytes = MAX_JSON): unknown {
  if (sealed.length > maxBytes + SEAL_OVERHEAD + 1) {
    throw new IntegrityError(`${what}: ${sealed.length} bytes is larger than the format maximum (${maxBytes} bytes of JSON)`);
  }
  const body = open(key, sealed, what);
  if (body.length < 1) throw new IntegrityError(`${what}: empty`);
  let json: Buffer;
  try {
    if (body[0] === 0) json = body.subarray(1);
    else if (body[0] === 1) json = decompressCapped((jsonDctx ??= new zstdBinding.DCtx()), body.subarray(1), maxBytes);
    else throw new Error(`unknown encoding ${body[0]}`);
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
  private readonly cache = new LruCache<Buffer>(96 * 1024 * 1024);
  private readonly packers: Record<BlobType, PackWriter> = { data: new PackWriter(), tree: new PackWriter() };
  private readonly pendingIds = new Set<string>();
  private readonly outstanding = new Set<Promise<void>>();
  private readonly sealSlots: Semaphore;
  private readonly uploadSlots = new Semaphore(2);
  private newPacks: IndexFilePack[] = [];
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
    this.sealSlots = new Semaphore(Number(process.env.LIFEBOAT_INFLIGHT) || 4);
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
    if (!(await storage.saveNew('config', '', sealJson(master.encKey, config, false)))) {
      await storage.remove('key', keyName).catch(() => {});
      throw new RepositoryExistsError(storage.location);
    }
    return new Repository(storage, master, keyName, config);
  }

  static async open(storage: Storage, password: string, opts: { loadIndex?: boolean } = {}): Promise<Repository> {
    if (!(await storage.exists('config', ''))) throw new NoRepositoryError(storage.location);
    const { key, keyName } = await openWithPassword(storage, password);
    const cfg = openJson(key.encKey, await storage.load('config', ''), 'config') as RepoConfig;
    if (!cfg || cfg.v !== FORMAT_VERSION) {
      throw new LifeboatError(`repository format version ${String(cfg?.v)} is not supported by ${PROGRAM} (supports ${FORMAT_VERSION})`);
    }
    const repo = new Repository(storage, key, keyName, cfg);
    if (opts.loadIndex !== false) await repo.loadIndex();
    return repo;
  }

  get pool(): WorkerPool {
    if (!this.poolInstance) this.poolInstance = new WorkerPool(this.key, this.config.compressionLevel);
    return this.poolInstance;
  }

  newChunker(): Chunker {
    return new Chunker(this.gear, this.config.chunker);
  }

  blobId(data: Uint8Array): string {
    return blobId(this.key.idKey, data);
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
        const idx = validateIndexFile(openJson(this.key.encKey, raw, `index ${f.name}`, MAX_INDEX_JSON), f.name);
        this.index.addFile(f.name, idx);
      } catch (err) {
        if (err instanceof IntegrityError || err instanceof NotFoundError) this.indexErrors.set(f.name, err);
        else throw err;
      }
    });
    this.index.computeDepths();
  }

  /**
   * Re-read the index from storage. Operations that decide what is garbage
   * (prune) or copy what others wrote meanwhile (WAL copies) call this after
   * taking their lock: other processes may have added packs and index files
   * since this repository was opened.
   */
  async reloadIndex(): Promise<void> {
    this.index.clear();
    this.indexErrors.clear();
    await this.loadIndex();
  }

  async writeIndexFile(packs: IndexFilePack[]): Promise<string> {
    const file: IndexFile = { v: 1, packs };
    const bytes = sealJson(this.key.encKey, file, true);
    const name = sha256(bytes);
    await this.storage.save('index', name, bytes);
    this.index.files.set(name, packs);
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
    opts: { id?: string; deltaBases?: string[] | (() => string[]); similar?: SketchIndex; onSimilar?: (baseId: string) => void } = {},
  ): Promise<SaveResult> {
    this.throwIfFailed();
    const max = type === 'tree' ? MAX_TREE_BLOB : MAX_DATA_BLOB;
    if (data.length > max) throw new LifeboatError(`a ${type} blob of ${data.length} bytes exceeds the format maximum of ${max} bytes`);
    const id = opts.id ?? blobId(this.key.idKey, data);
    if (this.hasBlob(id)) return { id, isNew: false };
    this.pendingIds.add(id);
    await this.sealSlots.acquire();
    const p = this.encodeAndPack(type, id, data, opts.deltaBases, opts.similar, opts.onSimilar)
      .catch((err) => {
        this.bgError ??= err;
      })
      .finally(() => {
        this.sealSlots.release();
        this.outstanding.delete(p);
      });
    this.outstanding.add(p);
    return { id, isNew: true };
  }

  /**
   * Pick the bases for a delta (at most 2): each proposed blob, or the root of
   * its chain when the chain is already at max depth, so depth stays bounded.
   */
  private chooseBases(candidates: string[] | undefined, rawLength: number): string[] {
    const maxDepth = Math.min(this.config.maxDeltaDepth, MAX_DELTA_DEPTH);
    if (!candidates || !(maxDepth > 0) || rawLength < 4096) return [];
    const out: string[] = [];
    for (const c of candidates.slice(0, 2)) {
      let e = this.index.get(c);
      if (!e || e.type !== 'data' || !Number.isFinite(e.depth)) continue;
      let id = c;
      if (e.depth + 1 > maxDepth) {
        // Walk to the chain's root; bounded, so a damaged (cyclic) index cannot trap the walk.
        for (let steps = 0; e && e.base && steps <= MAX_DELTA_DEPTH; steps++) {
          id = e.base;
          e = this.index.get(id);
        }
        if (!e || e.base) continue;
      }
      if (!out.includes(id)) out.push(id);
    }
    return out;
  }

  /** The dictionary of a delta: the bases' plaintexts, concatenated in order. */
  async loadDict(bases: string[], level = 0): Promise<Buffer> {
    if (level > MAX_DELTA_DEPTH) throw new IntegrityError(`delta chain deeper than the format maximum of ${MAX_DELTA_DEPTH} (damaged index)`);
    const parts = await Promise.all(bases.map((b) => this.loadBlobAt(b, level, true)));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  private async encodeAndPack(
    type: BlobType,
    id: string,
    data: Buffer,
    proposed?: string[] | (() => string[]),
    similar?: SketchIndex,
    onSimilar?: (baseId: string) => void,
  ): Promise<void> {
    const rawLength = data.length;
    const sketched = type === 'data' && rawLength >= SKETCH_MIN;
    let sf: number[] | undefined;
    let deltaBases: string[] | undefined;
    if (sketched && similar && similar.size > 0) {
      // Find a base by content (robust to inserted/deleted data); fall back to the offset guess.
      ({ sf, data } = await this.pool.sketch(data));
      const found = similar.find(sf);
      if (found.length) {
        deltaBases = found;
        onSimilar?.(found[0]!);
      }
    }
    // The offset guess is evaluated late: by now earlier chunks' sketch matches have refined it.
    deltaBases ??= typeof proposed === 'function' ? proposed() : proposed;
    const bases = type === 'data' ? this.chooseBases(deltaBases, rawLength) : [];
    let dict: Buffer | undefined;
    if (bases.length) {
      try {
        dict = await this.loadDict(bases);
      } catch {
        dict = undefined; // a damaged base is reported by check; store this blob in full
      }
    }
    const enc = rawLength >= 16 * 1024 ? await this.pool.encode(data, dict, sketched && !sf) : this.codec.encode(data, dict);
    sf ??= (enc as { sf?: number[] }).sf;
    const entry = {
      id,
      type,
      rawLength,
      compression: enc.compression,
      ...(enc.compression === 2 ? { base: bases[0]!, ...(bases[1] ? { base2: bases[1] } : {}) } : {}),
      ...(sf && sf.length ? { sf } : {}),
    };
    const packer = this.packers[type];
    packer.add(entry, enc.sealed);
    this.stats.blobsNew++;
    if (enc.compression === 2) this.stats.blobsDelta++;
    this.stats.dataAddedRaw += rawLength;
    this.stats.dataAdded += enc.sealed.length;
    if (packer.size >= this.config.packSize) await this.finishPack(type);
  }

  private async finishPack(type: BlobType): Promise<void> {
    const pw = this.packers[type];
    if (pw.count === 0) return;
    this.packers[type] = new PackWriter();
    const { id, data, blobs } = pw.finalize(this.key.encKey);
    await this.uploadSlots.with(() => this.storage.save('data', id, data));
    this.index.addPack(id, blobs);
    this.newPacks.push({ id, blobs });
    for (const b of blobs) this.pendingIds.delete(b.id);
  }

  /** Wait for all queued blobs, write the last packs and publish an index file for them. */
  async flush(): Promise<void> {
    while (this.outstanding.size > 0) await Promise.all([...this.outstanding]);
    this.throwIfFailed();
    await Promise.all([this.finishPack('data'), this.finishPack('tree')]);
    if (this.newPacks.length > 0) {
      const packs = this.newPacks;
      this.newPacks = [];
      await this.writeIndexFile(packs);
    }
  }

  /** Drop queued-but-unflushed state after a failed backup (written packs stay for prune to reclaim). */
  async abandon(): Promise<void> {
    while (this.outstanding.size > 0) await Promise.allSettled([...this.outstanding]);
    this.packers.data = new PackWriter();
    this.packers.tree = new PackWriter();
    this.pendingIds.clear();
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

  /** Loads in flight, shared: a delta lattice (two bases per level) costs one load per blob, not one per path. */
  private readonly inflight = new Map<string, Promise<Buffer>>();

  /**
   * Load a blob and verify it: the seal's MAC, the decoded length and the keyed
   * hash of the plaintext must all match, for the blob and every delta base.
   * Everything read from the index is checked first: the entry against the
   * format limits (at index load), the delta chain for cycles and depth, and
   * the entry's range against the pack's real size.
   */
  async loadBlob(id: string, opts: { cacheable?: boolean } = {}): Promise<Buffer> {
    return this.loadBlobAt(id, 0, !!opts.cacheable);
  }

  private loadBlobAt(id: string, level: number, cacheable: boolean): Promise<Buffer> {
    const cached = this.cache.get(id);
    if (cached) return Promise.resolve(cached);
    let p = this.inflight.get(id);
    if (!p) {
      // Registered before the read starts (on a later microtask): bases requested meanwhile join it.
      p = Promise.resolve()
        .then(() => this.readBlob(id, level, cacheable))
        .finally(() => this.inflight.delete(id));
      this.inflight.set(id, p);
    }
    return p;
  }

  private async readBlob(id: string, level: number, cacheable: boolean): Promise<Buffer> {
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
    let dict: Buffer | undefined;
    if (e.compression === 2) {
      // Bases first: only one level's sealed bytes are held while the chain is resolved.
      try {
        dict = await this.loadDict(basesOf(e), level + 1);
      } catch (err) {
        throw new IntegrityError(`${what}: its delta base is unreadable: ${(err as Error).message}`);
      }
    }
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
    let sealed: Buffer;
    try {
      sealed = await this.storage.load('data', e.pack, { offset: e.offset, length: e.length });
    } catch (err) {
      if (err instanceof NotFoundError) throw new IntegrityError(`${what}: pack file is missing`);
      if (err instanceof LifeboatError && /short read/.test(err.message)) throw new IntegrityError(`${what}: pack is truncated`);
      throw err;
    }
    let data: Buffer;
    let got: string;
    if (e.rawLength >= 64 * 1024) {
      ({ data, id: got } = await this.pool.decode(sealed, e.compression, e.rawLength, what, dict));
    } else {
      data = this.codec.decode(sealed, e.compression, e.rawLength, what, dict);
      got = blobId(this.key.idKey, data);
    }
    if (got !== id) throw new IntegrityError(`${what}: content does not match its id (hash mismatch)`);
    if (e.type === 'tree' || cacheable) this.cache.set(id, data);
    return data;
  }

  // ---------------------------------------------------------------- trees

  async saveTree(tree: Tree): Promise<string> {
    return (await this.saveBlob('tree', encodeTree(tree))).id;
  }

  async loadTree(id: string): Promise<Tree> {
    const e = this.index.get(id);
    if (e && e.type !== 'tree') throw new IntegrityError(`blob ${id} is referenced as a tree but is a data blob`);
    return decodeTree(await this.loadBlob(id), id);
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
    return out.sort((a, b) => a.time.localeCompare(b.time) || a.id.localeCompare(b.id));
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

  /**
   * Take the repository lock for an operation. A reading operation on a
   * repository that cannot be written (the lock cannot be created: read-only
   * mount, read-only credentials) goes on without one, saying so once.
   */
  async lock(exclusive: boolean, operation: string, retryMs = this.lockRetryMs): Promise<Lock> {
    const readOnly = !exclusive && READ_ONLY_OPERATIONS.has(operation);
    const info = { time: new Date().toISOString(), exclusive, hostname: hostname(), pid: process.pid, operation, nonce: '' };
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
      readOnlyOk: readOnly,
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
    if (this.poolInstance) await this.poolInstance.close();
    this.poolInstance = undefined;
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
    if (f.source && s.source?.name !== f.source) return false;
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
