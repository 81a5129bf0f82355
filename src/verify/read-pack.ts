import { IntegrityError, errorMessage } from '../errors.js';
import { type ChunkBlob, type ChunkResult, verifyChunk } from '../repo/chunk-verify.js';
import type { ChainMsg } from '../repo/chain.js';
import { ownsBuffer } from '../repo/pool.js';
import { BlobCodec } from '../repo/codec.js';
import { BufferReclaimer } from '../util/reclaim.js';
import { StreamSha256 } from '../util/stream-hash.js';
import { MAX_DATA_BLOB, MAX_DELTA_DEPTH, MAX_PACK_HEADER, SEAL_OVERHEAD, type PackBlob, basesOf, blobEntryProblem, chainBytesLimit, parseHeaderBytes } from '../repo/pack.js';
import type { IndexEntry } from '../repo/index.js';
import { planPackRanges } from '../repo/pack-ranges.js';
import type { Repository } from '../repo/repository.js';

/**
 * check --read-data for one pack, streamed: the header is read from the tail
 * first, then the blob area in ranges of about RANGE bytes (pack-ranges.ts),
 * each hashed into the pack's SHA-256 and handed whole (transferred, not
 * copied) to a decode worker that verifies all its blobs in one message.
 * Memory per pack: the tail, the range being read and IN_FLIGHT ranges being
 * verified, whatever the pack size.
 *
 * With an InlineVerifier, a range is verified on the calling thread instead
 * whenever the decode worker already has WORKER_QUEUE ranges: on two cores the
 * main thread (reads, the pack's SHA-256, the tree walk) has time to spare
 * while one worker decodes, and decoding some ranges itself uses it without a
 * second worker thread (its heap, ~15-25 MB of RSS, and its start-up).
 */
const TAIL = 256 * 1024;
const RANGE = 1024 * 1024;
/**
 * Ranges being verified per pack (LIFEBOAT_CHECK_RANGES overrides): 3 with the decode worker, 2 with the C
 * codec (native-read-pool.ts: two pool threads decode them while the next range is read; 3 only held more
 * buffers, bench/results/rss6.md).
 */
const IN_FLIGHT_WORKER = 3;
const IN_FLIGHT_NATIVE = 2;
const WORKER_QUEUE = 2;
/** With the C codec: a job's decoding (its blobs and their bases' chains) before the rest of a range goes in another job. */
const GROUP_BYTES = 4 * 1024 * 1024;
/** Jobs of one range at once (with the C codec). */
const GROUPS_AT_ONCE = 3;
/** A full collection per DICT_FULL bytes of delta dictionaries loaded through the read cache (loadDict). */
const DICT_FULL = 16 * 1024 * 1024;
export const dictReclaimer = new BufferReclaimer(DICT_FULL, DICT_FULL);
/** Deltas whose bases' chains are read ahead (with the C codec). */
const CHAINS_AHEAD = 4;

/** Verifies ranges on the calling thread (see above); same checks and results as the worker's. */
export class InlineVerifier {
  readonly codec: BlobCodec;
  readonly idKey: Buffer;
  /**
   * The pieces deciphered here are dropped after each range: collect them promptly (see reclaim.ts; every
   * 16 MiB left ~20 MB more in the allocator's arenas at peak, every 4 MiB costs no measurable CPU).
   */
  private readonly reclaimer = new BufferReclaimer(4 * 1024 * 1024);
  /** Ranges verified here so far. */
  ranges = 0;

  /** `always`: every range here, none in a worker (tests; a single core). */
  constructor(
    repo: Repository,
    readonly always = false,
  ) {
    this.codec = new BlobCodec(repo.key.encKey, repo.config.compressionLevel);
    this.idKey = repo.key.idKey;
  }

  verify(chunk: Uint8Array, blobs: ChunkBlob[]): ChunkResult[] {
    this.ranges++;
    const r = verifyChunk(this.codec, this.idKey, chunk, blobs);
    this.reclaimer.dropped(chunk.length);
    return r;
  }
}

/**
 * Range buffers handed back by the decode workers, reused for later ranges:
 * with a storage that reads into the caller's buffer (Storage.loadInto) the
 * steady state allocates nothing per range. Keeps a few buffers of about
 * RANGE bytes (a range holding one larger blob gets a buffer of its own);
 * those it does not keep are collected promptly (see reclaim.ts: V8 alone
 * waits for ~64 MiB of them).
 */
export class RangeBuffers {
  private readonly free: ArrayBuffer[] = [];
  private readonly reclaimer = new BufferReclaimer(8 * 1024 * 1024);
  constructor(private readonly keep = 4) {}

  take(length: number): Buffer {
    const i = this.free.findIndex((ab) => ab.byteLength >= length);
    const ab = i >= 0 ? this.free.splice(i, 1)[0]! : Buffer.allocUnsafeSlow(Math.max(length, RANGE)).buffer;
    return Buffer.from(ab, 0, length);
  }

  give(ab: ArrayBuffer | undefined): void {
    if (!ab) return;
    if (ab.byteLength >= RANGE && ab.byteLength <= 2 * RANGE && this.free.length < this.keep) this.free.push(ab);
    else this.reclaimer.dropped(ab.byteLength);
  }

  /** The buffer of a pack's tail (at most TAIL bytes), kept from one pack to the next (a pack read beside it gets its own). */
  private tailAb: ArrayBuffer | undefined;

  takeTail(length: number): Buffer {
    const ab = length <= TAIL && this.tailAb ? this.tailAb : Buffer.allocUnsafeSlow(Math.max(length, TAIL)).buffer;
    if (ab === this.tailAb) this.tailAb = undefined;
    return Buffer.from(ab, 0, length);
  }

  giveTail(ab: ArrayBuffer): void {
    if (ab.byteLength === TAIL && !this.tailAb) this.tailAb = ab;
  }
}

/**
 * Delta bases proven on the way (check --read-data with the C codec): decoding a delta's bases
 * (their sealed chains, Repository.baseChains) computes every level's plaintext anyway; hashed too,
 * a level whose hash is its id is proven, and when its own pack is read later its blob is not
 * decoded again. A day-3 dump's chunk is a chain of four levels: verified pack by pack, days 0..3
 * cost 1+2+3+4 decompressions of the dump; with the packs holding the deepest deltas read first
 * (check.ts), 4. A blob is taken as proven only where its pack's header puts it where the index
 * did when it was read (the bytes hashed), and that pack's SHA-256 is still checked.
 * Memory: at most MAX_PROVEN ids (then no more are kept: those blobs are decoded in their packs).
 */
export class ProvenBlobs {
  private readonly ids = new Set<string>();
  /** Packs not read yet: only blobs there are worth proving. */
  private readonly pending: Set<string>;
  /** Per base id, the single-base delta blobs on it in packs not read yet (forward(): at most MAX_PROVEN in all). */
  private readonly dependents = new Map<string, string[]>();
  constructor(
    private readonly repo: Repository,
    packs: readonly string[],
    private readonly max = MAX_PROVEN,
    /** Deltas verified forward from their roots (see forward()). */
    forward = false,
  ) {
    this.pending = new Set(packs);
    if (!forward) return;
    let n = 0;
    for (const [id, e] of repo.index.deltas()) {
      if (n >= max) break;
      if (e.type !== 'data' || !e.base || e.base2 || !this.pending.has(e.pack)) continue;
      const list = this.dependents.get(e.base);
      if (list) list.push(id);
      else this.dependents.set(e.base, [id]);
      n++;
    }
  }
  /**
   * The chains of single-base deltas built on blob `root` whose packs are still to be read and that are
   * not proven yet, each root-exclusive and ending in a delta nothing further is built on (at most
   * MAX_FORWARD_PATHS, each at most MAX_DELTA_DEPTH long). check --read-data verifies them from the root's
   * bytes in the range of its pack being read (read-pack.ts): each delta's own sealed bytes are read (a
   * dump's are ~1 KB), where verifying it in its own pack reads its whole chain from the root again (a
   * changed file's delta on a 1 MiB chunk of random data: that MiB, read twice).
   */
  forward(root: string): string[][] {
    const out: string[][] = [];
    if (this.dependents.size === 0) return out;
    const walk = (id: string, path: string[]): void => {
      if (out.length >= MAX_FORWARD_PATHS) return;
      const next = path.length >= MAX_DELTA_DEPTH ? [] : (this.dependents.get(id) ?? []).filter((d) => this.wanted(d) && !path.includes(d) && d !== root);
      if (next.length === 0) {
        if (path.length) out.push(path);
        return;
      }
      for (const d of next) walk(d, [...path, d]);
    };
    walk(root, []);
    return out;
  }
  /** Blobs proven so far and not yet met in their packs (tests). */
  get size(): number {
    return this.ids.size;
  }
  /** Blobs met in their packs already proven (not decoded again). */
  skipped = 0;
  started(pack: string): void {
    this.pending.delete(pack);
  }
  /** Whether a level of a base's chain is worth hashing: its pack is still to be read, and it is not proven yet. */
  wanted(id: string): boolean {
    if (this.ids.has(id) || this.ids.size >= this.max) return false;
    const pack = this.repo.index.packOf(id);
    return pack !== undefined && this.pending.has(pack);
  }
  add(ids: readonly string[] | undefined): void {
    for (const id of ids ?? []) if (this.ids.size < this.max) this.ids.add(id);
  }
  has(id: string): boolean {
    return this.ids.has(id);
  }
  /** `b` in `pack` was proven at this very place: true once (it is forgotten). */
  take(pack: string, b: PackBlob): boolean {
    if (!this.ids.has(b.id)) return false;
    const e = this.repo.index.get(b.id);
    if (!e || e.pack !== pack || e.offset !== b.offset || e.length !== b.length) return false;
    this.ids.delete(b.id);
    this.skipped++;
    return true;
  }
}
/** Proven ids kept at most (~120 bytes each: ~8 MB); also the deltas ProvenBlobs.forward() knows of at most. */
const MAX_PROVEN = 65536;
/** Chains verified forward from one root at most (the rest in their own packs, as before). */
const MAX_FORWARD_PATHS = 16;
/** Sealed bytes of deltas read for forward verification per range at most (the rest in their own packs). */
const FORWARD_BYTES = 8 * 1024 * 1024;

export interface PackReadResult {
  /** The content's SHA-256 matches the pack's name. */
  hashOk: boolean;
  /** Why the header could not be read (then no blob was decoded). */
  headerError?: unknown;
  /** Blobs that failed, in header order: id and message (without the pack prefix). */
  damaged: Array<[string, string]>;
  bytesRead: number;
}

/** The pack's running SHA-256 (StreamSha256; tests give one that hashes late). */
export interface PackHasher {
  update(b: Uint8Array): void;
  /** Resolves once the pieces given so far are hashed (they may then be reused). */
  flushed(): Promise<void>;
  digest(): Promise<string>;
}

export async function readPackData(
  repo: Repository,
  pack: string,
  size: number,
  buffers = new RangeBuffers(),
  inline?: InlineVerifier,
  hasher: () => PackHasher = () => new StreamSha256({ native: repo.readPool.native }),
  proven?: ProvenBlobs,
): Promise<PackReadResult> {
  const res: PackReadResult = { hashOk: false, damaged: [], bytesRead: 0 };
  proven?.started(pack);
  const storage = repo.storage;
  const load = async (offset: number, length: number): Promise<Buffer> => {
    const b = await storage.load('data', pack, { offset, length });
    res.bytesRead += b.length;
    return b;
  };
  /** load() into the caller's buffer (only where the storage has loadInto). */
  const loadInto = async (offset: number, target: Buffer): Promise<void> => {
    await storage.loadInto!('data', pack, offset, target);
    res.bytesRead += target.length;
  };
  let tailStart = size - Math.min(size, TAIL);
  // (into the tail buffer of `buffers`, given back once the pack is hashed: a fresh one per pack was ~5% of check's page faults)
  let ownTail: Buffer | undefined;
  let tail: Buffer;
  if (storage.loadInto) {
    ownTail = tail = buffers.takeTail(size - tailStart);
    await loadInto(tailStart, tail);
  } else tail = await load(tailStart, size - tailStart);
  const hlen = size >= 4 ? tail.readUInt32LE(tail.length - 4) : 0;
  let blobs: PackBlob[] | undefined;
  try {
    if (size < 4) throw new IntegrityError(`pack ${pack}: truncated (${size} bytes)`);
    if (hlen > MAX_PACK_HEADER || hlen + 4 > size) {
      throw new IntegrityError(`pack ${pack}: header length ${hlen} is impossible for a ${size}-byte pack (truncated?)`);
    }
    const headerStart = size - 4 - hlen;
    if (headerStart < tailStart) {
      tail = Buffer.concat([await load(headerStart, tailStart - headerStart), tail]);
      tailStart = headerStart;
    }
    blobs = parseHeaderBytes(repo.key.encKey, tail.subarray(headerStart - tailStart, tail.length - 4), headerStart, pack);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    res.headerError = err;
  }
  const blobArea = blobs ? size - 4 - hlen : tailStart;
  // The pack's SHA-256 on the thread pool (native/hash.c) beside the decodes, with the C codec: it was a fifth
  // of check's main thread. A range's buffer goes back to `buffers` (to be read into again) only once hashed.
  // With the decode worker, here (a range is transferred to the worker, so it must be hashed first).
  const sha = hasher();
  const messages = new Map<PackBlob, string>();
  // Blobs impossible under the format limits are reported without reading them.
  const readable: Array<PackBlob> = [];
  for (const b of blobs ?? []) {
    const impossible = blobEntryProblem(b);
    if (impossible) messages.set(b, `pack header entry: ${impossible}`);
    else readable.push(b);
  }
  const { ranges, strays } = planPackRanges(readable, blobArea, RANGE);
  const IN_FLIGHT = Number(process.env.LIFEBOAT_CHECK_RANGES) || (repo.readPool.native ? IN_FLIGHT_NATIVE : IN_FLIGHT_WORKER);
  const verified = new Map<PackBlob, string>(); // blob -> id of its plaintext
  const settle = (list: PackBlob[], results: ChunkResult[]) => {
    list.forEach((b, i) => {
      const r = results[i]!;
      if ('id' in r) verified.set(b, r.id);
      else messages.set(b, r.error.message);
    });
  };
  /** The blobs of one range: delta dictionaries first (loaded on this thread, from the cache or their packs). */
  const submit = async (data: Buffer, base: number, list: PackBlob[], reused: boolean, hashed: Promise<void>): Promise<void> => {
    const give = async (ab: ArrayBuffer | undefined) => {
      await hashed;
      buffers.give(ab);
    };
    /** A blob's job on its bytes in this range (a delta's bases are added where it is sent). */
    const jobOf = (b: PackBlob): ChunkBlob => ({ offset: b.offset - base, length: b.length, compression: b.compression, rawLength: b.rawLength, what: `blob ${b.id}` });
    let jobs: ChunkBlob[] = [];
    let sent: PackBlob[] = [];
    /** The bases decoded for the jobs in `jobs` alone (Repository.ownedBases): freed once their job is done. */
    let owned: Buffer[] = [];
    // With the C codec, a range whose deltas' bases come to more than GROUP_BYTES of decoding goes in
    // several jobs on the pool's threads at once: a dump's deltas are small, and one range held the
    // whole day's (a chain of four levels each), decoded one after the other on one core
    const split = repo.readPool.native && !inline;
    const groups: Array<Promise<void>> = [];
    const running = new Set<Promise<void>>();
    let cost = 0;
    const flush = async (): Promise<void> => {
      const j = jobs;
      const list2 = sent;
      const held = owned;
      jobs = [];
      sent = [];
      owned = [];
      cost = 0;
      const p = repo.readPool
        .verifyChunk(data, j, false)
        .then(({ results, proven: got }) => {
          proven?.add(got);
          settle(list2, results);
        })
        .finally(() => {
          for (const x of held) repo.release(x);
        });
      groups.push(p);
      // (p is awaited below)
      const q: Promise<void> = p.then(
        () => void running.delete(q),
        () => void running.delete(q),
      );
      running.add(q);
      if (running.size >= GROUPS_AT_ONCE) await Promise.race(running);
    };
    // Deltas on a full blob of this range whose packs are still to be read are verified forward, from the
    // blob's bytes here (ProvenBlobs.forward): only their own sealed bytes are read, not the root again. The
    // root is proven on the way (its hash is its id) and then not decoded again below.
    const fwd = new Map<number, Promise<void>>();
    const deferred: Array<{ b: PackBlob; f: Promise<void> }> = [];
    let forwardBudget = FORWARD_BYTES;
    for (let k = 0; split && proven && k < list.length; k++) {
      const b = list[k]!;
      if (b.compression === 2) continue;
      const paths = proven.forward(b.id).filter((path) => {
        const n = pathBytes(path);
        if (n === undefined || n > forwardBudget) return false;
        forwardBudget -= n;
        return true;
      });
      if (paths.length === 0) continue;
      const p = Promise.all(paths.map((path) => forward(data, base, b, path, proven))).then(() => {});
      groups.push(p);
      fwd.set(k, p);
    }
    // the next deltas' bases are read while this one's are decoded (one at a time, the reads queued
    // behind the decodes on libuv's threads and left the pool idle a third of the time)
    const ahead = new Map<number, Promise<ChainMsg[] | undefined>>();
    for (let k = 0; k < list.length; k++) {
      const b = list[k]!;
      for (let a = k + 1; split && a < list.length && a <= k + CHAINS_AHEAD; a++) {
        const x = list[a]!;
        if (x.compression !== 2 || ahead.has(a) || proven?.has(x.id) || basesOf(x).includes(x.id)) continue;
        const p = repo.baseChains(basesOf(x));
        p.catch(() => {}); // awaited where used
        ahead.set(a, p);
      }
      const mine = ahead.get(k);
      ahead.delete(k);
      // a root verified forward: decoded here only if that did not prove it, once the rest of the range is sent
      const f = fwd.get(k);
      if (f) {
        deferred.push({ b, f });
        continue;
      }
      if (proven?.take(pack, b)) {
        verified.set(b, b.id);
        continue;
      }
      const job = jobOf(b);
      if (b.compression === 2) {
        try {
          if (basesOf(b).includes(b.id)) throw new IntegrityError('delta blob is its own base (cycle)');
          // the bases' own hashes are checked where they are stored; a wrong base fails this blob's hash.
          // The bases go as their sealed chains, decoded where the blob is (no plaintext on this thread,
          // none cached: held in the read cache as shared buffers, the bases were ~35-45 MB of check's peak)
          const chains = await (mine ?? repo.baseChains(basesOf(b)));
          if (chains && proven && split) {
            for (const c of chains) if (c.ids) c.prove = c.ids.map((id) => proven.wanted(id));
          }
          // a base with two bases (or on a chain through one): decoded for this blob alone, freed after its job
          const own = chains || !split ? undefined : await repo.ownedBases(basesOf(b));
          if (chains) {
            job.chains = chains;
            for (const c of chains) for (const r of c.rawLength) cost += r;
          } else if (own) {
            job.dict = own;
            owned.push(...own);
            for (const x of own) cost += x.length;
          } else {
            job.dict = await repo.loadDict(basesOf(b), 1, false);
            // (decoded level by level into shared buffers the read cache holds a few of: those it lets go are
            // garbage no minor collection frees; a day-3 dump's check left ~100 MB of them to V8's own schedule)
            dictReclaimer.dropped(job.dict.length);
          }
        } catch (err) {
          messages.set(b, errorMessage(err));
          continue;
        }
      }
      jobs.push(job);
      sent.push(b);
      cost += b.rawLength;
      if (split && cost >= GROUP_BYTES) await flush();
    }
    for (const { b, f } of deferred) {
      await f;
      if (proven?.take(pack, b)) {
        verified.set(b, b.id);
        continue;
      }
      jobs.push(jobOf(b));
      sent.push(b);
      cost += b.rawLength;
      if (split && cost >= GROUP_BYTES) await flush();
    }
    if (split) {
      if (jobs.length) await flush();
      await Promise.all(groups);
      if (reused || ownsBuffer(data)) await give(data.buffer as ArrayBuffer);
      return;
    }
    if (jobs.length === 0) {
      if (reused) await give(data.buffer as ArrayBuffer);
      return;
    }
    if (inline && (inline.always || repo.readPool.jobsInFlight >= WORKER_QUEUE)) {
      const results = inline.verify(data, jobs);
      settle(sent, results);
      if (reused) await give(data.buffer as ArrayBuffer);
      return;
    }
    if (!repo.readPool.native) await hashed; // the worker takes the range (transferred)
    const { results, returned } = await repo.readPool.verifyChunk(data, jobs, reused);
    settle(sent, results);
    await give(returned);
  };
  /**
   * One chain of deltas verified forward from `root` (in `data`, the range read from `base`): the deltas'
   * sealed bytes read, then one job decodes the root from the range and each delta on the one before, each
   * level hashed. What decoded to its id is proven (the root too); the rest is verified in its own pack
   * (where an error is reported), so a failure here is not one.
   */
  const forward = async (data: Buffer, base: number, root: PackBlob, path: string[], proven: ProvenBlobs): Promise<void> => {
    try {
      const got = await Promise.all(path.map((id) => repo.deltaSealed(id)));
      if (!got.every((g) => g !== undefined)) return;
      const levels = got as Array<{ e: IndexEntry; sealed: Buffer }>;
      const last = levels[levels.length - 1]!;
      const inner = levels.slice(0, -1);
      const chain: ChainMsg = {
        sealed: [data.subarray(root.offset - base, root.offset - base + root.length), ...inner.map((x) => x.sealed)],
        compression: [root.compression, ...inner.map((x) => x.e.compression)],
        rawLength: [root.rawLength, ...inner.map((x) => x.e.rawLength)],
        what: [`blob ${root.id}`, ...inner.map((x, i) => `blob ${path[i]} in pack ${x.e.pack}`)],
        ids: [root.id, ...path.slice(0, -1)],
        prove: [true, ...inner.map(() => true)],
        rootLent: true,
      };
      const id = path[path.length - 1]!;
      const job: ChunkBlob = { offset: 0, length: last.sealed.length, compression: 2, rawLength: last.e.rawLength, what: `blob ${id} in pack ${last.e.pack}`, chains: [chain] };
      const { results, proven: ok } = await repo.readPool.verifyChunk(last.sealed, [job], false);
      proven.add(ok);
      const r = results[0];
      if (r && 'id' in r && r.id === id) proven.add([id]);
    } catch {
      // (verified in its own pack, which reports what is wrong)
    }
  };
  /**
   * The sealed bytes a forward path reads (its deltas' own, by the index), or undefined where the index makes
   * it impossible: a delta not indexed, or beyond chainBytesLimit (as Repository.chainEntries bounds a
   * chain), so a damaged or hostile index cannot make one path read more than ~2 blobs.
   */
  const pathBytes = (path: string[]): number | undefined => {
    let n = 0;
    for (const id of path) {
      const e = repo.index.get(id);
      if (!e || e.length > MAX_DATA_BLOB + SEAL_OVERHEAD) return undefined;
      n += e.length;
    }
    const last = repo.index.get(path[path.length - 1]!)!;
    return n <= chainBytesLimit(last.rawLength) ? n : undefined;
  };
  /** A range's bytes; `reused`: in a buffer of `buffers` (its whole ArrayBuffer is ours to transfer). */
  const read = async (start: number, end: number): Promise<{ data: Buffer; reused: boolean }> => {
    // The part of the range already in the tail buffer is taken from there (not read again: a request more per
    // pack on a remote storage).
    const head = Math.max(0, Math.min(end, tailStart) - start);
    if (!storage.loadInto) {
      if (start >= tailStart) return { data: Buffer.from(tail.subarray(start - tailStart, end - tailStart)), reused: false };
      if (end > tailStart) return { data: Buffer.concat([await load(start, head), tail.subarray(0, end - tailStart)]), reused: false };
      return { data: await load(start, end - start), reused: false };
    }
    // Into a reused buffer, the tail's part copied in: a fresh buffer per pack for its last ranges (the read
    // before the tail, then the two joined) was ~8% of check's page faults (55 packs: ~30 MB of new pages)
    const data = buffers.take(end - start);
    try {
      if (head > 0) await loadInto(start, data.subarray(0, head));
    } catch (err) {
      buffers.give(data.buffer as ArrayBuffer);
      throw err;
    }
    if (end > tailStart) tail.copy(data, head, Math.max(start, tailStart) - tailStart, end - tailStart);
    return { data, reused: true };
  };
  const quiet = <T>(p: Promise<T>): Promise<T> => {
    p.catch(() => {}); // awaited later; not an unhandled rejection meanwhile
    return p;
  };
  const inflight: Array<Promise<void>> = [];
  let next = ranges.length ? quiet(read(ranges[0]!.start, ranges[0]!.end)) : undefined;
  try {
    for (let k = 0; k < ranges.length; k++) {
      const r = ranges[k]!;
      const { data, reused } = await next!;
      next = k + 1 < ranges.length ? quiet(read(ranges[k + 1]!.start, ranges[k + 1]!.end)) : undefined;
      sha.update(data);
      const hashed = quiet(sha.flushed());
      if (!blobs || r.blobs.length === 0) {
        if (reused) inflight.push(quiet(hashed.then(() => buffers.give(data.buffer as ArrayBuffer))));
        if (inflight.length >= IN_FLIGHT) await inflight.shift();
        continue;
      }
      inflight.push(quiet(submit(data, r.start, r.blobs, reused, hashed)));
      if (inflight.length >= IN_FLIGHT) await inflight.shift();
    }
    sha.update(tail.subarray(blobArea - tailStart));
    for (const b of strays) {
      inflight.push(quiet(load(b.offset, b.length).then((data) => submit(data, b.offset, [b], false, Promise.resolve()))));
      if (inflight.length >= IN_FLIGHT) await inflight.shift();
    }
    await Promise.all(inflight);
  } finally {
    await Promise.allSettled([...inflight, next]);
  }
  res.hashOk = (await sha.digest()) === pack;
  if (ownTail) buffers.giveTail(ownTail.buffer as ArrayBuffer);
  for (const b of blobs ?? []) {
    const e = repo.index.get(b.id);
    let msg = messages.get(b);
    if (msg === undefined) {
      const got = verified.get(b);
      if (got !== b.id) msg = 'content does not match its id (hash mismatch)';
      else if (e && e.pack === pack && (e.offset !== b.offset || e.length !== b.length)) msg = 'pack header and index disagree on its position';
    }
    if (msg !== undefined && (!e || e.pack === pack)) res.damaged.push([b.id, msg]);
  }
  return res;
}
