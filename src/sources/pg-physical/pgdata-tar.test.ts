import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, promises as fsp, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { pgDataTar, type PgDataTarStats } from './pgdata-tar.js';
import { TarPeek } from './backup-facts.js';
import { tarHeader } from './tar-writer.js';
import { pieceGiven } from '../own-pieces.js';

/**
 * The direct base backup's tar of a data directory (pgdata-tar.ts), read
 * back by GNU tar and by the base backup's own tar reader: what is left out,
 * pg_control last, backup_label at the end, names of any length and bytes,
 * files that shrink or grow while they are read.
 */

async function makeDataDir(): Promise<{ dir: string; files: Record<string, Buffer>; cleanup: () => void }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-pgdata-'));
  const files: Record<string, Buffer> = {};
  const put = async (rel: string, body: Buffer) => {
    await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fsp.writeFile(path.join(dir, rel), body);
    files[rel] = body;
  };
  await put('PG_VERSION', Buffer.from('15\n'));
  const control = randomBytes(8192);
  control.writeBigUInt64LE(7714588654856020209n, 0);
  await put('global/pg_control', control);
  await put('global/1262', randomBytes(8192));
  await put('base/1/16384', randomBytes(1_300_000)); // several pieces
  await put('base/1/16384_fsm', randomBytes(24_576));
  await put('postgresql.conf', Buffer.from("shared_buffers = '16MB'\n"));
  const deep = `base/${'d'.repeat(60)}/${'e'.repeat(60)}/16999`;
  await put(deep, Buffer.from('a name longer than 100 bytes'));
  await put('base/1/caf\xe9', Buffer.from('placeholder')); // replaced below by a non-UTF-8 name
  await fsp.rm(path.join(dir, 'base/1/caf\xe9'));
  delete files['base/1/caf\xe9'];
  const raw = Buffer.concat([Buffer.from(path.join(dir, 'base/1/caf')), Buffer.from([0xe9])]);
  await fsp.writeFile(raw, 'latin-1 name');
  // left out
  for (const rel of [
    'pg_wal/000000010000000000000001',
    'pg_wal/archive_status/000000010000000000000001.ready',
    'postmaster.pid',
    'postmaster.opts',
    'backup_label',
    'pg_stat_tmp/global.stat',
    'pg_replslot/slot/state',
    'pg_subtrans/0000',
    'pg_notify/0000',
    'base/1/pgsql_tmp/pgsql_tmp123.0',
    'base/pgsql_tmp4.1',
    'base/1/pg_internal.init',
    'global/pg_internal.init',
  ]) {
    await fsp.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
    await fsp.writeFile(path.join(dir, rel), 'left out');
  }
  await fsp.mkdir(path.join(dir, 'pg_tblspc'));
  await fsp.symlink('PG_VERSION', path.join(dir, 'a-link'));
  return { dir, files, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const LABEL = 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\nSTART TIMELINE: 1\n';

async function collect(gen: AsyncGenerator<Buffer>, each?: (b: Buffer) => Promise<void>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of gen) {
    parts.push(b);
    await each?.(b);
  }
  return Buffer.concat(parts);
}

function untar(tar: Buffer, into: string): string[] {
  const x = spawnSync('tar', ['-x', '-f', '-', '-C', into], { input: tar });
  assert.equal(x.status, 0, x.stderr.toString());
  const t = spawnSync('tar', ['-t', '-f', '-'], { input: tar });
  assert.equal(t.status, 0, t.stderr.toString());
  return t.stdout.toString('latin1').trim().split('\n');
}

test('pgDataTar: a data directory as PostgreSQL sends it, read back by tar and by TarPeek', async () => {
  const d = await makeDataDir();
  const out = mkdtempSync(path.join(tmpdir(), 'lb-pgdata-out-'));
  try {
    const stats: PgDataTarStats = { files: 0, vanished: 0 };
    let finished = 0;
    const tar = await collect(
      pgDataTar(d.dir, { pieceSize: 65_536, finish: async () => (finished++, [{ name: 'backup_label', body: Buffer.from(LABEL) }]) }, stats),
    );
    assert.equal(finished, 1);
    assert.equal(tar.length % 512, 0);
    const names = untar(tar, out);
    // every kept file, byte for byte
    for (const [rel, body] of Object.entries(d.files)) assert.ok(body.equals(await fsp.readFile(path.join(out, rel))), rel);
    assert.equal(await fsp.readFile(Buffer.concat([Buffer.from(path.join(out, 'base/1/caf')), Buffer.from([0xe9])]), 'utf8'), 'latin-1 name');
    assert.equal(await fsp.readlink(path.join(out, 'a-link')), 'PG_VERSION');
    assert.equal(await fsp.readFile(path.join(out, 'backup_label'), 'utf8'), LABEL);
    // left out, with the directories kept
    for (const rel of ['postmaster.pid', 'postmaster.opts', 'pg_stat_tmp/global.stat', 'pg_replslot/slot', 'pg_subtrans/0000', 'pg_notify/0000', 'base/1/pgsql_tmp', 'base/pgsql_tmp4.1', 'base/1/pg_internal.init', 'global/pg_internal.init']) {
      await assert.rejects(fsp.lstat(path.join(out, rel)), { code: 'ENOENT' }, rel);
    }
    assert.deepEqual(await fsp.readdir(path.join(out, 'pg_wal')), ['archive_status']);
    assert.deepEqual(await fsp.readdir(path.join(out, 'pg_wal/archive_status')), []);
    for (const rel of ['pg_stat_tmp', 'pg_replslot', 'pg_subtrans', 'pg_notify', 'pg_tblspc']) assert.ok((await fsp.stat(path.join(out, rel))).isDirectory(), rel);
    // pg_control is the last file of the data directory, backup_label follows it
    const files = names.filter((n) => !n.endsWith('/'));
    assert.deepEqual(files.slice(-2), ['global/pg_control', 'backup_label']);
    assert.equal(stats.files, Object.keys(d.files).length + 1 /* the latin-1 name */);
    // the base backup's own reader finds its facts in it
    const peek = new TarPeek();
    for (let i = 0; i < tar.length; i += 100_000) peek.observe(tar.subarray(i, i + 100_000));
    assert.equal(peek.facts.backupLabel, LABEL);
    assert.equal(peek.facts.pgVersion, '15');
    assert.equal(peek.facts.systemIdentifier, '7714588654856020209');
  } finally {
    d.cleanup();
    rmSync(out, { recursive: true, force: true });
  }
});

test('pgDataTar: a file that shrinks is padded to its header size, one that grows is cut there', async () => {
  const d = await makeDataDir();
  const out = mkdtempSync(path.join(tmpdir(), 'lb-pgdata-out-'));
  try {
    const shrink = randomBytes(300_000);
    const grow = randomBytes(200_000);
    await fsp.writeFile(path.join(d.dir, 'base/1/20000'), shrink);
    await fsp.writeFile(path.join(d.dir, 'base/1/20001'), grow);
    const tar = await collect(pgDataTar(d.dir, { pieceSize: 65_536, finish: async () => [{ name: 'backup_label', body: Buffer.from(LABEL) }] }), async (b) => {
      // right after a member's header: change the file before its body is read
      if (b.length === 512 && b.subarray(257, 262).toString() === 'ustar') {
        const name = b.subarray(0, 100).toString().replace(/\0.*$/s, '');
        if (name === 'base/1/20000') await fsp.truncate(path.join(d.dir, name), 100_000);
        if (name === 'base/1/20001') await fsp.appendFile(path.join(d.dir, name), randomBytes(50_000));
      }
    });
    untar(tar, out);
    const s = await fsp.readFile(path.join(out, 'base/1/20000'));
    assert.equal(s.length, shrink.length);
    assert.ok(s.subarray(0, 65_536).equals(shrink.subarray(0, 65_536)));
    assert.ok(s.subarray(100_000).equals(Buffer.alloc(shrink.length - 100_000)), 'zeros where the file shrank');
    const g = await fsp.readFile(path.join(out, 'base/1/20001'));
    assert.ok(g.equals(grow), 'cut at the size the header gave');
  } finally {
    d.cleanup();
    rmSync(out, { recursive: true, force: true });
  }
});

test('pgDataTar: a tablespace link, or no pg_control, is a clear error', async () => {
  const d = await makeDataDir();
  try {
    await fsp.symlink('/tmp', path.join(d.dir, 'pg_tblspc', '16385'));
    await assert.rejects(collect(pgDataTar(d.dir, { finish: async () => [] })), /tablespace \(pg_tblspc\/16385\).*use pg_basebackup/);
    await fsp.rm(path.join(d.dir, 'pg_tblspc', '16385'));
    await fsp.rm(path.join(d.dir, 'global/pg_control'));
    let finished = false;
    await assert.rejects(collect(pgDataTar(d.dir, { finish: async () => ((finished = true), []) })), /no global\/pg_control/);
    assert.equal(finished, false, 'no backup is stopped as if it were complete');
  } finally {
    d.cleanup();
  }
});

test('pgDataTar: a pg_wal that is a link elsewhere (initdb -X) is sent as an empty directory', async () => {
  const d = await makeDataDir();
  const wal = mkdtempSync(path.join(tmpdir(), 'lb-pgwal-'));
  const out = mkdtempSync(path.join(tmpdir(), 'lb-pgdata-out-'));
  try {
    await fsp.rm(path.join(d.dir, 'pg_wal'), { recursive: true });
    await fsp.mkdir(path.join(wal, 'archive_status'));
    await fsp.writeFile(path.join(wal, '000000010000000000000001'), randomBytes(4096));
    await fsp.symlink(wal, path.join(d.dir, 'pg_wal'));
    untar(await collect(pgDataTar(d.dir, { finish: async () => [] })), out);
    assert.ok((await fsp.lstat(path.join(out, 'pg_wal'))).isDirectory(), 'a directory, not the link');
    assert.deepEqual(await fsp.readdir(path.join(out, 'pg_wal')), ['archive_status']);
  } finally {
    d.cleanup();
    rmSync(wal, { recursive: true, force: true });
    rmSync(out, { recursive: true, force: true });
  }
});

test('tarHeader: sizes of 8 GiB and more in base-256, uids beyond octal', () => {
  const h = tarHeader({ name: Buffer.from('base/1/big'), type: 'file', size: 9 * 2 ** 30, mode: 0o600, uid: 3_000_000, gid: 1, mtime: 1_700_000_000 });
  assert.equal(h.length, 512);
  assert.equal(h[124], 0x80);
  assert.equal(h.readBigUInt64BE(128), BigInt(9 * 2 ** 30));
  assert.equal(h[108], 0x80);
  // the checksum covers the header with its own field as spaces
  const copy = Buffer.from(h);
  copy.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of copy) sum += b;
  assert.equal(parseInt(h.subarray(148, 154).toString(), 8), sum);
});

test('pgDataTar: the file data pieces are given to the consumer to free (each a whole buffer of its own), the headers, padding and end blocks are not; freeing each given piece once read leaves this tar and the next one whole', async () => {
  const d = await makeDataDir();
  try {
    const tars: Buffer[] = [];
    for (let run = 0; run < 2; run++) {
      let given = 0;
      let last: Buffer | undefined;
      const parts: Buffer[] = [];
      for await (const b of pgDataTar(d.dir, { pieceSize: 65_536, finish: async () => [{ name: 'backup_label', body: Buffer.from(LABEL) }] })) {
        parts.push(Buffer.from(b)); // copied, as the chunker copies it
        last = b;
        if (!pieceGiven(b)) continue;
        given++;
        assert.ok(b.byteOffset === 0 && b.byteLength === b.buffer.byteLength && !(b.buffer instanceof SharedArrayBuffer), 'a given piece is a whole buffer of its own');
        structuredClone(b.buffer, { transfer: [b.buffer as ArrayBuffer] }); // freed, as Repository.release frees it
        assert.equal(b.length, 0);
      }
      const tar = Buffer.concat(parts);
      assert.ok(given >= 20, `the file data is given (${given} pieces)`); // base/1/16384 alone is 20 pieces of 64 KiB
      assert.ok(last && !pieceGiven(last) && last.length === 1024, 'the end blocks are not given');
      tars.push(tar);
    }
    // backup_label's header has the time it was written (seconds): the two runs may straddle a second (a CI
    // failure), so its mtime and checksum fields are left out; every other byte must be the same
    const labelTimeless = (tar: Buffer): Buffer => {
      const t = Buffer.from(tar);
      const at = t.lastIndexOf(Buffer.from('backup_label\0'));
      assert.ok(at >= 0 && at % 512 === 0, 'backup_label has a header of its own');
      t.fill(0, at + 136, at + 156); // mtime (12 bytes) and checksum (8)
      return t;
    };
    assert.ok(labelTimeless(tars[0]!).equals(labelTimeless(tars[1]!)), 'the second tar is the first, byte for byte: nothing shared was freed');
    const out = mkdtempSync(path.join(tmpdir(), 'lb-pgdata-out-'));
    try {
      untar(tars[1]!, out);
      for (const [rel, body] of Object.entries(d.files)) assert.ok(body.equals(await fsp.readFile(path.join(out, rel))), rel);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  } finally {
    d.cleanup();
  }
});
