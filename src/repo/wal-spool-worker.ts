import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { errorMessage } from '../errors.js';
import type { Repository } from './repository.js';
import { fetchWal, findWal, pushWal } from './wal.js';
import { nextSegment, prevSegment, walKind } from './wal-names.js';
import { IntegrityError } from '../errors.js';
import { SPOOL_DIGEST, SPOOL_SUM_SUFFIX, fsyncDir, hashFile, queuedWal, spoolPaths, tryLock, writeSmall } from './wal-spool.js';

/**
 * The long-running side of the WAL spool (layout in wal-spool.ts): one process
 * per spool and direction, started by archive_command / restore_command when
 * none holds the spool's lock, exiting after `idleMs` without work. It opens
 * the repository once (one key derivation, one index load for fetch), so a
 * segment costs only its chunking, compression, encryption and uploads.
 */

export interface SpoolWorkerOptions {
  archive: string;
  /** Exit after this long with nothing to do. */
  idleMs?: number;
  pollMs?: number;
  /** Prefetch: how many segments ahead of the one PostgreSQL asked for. */
  depth?: number;
  log?: (m: string) => void;
}

export interface SpoolWorkerResult {
  /** false: another worker holds the spool's lock; this one did nothing. */
  ran: boolean;
  files: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STALE_TMP_MS = 10 * 60_000;
/** How often the prefetch worker looks again for a file it found missing (it keeps the NAME.missing marker fresh meanwhile). */
const MISSING_RECHECK_MS = 2_000;

async function removeStaleTmp(dir: string): Promise<void> {
  for (const n of await fsp.readdir(dir).catch(() => [] as string[])) {
    if (!n.endsWith('.tmp')) continue;
    const st = await fsp.stat(path.join(dir, n)).catch(() => undefined);
    if (st && Date.now() - st.mtimeMs > STALE_TMP_MS) await fsp.rm(path.join(dir, n), { force: true }).catch(() => {});
  }
}

/**
 * Push every queued file, oldest first; each is removed from the spool only
 * after its entry is published in the repository (pushWal: packs and index
 * durable first), so a crash at any point loses nothing: the next worker pushes
 * it again, which is idempotent. A failure is written to push/error (reported by
 * archive_command) and ends the worker with the error.
 */
export async function drainSpool(repo: Repository, spool: string, opts: SpoolWorkerOptions): Promise<SpoolWorkerResult> {
  const p = spoolPaths(spool);
  const log = opts.log ?? (() => {});
  const idleMs = opts.idleMs ?? 30_000;
  const pollMs = opts.pollMs ?? 50;
  await fsp.mkdir(p.push, { recursive: true, mode: 0o700 });
  let lock = tryLock(p.pushLock);
  if (!lock) return { ran: false, files: 0 };
  let files = 0;
  let idleSince = Date.now();
  let lastClean = 0;
  try {
    for (;;) {
      if (Date.now() - lastClean > 60_000) {
        lastClean = Date.now();
        await removeStaleTmp(p.push);
      }
      const names = await queuedWal(spool);
      if (names.length === 0) {
        if (Date.now() - idleSince < idleMs) {
          await sleep(pollMs);
          continue;
        }
        // Release, then look once more: a file queued after this look finds the lock free and starts a worker.
        lock.release();
        if ((await queuedWal(spool)).length === 0) return { ran: true, files };
        lock = tryLock(p.pushLock);
        if (!lock) return { ran: true, files };
        idleSince = Date.now();
        continue;
      }
      for (const name of names) {
        const file = path.join(p.push, name);
        const t0 = Date.now();
        try {
          const r = await pushWal(repo, file, { archive: opts.archive, name });
          await fsp.rm(file);
          await fsp.rm(p.pushError, { force: true });
          files++;
          log(`pushed ${name} (${r.status}, ${r.entry.size} bytes → ${r.dataAdded} stored) in ${Date.now() - t0} ms`);
        } catch (err) {
          const message = errorMessage(err);
          log(`push of ${name} failed: ${message}`);
          await writeSmall(p.pushError, JSON.stringify({ name, message, time: new Date().toISOString() }) + '\n').catch(() => {});
          throw err;
        }
      }
      await fsyncDir(p.push).catch(() => {});
      idleSince = Date.now();
    }
  } finally {
    lock?.release();
  }
}

function segmentSizeOf(size: number | undefined): number {
  // a power of two from 1 MiB to 1 GiB (PostgreSQL's wal_segment_size); else the default
  return size && size >= 1 << 20 && size <= 1 << 30 && (size & (size - 1)) === 0 ? size : 16 << 20;
}

/**
 * Keep the next `depth` segments after the one restore_command last asked for
 * (fetch/want) in the spool, each fetched with fetchWal (every blob's keyed hash,
 * the size and the SHA-256 verified, fsynced, renamed) and then described by
 * NAME.cksum (computed from a re-read whose SHA-256 matched the entry), which
 * restore_command checks again before handing it over.
 * Files PostgreSQL no longer needs are removed; on exit the spool is emptied.
 */
export async function prefetchSpool(repo: Repository, spool: string, opts: SpoolWorkerOptions): Promise<SpoolWorkerResult> {
  const p = spoolPaths(spool);
  const log = opts.log ?? (() => {});
  const idleMs = opts.idleMs ?? 30_000;
  const pollMs = opts.pollMs ?? 50;
  const depth = Math.max(1, Math.min(opts.depth ?? 8, 256));
  await fsp.mkdir(p.fetch, { recursive: true, mode: 0o700 });
  const lock = tryLock(p.fetchLock);
  if (!lock) return { ran: false, files: 0 };
  let files = 0;
  let lastWant = '';
  let segSize = 16 << 20;
  let idleSince = Date.now();
  const checked = new Map<string, number>();
  const absent = new Set<string>();
  const readWant = async () => (await fsp.readFile(p.want, 'utf8').catch(() => '')).trim();
  try {
    for (;;) {
      const want = await readWant();
      if (walKind(want) !== 'segment') {
        if (Date.now() - idleSince > idleMs) return { ran: true, files };
        await sleep(pollMs);
        continue;
      }
      if (want !== lastWant) {
        if (lastWant === '' || want.slice(0, 8) !== lastWant.slice(0, 8)) segSize = segmentSizeOf((await findWal(repo, opts.archive, want).catch(() => undefined))?.size);
        lastWant = want;
        idleSince = Date.now();
      }
      const targets: string[] = [];
      for (let n = want, i = 0; i < depth; i++) targets.push((n = nextSegment(n, segSize)));
      // PostgreSQL also asks for timeline history files (this timeline's and the next), mostly absent
      const tl = parseInt(want.slice(0, 8), 16);
      const hist = [tl, tl + 1].map((x) => `${x.toString(16).toUpperCase().padStart(8, '0')}.history`);
      // At the end of the archive PostgreSQL asks for the last segment again (after the absent one
      // following it): keep a fresh copy of `want` when the next one is absent, and of the one before
      // `want` when `want` itself is absent.
      const before = prevSegment(want, segSize);
      const again = absent.has(targets[0]!) ? [want] : absent.has(want) && before ? [before] : [];
      const names = [...hist, ...(before ? [before] : []), want, ...targets];
      // markers only for names this round re-checks (a stale marker must not outlive the check)
      const keep = new Set(['want', ...names.flatMap((t) => [t, t + SPOOL_SUM_SUFFIX]), ...[...hist, ...targets].map((t) => `${t}.missing`)]);
      for (const f of await fsp.readdir(p.fetch)) {
        if (!keep.has(f) && !f.endsWith('.tmp')) await fsp.rm(path.join(p.fetch, f), { force: true }).catch(() => {});
      }
      let fetched = false;
      let ended = false; // a target is absent: the ones after it are not looked at this round
      for (const t of [...hist, ...targets, ...again]) {
        const file = path.join(p.fetch, t);
        const isSegment = walKind(t) === 'segment' && !again.includes(t);
        if (ended && isSegment) continue;
        if (await fsp.stat(file + SPOOL_SUM_SUFFIX).catch(() => undefined)) continue;
        if (Date.now() - (checked.get(t) ?? 0) < MISSING_RECHECK_MS && (await fsp.stat(`${file}.missing`).catch(() => undefined))) {
          if (isSegment) ended = true;
          continue;
        }
        const entry = await findWal(repo, opts.archive, t);
        checked.set(t, Date.now());
        if (checked.size > 1024) checked.clear();
        if (entry) absent.delete(t);
        else absent.add(t);
        if (absent.size > 1024) absent.clear();
        if (!entry && again.includes(t)) continue;
        if (!entry) {
          // not archived (yet): restore_command answers "not found" from this marker while it is fresh
          await writeSmall(`${file}.missing`, new Date().toISOString() + '\n', false);
          if (isSegment) ended = true; // end of the archive (for now)
          continue;
        }
        await fsp.rm(`${file}.missing`, { force: true });
        const t0 = Date.now();
        try {
          await fetchWal(repo, t, file, { archive: opts.archive });
        } catch (err) {
          // blobs pushed after this worker loaded the index: reload once and retry
          log(`prefetch of ${t} failed (${errorMessage(err)}); reloading the index and retrying once`);
          await repo.reloadIndex();
          try {
            await fetchWal(repo, t, file, { archive: opts.archive });
          } catch (err2) {
            log(`prefetch of ${t} failed: ${errorMessage(err2)}; restore_command will fetch it itself`);
            break;
          }
        }
        // the hand-over checksum comes from the file as stored here, re-read and matched with the archive's SHA-256
        const back = await hashFile(file, ['sha256', SPOOL_DIGEST]);
        if (back.digests[0] !== entry.sha256 || back.size !== entry.size) {
          await fsp.rm(file, { force: true });
          log(`prefetch of ${t}: ${new IntegrityError('the file read back from the spool does not match the archive').message}; restore_command will fetch it itself`);
          break;
        }
        await writeSmall(file + SPOOL_SUM_SUFFIX, `${back.digests[1]} ${back.size}\n`, false);
        files++;
        fetched = true;
        log(`prefetched ${t} (${entry.size} bytes) in ${Date.now() - t0} ms`);
        if ((await readWant()) !== want) break; // recovery moved on: recompute the window
      }
      if (!fetched) {
        if (Date.now() - idleSince > idleMs) return { ran: true, files };
        await sleep(pollMs);
      }
    }
  } finally {
    for (const f of await fsp.readdir(p.fetch).catch(() => [] as string[])) {
      if (f !== 'want') await fsp.rm(path.join(p.fetch, f), { force: true }).catch(() => {});
    }
    lock.release();
  }
}
