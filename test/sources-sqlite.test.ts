import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { IntegrityError, LifeboatError } from '../src/errors.js';
import { dumpSqlite, restoreSqlite } from '../src/sources/sqlite/dump.js';
import { sqliteSourceSchema } from '../src/config/sources.js';
import { collect, tmpdir } from './helpers/db.js';

/** Per-table "rows:sha256" over all rows in id order, values typed (NULL, blob, text, number). */
function checksums(file: string): Record<string, string> {
  const db = new Database(file, { readonly: true });
  try {
    const out: Record<string, string> = {};
    const tables = db.prepare(`SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`).all() as Array<{ name: string }>;
    for (const { name } of tables) {
      const h = createHash('sha256');
      const rows = db.prepare(`SELECT * FROM "${name}" ORDER BY id`).raw().all() as unknown[][];
      for (const r of rows) {
        for (const v of r) h.update(v === null ? '\0N' : Buffer.isBuffer(v) ? `\0B${v.toString('hex')}` : `\0${typeof v}${String(v)}`);
        h.update('\n');
      }
      out[name] = `${rows.length}:${h.digest('hex')}`;
    }
    out['<schema>'] = (db.prepare(`SELECT group_concat(sql, ';') AS s FROM (SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name)`).get() as { s: string }).s;
    return out;
  } finally {
    db.close();
  }
}

function populate(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(`
    CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT NOT NULL, bio TEXT, avatar BLOB, score REAL);
    CREATE TABLE events (id INTEGER PRIMARY KEY, person_id INTEGER REFERENCES people(id), payload BLOB, note TEXT);
    CREATE INDEX events_person ON events(person_id);
    CREATE VIEW busy AS SELECT person_id, count(*) AS n FROM events GROUP BY person_id;
    CREATE TRIGGER people_upd AFTER UPDATE ON people BEGIN UPDATE people SET score = coalesce(score, 0) WHERE id = NEW.id AND score IS NULL; END;
  `);
  const ins = db.prepare('INSERT INTO people VALUES (?, ?, ?, ?, ?)');
  const ev = db.prepare('INSERT INTO events (person_id, payload, note) VALUES (?, ?, ?)');
  db.transaction(() => {
    for (let i = 1; i <= 5000; i++) {
      ins.run(i, `Person ${i} Zürich ☃ 日本語 🚀`, i % 7 === 0 ? null : `bio ${i}\n'quoted' "dq" \0 nul`.repeat(1 + (i % 4)), i % 11 === 0 ? null : randomBytes(32 + (i % 100)), i % 13 === 0 ? null : i * 1.25);
    }
    for (let i = 1; i <= 15000; i++) ev.run(1 + (i % 5000), i % 5 === 0 ? null : Buffer.alloc(1 + (i % 50), i % 256), i % 3 === 0 ? null : `event ${i} ✓`);
  })();
  db.pragma('user_version = 42');
  return db;
}

describe('SQLite source', () => {
  let t: ReturnType<typeof tmpdir>;
  let srcPath: string;
  let writer: Database.Database;
  let copies: string;

  before(async () => {
    t = tmpdir();
    srcPath = path.join(t.dir, 'app.db');
    copies = path.join(t.dir, 'copies');
    await fsp.mkdir(copies);
    // The writer stays open: committed data sits in the WAL, not yet in the main file.
    writer = populate(srcPath);
  });
  after(() => {
    writer.close();
    t.cleanup();
  });

  for (const method of ['backup', 'vacuum'] as const) {
    test(`online copy (${method}) of a live WAL database, change the original, restore: identical contents`, async () => {
      const want = checksums(srcPath);
      assert.equal(want.people!.split(':')[0], '5000');
      assert.ok((await fsp.stat(`${srcPath}-wal`)).size > 0, 'the source has un-checkpointed data in its WAL');
      const h = await dumpSqlite({ kind: 'sqlite', path: srcPath, method, tmpDir: copies }, { name: 'appdb' });
      assert.equal(h.filename, 'app.db');
      assert.equal(h.meta.kind, 'sqlite');
      assert.equal(h.meta.tool, 'better-sqlite3');
      assert.match(String(h.meta.serverVersion), /^3\.\d+/);
      assert.equal(h.meta.userVersion, 42);
      const [dump, result] = await Promise.all([collect(h.stream), h.done]);
      assert.equal(Buffer.concat(dump.chunks).subarray(0, 16).toString('latin1'), 'SQLite format 3\0');
      const extra = result.extra as { integrityCheck: string; rowCounts: Record<string, number> };
      assert.equal(extra.integrityCheck, 'ok');
      assert.deepEqual(extra.rowCounts, { events: 15000, people: 5000 });
      assert.deepEqual(await fsp.readdir(copies), [], 'temporary copy deleted after streaming');

      // change the original
      writer.exec(`UPDATE people SET name = name || ' changed' WHERE id % 10 = 0; DELETE FROM events WHERE id > 10000`);
      assert.notDeepEqual(checksums(srcPath), want);

      const dest = path.join(t.dir, `restored-${method}`, 'app.db');
      const r = await restoreSqlite({ kind: 'sqlite', path: srcPath }, Readable.from(dump.chunks), { path: dest });
      assert.equal(r.checks?.integrityCheck, 'ok');
      assert.equal(r.checks?.replaced, false);
      assert.deepEqual((await fsp.readdir(path.dirname(dest))).sort(), ['app.db'], 'no temp or journal files left');
      assert.deepEqual(checksums(dest), want);

      // existing target: refused; force replaces it (and its stale WAL)
      await assert.rejects(restoreSqlite({ kind: 'sqlite', path: srcPath }, Readable.from(dump.chunks), { path: dest }), (e: Error) => e instanceof LifeboatError && /refusing to overwrite existing file/.test(e.message));
      const other = new Database(dest);
      other.pragma('journal_mode = WAL');
      other.exec('DELETE FROM events');
      other.close();
      await fsp.writeFile(`${dest}-wal`, randomBytes(4096));
      const r2 = await restoreSqlite({ kind: 'sqlite', path: srcPath }, Readable.from(dump.chunks), { path: dest, force: true });
      assert.equal(r2.checks?.replaced, true);
      await assert.rejects(fsp.stat(`${dest}-wal`), { code: 'ENOENT' });
      assert.deepEqual(checksums(dest), want);
      // restore the same content again for the next method's comparison
      writer.exec(`DELETE FROM events; DELETE FROM people;`);
      const back = new Database(dest, { readonly: true });
      const ins = writer.prepare('INSERT INTO people VALUES (?, ?, ?, ?, ?)');
      const ev = writer.prepare('INSERT INTO events VALUES (?, ?, ?, ?)');
      writer.transaction(() => {
        for (const row of back.prepare('SELECT * FROM people').raw().all() as unknown[][]) ins.run(...row);
        for (const row of back.prepare('SELECT * FROM events').raw().all() as unknown[][]) ev.run(...row);
      })();
      back.close();
      assert.deepEqual(checksums(srcPath), want);
    });
  }

  test('a corrupt or truncated stream is rejected and leaves no file behind', async () => {
    const h = await dumpSqlite({ kind: 'sqlite', path: srcPath, tmpDir: copies });
    const [dump] = await Promise.all([collect(h.stream), h.done]);
    const whole = Buffer.concat(dump.chunks);
    const dir = path.join(t.dir, 'corrupt');
    // damage a b-tree page in the middle
    const bad = Buffer.from(whole);
    bad.fill(0x5a, 8192, 8192 + 4096);
    await assert.rejects(restoreSqlite({ kind: 'sqlite', path: srcPath }, Readable.from([bad]), { path: path.join(dir, 'x.db') }), (e: Error) => e instanceof IntegrityError);
    await assert.rejects(restoreSqlite({ kind: 'sqlite', path: srcPath }, Readable.from([Buffer.from('not sqlite at all')]), { path: path.join(dir, 'y.db') }), /not a SQLite 3 database/);
    // an input stream that fails midway (e.g. repository read error)
    const failing = new Readable({
      read() {
        this.push(whole.subarray(0, 65536));
        this.destroy(new Error('simulated read failure'));
      },
    });
    await assert.rejects(restoreSqlite({ kind: 'sqlite', path: srcPath }, failing, { path: path.join(dir, 'z.db') }), /simulated read failure/);
    assert.deepEqual(await fsp.readdir(dir), []);
  });

  test('abort deletes the temporary copy and rejects done', async () => {
    const h = await dumpSqlite({ kind: 'sqlite', path: srcPath, tmpDir: copies });
    h.stream.once('data', () => h.abort());
    h.stream.on('error', () => {});
    h.stream.resume();
    await assert.rejects(h.done, /aborted/);
    assert.deepEqual(await fsp.readdir(copies), []);
  });

  test('missing file, non-SQLite file and bad options give clear errors', async () => {
    await assert.rejects(dumpSqlite({ kind: 'sqlite', path: path.join(t.dir, 'nope.db') }), /SQLite database .*nope\.db does not exist/);
    const txt = path.join(t.dir, 'notes.txt');
    await fsp.writeFile(txt, 'hello world, definitely not a database');
    await assert.rejects(dumpSqlite({ kind: 'sqlite', path: txt }), /notes\.txt is not a SQLite 3 database/);
    await assert.rejects(dumpSqlite({ kind: 'sqlite', path: srcPath, method: 'copy' } as never), /method/);
    assert.equal(sqliteSourceSchema.safeParse({ kind: 'sqlite', path: 'x', pth: 'y' }).success, false);
  });
});
