import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { randomBytes } from 'node:crypto';
import * as os from 'node:os';
import * as path from 'node:path';
import { readSmallFile } from './archiver.js';

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
