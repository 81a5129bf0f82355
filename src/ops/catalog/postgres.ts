import { ConfigError, LifeboatError, errorMessage } from '../../errors.js';
import { redactText } from '../templates.js';
import { MIGRATIONS } from './migrations.js';
import { SqlCatalog } from './sql-catalog.js';
import type { Migration, SqlParam, SqlRow } from './types.js';

type Param = SqlParam;
type Row = SqlRow;

// PostgreSQL

export interface PostgresCatalogOptions {
  /** Schema holding the tables (created if missing). Default: `schema` URL parameter, else "lifeboat". */
  schema?: string;
  /** Connection pool size (default 4). */
  maxConnections?: number;
  /** Connection timeout in ms (default 10s). */
  connectTimeoutMs?: number;
  /** Deadline of one query in ms, after which the client gives up on it (default 60s). */
  queryTimeoutMs?: number;
}

type PgPool = import('pg').Pool;

function quoteIdent(s: string): string {
  return '"' + s.replace(/"/g, '""') + '"';
}

export class PostgresCatalog extends SqlCatalog {
  readonly backend = 'postgres' as const;
  readonly location: string;
  readonly schema: string;
  private readonly pool: PgPool;
  private readonly qs: string;

  private constructor(pool: PgPool, location: string, schema: string) {
    super();
    this.pool = pool;
    this.location = location;
    this.schema = schema;
    this.qs = quoteIdent(schema);
  }

  /**
   * Connect (postgres://user@host:port/db[?schema=NAME]) and migrate. The
   * password may be in the URL or come from PGPASSWORD; it never appears in
   * `location` or in errors.
   */
  static async open(url: string, opts: PostgresCatalogOptions = {}): Promise<PostgresCatalog> {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new ConfigError('catalog: invalid PostgreSQL URL (expected postgres://user@host:port/database)');
    }
    if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') throw new ConfigError(`catalog: expected a postgres:// URL, got ${u.protocol}//`);
    const schema = opts.schema ?? u.searchParams.get('schema') ?? 'lifeboat';
    u.searchParams.delete('schema');
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(schema)) throw new ConfigError(`catalog: invalid schema name "${schema}" (letters, digits, _; not starting with a digit)`);
    const location = `${u.protocol}//${u.hostname}${u.port ? ':' + u.port : ''}${u.pathname} (schema ${schema})`;
    const secrets = [u.password, decodeURIComponent(u.password)].filter(Boolean);
    const { default: pg } = await import('pg');
    const pool = new pg.Pool({
      connectionString: u.toString(),
      max: opts.maxConnections ?? 4,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
      // every query has a deadline, even when the server stops answering
      query_timeout: opts.queryTimeoutMs ?? 60_000,
    });
    pool.on('error', () => {}); // idle-client errors surface on the next query
    const c = new PostgresCatalog(pool, location, schema);
    try {
      await c.migrate(MIGRATIONS);
    } catch (err) {
      await pool.end().catch(() => {});
      throw new LifeboatError(`cannot open catalog ${location}: ${redactText(errorMessage(err), secrets)}`);
    }
    return c;
  }

  async ensureMigrations(list: readonly Migration[]): Promise<void> {
    await this.migrate(list);
  }

  private async migrate(list: readonly Migration[]): Promise<void> {
    const client = await this.pool.connect();
    try {
      for (const m of list) {
        await client.query('BEGIN');
        try {
          // serialise concurrent openers (several daemons, parallel tests) on this schema
          await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`lifeboat-catalog:${this.schema}`]);
          await client.query(`CREATE SCHEMA IF NOT EXISTS ${this.qs}`);
          await client.query(`CREATE TABLE IF NOT EXISTS ${this.qs}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)`);
          const done = await client.query(`SELECT 1 FROM ${this.qs}.schema_migrations WHERE version = $1`, [m.version]);
          if (done.rowCount === 0) {
            for (const sql of m.postgres(this.qs)) await client.query(sql);
            await client.query(`INSERT INTO ${this.qs}.schema_migrations (version, name, applied_at) VALUES ($1, $2, now())`, [m.version, m.name]);
          }
          await client.query('COMMIT');
        } catch (err) {
          await client.query('ROLLBACK').catch(() => {});
          throw err;
        }
      }
    } finally {
      client.release();
    }
  }

  protected t(table: string): string {
    return `${this.qs}.${table}`;
  }

  private placeholders(sql: string): string {
    let i = 0;
    return sql.replace(/\?/g, () => `$${++i}`);
  }

  protected async all(sql: string, params: Param[] = []): Promise<Row[]> {
    return (await this.pool.query(this.placeholders(sql), params)).rows as Row[];
  }

  protected async exec(sql: string, params: Param[] = []): Promise<number> {
    return (await this.pool.query(this.placeholders(sql), params)).rowCount ?? 0;
  }

  protected async insertId(sql: string, params: Param[]): Promise<number> {
    const r = await this.pool.query(this.placeholders(sql) + ' RETURNING id', params);
    return Number(r.rows[0].id);
  }

  protected toDate(v: unknown): Date | null {
    if (v === null || v === undefined) return null;
    return v instanceof Date ? v : new Date(v as string);
  }

  async migrations(): Promise<number[]> {
    return (await this.all(`SELECT version FROM ${this.qs}.schema_migrations ORDER BY version`)).map((r) => Number(r.version));
  }

  /** Drop the whole schema (tests, `lifeboat catalog reset`). */
  async dropSchema(): Promise<void> {
    await this.pool.query(`DROP SCHEMA IF EXISTS ${this.qs} CASCADE`);
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
