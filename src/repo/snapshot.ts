import { IntegrityError } from '../errors.js';
import { HEX_ID } from './hex-id.js';

/**
 * Metadata a stream source records in the snapshot (snapshot.source).
 * Never contains secrets (passwords, tokens, full URLs with credentials).
 */
export interface SourceMeta {
  /** 'postgres' | 'mysql' | 'redis' | 'sqlite' | 'mongodb' | 'command' | 'stdin' | 'files' */
  kind: string;
  /** Name of the source in lifeboat.yaml, if any. */
  name?: string;
  serverVersion?: string;
  database?: string;
  tool?: string;
  toolVersion?: string;
  [key: string]: unknown;
}

export interface BackupSummary {
  filesNew: number;
  filesChanged: number;
  filesUnmodified: number;
  dirs: number;
  /** Bytes of file content (or stream) in this snapshot. */
  totalBytes: number;
  /** Bytes actually read from the source (unchanged files are not re-read). */
  bytesRead: number;
  blobsNew: number;
  blobsDelta: number;
  /** Bytes of new blobs before compression. */
  dataAddedRaw: number;
  /** Bytes added to the repository (sealed, compressed). */
  dataAdded: number;
  errors: number;
  durationMs: number;
}

/** Byte count and SHA-256 of a stream snapshot's data as read from its producer (docs/format.md, addition 1.2). */
export interface StreamDigest {
  bytes: number;
  sha256: string;
}

export interface Snapshot {
  v: 1;
  time: string;
  tree: string;
  paths: string[];
  hostname: string;
  username: string;
  tags: string[];
  parent?: string;
  /** For stream snapshots: what produced it (database kind, tool, versions...). Never secrets. */
  source?: SourceMeta;
  summary?: BackupSummary;
  /** Stream snapshots (addition 1.2): what the producer wrote. Untrusted: check with streamDigestOf (src/sources/stream.ts). */
  stream?: StreamDigest;
  /** Set on snapshots made by `copy`: the source repository id and snapshot id. */
  copiedFrom?: { repository: string; snapshot: string };
  program: string;
}

export interface SnapshotWithId extends Snapshot {
  id: string;
}

export function validateSnapshot(x: unknown, id: string): Snapshot {
  const s = x as Partial<Snapshot>;
  if (!s || s.v !== 1 || typeof s.time !== 'string' || Number.isNaN(Date.parse(s.time))) {
    throw new IntegrityError(`snapshot ${id}: malformed or unsupported`);
  }
  if (typeof s.tree !== 'string' || !HEX_ID.test(s.tree)) throw new IntegrityError(`snapshot ${id}: invalid tree id`);
  if (!Array.isArray(s.paths) || !Array.isArray(s.tags)) throw new IntegrityError(`snapshot ${id}: invalid paths/tags`);
  return s as Snapshot;
}
