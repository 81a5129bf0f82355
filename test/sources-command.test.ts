import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import Database from 'better-sqlite3';
import { ConfigError, LifeboatError } from '../src/errors.js';
import { commandArgv, dumpCommand, restoreCommand } from '../src/sources/command/dump.js';
import { commandSourceSchema } from '../src/config/sources.js';
import { collect, tmpdir } from './helpers/db.js';

function checksums(file: string): Record<string, string> {
  const db = new Database(file, { readonly: true });
  try {
    const out: Record<string, string> = {};
    for (const t of ['items', 'notes']) {
      const h = createHash('sha256');
      const rows = db.prepare(`SELECT * FROM ${t} ORDER BY id`).raw().all() as unknown[][];
      for (const r of rows) {
        for (const v of r) h.update(v === null ? '\0N' : Buffer.isBuffer(v) ? `\0B${v.toString('hex')}` : `\0${typeof v}${String(v)}`);
        h.update('\n');
      }
      out[t] = `${rows.length}:${h.digest('hex')}`;
    }
    return out;
  } finally {
    db.close();
  }
}

function processAlive(pattern: string): boolean {
  const r = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' });
  return r.stdout.trim() !== '';
}

/** Wait (up to 30 s: a killed process can take a while to be reaped on a loaded machine) until no process matches. */
async function waitGone(pattern: string): Promise<void> {
  for (const end = Date.now() + 30_000; Date.now() < end && processAlive(pattern); ) await new Promise((r) => setTimeout(r, 50));
}

describe('command source', () => {
  let t: ReturnType<typeof tmpdir>;
  let src: string;

  before(() => {
    t = tmpdir();
    src = path.join(t.dir, 'src.db');
    const db = new Database(src);
    db.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, data BLOB, price REAL); CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)');
    const ins = db.prepare('INSERT INTO items VALUES (?, ?, ?, ?)');
    const note = db.prepare('INSERT INTO notes VALUES (?, ?)');
    db.transaction(() => {
      for (let i = 1; i <= 4000; i++) ins.run(i, i % 9 === 0 ? null : `item ${i} ü ☃ 🚀 'q' "dq"\nline2`, i % 4 === 0 ? null : randomBytes(16 + (i % 64)), i % 6 === 0 ? null : i / 8);
      for (let i = 1; i <= 2000; i++) note.run(i, `note ${i} 日本語`);
    })();
    db.close();
  });
  after(() => t.cleanup());

  test('list command (no shell) dumps, shell restoreCommand restores: identical contents', async () => {
    const want = checksums(src);
    const opts = { kind: 'command' as const, command: ['sqlite3', src, '.dump'], restoreCommand: 'sqlite3 "$TARGET_DB"', env: { LB_X: '1' } };
    const h = await dumpCommand(opts, { name: 'inventory' });
    assert.equal(h.filename, 'inventory.out');
    assert.deepEqual(h.meta, { kind: 'command', name: 'inventory', tool: 'sqlite3' });
    const [dump, result] = await Promise.all([collect(h.stream), h.done]);
    assert.equal(result.exitCode, 0);
    assert.match(Buffer.concat(dump.chunks).toString(), /^PRAGMA foreign_keys=OFF;/);

    // change the original
    const db = new Database(src);
    db.exec('UPDATE items SET name = NULL WHERE id < 100; DELETE FROM notes WHERE id > 1000');
    db.close();
    assert.notDeepEqual(checksums(src), want);

    const dest = path.join(t.dir, 'restored.db');
    const r = await restoreCommand(opts, Readable.from(dump.chunks), { env: { TARGET_DB: dest } });
    assert.equal(r.checks?.exitCode, 0);
    assert.deepEqual(checksums(dest), want);
  });

  test('shell command with pipes, env and cwd; piped straight into the restore command', async () => {
    const opts = { kind: 'command' as const, command: 'sqlite3 "$DB" .dump | gzip -1 | gzip -dc', cwd: t.dir, env: { DB: 'src.db' }, restoreCommand: ['sqlite3', 'piped.db'] };
    const h = await dumpCommand(opts);
    assert.equal(h.meta.tool, 'sh');
    assert.equal(h.filename, 'command.out');
    await Promise.all([restoreCommand(opts, h.stream), h.done]);
    assert.deepEqual(checksums(path.join(t.dir, 'piped.db')), checksums(src));
  });

  test('large output streams through with backpressure', async () => {
    const h = await dumpCommand({ kind: 'command', command: ['head', '-c', '20000000', '/dev/zero'] });
    const [dump] = await Promise.all([collect(h.stream), h.done]);
    assert.equal(dump.size, 20_000_000);
  });

  test('failing command rejects done with exit code and stderr tail, and the stream errors', async () => {
    const h = await dumpCommand({ kind: 'command', command: `echo partial; for i in $(seq 1 2000); do echo "noise line $i" >&2; done; echo "disk quota exceeded" >&2; exit 3` });
    const streamResult = collect(h.stream).then(
      () => 'ended',
      (e: Error) => e.message,
    );
    await assert.rejects(h.done, (e: Error) => {
      assert.ok(e instanceof LifeboatError);
      assert.match(e.message, /^command failed with exit code 3:/);
      assert.match(e.message, /disk quota exceeded/);
      assert.match(e.message, /noise line 2000/);
      assert.doesNotMatch(e.message, /noise line 1\n/, 'only the tail of stderr is kept');
      assert.ok(e.message.length < 5000);
      return true;
    });
    assert.match(await streamResult, /exit code 3/);

    const k = await dumpCommand({ kind: 'command', command: 'echo going; kill -9 $$' });
    k.stream.resume();
    k.stream.on('error', () => {});
    await assert.rejects(k.done, /command was killed by SIGKILL/);
  });

  test('abort kills the whole process group', async () => {
    // a unique duration identifies our sleep processes
    const secs = `300.${Math.floor(Math.random() * 1e6)}`;
    const h = await dumpCommand({ kind: 'command', command: ['sh', '-c', `(echo started; sleep ${secs}; echo never) | cat`] });
    h.stream.on('error', () => {});
    await new Promise((resolve) => h.stream.once('data', resolve));
    h.stream.resume();
    assert.ok(processAlive(`sleep ${secs}`));
    h.abort();
    await assert.rejects(h.done, /sh was aborted/);
    await waitGone(`sleep ${secs}`);
    assert.equal(processAlive(`sleep ${secs}`), false, 'grandchildren killed too');
  });

  test('missing program, missing restoreCommand, failing restore', async () => {
    await assert.rejects(dumpCommand({ kind: 'command', command: ['no-such-tool-xyz', '--dump'] }), /no-such-tool-xyz not found in PATH/);
    await assert.rejects(restoreCommand({ kind: 'command', command: 'true' }, Readable.from(['x'])), (e: Error) => e instanceof ConfigError && /no restoreCommand/.test(e.message));
    await assert.rejects(
      restoreCommand({ kind: 'command', command: 'true', restoreCommand: 'cat >/dev/null; echo "cannot apply" >&2; exit 4' }, Readable.from([Buffer.alloc(1 << 20)])),
      /restore command failed with exit code 4:\n\s+cannot apply/,
    );
    // a restore command that exits early without reading everything still reports its exit status
    await assert.rejects(restoreCommand({ kind: 'command', command: 'true', restoreCommand: ['sh', '-c', 'exit 5'] }, Readable.from([Buffer.alloc(8 << 20)])), /sh failed with exit code 5/);
  });

  test('a backup stream that fails while restoring kills the restore command and reports the read error', async () => {
    const secs = `300.${Math.floor(Math.random() * 1e6)}`;
    let sent = 0;
    const failing = new Readable({
      read() {
        if (sent++ < 3) this.push(Buffer.alloc(64 * 1024, 65));
        else this.destroy(new LifeboatError('pack 1234abcd: MAC check failed'));
      },
    });
    await assert.rejects(restoreCommand({ kind: 'command', command: 'true', restoreCommand: `cat >/dev/null; sleep ${secs}` }, failing), /pack 1234abcd: MAC check failed/);
    await waitGone(`sleep ${secs}`);
    assert.equal(processAlive(`sleep ${secs}`), false);
  });

  test('schema and argv', () => {
    assert.deepEqual(commandArgv('a | b'), ['/bin/sh', ['-c', 'a | b']]);
    assert.deepEqual(commandArgv(['x', '-y']), ['x', ['-y']]);
    assert.equal(commandSourceSchema.safeParse({ kind: 'command', command: [] }).success, false);
    assert.equal(commandSourceSchema.safeParse({ kind: 'command', command: 'x', shell: 'bash' }).success, false);
  });
});
