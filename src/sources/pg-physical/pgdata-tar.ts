import { constants as fsConstants, promises as fsp, type BigIntStats } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { LifeboatError } from '../../errors.js';
import { TAR_END, tarHeader, tarMember, tarPadding, type TarEntry } from './tar-writer.js';
import { givePiece } from '../own-pieces.js';

/**
 * A PostgreSQL data directory as one tar stream, read while a backup is in
 * progress (between pg_backup_start and pg_backup_stop): what the server's
 * BASE_BACKUP would send, without the walsender, pg_basebackup and the two
 * copies through a socket and a pipe. The rules are PostgreSQL's own
 * (src/backend/backup/basebackup.c, and "Making a Base Backup Using the Low
 * Level API" in its documentation):
 *
 * - the contents of pg_wal (WAL comes from the archive), pg_dynshmem,
 *   pg_notify, pg_serial, pg_snapshots, pg_stat_tmp, pg_subtrans and
 *   pg_replslot are left out; the directories themselves are kept, and so is
 *   pg_wal/archive_status;
 * - postmaster.pid, postmaster.opts, backup_label, tablespace_map,
 *   backup_manifest and the .tmp files of postgresql.auto.conf and
 *   current_logfiles are left out, and so are temporary files and directories
 *   (pgsql_tmp*) and relation cache files (pg_internal.init*) anywhere;
 * - global/pg_control is sent last;
 * - a file that vanishes while the directory is read (a dropped table), or
 *   is replaced by a link, is skipped; one that shrinks is padded with zeros
 *   up to the size its header gave, one that grows is cut there (WAL replay
 *   from the backup's start makes both consistent, as it does for
 *   pg_basebackup's copies);
 * - pg_wal given as a symbolic link is sent as a directory. Tablespaces
 *   (links under pg_tblspc) are refused: the caller checks pg_tablespace
 *   first, and a link found here is an error.
 *
 * Names are the directory's bytes. Each piece of file data is a new buffer of
 * its own, at most `pieceSize`, given to the consumer to free once it is done
 * with it (own-pieces.ts givePiece); the tar's headers and padding are not.
 */

const EMPTY_DIRS = new Set(['pg_wal', 'pg_dynshmem', 'pg_notify', 'pg_serial', 'pg_snapshots', 'pg_stat_tmp', 'pg_subtrans', 'pg_replslot']);
const TOP_FILES_LEFT_OUT = new Set(['postmaster.pid', 'postmaster.opts', 'backup_label', 'tablespace_map', 'backup_manifest', 'postgresql.auto.conf.tmp', 'current_logfiles.tmp']);
const PG_CONTROL = 'global/pg_control';

export interface PgDataTarOptions {
  /** Bytes per piece of file data (default 512 KiB). */
  pieceSize?: number;
  signal?: AbortSignal;
  /** Called once every file was read: the members to add at the end (backup_label, tablespace_map). */
  finish: () => Promise<Array<{ name: string; body: Buffer }>>;
}

export interface PgDataTarStats {
  /** regular files sent */
  files: number;
  /** files that vanished (or became links) between the listing and their read: skipped */
  vanished: number;
}

function entryOf(rel: Buffer, st: BigIntStats, type: TarEntry['type'], linkname?: Buffer): TarEntry {
  return {
    name: rel,
    type,
    size: type === 'file' ? Number(st.size) : 0,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    mtime: Number(st.mtimeMs / 1000n),
    ...(linkname ? { linkname } : {}),
  };
}

const isGone = (err: unknown) => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

export async function* pgDataTar(dataDir: string, opts: PgDataTarOptions, stats: PgDataTarStats = { files: 0, vanished: 0 }): AsyncGenerator<Buffer> {
  const piece = opts.pieceSize ?? 512 * 1024;
  const root = Buffer.from(path.resolve(dataDir));
  const abs = (rel: Buffer) => Buffer.concat([root, Buffer.from('/'), rel]);
  const check = () => {
    if (opts.signal?.aborted) throw new LifeboatError('base backup aborted; no backup was taken', 130);
  };

  async function* file(rel: Buffer, st: BigIntStats): AsyncGenerator<Buffer> {
    let fh: FileHandle;
    try {
      // O_NOFOLLOW: a file replaced by a link since it was listed is not followed out of the data directory
      fh = await fsp.open(abs(rel), fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (err) {
      if (isGone(err) || (err as NodeJS.ErrnoException).code === 'ELOOP') {
        stats.vanished++;
        return;
      }
      throw err;
    }
    try {
      const size = Number(st.size);
      yield tarHeader(entryOf(rel, st, 'file'));
      let done = 0;
      while (done < size) {
        check();
        const want = Math.min(piece, size - done);
        const buf = Buffer.allocUnsafeSlow(want); // its own memory: given to the consumer below
        let got = 0;
        while (got < want) {
          const { bytesRead } = await fh.read(buf, got, want - got, done + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got < want) buf.fill(0, got); // the file shrank: zeros up to the size in its header
        done += want;
        yield givePiece(buf);
      }
      const pad = tarPadding(size);
      if (pad.length) yield pad;
      stats.files++;
    } finally {
      await fh.close();
    }
  }

  let control: BigIntStats | undefined;

  async function* dir(rel: Buffer | undefined, depth: number): AsyncGenerator<Buffer> {
    if (depth > 64) throw new LifeboatError(`data directory ${dataDir}: more than 64 levels of directories`);
    let names: Buffer[];
    try {
      names = await fsp.readdir(rel ? abs(rel) : root, { encoding: 'buffer' });
    } catch (err) {
      if (rel && isGone(err)) return;
      throw err;
    }
    names.sort(Buffer.compare);
    for (const name of names) {
      check();
      const s = name.toString('latin1');
      if (s.startsWith('pgsql_tmp') || s.startsWith('pg_internal.init')) continue;
      if (!rel && TOP_FILES_LEFT_OUT.has(s)) continue;
      const childRel = rel ? Buffer.concat([rel, Buffer.from('/'), name]) : name;
      const relStr = childRel.toString('latin1');
      let st: BigIntStats;
      try {
        st = await fsp.lstat(abs(childRel), { bigint: true });
      } catch (err) {
        if (isGone(err)) {
          stats.vanished++;
          continue;
        }
        throw err;
      }
      const keepEmpty = EMPTY_DIRS.has(relStr);
      if (st.isSymbolicLink()) {
        if (relStr === 'pg_wal') {
          // a pg_wal elsewhere (initdb -X): an empty directory here, as pg_basebackup sends it
          const target = await fsp.stat(abs(childRel), { bigint: true });
          yield tarHeader(entryOf(childRel, target, 'dir'));
          yield tarHeader(entryOf(Buffer.from('pg_wal/archive_status'), target, 'dir'));
          continue;
        }
        if (relStr.startsWith('pg_tblspc/')) {
          throw new LifeboatError(`data directory ${dataDir} has a tablespace (${relStr}): the direct base backup copies one data directory; use pg_basebackup (leave dataDir unset) for clusters with tablespaces`);
        }
        yield tarHeader(entryOf(childRel, st, 'symlink', await fsp.readlink(abs(childRel), { encoding: 'buffer' })));
      } else if (st.isDirectory()) {
        yield tarHeader(entryOf(childRel, st, 'dir'));
        if (keepEmpty) {
          if (relStr === 'pg_wal') {
            const as = await fsp.lstat(abs(Buffer.from('pg_wal/archive_status')), { bigint: true }).catch(() => st);
            yield tarHeader(entryOf(Buffer.from('pg_wal/archive_status'), as, 'dir'));
          }
          continue;
        }
        yield* dir(childRel, depth + 1);
      } else if (st.isFile()) {
        if (relStr === PG_CONTROL) {
          control = st;
          continue;
        }
        yield* file(childRel, st);
      }
      // sockets, pipes and devices are not part of a cluster's state
    }
  }

  yield* dir(undefined, 0);
  if (!control) throw new LifeboatError(`${dataDir} has no ${PG_CONTROL}: is it a PostgreSQL data directory?`);
  // pg_control last, read again now (as pg_basebackup sends it)
  const st = await fsp.lstat(path.join(dataDir, PG_CONTROL), { bigint: true });
  yield* file(Buffer.from(PG_CONTROL), st);
  const now = Math.floor(Date.now() / 1000);
  for (const m of await opts.finish()) {
    yield tarMember({ name: Buffer.from(m.name), mode: 0o600, uid: Number(control.uid), gid: Number(control.gid), mtime: now }, m.body);
  }
  yield TAR_END;
}
