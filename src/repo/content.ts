import type { Readable } from 'node:stream';
import type { Repository } from './repository.js';
import { SketchIndex } from './sketch.js';

/**
 * Chunk a byte stream into the repository. Shared by file and stream sources.
 * Each new chunk proposes as delta base the parent version's chunk that covers
 * the same region of the stream (by offset), so a changed database dump or VM
 * image stores small deltas instead of whole chunks. See docs/format.md.
 */
export interface ParentContent {
  content: string[];
  sizes: number[];
}

export class BaseFinder {
  private readonly starts: number[] = [];
  private readonly startOf = new Map<string, number>();
  constructor(private readonly parent: ParentContent) {
    let off = 0;
    for (let i = 0; i < parent.sizes.length; i++) {
      this.starts.push(off);
      if (!this.startOf.has(parent.content[i]!)) this.startOf.set(parent.content[i]!, off);
      off += parent.sizes[i]!;
    }
  }

  /** Where a parent chunk starts in the parent stream, if it is one of the parent's chunks. */
  parentStart(id: string): number | undefined {
    return this.startOf.get(id);
  }

  private indexAt(pos: number): number {
    const st = this.starts;
    let lo = 0;
    let hi = st.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (st[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The parent chunk containing position `pos` (clamped to the last chunk). */
  at(pos: number): string | undefined {
    if (this.starts.length === 0) return undefined;
    return this.parent.content[this.indexAt(pos)];
  }

  /**
   * The (at most 2) parent chunks overlapping [start, end) the most, in stream
   * order: a new chunk whose boundaries moved usually straddles two old chunks.
   */
  covering(start: number, end: number): string[] {
    if (this.starts.length === 0) return [];
    const first = this.indexAt(Math.max(0, start));
    const last = this.indexAt(Math.max(0, end - 1));
    const overlaps: Array<[number, number]> = [];
    for (let i = first; i <= last; i++) {
      const s = this.starts[i]!;
      const e = s + this.parent.sizes[i]!;
      overlaps.push([i, Math.min(e, end) - Math.max(s, start)]);
    }
    overlaps.sort((a, b) => b[1] - a[1]);
    // One base covering nearly all of the new chunk is enough: a second would double the
    // bytes loaded and the dictionary the delta compressor must index, for almost no gain.
    if (overlaps[0]![1] * 16 >= (end - start) * 15) return [this.parent.content[overlaps[0]![0]]!];
    const top = overlaps.slice(0, 2).map(([i]) => i).sort((a, b) => a - b);
    return top.map((i) => this.parent.content[i]!);
  }
}

export interface ChunkedContent {
  content: string[];
  sizes: number[];
  size: number;
}

/** Chunks from this size on get their blob id on the thread pool (ContentWriter.take); smaller ones on the main thread. */
const ASYNC_ID_MIN = 128 * 1024;

export class ContentWriter {
  private readonly chunker;
  private readonly finder: BaseFinder | undefined;
  readonly content: string[] = [];
  readonly sizes: number[] = [];
  size = 0;

  private readonly similar: SketchIndex | undefined;

  /** false: the chunks carry no resemblance sketch (see Repository.saveBlob). */
  private readonly sketch: boolean;
  private readonly asyncIds: boolean;

  constructor(
    private readonly repo: Repository,
    parent?: ParentContent,
    opts: {
      sketch?: boolean;
      /**
       * true: a chunk's id on the thread pool while the next one is read and cut (see take); each
       * writer then holds one chunk more. Streams and a files backup's large files (one at a
       * time, Archiver.largeFileSlots) use it: on the bench's 2-core machine, the first backup
       * 3.80 -> 3.62 s and the re-backup after a 5% change 1.94 -> 1.83 s (medians of 9 and 13),
       * peak RSS +2 MB (docs/benchmarks.md, "Large files' blob ids on the thread pool").
       */
      asyncIds?: boolean;
    } = {},
  ) {
    this.sketch = opts.sketch !== false;
    this.asyncIds = opts.asyncIds === true;
    this.chunker = repo.newChunker();
    this.finder = parent && parent.content.length === parent.sizes.length && parent.content.length > 0 ? new BaseFinder(parent) : undefined;
    if (parent) {
      const idx = new SketchIndex();
      for (const id of parent.content) idx.add(id, repo.indexEntry(id)?.sf);
      if (idx.size > 0) this.similar = idx;
    }
  }

  async write(data: Uint8Array): Promise<void> {
    for (const c of this.chunker.push(data)) await this.take(c);
  }

  /**
   * Read straight into the chunker's window (no intermediate buffer, no copy):
   * `read` fills a prefix of the buffer it is given and returns the byte count.
   */
  async fill(read: (into: Buffer) => Promise<number>): Promise<number> {
    const n = await read(this.chunker.writable());
    for (const c of this.chunker.commit(n)) await this.take(c);
    return n;
  }

  /**
   * A chunk cut and its blob id being computed on the thread pool (repo.blobIdAsync),
   * stored when the next chunk is cut or at finish(): the main thread reads and cuts the
   * next chunk while the keyed hash of this one runs beside it (on a daily dump's
   * backup the main thread is the bound, and the hash was a fifth of it). Chunks are
   * stored in order; at most one waits here.
   */
  private ahead: { chunk: Buffer; id: Promise<string> } | undefined;

  private async take(chunk: Buffer): Promise<void> {
    const prev = this.ahead;
    this.ahead = undefined;
    const id = this.asyncIds && chunk.length >= ASYNC_ID_MIN ? this.repo.blobIdAsync(chunk) : undefined;
    if (id) {
      id.catch(() => {}); // observed when stored
      this.ahead = { chunk, id };
    }
    if (prev) await this.add(prev.chunk, await prev.id);
    if (!id) await this.add(chunk);
  }

  /**
   * Offset of the new stream relative to the parent, learned from chunks found in
   * the parent (identical chunks, or bases found by sketch). Makes the offset
   * guess robust to inserted/deleted data when the sketch finds nothing.
   */
  private drift = 0;

  private async add(chunk: Buffer, knownId?: string): Promise<void> {
    const len = chunk.length;
    const start = this.size;
    const finder = this.finder;
    const deltaBases = finder ? () => finder.covering(start - this.drift, start - this.drift + len) : undefined;
    const learn = (baseId: string) => {
      const ps = finder?.parentStart(baseId);
      if (ps !== undefined) this.drift = start - ps;
    };
    const { id, isNew } = await this.repo.saveBlob('data', chunk, {
      ...(knownId !== undefined ? { id: knownId } : {}),
      ...(deltaBases ? { deltaBases } : {}),
      ...(this.similar ? { similar: this.similar, onSimilar: learn } : {}),
      ...(this.sketch ? {} : { sketch: false }),
      owned: true,
    });
    if (!isNew) learn(id);
    this.content.push(id);
    this.sizes.push(len);
    this.size += len;
  }

  async finish(): Promise<ChunkedContent> {
    const last = this.chunker.finish();
    this.repo.releaseChunker(this.chunker);
    const prev = this.ahead;
    this.ahead = undefined;
    if (prev) await this.add(prev.chunk, await prev.id);
    if (last) await this.add(last);
    return { content: this.content, sizes: this.sizes, size: this.size };
  }
}

/** Store a whole Readable; returns its content list. Memory stays bounded by the repository's in-flight limits. */
export async function storeReadable(repo: Repository, input: Readable, parent?: ParentContent, onBytes?: (n: number) => void): Promise<ChunkedContent> {
  const w = new ContentWriter(repo, parent, { asyncIds: true });
  for await (const piece of input) {
    const buf = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
    await w.write(buf);
    onBytes?.(buf.length);
  }
  return w.finish();
}

/**
 * Store what `read` yields, read straight into the chunker's window: no stream pieces, no copy in
 * (a file, e.g. standard input redirected from one). `read` fills a prefix of the buffer it is given
 * and returns the byte count, 0 at the end. `seen` is shown each piece before it is chunked, as the
 * window's own memory: it may read it until the promise it returns resolves, and the window is not
 * written again before that (the stream's hash runs beside the chunking that way).
 */
export async function storeReads(
  repo: Repository,
  read: (into: Buffer) => Promise<number>,
  parent?: ParentContent,
  seen?: (piece: Buffer) => Promise<void> | undefined,
): Promise<ChunkedContent> {
  const w = new ContentWriter(repo, parent, { asyncIds: true });
  for (;;) {
    let done: Promise<void> | undefined;
    const n = await w.fill(async (into) => {
      const got = await read(into);
      if (!(Number.isInteger(got) && got >= 0 && got <= into.length)) throw new RangeError(`read returned ${got} for a buffer of ${into.length} bytes`);
      if (got > 0 && seen) {
        done = seen(into.subarray(0, got));
        done?.catch(() => {}); // observed below
      }
      return got;
    });
    await done;
    if (n === 0) break;
  }
  return w.finish();
}

/**
 * Yield the verified plaintext of each chunk in order, loading up to `window`
 * chunks ahead (decoding runs in worker threads in parallel).
 */
export async function* readContent(
  repo: Repository,
  content: readonly string[],
  window = 6,
  /** How blob `i` is loaded (default: through the index). */
  load: (id: string, i: number) => Promise<Buffer> = (id) => repo.loadBlob(id),
): AsyncGenerator<Buffer> {
  const pending: Array<Promise<Buffer>> = [];
  let next = 0;
  const fill = () => {
    while (pending.length < window && next < content.length) {
      const i = next++;
      const p = load(content[i]!, i);
      p.catch(() => {}); // observed when awaited below
      pending.push(p);
    }
  };
  fill();
  while (pending.length > 0) {
    const buf = await pending.shift()!;
    fill();
    yield buf;
  }
}
