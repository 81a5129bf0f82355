import { Readable } from 'node:stream';
import { LifeboatError } from '../errors.js';
import { type ParentContent, readContent, storeReadable } from '../repo/content.js';
import type { Repository } from '../repo/repository.js';
import type { BackupSummary, SnapshotWithId } from '../repo/snapshot.js';
import type { TreeNode } from '../repo/tree.js';
import type { SourceMeta } from './types.js';
import { checkAborted } from '../engine/archiver.js';

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
  /** Abort (timeout, shutdown): the stream is destroyed and no snapshot is written. */
  signal?: AbortSignal;
}

export interface StreamBackupResult {
  snapshotId: string;
  summary: BackupSummary;
  parent?: string;
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
  const tree = await repo.loadTree(snap.tree);
  const n = tree.nodes[0];
  if (!n || n.type !== 'file' || !n.content || !n.sizes) return undefined;
  return { content: n.content, sizes: n.sizes };
}

export async function backupStream(repo: Repository, input: Readable, opts: StreamBackupOptions): Promise<StreamBackupResult> {
  if (!opts.filename || opts.filename.includes('/')) throw new LifeboatError(`invalid stream file name "${opts.filename}"`, 2);
  const started = Date.now();
  const lock = await repo.lock(false, 'backup');
  try {
    const before = { ...repo.stats };
    let parent: SnapshotWithId | undefined;
    if (opts.parent && opts.parent !== 'none' && opts.parent !== 'auto') parent = await repo.findSnapshot(opts.parent);
    else if (opts.parent !== 'none') parent = await findStreamParent(repo, opts.filename, opts.source);
    let bytesRead = 0;
    let chunked;
    try {
      const onAbort = () => input.destroy(new LifeboatError(`backup aborted: ${String(opts.signal?.reason ?? 'aborted')}; no snapshot was written`, 130));
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        checkAborted(opts.signal);
        chunked = await storeReadable(repo, input, await parentContent(repo, parent), (n) => {
          bytesRead += n;
          opts.onBytes?.(n);
        });
        checkAborted(opts.signal);
      } finally {
        opts.signal?.removeEventListener('abort', onAbort);
      }
    } catch (err) {
      input.destroy();
      throw err;
    }
    const extra = (await opts.finalize?.()) ?? undefined;
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
      bytesRead,
      blobsNew: repo.stats.blobsNew - before.blobsNew,
      blobsDelta: repo.stats.blobsDelta - before.blobsDelta,
      dataAddedRaw: repo.stats.dataAddedRaw - before.dataAddedRaw,
      dataAdded: repo.stats.dataAdded - before.dataAdded,
      errors: 0,
      durationMs: Date.now() - started,
    };
    const source = opts.source ? { ...opts.source, ...(extra ?? {}) } : extra ? { kind: 'stdin', ...extra } : undefined;
    const snapshotId = await repo.saveSnapshot({
      time: new Date(started).toISOString(),
      tree,
      paths: [`/${opts.filename}`],
      tags: opts.tags ?? [],
      ...(parent ? { parent: parent.id } : {}),
      ...(source ? { source } : {}),
      summary,
    });
    return { snapshotId, summary, ...(parent ? { parent: parent.id } : {}) };
  } catch (err) {
    await repo.abandon();
    throw err;
  } finally {
    await lock.release();
  }
}

/** The single file of a stream snapshot (or the named file of any snapshot), as a verified Readable. */
export async function restoreStream(repo: Repository, snapshotRef: string, opts: { filename?: string } = {}): Promise<Readable> {
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
  const lock = await repo.lock(false, 'restore');
  const content = node.content ?? [];
  async function* gen(): AsyncGenerator<Buffer> {
    try {
      yield* readContent(repo, content);
    } finally {
      await lock.release();
    }
  }
  return Readable.from(gen(), { objectMode: false });
}
