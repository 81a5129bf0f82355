import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, promises as fsp } from 'node:fs';
import * as net from 'node:net';
import { tmpdir as osTmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';

/**
 * Connection helpers for the database source tests. They talk to the local
 * servers started by .ci/services.sh: PostgreSQL 127.0.0.1:5432 (user postgres,
 * trust), MariaDB 127.0.0.1:3306 (root, no password). Redis tests start their
 * own private redis-server processes (see startRedis) so they never touch a
 * shared instance.
 */

export const PG = { host: '127.0.0.1', port: 5432, user: 'postgres' } as const;
export const MY = { host: '127.0.0.1', port: 3306, user: 'root' } as const;

export function tmpdir(prefix = 'lb-db-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(osTmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A name unique to this test run, e.g. lb_test_3f9a1c2b. */
export function uniqueName(prefix = 'lb_test_'): string {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

/** Read a stream fully: its chunks, total size and SHA-256. */
export async function collect(stream: Readable): Promise<{ chunks: Buffer[]; size: number; sha256: string }> {
  const h = createHash('sha256');
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
    h.update(b);
    chunks.push(b);
    size += b.length;
  }
  return { chunks, size, sha256: h.digest('hex') };
}

// ---------------------------------------------------------------- PostgreSQL

export async function withPg<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function pgExec(database: string, sql: string, params: unknown[] = []): Promise<pg.QueryResult> {
  return withPg(database, (c) => c.query(sql, params));
}

export async function pgCreateDb(name: string): Promise<void> {
  await pgExec('postgres', `CREATE DATABASE "${name}"`);
}

export async function pgDropDb(name: string): Promise<void> {
  await pgExec('postgres', `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
}

export async function pgDbExists(name: string): Promise<boolean> {
  return (await pgExec('postgres', 'SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1;
}

/**
 * Per-table checksums of every user table (md5 over all rows in primary-key
 * order, as text) plus the large objects' contents, keyed by table name.
 */
export async function pgChecksums(database: string): Promise<Record<string, string>> {
  return withPg(database, async (c) => {
    const out: Record<string, string> = {};
    const tables = await c.query<{ s: string; t: string }>(
      `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`,
    );
    for (const { s, t } of tables.rows) {
      const q = `"${s}"."${t}"`;
      const r = await c.query<{ n: string; md5: string }>(`SELECT count(*) AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x.id), '')) AS md5 FROM ${q} x`);
      out[`${s}.${t}`] = `${r.rows[0]!.n}:${r.rows[0]!.md5}`;
    }
    const lo = await c.query<{ n: string; md5: string }>(
      `SELECT count(*) AS n, md5(coalesce(string_agg(oid::text || ':' || md5(lo_get(oid)), ',' ORDER BY oid), '')) AS md5 FROM pg_largeobject_metadata`,
    );
    out['<large objects>'] = `${lo.rows[0]!.n}:${lo.rows[0]!.md5}`;
    const fn = await c.query<{ src: string }>(`SELECT string_agg(p.proname || '=' || md5(p.prosrc), ',' ORDER BY p.proname) AS src FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'`);
    out['<functions>'] = fn.rows[0]!.src ?? '';
    const views = await c.query<{ v: string }>(`SELECT string_agg(viewname, ',' ORDER BY viewname) AS v FROM pg_views WHERE schemaname = 'public'`);
    out['<views>'] = views.rows[0]!.v ?? '';
    return out;
  });
}

/**
 * Fill a database with a few tables and thousands of rows: unicode text,
 * bytea with every byte value, NULLs, arrays, jsonb, a second schema, a view,
 * a function, a sequence and large objects (lo_from_bytea).
 */
export async function pgPopulate(database: string, opts: { people?: number; events?: number } = {}): Promise<void> {
  const people = opts.people ?? 5000;
  const events = opts.events ?? 20000;
  await withPg(database, async (c) => {
    await c.query(`
      CREATE TABLE people (
        id int PRIMARY KEY, name text NOT NULL, bio text, avatar bytea, score numeric(12,3),
        born date, tags text[], meta jsonb);
      CREATE TABLE events (
        id bigserial PRIMARY KEY, person_id int REFERENCES people(id), at timestamptz NOT NULL,
        payload bytea, note text);
      CREATE INDEX events_person ON events(person_id);
      CREATE SCHEMA audit;
      CREATE TABLE audit.log (id int PRIMARY KEY, msg text, raw bytea);
      CREATE TABLE docs (id int PRIMARY KEY, title text, body oid);
      CREATE VIEW adults AS SELECT id, name FROM people WHERE born < '2000-01-01';
      CREATE FUNCTION person_label(p people) RETURNS text LANGUAGE sql AS $$ SELECT p.name || ' #' || p.id $$;
      CREATE SEQUENCE ticket_seq START 1000;
    `);
    await c.query(
      `INSERT INTO people
       SELECT i,
              'Person ' || i || ' Zürich ☃ 日本語 🚀 ' || md5(i::text),
              CASE WHEN i % 7 = 0 THEN NULL ELSE repeat('ünïcødé ' || i || E'\\ttab\\nnewline ''quote'' "dq" \\\\ ', 1 + i % 5) END,
              CASE WHEN i % 11 = 0 THEN NULL ELSE decode(md5(i::text) || '00ff7f80' || md5((i * 3)::text), 'hex') END,
              CASE WHEN i % 13 = 0 THEN NULL ELSE (i * 1.125)::numeric(12,3) END,
              DATE '1950-01-01' + (i * 7) % 25000,
              ARRAY['t' || (i % 10), 'x,y', NULL],
              jsonb_build_object('i', i, 'even', i % 2 = 0, 'name', 'ñ' || i)
       FROM generate_series(1, $1) AS i`,
      [people],
    );
    await c.query(
      `INSERT INTO events (person_id, at, payload, note)
       SELECT 1 + (i % $2), TIMESTAMPTZ '2024-01-01 00:00:00+00' + i * INTERVAL '37 seconds',
              CASE WHEN i % 5 = 0 THEN NULL ELSE decode(repeat(lpad(to_hex(i % 256), 2, '0'), 1 + i % 64), 'hex') END,
              CASE WHEN i % 3 = 0 THEN NULL ELSE 'event ' || i || ' — ✓' END
       FROM generate_series(1, $1) AS i`,
      [events, people],
    );
    // every byte value 0..255 in one bytea
    await c.query(`INSERT INTO audit.log SELECT i, 'log ' || i, CASE WHEN i = 1 THEN (SELECT string_agg(set_byte('\\x00'::bytea, 0, b), ''::bytea) FROM generate_series(0, 255) b) ELSE decode(md5(i::text), 'hex') END FROM generate_series(1, 3000) i`);
    await c.query(
      `INSERT INTO docs SELECT i, 'doc ' || i, lo_from_bytea(0, decode(repeat(md5(i::text), 200 * i), 'hex')) FROM generate_series(1, 3) i`,
    );
    await c.query(`SELECT setval('ticket_seq', 4242)`);
    await c.query('ANALYZE');
  });
}

export interface PrivatePg {
  port: number;
  stop(): Promise<void>;
}

/**
 * A private PostgreSQL cluster (initdb as the postgres user) on a free port
 * with scram-sha-256 password authentication: the shared server trusts every
 * local connection, so password handling can only be tested against this one.
 */
export async function startPrivatePg(password: string): Promise<PrivatePg> {
  const versions = (await fsp.readdir('/usr/lib/postgresql')).sort((a, b) => Number(b) - Number(a));
  const bin = path.join('/usr/lib/postgresql', versions[0]!, 'bin');
  const t = tmpdir('lb-pg-');
  const pgUser = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const uid = Number(pgUser.stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  await fsp.chown(t.dir, uid, gid);
  const data = path.join(t.dir, 'data');
  const pwfile = path.join(t.dir, 'pw');
  await fsp.writeFile(pwfile, password + '\n', { mode: 0o600 });
  await fsp.chown(pwfile, uid, gid);
  const port = await freePort();
  const asPg = (cmd: string, args: string[]) => {
    const r = spawnSync('runuser', ['-u', 'postgres', '--', path.join(bin, cmd), ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${cmd} failed: ${r.stderr}${r.stdout}`);
  };
  asPg('initdb', ['-D', data, '-U', 'postgres', '--auth=scram-sha-256', `--pwfile=${pwfile}`, '-E', 'UTF8', '--no-sync']);
  asPg('pg_ctl', ['-D', data, '-w', '-l', path.join(t.dir, 'log'), '-o', `-p ${port} -k ${t.dir} -c listen_addresses=127.0.0.1 -c fsync=off`, 'start']);
  return {
    port,
    async stop() {
      try {
        asPg('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } finally {
        t.cleanup();
      }
    },
  };
}

// ---------------------------------------------------------------- MariaDB

export async function myConn(database?: string, opts: { user?: string; password?: string } = {}): Promise<mysql.Connection> {
  return mysql.createConnection({
    host: MY.host,
    port: MY.port,
    user: opts.user ?? MY.user,
    ...(opts.password ? { password: opts.password } : {}),
    ...(database ? { database } : {}),
    multipleStatements: true,
    charset: 'utf8mb4',
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
  });
}

export async function withMy<T>(database: string | undefined, fn: (c: mysql.Connection) => Promise<T>): Promise<T> {
  const c = await myConn(database);
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function myDropDb(name: string): Promise<void> {
  await withMy(undefined, (c) => c.query(`DROP DATABASE IF EXISTS \`${name}\``));
}

export async function myDbExists(name: string): Promise<boolean> {
  return withMy(undefined, async (c) => {
    const [rows] = await c.query('SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?', [name]);
    return (rows as unknown[]).length === 1;
  });
}

function hashValue(h: ReturnType<typeof createHash>, v: unknown): void {
  if (v === null || v === undefined) h.update('\u0000N');
  else if (Buffer.isBuffer(v)) h.update('\u0000B' + v.toString('hex'));
  else h.update('\u0000S' + String(v));
  h.update('\u0001');
}

/** Per-table "rows:sha256" over all rows in primary-key order (binary-exact), plus routine/trigger/view names. */
export async function myChecksums(database: string): Promise<Record<string, string>> {
  return withMy(database, async (c) => {
    const out: Record<string, string> = {};
    const [tables] = await c.query(
      "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1",
      [database],
    );
    for (const { t } of tables as Array<{ t: string }>) {
      const [rows] = await c.query({ sql: `SELECT * FROM \`${t}\` ORDER BY id`, rowsAsArray: true });
      const h = createHash('sha256');
      for (const r of rows as unknown[][]) {
        for (const v of r) hashValue(h, v);
        h.update('\n');
      }
      out[t] = `${(rows as unknown[]).length}:${h.digest('hex')}`;
    }
    const [routines] = await c.query('SELECT ROUTINE_NAME AS n, ROUTINE_DEFINITION AS d FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = ? ORDER BY 1', [database]);
    out['<routines>'] = (routines as Array<{ n: string; d: string }>).map((r) => `${r.n}=${createHash('md5').update(r.d ?? '').digest('hex')}`).join(',');
    const [triggers] = await c.query('SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY 1', [database]);
    out['<triggers>'] = (triggers as Array<{ n: string }>).map((r) => r.n).join(',');
    const [views] = await c.query('SELECT TABLE_NAME AS n FROM information_schema.VIEWS WHERE TABLE_SCHEMA = ? ORDER BY 1', [database]);
    out['<views>'] = (views as Array<{ n: string }>).map((r) => r.n).join(',');
    const [events] = await c.query('SELECT EVENT_NAME AS n FROM information_schema.EVENTS WHERE EVENT_SCHEMA = ? ORDER BY 1', [database]);
    out['<events>'] = (events as Array<{ n: string }>).map((r) => r.n).join(',');
    return out;
  });
}

/** CHECKSUM TABLE for every base table (a second, server-side comparison). */
export async function myServerChecksums(database: string): Promise<Record<string, string>> {
  return withMy(database, async (c) => {
    const [tables] = await c.query("SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY 1", [database]);
    const out: Record<string, string> = {};
    for (const { t } of tables as Array<{ t: string }>) {
      const [r] = await c.query(`CHECKSUM TABLE \`${t}\` EXTENDED`);
      out[t] = String((r as Array<{ Checksum: string }>)[0]!.Checksum);
    }
    return out;
  });
}

export async function myPopulate(database: string, opts: { rows?: number } = {}): Promise<void> {
  const n = opts.rows ?? 5000;
  await withMy(undefined, (c) => c.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`));
  await withMy(database, async (c) => {
    await c.query(`
      CREATE TABLE people (
        id INT PRIMARY KEY, name VARCHAR(200) NOT NULL, bio TEXT NULL, avatar BLOB NULL,
        score DECIMAL(12,3) NULL, born DATE NULL, meta JSON NULL) ENGINE=InnoDB;
      CREATE TABLE events (
        id BIGINT AUTO_INCREMENT PRIMARY KEY, person_id INT NOT NULL, at DATETIME(6) NOT NULL,
        payload LONGBLOB NULL, note VARCHAR(255) NULL, KEY (person_id),
        CONSTRAINT fk_person FOREIGN KEY (person_id) REFERENCES people(id)) ENGINE=InnoDB;
      CREATE TABLE blobs (id INT PRIMARY KEY, data MEDIUMBLOB NOT NULL, bits VARBINARY(16) NULL) ENGINE=InnoDB;
      CREATE VIEW adults AS SELECT id, name FROM people WHERE born < '2000-01-01';
      CREATE FUNCTION label(p INT) RETURNS VARCHAR(64) DETERMINISTIC RETURN CONCAT('person #', p);
      CREATE TRIGGER people_note BEFORE INSERT ON events FOR EACH ROW SET NEW.note = IFNULL(NEW.note, NULL);
    `);
    const batch = 500;
    for (let start = 1; start <= n; start += batch) {
      const rows: unknown[][] = [];
      for (let i = start; i < Math.min(start + batch, n + 1); i++) {
        rows.push([
          i,
          `Person ${i} Zürich ☃ 日本語 🚀 ${createHash('md5').update(String(i)).digest('hex')}`,
          i % 7 === 0 ? null : `ünïcødé ${i}\ttab\nnewline 'quote' "dq" \\ backslash `.repeat(1 + (i % 5)),
          i % 11 === 0 ? null : Buffer.concat([createHash('sha256').update(String(i)).digest(), Buffer.from([0, 0xff, 0x27, 0x5c, 0x0a, 0x0d, 0x1a])]),
          i % 13 === 0 ? null : (i * 1.125).toFixed(3),
          i % 17 === 0 ? null : new Date(Date.UTC(1950, 0, 1) + ((i * 7) % 25000) * 86400000).toISOString().slice(0, 10),
          i % 19 === 0 ? null : JSON.stringify({ i, even: i % 2 === 0, name: `ñ${i}` }),
        ]);
      }
      await c.query('INSERT INTO people (id, name, bio, avatar, score, born, meta) VALUES ?', [rows]);
    }
    for (let start = 1; start <= n * 3; start += 1000) {
      const rows: unknown[][] = [];
      for (let i = start; i < Math.min(start + 1000, n * 3 + 1); i++) {
        rows.push([
          1 + (i % n),
          new Date(Date.UTC(2024, 0, 1) + i * 37_123).toISOString().replace('T', ' ').replace('Z', ''),
          i % 5 === 0 ? null : Buffer.alloc(1 + (i % 64), i % 256),
          i % 3 === 0 ? null : `event ${i} — ✓`,
        ]);
      }
      await c.query('INSERT INTO events (person_id, at, payload, note) VALUES ?', [rows]);
    }
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    await c.query('INSERT INTO blobs VALUES (?, ?, ?), (?, ?, ?), (?, ?, ?)', [
      1, all, Buffer.from([0, 1, 2]),
      2, randomBytes(300 * 1024), null,
      3, Buffer.alloc(0), Buffer.alloc(0),
    ]);
  });
}

// ---------------------------------------------------------------- Redis

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface PrivateRedis {
  port: number;
  dir: string;
  client(opts?: { password?: string; username?: string; db?: number }): Redis;
  stop(): Promise<void>;
}

/** Start a private redis-server on a free 127.0.0.1 port with its own directory (no persistence). */
export async function startRedis(opts: { password?: string; extraArgs?: string[] } = {}): Promise<PrivateRedis> {
  const t = tmpdir('lb-redis-');
  const port = await freePort();
  // No 5 s wait for more replicas before a diskless transfer (redis-cli --rdb is a replica).
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', t.dir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', path.join(t.dir, 'log'), '--repl-diskless-sync-delay', '0'];
  if (opts.password) args.push('--requirepass', opts.password);
  args.push(...(opts.extraArgs ?? []));
  const child: ChildProcess = spawn('redis-server', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const client = (o: { password?: string; username?: string; db?: number } = {}): Redis =>
    new Redis({ host: '127.0.0.1', port, lazyConnect: false, maxRetriesPerRequest: 1, ...(o.password ? { password: o.password } : {}), ...(o.username ? { username: o.username } : {}), db: o.db ?? 0 });
  for (let i = 0; ; i++) {
    const r = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'PING'], { encoding: 'utf8', env: { ...process.env, ...(opts.password ? { REDISCLI_AUTH: opts.password } : {}) } });
    if (/PONG/.test(r.stdout)) break;
    if (i > 200 || child.exitCode !== null) throw new Error(`private redis-server did not start: ${await fsp.readFile(path.join(t.dir, 'log'), 'utf8').catch(() => '')}`);
    await new Promise((r2) => setTimeout(r2, 50));
  }
  return {
    port,
    dir: t.dir,
    client,
    async stop() {
      child.kill('SIGKILL');
      await exited;
      t.cleanup();
    },
  };
}

function canon(x: unknown): string {
  if (Buffer.isBuffer(x)) return x.toString('hex');
  if (Array.isArray(x)) return `[${x.map(canon).join(',')}]`;
  return String(x);
}

/** Every key of every database with type, TTL presence and a canonical dump of its value (DUMP is not stable across encodings). */
export async function redisContents(port: number, password?: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const admin = new Redis({ host: '127.0.0.1', port, ...(password ? { password } : {}) });
  try {
    const info = await admin.info('keyspace');
    const dbs = [...info.matchAll(/^db(\d+):/gm)].map((m) => Number(m[1]));
    for (const db of dbs) {
      const c = new Redis({ host: '127.0.0.1', port, db, ...(password ? { password } : {}) });
      try {
        const keys: Buffer[] = [];
        let cursor = '0';
        do {
          const [next, batch] = await c.scanBuffer(cursor, 'COUNT', 1000);
          cursor = String(next);
          keys.push(...batch);
        } while (cursor !== '0');
        const meta = c.pipeline();
        for (const k of keys) meta.type(k).pttl(k);
        const mres = (await meta.exec())!.map(([err, v]) => {
          if (err) throw err;
          return v;
        });
        const vals = c.pipeline();
        const types: string[] = [];
        keys.forEach((k, i) => {
          const type = String(mres[2 * i]);
          types.push(type);
          if (type === 'string') vals.callBuffer('GET', [k]);
          else if (type === 'hash') vals.callBuffer('HGETALL', [k]);
          else if (type === 'list') vals.callBuffer('LRANGE', [k, 0, -1]);
          else if (type === 'set') vals.callBuffer('SMEMBERS', [k]);
          else if (type === 'zset') vals.callBuffer('ZRANGE', [k, 0, -1, 'WITHSCORES']);
          else vals.callBuffer('XRANGE', [k, '-', '+']);
        });
        const vres = (await vals.exec())!;
        keys.forEach((k, i) => {
          const [err, v] = vres[i]!;
          if (err) throw err;
          const type = types[i]!;
          let text: string;
          if (type === 'hash') {
            const arr = v as Buffer[];
            const pairs: string[] = [];
            for (let j = 0; j < arr.length; j += 2) pairs.push(`${arr[j]!.toString('hex')}=${arr[j + 1]!.toString('hex')}`);
            text = pairs.sort().join(',');
          } else if (type === 'set') text = (v as Buffer[]).map((x) => x.toString('hex')).sort().join(',');
          else text = canon(v);
          const pttl = Number(mres[2 * i + 1]);
          out[`${db}/${k.toString('hex')}`] = `${type}|${pttl > 0 ? 'ttl' : pttl}|${text}`;
        });
      } finally {
        c.disconnect();
      }
    }
  } finally {
    admin.disconnect();
  }
  return out;
}

/** Thousands of keys of every type in db 0 and db 3: binary keys and values, unicode, TTLs. */
export async function redisPopulate(port: number, password?: string, n = 3000): Promise<void> {
  const c = new Redis({ host: '127.0.0.1', port, ...(password ? { password } : {}) });
  try {
    const p = c.pipeline();
    for (let i = 0; i < n; i++) {
      p.set(`str:${i}`, `value ${i} Zürich ☃ 日本語 🚀`);
      if (i % 10 === 0) p.set(Buffer.from([0, 1, 2, 0xff, i % 256]), randomBytes(64 + (i % 200)));
      if (i % 3 === 0) p.hset(`hash:${i % 500}`, `f${i}`, `v${i}`, `bin${i}`, Buffer.from([i % 256, 0]));
      if (i % 4 === 0) p.rpush(`list:${i % 100}`, `item ${i}`);
      if (i % 5 === 0) p.sadd(`set:${i % 50}`, `m${i}`);
      if (i % 6 === 0) p.zadd(`zset:${i % 20}`, i * 1.5, `z${i}`);
      if (i % 7 === 0) p.set(`ttl:${i}`, 'expires later', 'EX', 3600 + i);
    }
    p.set('big', randomBytes(2 * 1024 * 1024));
    p.xadd('stream:1', '1-1', 'a', '1');
    p.xadd('stream:1', '2-1', 'b', '2');
    p.select(3);
    for (let i = 0; i < 500; i++) p.set(`db3:${i}`, `three ${i}`);
    await p.exec();
  } finally {
    c.disconnect();
  }
}
