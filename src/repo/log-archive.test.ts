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
import { SKETCH_MIN } from './codec.js';
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
  let sketched = 0;
  for (let i = 0; i < c.content.length; i++) {
    const sf = reader.indexEntry(c.content[i]!)?.sf;
    // saveBlob's rule: a sketch for every chunk of at least SKETCH_MIN bytes (the last chunk, a
    // remainder, may be shorter: the chunker's seed is random per repository)
    const want = c.sizes[i]! >= SKETCH_MIN ? superFeatures(other.subarray(off, off + c.sizes[i]!)) : undefined;
    assert.deepEqual(sf, want, `chunk ${i} (${c.sizes[i]} bytes): sketch`);
    if (want) sketched++;
    off += c.sizes[i]!;
  }
  assert.ok(sketched >= 3, `${sketched} chunks sketched`);
  await reader.close();
});

/** A local storage that counts the listings of the index (a fetch that loads the index lists it). */
class CountingStorage extends LocalStorage {
  indexLists = 0;
  override async list(type: Parameters<LocalStorage['list']>[0]) {
    if (type === 'index') this.indexLists++;
    return super.list(type);
  }
}

test('location hints: a fetch reads the blobs where the entry says, without the index; stale, wrong or hostile hints fall back to the index', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-logarchive-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // several chunks (min 512 KiB): random-ish text of 5 MiB
  let x = 7;
  const lines: string[] = [];
  for (let size = 0; size < 5 * 1024 * 1024; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    const l = `wal ${x} ${(x % 7919).toString(36)}\n`;
    lines.push(l);
    size += l.length;
  }
  const data = Buffer.from(lines.join(''));
  const name = '000000010000000000000009';
  const file = path.join(dir, name);
  writeFileSync(file, data);
  const storage = new CountingStorage(path.join(dir, 'repo'));
  await (await Repository.init(storage, 'pw')).close();
  const pusher = await Repository.open(storage, 'pw', { loadIndex: false });
  const { entry } = await pushLog(WAL_LOG, pusher, file, 'default', name);
  await pusher.close();
  assert.ok(entry.blobs.length >= 3, `chunks: ${entry.blobs.length}`);
  assert.equal(entry.at?.length, entry.blobs.length, 'every blob has its location');

  const fetchWith = async (e: typeof entry) => {
    const repo = await Repository.open(storage, 'pw', { loadIndex: false });
    storage.indexLists = 0;
    const dest = path.join(dir, 'out');
    rmSync(dest, { force: true });
    try {
      await fetchLogEntry(WAL_LOG, repo, e, dest);
      assert.ok(readFileSync(dest).equals(data), 'fetched bytes');
      return storage.indexLists;
    } finally {
      await repo.close();
    }
  };
  // the stored entry as a reader opens it (seal, structure, hints validated)
  const stored = (await findLog(WAL_LOG, await Repository.open(storage, 'pw', { loadIndex: false }), 'default', name))!;
  assert.deepEqual(stored.at, entry.at);
  assert.equal(await fetchWith(stored), 0, 'a fetch with good hints does not load the index');
  // hints of another blob (swapped), past the end of the pack, in a pack that is gone, or
  // with a length far beyond the blob: each is only a hint, the bytes come from the index
  const at = entry.at!;
  const swapped = at.map((_, i) => at[(i + 1) % at.length]!);
  const beyond = at.map((h) => [h[0], h[1] + 1e9, h[2], h[3]] as typeof h);
  const gone = at.map((h) => ['cd'.repeat(32), h[1], h[2], h[3]] as typeof h);
  const huge = at.map((h) => [h[0], h[1], 2 ** 40, h[3]] as typeof h);
  for (const [what, hints] of [
    ['swapped', swapped],
    ['beyond', beyond],
    ['gone', gone],
    ['huge', huge],
  ] as const) {
    assert.equal(await fetchWith({ ...entry, at: hints }), 1, `${what}: the index was loaded once`);
  }
  // the location of another blob of the same length: decodes fine, but is not this blob (its keyed hash decides)
  const twin = Buffer.from(data.subarray(0, 4096));
  twin[100] ^= 1;
  writeFileSync(path.join(dir, 'twin'), twin);
  writeFileSync(path.join(dir, 'one'), data.subarray(0, 4096));
  const p2 = await Repository.open(storage, 'pw', { loadIndex: false });
  const one = (await pushLog(WAL_LOG, p2, path.join(dir, 'one'), 'default', '00000001000000000000000A')).entry;
  const two = (await pushLog(WAL_LOG, p2, path.join(dir, 'twin'), 'default', '00000001000000000000000B')).entry;
  await p2.close();
  const r2 = await Repository.open(storage, 'pw', { loadIndex: false });
  storage.indexLists = 0;
  await fetchLogEntry(WAL_LOG, r2, { ...one, at: two.at }, path.join(dir, 'one.out'));
  await r2.close();
  assert.ok(readFileSync(path.join(dir, 'one.out')).equals(data.subarray(0, 4096)), 'the bytes of its own blob');
  assert.equal(storage.indexLists, 1, "the twin's location was refused, the index asked");
  // an entry written before hints existed
  const { at: _omit, ...old } = entry;
  assert.equal(await fetchWith(old), 1);
  // hints that break the structure make the entry malformed (as any other field would)
  for (const bad of [[...at.slice(1)], at.map((h) => [h[0], h[1], h[2], 2]), at.map((h) => ['zz', h[1], h[2], h[3]]), at.map((h) => [h[0], -1, h[2], h[3]])]) {
    assert.throws(() => validateLogEntry(WAL_LOG, { ...entry, at: bad }, 'o'), /WAL entry o: malformed/);
  }
});
