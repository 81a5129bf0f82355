import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { HardlinkGroups, readSmallFile } from './archiver.js';

test('readSmallFile: exact size owns its buffer; a file that grew or shrank since lstat is read as it is now', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lb-small-'));
  try {
    const f = path.join(dir, 'f');
    const data = randomBytes(5000);
    await fsp.writeFile(f, data);
    const read = async (size: number) => {
      const fh = await fsp.open(f);
      try {
        return await readSmallFile(fh, size);
      } finally {
        await fh.close();
      }
    };
    const same = await read(5000);
    assert.deepEqual(same, data);
    assert.equal(same.buffer.byteLength, 5000); // transferable without a copy
    assert.deepEqual(await read(3000), data); // grew after the size was taken: all of it
    assert.deepEqual(await read(9000), data); // shrank: what is there
    await fsp.writeFile(f, '');
    assert.equal((await read(0)).length, 0);
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('HardlinkGroups: a group is dropped at its last link (memory per open group, not per hard-linked file ever seen)', () => {
  const g = new HardlinkGroups<string>();
  // 1000 groups of 3 links each, walked one group after another (as in a directory of linked files)
  for (let i = 0; i < 1000; i++) {
    const key = `1:${i}`;
    assert.equal(g.later(key), undefined, 'first link: nothing known yet');
    g.first(key, 3, `node${i}`);
    assert.equal(g.later(key), `node${i}`);
    assert.equal(g.size, 1, 'one link still to come');
    assert.equal(g.later(key), `node${i}`);
    assert.equal(g.size, 0, 'all three links seen: forgotten');
  }
  // links outside the backup: the group stays (a later link must still find it)
  g.first('1:x', 2, 'x');
  g.first('1:y', 5, 'y');
  assert.equal(g.size, 2);
  assert.equal(g.later('1:y'), 'y');
  assert.equal(g.size, 2);
  // a link beyond the count (a link made during the backup): not found, saved again as a new group
  assert.equal(g.later('1:x'), 'x');
  assert.equal(g.later('1:x'), undefined);
  g.first('1:nl1', 1, 'single'); // nlink 1 (the other link went away): nothing to remember
  assert.equal(g.size, 1);
});
