import { IntegrityError } from '../errors.js';
import type { Repository } from '../repo/repository.js';
import { SlabPool } from '../repo/chunk-decode.js';
import { Semaphore } from '../util/sync.js';
import { type DirectFile, type TempFile, finishFiles } from './file-writer.js';
import { BatchBound, type BlobUse, type PlannedBlob, coalesceReads, planBatch } from './restore-plan.js';

/**
 * Restore writes files in batches (restore-plan.ts): the files of a batch are
 * created under temporary names, each pack the batch needs is read once in a
 * few ranged reads, its blobs are decoded and checked against their ids in a
 * decode worker, and every blob is written to each place that needs it. A
 * file is finished (metadata, renamed to its final name) as soon as its last
 * chunk is written; a file one of whose chunks fails is discarded, and only
 * the files that need that chunk fail. A file of one chunk (most files) opens
 * nothing ahead: once its chunk is decoded and checked, it is created, written,
 * given its metadata and renamed together with the other such files of its
 * ranged read in one native call (BatchFile.direct; file-writer.ts finishFiles),
 * where the helper is built. Memory: at most `READS` ranged reads
 * (each ≤ READ_MAX sealed bytes and RAW_MAX plaintext) are in flight, and a
 * range's plaintext is dropped once written; the plan of a batch is bounded
 * by BatchBound.
 */
export interface BatchFile {
  /** Names the file in errors (its path in the snapshot). */
  what: string;
  content: readonly string[];
  /** The plaintext size of each chunk (the snapshot's record; every decoded chunk is checked against it). */
  sizes: readonly number[];
  /** Per chunk, where its bytes go in the file ([file offset, length] pieces). */
  pieces: ReadonlyArray<ReadonlyArray<readonly [number, number]>>;
  /** Create the temporary file. */
  open(): Promise<TempFile>;
  /** Every chunk was written: set the metadata and publish (on failure it discards the file and rejects). */
  finish(tf: TempFile): Promise<void>;
  /**
   * A file of one chunk that needs nothing but owner, mode and times: no
   * temporary file is opened ahead; once its chunk is decoded and checked it
   * is finished with the others of its ranged read in one native batch
   * (file-writer.ts finishFiles: create, write, metadata, close, rename, one
   * thread-pool hop for them all; the batcher passes each file's plaintext).
   */
  direct?: DirectFile & {
    /** The path shown in errors. */
    shown(): string;
    /** Published under its final name (counted by the caller). */
    published(): void;
  };
}

const MiB = 1024 * 1024;
/** A ranged read: at most this many sealed bytes (one larger blob is read alone). */
const READ_MAX = (Number(process.env.LIFEBOAT_RESTORE_READ_MB) || 2) * MiB;
/** Unneeded bytes between two needed blobs read through rather than split into two requests. */
const READ_GAP = 256 * 1024;
/** The plaintext of one ranged read. */
const RAW_MAX = 2 * READ_MAX;
/** Chunks at least this large are written through the thread pool (smaller ones: a direct write costs less than the round trip). */
const ASYNC_WRITE = 256 * 1024;
/** Ranged reads (or single delta loads) in flight. */
const READS = Number(process.env.LIFEBOAT_RESTORE_READS) || 3;

interface FileRun {
  f: BatchFile;
  /** The temporary file (undefined for a direct file: f.direct). */
  tf?: Promise<TempFile>;
  file?: TempFile;
  left: number;
  /** failed, or finishing */
  over: boolean;
  /** Writes in the thread pool: a failed file is discarded (its descriptor closed) only once they are done. */
  writes?: Set<Promise<void>>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class RestoreBatcher {
  private cur: Array<Omit<FileRun, 'tf' | 'left' | 'over' | 'writes'>> = [];
  private readonly bound: BatchBound;
  private readonly running = new Set<Promise<void>>();
  private readonly slots = new Semaphore(READS);
  /** Plaintext slabs, reused from range to range (one per read in flight, and one spare). */
  private readonly slabs = new SlabPool(RAW_MAX, READS + 1);

  constructor(
    private readonly repo: Repository,
    private readonly hooks: { written(bytes: number): void; dropped(bytes: number): void },
    /** Batches run at once: one fills its files' tails while the next starts reading. */
    private readonly parallel = 2,
    maxFiles = 256,
    maxChunks = 16384,
  ) {
    this.bound = new BatchBound(maxFiles, maxChunks);
  }

  /** Queue a file (waits while the batches in flight are full); `done` settles when the file is published or has failed. */
  async add(f: BatchFile): Promise<{ done: Promise<void> }> {
    if (!this.bound.accepts(f.content.length)) await this.flush();
    this.bound.add(f.content.length);
    let resolve!: () => void;
    let reject!: (err: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    this.cur.push({ f, resolve, reject });
    return { done };
  }

  /** Start the batch being filled (waits while `parallel` batches run). */
  async flush(): Promise<void> {
    if (this.cur.length === 0) return;
    const batch = this.cur;
    this.cur = [];
    this.bound.reset();
    while (this.running.size >= this.parallel) await Promise.race(this.running);
    const p: Promise<void> = this.run(batch).finally(() => this.running.delete(p));
    this.running.add(p);
  }

  /** Run what is queued and wait for every batch. */
  async drain(): Promise<void> {
    await this.flush();
    while (this.running.size > 0) await Promise.all(this.running);
  }

  private async run(batch: Array<Omit<FileRun, 'tf' | 'left' | 'over' | 'writes'>>): Promise<void> {
    const runs: FileRun[] = [];
    const settling: Array<Promise<void>> = [];
    const fail = (st: FileRun, err: unknown) => {
      if (st.over) return;
      st.over = true;
      if (!st.tf) {
        st.reject(err); // a direct file: nothing was created
        return;
      }
      // `done` rejects once the temporary file is gone (the caller may then release its directory)
      settling.push(
        st.tf
          .then(
            async (t) => {
              while (st.writes?.size) await Promise.allSettled([...st.writes]);
              await t.discard();
            },
            () => {},
          )
          .then(() => st.reject(err)),
      );
    };
    for (const b of batch) {
      const direct = b.f.direct !== undefined && b.f.content.length === 1;
      const st: FileRun = { ...b, tf: direct ? undefined : b.f.open(), left: b.f.content.length, over: false };
      st.tf?.then(
        (t) => (st.file = t),
        (err) => fail(st, err),
      );
      runs.push(st);
    }
    /** Direct files whose chunk arrived: finished together (finishDirect) before their plaintext is dropped. */
    type Sink = Array<{ st: FileRun; data: Buffer }>;
    const put = async (u: BlobUse, data: Buffer, sink: Sink): Promise<void> => {
      const st = runs[u.file]!;
      if (st.over) return;
      if (!st.tf) {
        const want = st.f.sizes[u.chunk];
        if (data.length !== want) fail(st, new IntegrityError(`${st.f.what}: chunk ${u.chunk} has ${data.length} bytes but the snapshot records ${want}`));
        else {
          st.over = true;
          sink.push({ st, data });
        }
        return;
      }
      if (!st.file) {
        try {
          await st.tf;
        } catch {
          return; // failed (fail() was called)
        }
        if (st.over) return;
      }
      const want = st.f.sizes[u.chunk];
      if (data.length !== want) {
        fail(st, new IntegrityError(`${st.f.what}: chunk ${u.chunk} has ${data.length} bytes but the snapshot records ${want}`));
        return;
      }
      try {
        if (data.length < ASYNC_WRITE) st.file!.writePieces(data, st.f.pieces[u.chunk]!);
        else {
          // large: through the thread pool, beside the main thread's work; tracked so a discard waits for it
          const w = st.file!.writePiecesAsync(data, st.f.pieces[u.chunk]!);
          (st.writes ??= new Set()).add(w);
          try {
            await w;
          } finally {
            st.writes!.delete(w);
          }
          if (st.over) return; // the file failed meanwhile
        }
      } catch (err) {
        fail(st, err);
        return;
      }
      this.hooks.written(data.length);
      if (--st.left === 0) {
        st.over = true;
        settling.push(st.f.finish(st.file!).then(st.resolve, st.reject));
      }
    };
    const deliver = async (uses: readonly BlobUse[], data: Buffer, sink: Sink) => {
      for (const u of uses) await put(u, data, sink);
    };
    /** Create, write, set the metadata of and publish the sink's files in one native batch; each file's `done` settles. */
    const finishDirect = async (sink: Sink): Promise<void> => {
      if (sink.length === 0) return;
      let errs: Array<NodeJS.ErrnoException | undefined>;
      try {
        errs = await finishFiles(
          sink.map((x) => x.st.f.direct!),
          sink.map((x) => x.data),
          (i) => sink[i]!.st.f.direct!.shown(),
        );
      } catch (err) {
        for (const { st } of sink) st.reject(err);
        return;
      }
      for (let i = 0; i < sink.length; i++) {
        const { st, data } = sink[i]!;
        const e = errs[i];
        if (e) {
          st.reject(e.syscall === 'name' ? new IntegrityError(`${st.f.what}: refused name (${e.message})`) : e);
          continue;
        }
        st.f.direct!.published();
        this.hooks.written(data.length);
        st.resolve();
      }
    };
    const refuse = (uses: readonly BlobUse[], err: unknown) => {
      for (const u of uses) fail(runs[u.file]!, err);
    };

    const plan = planBatch(
      batch.map((b) => b.f.content),
      (id) => this.repo.fullBlobLocation(id),
    );
    // Packs and single loads in the order the batch first needs them (files finish early, in order).
    type Work = { pack: string; blobs: PlannedBlob[] } | { id: string; uses: BlobUse[] };
    const first = (w: Work) => ('blobs' in w ? w.blobs.reduce((m, b) => Math.min(m, key(b.uses[0]!)), Infinity) : key(w.uses[0]!));
    const key = (u: BlobUse) => u.file * 2 ** 26 + u.chunk;
    const work: Work[] = [...plan.packs, ...plan.loose].map((w) => [first(w), w] as const).sort((a, b) => a[0] - b[0]).map(([, w]) => w);
    const tasks: Array<Promise<void>> = [];
    const spawn = (fn: () => Promise<void>) => {
      const t = fn().finally(() => this.slots.release());
      tasks.push(t);
    };
    for (const w of work) {
      if (!('blobs' in w)) {
        await this.slots.acquire();
        spawn(async () => {
          let data: Buffer;
          try {
            data = await this.repo.loadOwnedBlob(w.id);
          } catch (err) {
            refuse(w.uses, err);
            return;
          }
          const sink: Sink = [];
          await deliver(w.uses, data, sink);
          await finishDirect(sink);
          this.hooks.dropped(data.length);
          // written everywhere it goes (deliver and finishDirect wait for the thread pool): freed now, not
          // at a later collection (a delta-chain dump, one such load per chunk: ~40 MB less peak RSS)
          this.repo.release(data);
        });
        continue;
      }
      // Every entry's range is checked against the pack's real size before anything is read (as loadBlob does).
      const ok: PlannedBlob[] = [];
      // the pack's size once for all its blobs (a missing pack: each blob says so)
      let size = -1;
      let sizeErr: unknown;
      try {
        size = await this.repo.packBytes(w.pack, `pack ${w.pack}`);
      } catch (err) {
        sizeErr = err;
      }
      for (const b of w.blobs) {
        const what = () => `blob ${b.id} in pack ${w.pack}`;
        if (size < 0) refuse(b.uses, sizeErr instanceof IntegrityError ? new IntegrityError(`${what()}: pack file is missing`) : sizeErr);
        else if (b.offset + b.length + 4 > size) {
          refuse(b.uses, new IntegrityError(`${what()}: index entry (offset ${b.offset}, length ${b.length}) lies beyond the end of the ${size}-byte pack (truncated pack or damaged index)`));
        } else ok.push(b);
      }
      for (const r of coalesceReads(ok, READ_MAX, READ_GAP, RAW_MAX)) {
        await this.slots.acquire();
        spawn(async () => {
          let out: Array<Buffer | IntegrityError>;
          let slab: ArrayBuffer;
          try {
            const chunk = await this.repo.readPackRange(w.pack, r.start, r.end);
            ({ blobs: out, slab } = await this.repo.decodeRange(
              chunk,
              r.blobs.map((b) => ({ ...b, offset: b.offset - r.start })),
              this.slabs,
            ));
          } catch (err) {
            // the read failed: each blob says so (an integrity problem names the blob; anything else is passed on)
            for (const b of r.blobs) refuse(b.uses, err instanceof IntegrityError ? new IntegrityError(`blob ${b.id} in pack ${w.pack}: ${err.message}`) : err);
            return;
          }
          const sink: Sink = [];
          for (let i = 0; i < r.blobs.length; i++) {
            const d = out[i]!;
            if (d instanceof Error) refuse(r.blobs[i]!.uses, d);
            else await deliver(r.blobs[i]!.uses, d, sink);
          }
          await finishDirect(sink);
          // every plaintext in the slab was written (deliver and finishDirect wait for the thread pool): refill it
          this.slabs.give(slab);
          this.hooks.dropped(r.end - r.start);
        });
      }
    }
    await Promise.all(tasks);
    for (const st of runs) {
      // every chunk of every file was planned: a file still waiting was never fully delivered (cannot happen)
      if (!st.over) fail(st, new IntegrityError(`${st.f.what}: ${st.left} chunk(s) were not restored`));
    }
    // files still being created, finished or discarded
    await Promise.all(runs.map((st) => st.tf?.catch(() => {})));
    for (let i = 0; i < settling.length; i++) await settling[i]!.catch(() => {});
  }
}
