import type { JobRunOutcome, RunFinish } from './types.js';

/**
 * The catalog fields of a finished job run (src/ops/jobs.ts). Generic so a
 * full JobResult (with fields the catalog does not read) is accepted as is.
 */
export function runFinishFromJobResult<R extends JobRunOutcome>(r: R, extra: { logTail?: string; willRetry?: boolean } = {}): RunFinish {
  const s = r.summary;
  const f: RunFinish = { status: r.status, finishedAt: r.finishedAt, repository: r.repository };
  if (s) {
    f.bytesRead = s.bytesRead;
    f.bytesAdded = s.dataAdded;
    f.totalSize = s.totalBytes;
    f.files = s.filesNew + s.filesChanged + s.filesUnmodified;
    f.errors = s.errors;
  }
  if (r.transferred) {
    f.bytesUploaded = r.transferred.bytesUploaded;
    f.bytesDownloaded = r.transferred.bytesDownloaded;
  }
  if (r.snapshotId) f.snapshotId = r.snapshotId;
  const problems = [r.error, ...r.copies.filter((c) => c.error).map((c) => `copy to ${c.repository} failed: ${c.error}`)].filter(Boolean);
  if (problems.length) f.error = problems.join('; ');
  if (extra.logTail !== undefined) f.logTail = extra.logTail;
  else if (r.warnings.length) f.logTail = r.warnings.slice(-50).join('\n');
  if (extra.willRetry !== undefined) f.willRetry = extra.willRetry;
  return f;
}
