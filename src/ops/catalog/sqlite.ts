import { mkdirSync } from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { LifeboatError, errorMessage } from '../../errors.js';
import { MIGRATIONS } from './migrations.js';
import { SqlCatalog } from './sql-catalog.js';
import type { Migration, SqlParam, SqlRow } from './types.js';

type Param = SqlParam;
type Row = SqlRow;

// SQLite

/**
 * `fn` again, after 5-50 ms, for as long as it throws SQLITE_BUSY and `windowMs` has not passed since
 * the first try; any other error, or SQLITE_BUSY after the window, is thrown.
 */
export async function retryBusy<T>(fn: () => T, windowMs: number, now: () => number = Date.now): Promise<T> {
  const end = now() + windowMs;
  for (;;) {
    try {
      return fn();
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || now() >= end) throw err;
    }
    await new Promise((r) => setTimeout(r, 5 + Math.floor(Math.random() * 45)));
  }
}

export interface SqliteCatalogOptions {
  /** busy_timeout in ms when another process holds the write lock (default 10s). */
  busyTimeoutMs?: number;
}

export class SqliteCatalog extends SqlCatalog {
  readonly backend = 'sqlite' as const;
  readonly location: string;
  private readonly db: Database.Database;

  private constructor(file: string, db: Database.Database) {
    super();
    this.location = file;
    this.db = db;
  }

  /** Open (creating the file and its directory if needed) and migrate. */
  static async open(file: string, opts: SqliteCatalogOptions = {}): Promise<SqliteCatalog> {
    const abs = file === ':memory:' ? file : path.resolve(file);
    let db: Database.Database;
    try {
      if (abs !== ':memory:') mkdirSync(path.dirname(abs), { recursive: true });
      db = new Database(abs);
    } catch (err) {
      throw new LifeboatError(`cannot open catalog ${abs}: ${errorMessage(err)}`, undefined, { cause: err });
    }
    try {
      const busyMs = Math.max(0, Math.floor(opts.busyTimeoutMs ?? 10_000));
      db.pragma(`busy_timeout = ${busyMs}`);
      // a new catalog opened by several processes at once: switching it to WAL takes an exclusive lock,
      // and SQLite answers SQLITE_BUSY at once, without its busy handler, to the one whose wait could
      // deadlock (each holding the shared lock the other needs gone); retried, the switch finds WAL set
      // or takes the lock (a CI run failed "database is locked" here)
      await retryBusy(() => db.pragma('journal_mode = WAL'), busyMs);
      db.pragma('synchronous = NORMAL');
      const c = new SqliteCatalog(abs, db);
      c.migrate(MIGRATIONS);
      return c;
    } catch (err) {
      db.close();
      if (err instanceof LifeboatError) throw err;
      throw new LifeboatError(`cannot open catalog ${abs}: ${errorMessage(err)}`, undefined, { cause: err });
    }
  }

  async ensureMigrations(list: readonly Migration[]): Promise<void> {
    this.migrate(list);
  }

  private migrate(list: readonly Migration[]): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    for (const m of list) {
      // IMMEDIATE: take the write lock first, then re-check, so two processes
      // opening a fresh catalog at once apply each migration exactly once.
      this.db
        .transaction(() => {
          const done = this.db.prepare('SELECT 1 FROM schema_migrations WHERE version = ?').get(m.version);
          if (done) return;
          for (const sql of m.sqlite) this.db.exec(sql);
          this.db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(m.version, m.name, Date.now());
        })
        .immediate();
    }
  }

  /** The underlying handle (read-only use: reports, tests). */
  get database(): Database.Database {
    return this.db;
  }

  protected t(table: string): string {
    return table;
  }

  private conv(params: Param[]): Array<string | number | null> {
    return params.map((p) => (p instanceof Date ? p.getTime() : typeof p === 'boolean' ? (p ? 1 : 0) : p));
  }

  protected async all(sql: string, params: Param[] = []): Promise<Row[]> {
    return this.db.prepare(sql).all(...this.conv(params)) as Row[];
  }

  protected async exec(sql: string, params: Param[] = []): Promise<number> {
    return this.db.prepare(sql).run(...this.conv(params)).changes;
  }

  protected async insertId(sql: string, params: Param[]): Promise<number> {
    return Number(this.db.prepare(sql).run(...this.conv(params)).lastInsertRowid);
  }

  protected toDate(v: unknown): Date | null {
    return v === null || v === undefined ? null : new Date(Number(v));
  }

  async migrations(): Promise<number[]> {
    return (this.db.prepare('SELECT version FROM schema_migrations ORDER BY version').all() as Array<{ version: number }>).map((r) => r.version);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
