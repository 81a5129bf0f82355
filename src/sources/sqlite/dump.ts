import { randomBytes } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { ExitCode, IntegrityError, LifeboatError } from '../../errors.js';
import { parseOptions, safeFilename, type SourceContext } from '../proc.js';
import type { DumpHandle, RestoreResult } from '../types.js';
import { sqliteSourceSchema } from '../../config/sources.js';
import { streamToNewFile } from '../../util/new-file.js';

/**
 * SQLite source.
 *
 * Backup: a consistent online copy of the live database is made into a
 * private temporary directory — with SQLite's online backup API (default,
 * method "backup": a page-for-page copy, so unchanged pages stay byte-identical
 * from day to day and deduplicate) or with `VACUUM INTO` (method "vacuum": one
 * read transaction, never restarts on a busy database, compacts). The copy is
 * checked with `PRAGMA integrity_check`, streamed out, and deleted as soon as
 * the stream ends, fails or is aborted. A temporary copy is unavoidable: a
 * consistent snapshot of a database that others write to cannot be streamed
 * straight from the live file (and its WAL).
 *
 * Row counts: exact `count(*)` per table, taken on the copy (so they match the
 * backup exactly); `rowCounts: false` skips them for very large databases.
 *
 * Restore: the stream is written to a temporary file next to the target,
 * fsync'ed, checked with `PRAGMA integrity_check`, and renamed over the target
 * (atomic). An existing target is refused unless `force`; its stale -wal,
 * -shm and -journal files are removed first, since SQLite would otherwise
 * apply them to the restored file.
 */

export type SqliteSourceOptions = z.output<typeof sqliteSourceSchema>;
export type SqliteSourceInput = z.input<typeof sqliteSourceSchema>;

const HEADER = Buffer.from('SQLite format 3\0', 'latin1');

let libVersion: string | undefined;
function betterSqliteVersion(): string {
  if (!libVersion) {
    try {
      libVersion = (createRequire(import.meta.url)('better-sqlite3/package.json') as { version: string }).version;
    } catch {
      libVersion = 'unknown';
    }
  }
  return libVersion;
}

async function checkHeader(file: string, what: string): Promise<void> {
  let fh;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new LifeboatError(`${what} ${file} does not exist`);
    throw new LifeboatError(`cannot open ${what} ${file}: ${code ?? (err as Error).message}`);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new LifeboatError(`${what} ${file} is not a regular file`);
    const buf = Buffer.alloc(HEADER.length);
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    // An empty file is a valid (empty) SQLite database.
    if (bytesRead === 0 && st.size === 0) return;
    if (bytesRead < HEADER.length || !buf.equals(HEADER)) throw new IntegrityError(`${what} ${file} is not a SQLite 3 database (bad file header)`);
  } finally {
    await fh.close();
  }
}

interface CopyFacts {
  integrityCheck?: string;
  rowCounts?: Record<string, number>;
  tableCount: number;
  pageSize: number;
  pageCount: number;
  userVersion: number;
  sqliteVersion: string;
}

/** integrity_check, table list and counts on a database file. Throws IntegrityError when the check fails. */
function inspectDb(file: string, opts: { integrityCheck: boolean; rowCounts: boolean }, what: string): CopyFacts {
  const db = new Database(file, { fileMustExist: true });
  try {
    const facts: CopyFacts = {
      tableCount: 0,
      pageSize: db.pragma('page_size', { simple: true }) as number,
      pageCount: db.pragma('page_count', { simple: true }) as number,
      userVersion: db.pragma('user_version', { simple: true }) as number,
      sqliteVersion: (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v,
    };
    if (opts.integrityCheck) {
      const rows = (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check);
      if (rows.length !== 1 || rows[0] !== 'ok') {
        throw new IntegrityError(`${what}: PRAGMA integrity_check failed:\n  ${rows.slice(0, 20).join('\n  ')}${rows.length > 20 ? '\n  ...' : ''}`);
      }
      facts.integrityCheck = 'ok';
    }
    const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name`).all() as Array<{ name: string }>;
    facts.tableCount = tables.length;
    if (opts.rowCounts) {
      facts.rowCounts = {};
      for (const { name } of tables) {
        try {
          facts.rowCounts[name] = (db.prepare(`SELECT count(*) AS n FROM "${name.replace(/"/g, '""')}"`).get() as { n: number }).n;
        } catch {
          // virtual tables whose module is not loaded here cannot be counted
        }
      }
    }
    return facts;
  } catch (err) {
    if (err instanceof LifeboatError) throw err;
    const code = (err as { code?: string }).code ?? '';
    if (/SQLITE_(CORRUPT|NOTADB)/.test(code)) throw new IntegrityError(`${what}: ${(err as Error).message}`);
    throw new LifeboatError(`${what}: ${(err as Error).message}`);
  } finally {
    db.close();
  }
}

async function removeSidecars(file: string): Promise<void> {
  for (const s of ['-wal', '-shm', '-journal']) await fsp.rm(file + s, { force: true });
}

/**
 * Make a consistent copy of the database, check it, and stream it. `done`
 * resolves once the whole copy was read (and deleted).
 */
/**
 * Verification values for restore drills, read from the copy that is streamed
 * (so they describe exactly the backed-up data). A failing query is recorded,
 * not fatal: the backup matters more than its later verification.
 */
function verificationValues(copy: string, queries: string[]): { values: Record<string, string | null>; errors: Record<string, string> } {
  const db = new Database(copy, { readonly: true, fileMustExist: true });
  const values: Record<string, string | null> = {};
  const errors: Record<string, string> = {};
  try {
    for (const q of queries) {
      try {
        const row = db.prepare(q).raw().get() as unknown[] | undefined;
        const v = row?.[0];
        values[q] = v === null || v === undefined ? null : Buffer.isBuffer(v) ? v.toString('hex') : String(v);
      } catch (err) {
        errors[q] = (err as Error).message.slice(0, 300);
      }
    }
  } finally {
    db.close();
  }
  return { values, errors };
}

export async function dumpSqlite(input: SqliteSourceInput | SqliteSourceOptions, ctx: SourceContext = {}): Promise<DumpHandle> {
  const started = Date.now();
  const what = `sqlite source${ctx.name ? ` ${ctx.name}` : ''}`;
  const o = parseOptions(sqliteSourceSchema, input, what);
  const file = path.resolve(o.path);
  await checkHeader(file, 'SQLite database');
  const work = await fsp.mkdtemp(path.join(o.tmpDir ?? tmpdir(), 'lifeboat-sqlite-'));
  const copy = path.join(work, 'copy.db');
  let facts: CopyFacts;
  let verification: { values: Record<string, string | null>; errors: Record<string, string> } | undefined;
  try {
    const src = new Database(file, { readonly: true, fileMustExist: true, timeout: o.busyTimeout });
    try {
      if (o.method === 'vacuum') src.prepare('VACUUM INTO ?').run(copy);
      else await src.backup(copy);
    } catch (err) {
      throw new LifeboatError(`copying SQLite database ${file} failed: ${(err as Error).message}`, ExitCode.FATAL, { cause: err });
    } finally {
      src.close();
    }
    if (ctx.signal?.aborted) throw new LifeboatError('SQLite backup was aborted');
    facts = inspectDb(copy, o, `copy of ${file}`);
    if (ctx.verifyQueries?.length) verification = verificationValues(copy, ctx.verifyQueries);
    await removeSidecars(copy);
  } catch (err) {
    await fsp.rm(work, { recursive: true, force: true });
    throw err;
  }
  const size = (await fsp.stat(copy)).size;
  const stream = createReadStream(copy, { highWaterMark: 1 << 20 });
  const cleanup = (): Promise<void> => fsp.rm(work, { recursive: true, force: true });
  const done = new Promise<void>((resolve, reject) => {
    let ended = false;
    stream.once('end', () => {
      ended = true;
    });
    stream.once('error', reject);
    stream.once('close', () => (ended ? resolve() : reject(new LifeboatError(`streaming the copy of ${file} was aborted`))));
  }).then(
    async () => {
      await cleanup();
      return {
        exitCode: 0,
        durationMs: Date.now() - started,
        extra: {
          ...(facts.integrityCheck ? { integrityCheck: facts.integrityCheck } : {}),
          ...(facts.rowCounts ? { rowCounts: facts.rowCounts } : {}),
          tableCount: facts.tableCount,
          ...(verification ? { verification: verification.values } : {}),
          ...(verification && Object.keys(verification.errors).length ? { verificationErrors: verification.errors } : {}),
          pageSize: facts.pageSize,
          pageCount: facts.pageCount,
          size,
        },
      };
    },
    async (err: unknown) => {
      await cleanup();
      throw err instanceof LifeboatError ? err : new LifeboatError(`reading the copy of ${file} failed: ${(err as Error).message}`);
    },
  );
  done.catch(() => {});
  const abort = (): void => {
    if (!stream.destroyed) stream.destroy(new LifeboatError('SQLite backup was aborted'));
  };
  ctx.signal?.addEventListener('abort', abort, { once: true });
  return {
    stream,
    done,
    meta: {
      kind: 'sqlite',
      ...(ctx.name ? { name: ctx.name } : {}),
      database: file,
      serverVersion: facts.sqliteVersion,
      tool: 'better-sqlite3',
      toolVersion: betterSqliteVersion(),
      method: o.method,
      userVersion: facts.userVersion,
    },
    filename: o.filename ?? safeFilename(path.basename(file)),
    abort,
  };
}

export interface SqliteRestoreTarget {
  /** Where to write the database (default: the source's path). */
  path?: string;
  /** Replace an existing file. */
  force?: boolean;
  /** Run PRAGMA integrity_check before putting the file in place (default true). */
  integrityCheck?: boolean;
}

/** Write the stream to the target path atomically (temp file + rename) after checking it. */
export async function restoreSqlite(input: SqliteSourceInput | SqliteSourceOptions, stream: Readable, target: SqliteRestoreTarget = {}): Promise<RestoreResult> {
  const started = Date.now();
  const o = parseOptions(sqliteSourceSchema, input, 'sqlite source');
  const dest = path.resolve(target.path ?? o.path);
  const existing = await fsp.stat(dest).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw new LifeboatError(`cannot check restore target ${dest}: ${err.code ?? err.message}`);
  });
  if (existing && !target.force) {
    stream.destroy();
    throw new LifeboatError(`refusing to overwrite existing file ${dest}; restore to another path or use force`, ExitCode.USAGE);
  }
  if (existing && !existing.isFile()) throw new LifeboatError(`restore target ${dest} exists and is not a regular file`);
  const dir = path.dirname(dest);
  await fsp.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(dest)}.lifeboat-${randomBytes(6).toString('hex')}.tmp`);
  try {
    await streamToNewFile(stream, tmp);
    const fh = await fsp.open(tmp, 'r+');
    try {
      await fh.sync();
      if (existing) {
        await fh.chmod(existing.mode & 0o7777);
        await fh.chown(existing.uid, existing.gid).catch(() => {});
      }
    } finally {
      await fh.close();
    }
    await checkHeader(tmp, 'restored data for');
    const facts = inspectDb(tmp, { integrityCheck: target.integrityCheck !== false, rowCounts: true }, `restored database ${dest}`);
    await removeSidecars(tmp);
    // Stale journal files of the replaced database would be applied to the restored one.
    if (existing) await removeSidecars(dest);
    await fsp.rename(tmp, dest);
    const dh = await fsp.open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
    return {
      durationMs: Date.now() - started,
      checks: { path: dest, replaced: !!existing, ...(facts.integrityCheck ? { integrityCheck: facts.integrityCheck } : {}), tables: facts.tableCount, rowCounts: facts.rowCounts },
    };
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    await removeSidecars(tmp);
    if (err instanceof LifeboatError) throw err;
    throw new LifeboatError(`restoring SQLite database ${dest} failed: ${(err as Error).message}`, ExitCode.FATAL, { cause: err });
  }
}
