import { fstatSync, read as fsRead } from 'node:fs';
import { Readable, Transform, pipeline, type TransformCallback } from 'node:stream';
import { IntegrityError, LifeboatError } from '../errors.js';
import { HEX_ID } from '../repo/hex-id.js';
import { type ChunkedContent, type ParentContent, readContent, storeReadable, storeReads } from '../repo/content.js';
import type { Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId, StreamDigest } from '../repo/snapshot.js';
import type { TreeNode } from '../repo/tree.js';
import type { SourceMeta } from '../repo/snapshot.js';
import { checkAborted } from '../engine/archiver.js';
import { StreamSha256 } from '../util/stream-hash.js';
import { heapReclaimer } from '../util/reclaim.js';
import { heapTrim } from '../util/heap-trim.js';
import { pieceGiven, streamPiecesGiven } from './own-pieces.js';
import type { BackupProgress } from '../engine/progress.js';

/**
 * Stream sources: stdin, a command's stdout, or a database dump tool. The bytes
 * flow straight from the producer into the chunker (no temp file); the
 * snapshot is published only after the stream ended AND `finalize` (e.g. the
 * dump tool's exit status) succeeded.
 */
export interface StreamBackupOptions {
  filename: string;
  source?: SourceMeta;
  tags?: string[];
  /** Parent snapshot id, 'auto' (latest with the same source name / filename) or 'none'. */
  parent?: string;
  /** Awaited after the stream ended, before the snapshot is written. Throw to abort. */
  finalize?: () => Promise<Record<string, unknown> | void>;
  onBytes?: (n: number) => void;
  /** Live counters for a progress display: bytesDone grows as the stream is read (no total: a stream's size is unknown). */
  progress?: BackupProgress;
  /** Abort (timeout, shutdown): the stream is destroyed and no snapshot is written. */
  signal?: AbortSignal;
  /**
   * Called after `finalize`: how many bytes the producer says it wrote into the
   * stream (e.g. counted by spawnTool at the tool's stdout). When given, it
   * must equal what was read and stored, or the backup fails.
   */
  producedBytes?: () => number | undefined;
}

export interface StreamBackupResult {
  snapshotId: string;
  summary: BackupSummary;
  parent?: string;
  /** Byte count and SHA-256 of the stream as read from the producer (also in the snapshot). */
  stream: StreamDigest;
}

/** Bytes read and not yet hashed (StreamSha256 off the main thread) before reading waits for the hash. */
const HASH_QUEUE_MAX = 8 << 20;

/**
 * Pass-through that counts and hashes the bytes exactly as they are read from
 * the producer, before and independently of the chunker. The hash runs beside
 * the main thread where it can (util/stream-hash.ts): each piece is passed on at
 * once and read by both (the chunker copies it; nothing changes it).
 *
 * `free`: which pieces are the meter's to free (`may`, see PipeIntake); each of
 * those is freed (`release`) once the hash is past it and the chunker has copied
 * it (consumed()), not left to V8's collector, which lets ~64 MB of such garbage
 * build up. Other pieces are not tracked.
 */
export class StreamMeter extends Transform {
  bytes = 0;
  /** Pieces to free, passed on and not yet freed, in order, each with the stream offset of its end. */
  private held: Array<{ piece: Buffer; end: number }> = [];
  private heldFirst = 0;
  private consumedBytes = 0;
  /** `buffer`: bytes held on each side ahead of the chunker (a producer keeps writing meanwhile). */
  constructor(
    buffer = 1 << 20,
    private readonly free?: { may: (piece: Buffer) => boolean; release: (piece: Buffer) => void },
    private readonly hash = new StreamSha256(),
  ) {
    // pieces are passed on one by one as they came (object mode on the reading side: a byte-mode
    // read() joins whatever is buffered into a new buffer, one more copy of the stream)
    super({ writableHighWaterMark: buffer, readableObjectMode: true, readableHighWaterMark: 16 });
  }
  override _transform(chunk: Buffer | string, _enc: BufferEncoding, cb: TransformCallback): void {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    this.hash.update(b);
    this.bytes += b.length;
    if (this.free?.may(b)) this.held.push({ piece: b, end: this.bytes });
    if (this.hash.queued <= HASH_QUEUE_MAX) cb(null, b);
    else this.hash.below(HASH_QUEUE_MAX).then(() => cb(null, b), cb);
  }
  /** The chunker has copied the next `n` bytes passed on: pieces both it and the hash are past are freed. */
  consumed(n: number): void {
    this.consumedBytes += n;
    if (this.heldFirst === this.held.length) return;
    const done = Math.min(this.consumedBytes, this.hash.hashedBytes);
    while (this.heldFirst < this.held.length && this.held[this.heldFirst]!.end <= done) {
      this.free!.release(this.held[this.heldFirst]!.piece);
      this.heldFirst++;
    }
    if (this.heldFirst > 1024 && this.heldFirst * 2 > this.held.length) {
      this.held = this.held.slice(this.heldFirst);
      this.heldFirst = 0;
    }
  }
  async digest(): Promise<StreamDigest> {
    return { bytes: this.bytes, sha256: await this.hash.digest() };
  }
}

/**
 * Read size for standard input redirected from a regular file (see FileInput): each read goes
 * straight into the chunker's window (256 KiB and 4 MiB measured the same on a daily dump).
 */
export const STDIN_FILE_READ = 1024 * 1024;

/**
 * Standard input redirected from a regular file (`lifeboat backup --stdin < dump.sql`): read
 * from where the shell left the file straight into the chunker's window, and hashed there
 * beside the chunking. No stream pieces: a 256 KiB read was a new buffer each, passed through
 * the stream machinery, held by the hash queue and copied into the window.
 */
export class FileInput {
  constructor(readonly fd: number) {}
}

/** Standard input for a stream backup: a FileInput when it is a regular file, else process.stdin (a pipe or a terminal). */
export function stdinInput(fd = 0): Readable | FileInput {
  let file = false;
  try {
    file = fstatSync(fd).isFile();
  } catch {
    file = false;
  }
  return file ? new FileInput(fd) : process.stdin;
}

/** How a stream backup takes its bytes in, counts and hashes them. */
interface Intake {
  store(repo: Repository, parent: ParentContent | undefined, onBytes: (n: number) => void): Promise<ChunkedContent>;
  /** Stops reading; `err` is what the pending or next read fails with. */
  destroy(err?: Error): void;
  /** An error the input reported after the last read (a pipe's producer), if any. */
  readonly failure: unknown;
  digest(): Promise<StreamDigest>;
}

/**
 * A pipe (or any Readable): through the StreamMeter into the chunker. The pieces of standard input
 * (each read a buffer of its own that nothing else keeps) and those their producer gave
 * (own-pieces.ts: a tool's stdout, a direct base backup's file data) are freed once the chunker
 * and the hash are past them.
 */
class PipeIntake implements Intake {
  private readonly meter: StreamMeter;
  failure: unknown;
  constructor(
    private readonly input: Readable,
    repo: Repository,
  ) {
    const all = input === process.stdin || streamPiecesGiven(input);
    this.meter = new StreamMeter(1 << 20, { may: all ? () => true : pieceGiven, release: (piece) => repo.release(piece) });
    // The reader is attached at once (before the first await: locking, listing snapshots):
    // whatever the producer writes meanwhile is held (up to the buffer, then backpressure)
    // and counted, never dropped.
    pipeline(input, this.meter, (err) => {
      if (err) this.failure ??= err;
    });
  }
  store(repo: Repository, parent: ParentContent | undefined, onBytes: (n: number) => void): Promise<ChunkedContent> {
    return storeReadable(repo, this.meter, parent, (n) => {
      this.meter.consumed(n);
      onBytes(n);
    });
  }
  destroy(err?: Error): void {
    this.meter.destroy(err);
    if (!err) this.input.destroy();
  }
  digest(): Promise<StreamDigest> {
    return this.meter.digest();
  }
}

class FileIntake implements Intake {
  private readonly hash = new StreamSha256();
  private bytes = 0;
  private stopped: Error | undefined;
  readonly failure = undefined;
  constructor(private readonly fd: number) {}
  store(repo: Repository, parent: ParentContent | undefined, onBytes: (n: number) => void): Promise<ChunkedContent> {
    const read = (into: Buffer): Promise<number> => {
      if (this.stopped) return Promise.reject(this.stopped);
      // position null: from the file's own position on, as the shell redirected it
      return new Promise((resolve, reject) => fsRead(this.fd, into, 0, Math.min(into.length, STDIN_FILE_READ), null, (err, n) => (err ? reject(err) : resolve(n))));
    };
    return storeReads(repo, read, parent, (piece) => {
      this.hash.update(piece);
      this.bytes += piece.length;
      onBytes(piece.length);
      return this.hash.flushed();
    });
  }
  destroy(err?: Error): void {
    this.stopped ??= err ?? new LifeboatError('stream input closed', 1);
  }
  async digest(): Promise<StreamDigest> {
    return { bytes: this.bytes, sha256: await this.hash.digest() };
  }
}

/**
 * The `stream` record of a snapshot (untrusted: read from the repository),
 * or undefined for snapshots written before it existed. Malformed: integrity error.
 */
export function streamDigestOf(snap: SnapshotWithId): StreamDigest | undefined {
  const d = (snap as { stream?: unknown }).stream;
  if (d === undefined) return undefined;
  const o = d as Partial<StreamDigest> | null;
  if (!o || typeof o !== 'object' || !Number.isSafeInteger(o.bytes) || (o.bytes as number) < 0 || typeof o.sha256 !== 'string' || !HEX_ID.test(o.sha256)) {
    throw new IntegrityError(`snapshot ${snap.id.slice(0, 8)}: malformed stream record (byte count / SHA-256)`);
  }
  return { bytes: o.bytes as number, sha256: o.sha256 };
}

function streamKey(s: { paths: string[]; source?: SourceMeta }): string {
  return `${s.source?.kind ?? ''}\0${s.source?.name ?? ''}\0${s.paths.join('\0')}`;
}

export async function findStreamParent(repo: Repository, filename: string, source?: SourceMeta): Promise<SnapshotWithId | undefined> {
  const key = streamKey({ paths: [`/${filename}`], source });
  const snaps = (await repo.listSnapshots()).filter((s) => streamKey(s) === key);
  return snaps[snaps.length - 1];
}

async function parentContent(repo: Repository, snap: SnapshotWithId | undefined): Promise<ParentContent | undefined> {
  if (!snap) return undefined;
  // the parent may have been written by another process (another agent of the
  // fleet) after this repository was opened: read the index again for it
  if (!repo.hasBlob(snap.tree)) await repo.reloadIndex();
  const tree = await repo.loadTree(snap.tree);
  const n = tree.nodes[0];
  if (!n || n.type !== 'file' || !n.content || !n.sizes) return undefined;
  if (n.content.some((id) => !repo.hasBlob(id))) await repo.reloadIndex();
  return { content: n.content, sizes: n.sizes };
}

/** Bytes of a stream between two looks at the JavaScript heap's size (streamHeapWatch). */
const HEAP_LOOK = 1024 * 1024;

/**
 * A stream backup's heap watch: a full collection whenever the JavaScript heap grew by
 * LIFEBOAT_STREAM_HEAP_GC_MB (default 8; 0: none) past its lowest since the last one (BufferReclaimer
 * heapCap), looked at once per MiB of the stream (one getHeapStatistics call, not one per piece).
 * What a stream's backup promotes to the old generation and drops later (the input's pieces, the
 * byte meter's, each storage read's signal and limits, V8's own objects: ~43 MB per 4 GB) stayed
 * until V8's next full collection, and the pages it filled grew the peak with the stream's size: the
 * daily backup of a 20 GB dump (1% of rows changed) peaked at 155-174 MiB, with this at 140-143, for
 * 0-4% more wall and CPU time, its first day at 106-107 instead of 115-137; a 268 MB dump's peak and
 * time did not move (docs/benchmarks.md, "A stream's garbage collected as the heap grows"). Every
 * stream backup: stdin, a command's output, the dump sources, pg base backups. Undefined: no watch.
 */
export function streamHeapWatch(env: NodeJS.ProcessEnv = process.env): ((n: number) => void) | undefined {
  const reclaimer = heapReclaimer('LIFEBOAT_STREAM_HEAP_GC_MB', 8, env);
  if (!reclaimer) return undefined;
  let since = 0;
  return (n) => {
    since += n;
    if (since < HEAP_LOOK) return;
    since = 0;
    reclaimer.dropped(0);
  };
}

export async function backupStream(repo: Repository, input: Readable | FileInput, opts: StreamBackupOptions): Promise<StreamBackupResult> {
  if (!opts.filename || opts.filename.includes('/')) {
    if (!(input instanceof FileInput)) input.destroy();
    throw new LifeboatError(`invalid stream file name "${opts.filename}"`, 2);
  }
  const started = Date.now();
  const intake: Intake = input instanceof FileInput ? new FileIntake(input.fd) : new PipeIntake(input, repo);
  let lock: Awaited<ReturnType<Repository['lock']>>;
  try {
    lock = await repo.lock(false, 'backup');
  } catch (err) {
    intake.destroy();
    throw err;
  }
  if (opts.progress) opts.progress.started = true;
  try {
    const before = { ...repo.stats };
    let parent: SnapshotWithId | undefined;
    let chunked;
    try {
      if (opts.parent && opts.parent !== 'none' && opts.parent !== 'auto') parent = await repo.findSnapshot(opts.parent);
      else if (opts.parent !== 'none') parent = await findStreamParent(repo, opts.filename, opts.source);
      const onAbort = () => {
        const reason = opts.signal?.reason;
        intake.destroy(new LifeboatError(`backup aborted: ${reason instanceof Error ? reason.message : String(reason ?? 'aborted')}; no snapshot was written`, 130));
      };
      // the C heap trimmed while the stream is stored (util/heap-trim.ts: a long stream's free blocks piled up)
      const stopTrims = heapTrim();
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        checkAborted(opts.signal);
        const watch = streamHeapWatch();
        chunked = await intake.store(repo, await parentContent(repo, parent), (n) => {
          watch?.(n);
          if (opts.progress) opts.progress.bytesDone += n;
          opts.onBytes?.(n);
        });
        checkAborted(opts.signal);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
        stopTrims();
      }
    } catch (err) {
      intake.destroy();
      throw err;
    }
    const extra = (await opts.finalize?.()) ?? undefined;
    if (intake.failure) throw intake.failure;
    const digest = await intake.digest();
    // Every byte read from the producer must be in the stored content, and
    // (when the producer counts) every byte it wrote must have been read.
    if (chunked.size !== digest.bytes) {
      throw new IntegrityError(`read ${digest.bytes} bytes from the stream but stored ${chunked.size}; no snapshot was written`);
    }
    const produced = opts.producedBytes?.();
    if (produced !== undefined && produced !== digest.bytes) {
      throw new IntegrityError(`the producer wrote ${produced} bytes but ${digest.bytes} reached the repository; no snapshot was written`);
    }
    const node: TreeNode = {
      name: opts.filename,
      type: 'file',
      mode: 0o600,
      uid: process.getuid?.() ?? 0,
      gid: process.getgid?.() ?? 0,
      mtime: Date.now(),
      size: chunked.size,
      content: chunked.content,
      sizes: chunked.sizes,
    };
    const tree = await repo.saveTree({ nodes: [node] });
    await repo.flush();
    const summary: BackupSummary = {
      filesNew: parent ? 0 : 1,
      filesChanged: parent ? 1 : 0,
      filesUnmodified: 0,
      dirs: 0,
      totalBytes: chunked.size,
      bytesRead: digest.bytes,
      blobsNew: repo.stats.blobsNew - before.blobsNew,
      blobsDelta: repo.stats.blobsDelta - before.blobsDelta,
      dataAddedRaw: repo.stats.dataAddedRaw - before.dataAddedRaw,
      dataAdded: repo.stats.dataAdded - before.dataAdded,
      errors: 0,
      durationMs: Date.now() - started,
    };
    const source = opts.source ? { ...opts.source, ...(extra ?? {}) } : extra ? { kind: 'stdin', ...extra } : undefined;
    // No snapshot over packs that a prune which took over a lost lock may judge garbage.
    lock.check();
    const snapshotId = await repo.saveSnapshot({
      time: new Date(started).toISOString(),
      tree,
      paths: [`/${opts.filename}`],
      tags: opts.tags ?? [],
      ...(parent ? { parent: parent.id } : {}),
      ...(source ? { source } : {}),
      stream: digest,
      summary,
    });
    return { snapshotId, summary, ...(parent ? { parent: parent.id } : {}), stream: digest };
  } catch (err) {
    await repo.abandon();
    throw lock.cause(err);
  } finally {
    await lock.release();
  }
}

/** The single file of a stream snapshot (or the named file of any snapshot), as a verified Readable. */
export async function restoreStream(repo: Repository, snapshotRef: string, opts: { filename?: string } = {}): Promise<Readable> {
  return Readable.from(await streamChunks(repo, snapshotRef, opts), { objectMode: false });
}

/**
 * restoreStream's chunks, one by one (a Readable in byte mode may join several into one
 * new buffer). `owned`: each chunk is the consumer's alone (Repository.loadOwnedBlob),
 * which may free it with `repo.release` once done with it: a restore to standard output
 * held ~80 MB of written chunks until V8's next collection otherwise.
 */
export async function streamChunks(repo: Repository, snapshotRef: string, opts: { filename?: string; owned?: boolean } = {}): Promise<AsyncGenerator<Buffer>> {
  const snap = await repo.findSnapshot(snapshotRef);
  const tree = await repo.loadTree(snap.tree);
  const files = tree.nodes.filter((n) => n.type === 'file');
  const node = opts.filename ? files.find((n) => n.name === opts.filename) : files.length === 1 ? files[0] : undefined;
  if (!node) {
    throw new LifeboatError(
      opts.filename
        ? `snapshot ${snap.id.slice(0, 8)} has no file named ${opts.filename} at its root`
        : `snapshot ${snap.id.slice(0, 8)} is not a single-stream snapshot; use "restore --target DIR"`,
    );
  }
  // The stream record describes the snapshot's one stream file.
  const digest = snap.paths.length === 1 && snap.paths[0] === `/${node.name}` ? streamDigestOf(snap) : undefined;
  if (digest && node.size !== digest.bytes) {
    throw new IntegrityError(`snapshot ${snap.id.slice(0, 8)}: the stored stream has ${node.size} bytes but ${digest.bytes} were backed up`);
  }
  const lock = await repo.lock(false, 'restore');
  const content = node.content ?? [];
  const what = `snapshot ${snap.id.slice(0, 8)} (${node.name})`;
  // (readContent's default loader, repo.loadBlob, unless owned)
  const chunks = readContent(repo, content, undefined, opts.owned ? (id) => repo.loadOwnedBlob(id) : undefined);
  async function* gen(): AsyncGenerator<Buffer> {
    try {
      if (!digest) {
        yield* chunks;
        return;
      }
      // Verified against the byte count and SHA-256 recorded at backup time. The
      // last chunk is held back until the whole stream matched, so a consumer
      // (a restore tool reading stdin) never sees a clean end of a wrong stream.
      // The SHA-256 runs on the thread pool (util/stream-hash.ts: on this thread it
      // took ~0.19 s of a day-3 dump's 1.6 s restore to stdout); a chunk is passed on
      // only once it is hashed, so the consumer may do what it likes with it.
      const h = new StreamSha256();
      let bytes = 0;
      let held: Buffer | undefined;
      for await (const b of chunks) {
        h.update(b);
        bytes += b.length;
        if (bytes > digest.bytes) throw new IntegrityError(`${what}: more than the ${digest.bytes} bytes that were backed up`);
        if (held) {
          // hashed in order: at most b's bytes waiting means every chunk before it is hashed
          await h.below(b.length);
          yield held;
        }
        held = b;
      }
      if (bytes !== digest.bytes) throw new IntegrityError(`${what}: read ${bytes} bytes, but ${digest.bytes} were backed up`);
      if ((await h.digest()) !== digest.sha256) throw new IntegrityError(`${what}: SHA-256 of the restored stream differs from the one recorded at backup time`);
      if (held) yield held;
    } finally {
      await lock.release();
    }
  }
  return gen();
}
