import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { IntegrityError } from '../errors.js';
import { LocalStorage } from '../storage/local.js';
import { type LogKind, fetchLogEntry, findLog, listLogs, loadLogObject, logObjectId, pushLog, validateLogEntry } from './log-archive.js';
import { Repository, sealJson } from './repository.js';
import { ContentWriter } from './content.js';
import { superFeatures } from './sketch.js';
import { WAL_LOG } from './wal.js';
import { BINLOG_LOG } from './binlog.js';

process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

const H = 'ab'.repeat(32);
function good(name: string): Record<string, unknown> {
  return { v: 1, archive: 'default', name, size: 10, sha256: H, blobs: [H, H], sizes: [4, 6], time: '2026-01-01T00:00:00Z', hostname: 'h' };
}

const cases: Array<[string, (e: Record<string, unknown>) => unknown]> = [
  ['not an object', () => null],
  ['a string', () => 'x'],
  ['wrong version', (e) => ({ ...e, v: 2 })],
  ['archive not a string', (e) => ({ ...e, archive: 7 })],
  ['negative size', (e) => ({ ...e, size: -1 })],
  ['fractional size', (e) => ({ ...e, size: 1.5 })],
  ['sha256 not hex', (e) => ({ ...e, sha256: 'zz'.repeat(32) })],
  ['blob id too short', (e) => ({ ...e, blobs: [H, 'ab'] })],
  ['sizes/blobs length differ', (e) => ({ ...e, sizes: [10] })],
  ['a zero chunk size', (e) => ({ ...e, blobs: [H, H, H], sizes: [4, 6, 0] })],
  ['sizes do not add up to size', (e) => ({ ...e, sizes: [4, 7] })],
  ['time missing', (e) => ({ ...e, time: undefined })],
];

for (const [kind, name, wrongName] of [
  [WAL_LOG, '000000010000000000000001', 'mysql-bin.000001'],
  [BINLOG_LOG, 'mysql-bin.000001', '000000010000000000000001'],
] as Array<[LogKind, string, string]>) {
  test(`${kind.type}: a well-formed entry is accepted; each malformation is refused with "${kind.label} entry … malformed"`, () => {
    assert.equal(validateLogEntry(kind, good(name), 'x').name, name);
    for (const [what, f] of cases) {
      assert.throws(
        () => validateLogEntry(kind, f(good(name)), 'obj1'),
        (err: unknown) => err instanceof IntegrityError && err.message === `${kind.label} entry obj1: malformed`,
        what,
      );
    }
    // a name of the other kind is not one of this kind's
    assert.throws(() => validateLogEntry(kind, good(wrongName), 'obj1'), /malformed/);
  });
}

test('binlog refuses an entry whose archive name breaks the archive-name rule; WAL keeps accepting any string', () => {
  const e = { ...good('mysql-bin.000001'), archive: '../x' };
  assert.throws(() => validateLogEntry(BINLOG_LOG, e, 'o'), /binlog entry o: malformed/);
  assert.equal(validateLogEntry(WAL_LOG, { ...good('000000010000000000000001'), archive: '../x' }, 'o').archive, '../x');
});

test('a sealed entry stored under another entry\'s name is refused; push/find/list round-trip; the two kinds do not see each other', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-logarchive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
  const file = path.join(dir, 'f');
  writeFileSync(file, 'hello log archive');
  for (const [kind, name] of [
    [WAL_LOG, '000000010000000000000002'],
    [BINLOG_LOG, 'mysql-bin.000002'],
  ] as Array<[LogKind, string]>) {
    const r = await pushLog(kind, repo, file, 'default', name);
    assert.equal(r.status, 'stored');
    assert.equal((await pushLog(kind, repo, file, 'default', name)).status, 'already-archived');
    assert.equal((await findLog(kind, repo, 'default', name))?.size, 17);
    assert.deepEqual((await listLogs(kind, repo)).map((e) => e.name), [name]);
    // the same sealed entry saved under the id of another name
    const other = kind === WAL_LOG ? '000000010000000000000003' : 'mysql-bin.000003';
    const wrongId = logObjectId(kind, repo, 'default', other);
    await repo.storage.saveNew(kind.type, wrongId, sealJson(repo.key.encKey, r.entry, false));
    await assert.rejects(
      loadLogObject(kind, repo, wrongId),
      (err: unknown) => err instanceof IntegrityError && err.message === `${kind.label} entry ${wrongId}: stored under the wrong name (says default/${name})`,
    );
    assert.equal(await findLog(kind, repo, 'default', other).catch((e: Error) => e.message), `${kind.label} entry ${wrongId}: stored under the wrong name (says default/${name})`);
    await repo.storage.remove(kind.type, wrongId);
  }
  // the id is domain-separated by the object type
  assert.notEqual(logObjectId(WAL_LOG, repo, 'default', 'n'), logObjectId(BINLOG_LOG, repo, 'default', 'n'));
});

test('fetch writes the verified bytes; data that does not match its entry (size or SHA-256) fails and leaves neither dest nor dest.tmp', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-logarchive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const repo = await Repository.init(new LocalStorage(path.join(dir, 'repo')), 'pw');
  const file = path.join(dir, 'f');
  writeFileSync(file, 'x'.repeat(5000) + 'end');
  const { entry } = await pushLog(BINLOG_LOG, repo, file, 'default', 'mysql-bin.000007');
  const dest = path.join(dir, 'out');
  await fetchLogEntry(BINLOG_LOG, repo, entry, dest);
  assert.equal(readFileSync(dest, 'utf8'), 'x'.repeat(5000) + 'end');
  rmSync(dest);
  const bad = [
    [{ ...entry, sha256: 'cd'.repeat(32) }, /binary log mysql-bin\.000007: SHA-256 of the data does not match/],
    [{ ...entry, size: entry.size + 1 }, /binary log mysql-bin\.000007: read 5003 bytes, archived 5004/],
    [{ ...entry, size: entry.size - 1 }, /binary log mysql-bin\.000007: more data than the archived 5002 bytes/],
  ] as const;
  for (const [e, re] of bad) {
    await assert.rejects(fetchLogEntry(BINLOG_LOG, repo, e, dest), (err: unknown) => err instanceof IntegrityError && re.test(err.message));
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(`${dest}.tmp`), false);
  }
});

test('one WAL segment per process (inlineUpTo): pushed and fetched without a worker thread, its chunks carry no sketch; other data encoded inline keeps its sketches', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-logarchive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // 6 MiB of compressible, non-repeating text: several chunks of at least SKETCH_MIN
  const text = (seed: number) => {
    let x = seed;
    const lines: string[] = [];
    for (let size = 0; size < 6 * 1024 * 1024; ) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0;
      const l = `row ${x} ${(x % 9973).toString(36)} ${'abcdefgh'.slice(x % 8)}\n`;
      lines.push(l);
      size += l.length;
    }
    return Buffer.from(lines.join(''));
  };
  const data = text(1);
  const file = path.join(dir, '000000010000000000000007');
  writeFileSync(file, data);
  const storage = new LocalStorage(path.join(dir, 'repo'));
  await (await Repository.init(storage, 'pw')).close();

  const repo = await Repository.open(storage, 'pw', { loadIndex: false });
  repo.inlineUpTo(64 * 1024 * 1024);
  const r = await pushLog(WAL_LOG, repo, file, 'default', '000000010000000000000007');
  assert.equal(r.status, 'stored');
  assert.ok(r.entry.blobs.length >= 3, `chunks: ${r.entry.blobs.length}`);
  assert.equal(repo.workersStarted, 0, 'wal-push started a worker thread');
  await repo.close();

  const reader = await Repository.open(storage, 'pw');
  reader.inlineUpTo(64 * 1024 * 1024);
  for (const id of r.entry.blobs) {
    const e = reader.indexEntry(id);
    assert.ok(e, 'indexed');
    assert.equal(e.sf, undefined, 'a WAL chunk carries a resemblance sketch');
  }
  const dest = path.join(dir, 'restored');
  await fetchLogEntry(WAL_LOG, reader, (await findLog(WAL_LOG, reader, 'default', '000000010000000000000007'))!, dest);
  assert.ok(readFileSync(dest).equals(data));
  assert.equal(reader.workersStarted, 0, 'wal-fetch started a worker thread');

  // ordinary data (other bytes: the WAL chunks would deduplicate), encoded inline: every chunk has its sketch, the one a worker computes
  const other = text(2);
  const w = new ContentWriter(reader);
  await w.write(other);
  const c = await w.finish();
  await reader.flush();
  assert.equal(reader.workersStarted, 0);
  let off = 0;
  for (let i = 0; i < c.content.length; i++) {
    const sf = reader.indexEntry(c.content[i]!)?.sf;
    assert.deepEqual(sf, superFeatures(other.subarray(off, off + c.sizes[i]!)), `chunk ${i}: sketch`);
    off += c.sizes[i]!;
  }
  await reader.close();
});
