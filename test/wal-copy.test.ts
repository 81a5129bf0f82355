import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { runCli, tmpDir } from './helpers/tmp.js';

/**
 * `copy` carries the archived PostgreSQL WAL to the second repository, so a
 * 3-2-1 copy of base backups stays restorable to a point in time: every WAL
 * file fetched from the copy is byte-identical, a second copy adds nothing,
 * and `--no-wal` leaves the archive out.
 */
test('copy carries archived WAL to the second repository (idempotent, verified, --no-wal)', async (t) => {
  const { dir, cleanup } = tmpDir();
  t.after(cleanup);
  const env = { LIFEBOAT_PASSWORD: 'primary-pw', LIFEBOAT_FROM_PASSWORD: 'primary-pw' };
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  const c = path.join(dir, 'c');
  for (const r of [a, b, c]) assert.equal((await runCli(['init', '--repo', r], { env })).code, 0);
  const wal = path.join(dir, 'wal');
  await fsp.mkdir(wal);
  // three segments sharing most of their bytes, a history file
  const base = randomBytes(1 << 20);
  const names = ['000000010000000000000001', '000000010000000000000002', '000000010000000000000003', '00000002.history'];
  for (const [i, n] of names.entries()) {
    const data = n.endsWith('.history') ? Buffer.from('1\t0/3000000\tno recovery target specified\n') : Buffer.concat([base, randomBytes(4096 * (i + 1))]);
    await fsp.writeFile(path.join(wal, n), data);
    const r = await runCli(['wal-push', path.join(wal, n), '--repo', a], { env });
    assert.equal(r.code, 0, r.stderr);
  }

  const first = await runCli(['copy', '--from-repo', a, '--repo', b, '--json'], { env });
  assert.equal(first.code, 0, first.stderr);
  const copied = JSON.parse(first.stdout.trim().split('\n').pop()!);
  assert.equal(copied.wal.copied, 4);
  assert.equal(copied.wal.present, 0);

  for (const n of names) {
    const dest = path.join(dir, `fetched-${n}`);
    const r = await runCli(['wal-fetch', n, dest, '--repo', b], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await fsp.readFile(dest), await fsp.readFile(path.join(wal, n)), `${n} from the copy`);
  }
  const list = await runCli(['pg', 'wal-list', '--repo', b, '--json'], { env });
  assert.equal(list.code, 0, list.stderr);
  const listed = new Set(JSON.stringify(JSON.parse(list.stdout)).match(/0000000[12][0-9A-F.a-z]+/g));
  for (const n of names) assert.ok(listed.has(n), `${n} listed in the copy`);

  const again = await runCli(['copy', '--from-repo', a, '--repo', b, '--json'], { env });
  assert.equal(again.code, 0, again.stderr);
  const second = JSON.parse(again.stdout.trim().split('\n').pop()!);
  assert.equal(second.wal.copied, 0);
  assert.equal(second.wal.present, 4);
  assert.equal(second.wal.data_added, 0);

  const chk = await runCli(['check', '--read-data', '--repo', b], { env });
  assert.equal(chk.code, 0, chk.stdout + chk.stderr);
  assert.match(chk.stdout, /4 archived WAL file/);

  const noWal = await runCli(['copy', '--from-repo', a, '--repo', c, '--no-wal'], { env });
  assert.equal(noWal.code, 0, noWal.stderr);
  const missing = await runCli(['wal-fetch', names[0]!, path.join(dir, 'x'), '--repo', c], { env });
  assert.equal(missing.code, 1, 'not archived in the copy made with --no-wal');
});
