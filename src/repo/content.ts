import type { Readable } from 'node:stream';
import type { Repository } from './repository.js';

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
  constructor(private readonly parent: ParentContent) {
    let off = 0;
    for (const s of parent.sizes) {
      this.starts.push(off);
      off += s;
    }
  }

  /** The parent chunk containing position `pos` (clamped to the last chunk). */
  at(pos: number): string | undefined {
    const st = this.starts;
    if (st.length === 0) return undefined;
    let lo = 0;
    let hi = st.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (st[mid]! <= pos) lo = mid;
      else hi = mid - 1;
    }
    return this.parent.content[lo];
  }
}

export interface ChunkedContent {
  content: string[];
  sizes: number[];
  size: number;
}

export class ContentWriter {
  private readonly chunker;
  private readonly finder: BaseFinder | undefined;
  readonly content: string[] = [];
  readonly sizes: number[] = [];
  size = 0;

  constructor(
    private readonly repo: Repository,
    parent?: ParentContent,
  ) {
    this.chunker = repo.newChunker();
    this.finder = parent && parent.content.length === parent.sizes.length && parent.content.length > 0 ? new BaseFinder(parent) : undefined;
  }

  async write(data: Uint8Array): Promise<void> {
    for (const c of this.chunker.push(data)) await this.add(c);
  }

  private async add(chunk: Buffer): Promise<void> {
    const len = chunk.length;
    const deltaBase = this.finder?.at(this.size + (len >> 1));
    const { id } = await this.repo.saveBlob('data', chunk, { deltaBase });
    this.content.push(id);
    this.sizes.push(len);
    this.size += len;
  }

  async finish(): Promise<ChunkedContent> {
    const last = this.chunker.finish();
    if (last) await this.add(last);
    return { content: this.content, sizes: this.sizes, size: this.size };
  }
}

/** Store a whole Readable; returns its content list. Memory stays bounded by the repository's in-flight limits. */
export async function storeReadable(repo: Repository, input: Readable, parent?: ParentContent, onBytes?: (n: number) => void): Promise<ChunkedContent> {
  const w = new ContentWriter(repo, parent);
  for await (const piece of input) {
    const buf = typeof piece === 'string' ? Buffer.from(piece) : (piece as Buffer);
    await w.write(buf);
    onBytes?.(buf.length);
  }
  return w.finish();
}

/**
 * Yield the verified plaintext of each chunk in order, loading up to `window`
 * chunks ahead (decoding runs in worker threads in parallel).
 */
export async function* readContent(repo: Repository, content: readonly string[], window = 6): AsyncGenerator<Buffer> {
  const pending: Array<Promise<Buffer>> = [];
  let next = 0;
  const fill = () => {
    while (pending.length < window && next < content.length) {
      const p = repo.loadBlob(content[next++]!);
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
