import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { backupStream, restoreStream } from '../src/sources/stream.js';
import { dumpPostgres, restorePostgres, type PostgresSourceInput } from '../src/sources/postgres/dump.js';
import type { DumpHandle } from '../src/sources/types.js';
import { pgChecksums, pgCreateDb, pgDropDb, pgExec, pgPopulate, tmpdir, uniqueName } from './helpers/db.js';

// Fast key derivation in tests (as in helpers/tmp.ts).
process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

/** Stream a dump into the repository; the snapshot is published only if the dump tool succeeded. */
async function backupDump(repo: Repository, h: DumpHandle) {
  return backupStream(repo, h.stream, {
    filename: h.filename,
    source: h.meta,
    finalize: async () => (await h.done).extra,
  });
}

describe('PostgreSQL through a real repository', () => {
  const src = uniqueName();
  const dbs = [src];
  let t: ReturnType<typeof tmpdir>;
  let repo: Repository;
  const opts: PostgresSourceInput = { kind: 'postgres', host: '127.0.0.1', port: 5432, user: 'postgres', database: src };

  before(async () => {
    t = tmpdir();
    await pgCreateDb(src);
    await pgPopulate(src, { people: 40000, events: 120000 });
    repo = await Repository.init(new LocalStorage(path.join(t.dir, 'repo')), 'pw');
  });
  after(async () => {
    await repo.close();
    for (const d of dbs) await pgDropDb(d);
    t.cleanup();
  });

  test('backup, 1% of rows updated, second backup is small; both restore exactly', async () => {
    const want0 = await pgChecksums(src);
    const r0 = await backupDump(repo, await dumpPostgres(opts, { name: 'app' }));

    // update 1% of the rows, spread over the tables
    await pgExec(src, `UPDATE people SET bio = coalesce(bio, '') || ' updated' WHERE id % 100 = 7`);
    await pgExec(src, `UPDATE events SET note = 'updated ' || id WHERE id % 100 = 3`);
    const want1 = await pgChecksums(src);
    const r1 = await backupDump(repo, await dumpPostgres(opts, { name: 'app' }));
    assert.equal(r1.parent, r0.snapshotId, 'the previous dump of the same source is the parent');

    const s0 = r0.summary;
    const s1 = r1.summary;
    const line =
      `pg dump ${s0.totalBytes} B: first backup added ${s0.dataAdded} B; after updating 1% of rows ` +
      `(dump ${s1.totalBytes} B) the second added ${s1.dataAdded} B = ${((100 * s1.dataAdded) / s1.totalBytes).toFixed(1)}% of the dump ` +
      `(${s1.blobsNew} new blobs, ${s1.blobsDelta} as deltas)`;
    console.log(line);
    assert.ok(s1.dataAdded < s0.dataAdded / 3, line);

    const snaps = await repo.listSnapshots();
    const snap1 = snaps.find((s) => s.id === r1.snapshotId)!;
    assert.equal(snap1.source?.kind, 'postgres');
    assert.equal(snap1.source?.name, 'app');
    assert.ok((snap1.source as { rowEstimates?: Record<string, number> }).rowEstimates?.['public.people'] !== undefined, 'dump facts recorded in the snapshot');

    for (const [snap, want] of [
      [r0.snapshotId, want0],
      [r1.snapshotId, want1],
    ] as const) {
      const target = uniqueName();
      dbs.push(target);
      await restorePostgres(opts, await restoreStream(repo, snap), { database: target });
      assert.deepEqual(await pgChecksums(target), want);
    }
  });

  test('a failing dump publishes no snapshot', async () => {
    const before = (await repo.listSnapshots()).length;
    const h = await dumpPostgres({ ...opts, tables: ['no_such_table_xyz'] });
    await assert.rejects(backupDump(repo, h), /pg_dump failed with exit code 1/);
    await h.done.catch(() => {});
    assert.equal((await repo.listSnapshots()).length, before);
  });
});
