import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { streamToNewFile } from './new-file.js';

test('streamToNewFile writes the stream and refuses an existing file', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lifeboat-newfile-'));
  try {
    const f = path.join(dir, 'a');
    await streamToNewFile(Readable.from([Buffer.from('hello '), Buffer.from('world')]), f);
    assert.equal(await fsp.readFile(f, 'utf8'), 'hello world');
    assert.equal((await fsp.stat(f)).mode & 0o777, 0o600);
    const src = Readable.from([Buffer.from('x')]);
    await assert.rejects(streamToNewFile(src, f), { code: 'EEXIST' });
    assert.equal(src.destroyed, true, 'the source is not left open');
    assert.equal(await fsp.readFile(f, 'utf8'), 'hello world');
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});

test('a source that fails at once or midway leaves no file, not even a moment later', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'lifeboat-newfile-'));
  try {
    for (let i = 0; i < 40; i++) {
      const at = i % 2 === 0 ? 0 : 65536;
      const src = new Readable({
        read() {
          if (at) this.push(Buffer.alloc(at, 1));
          this.destroy(new Error('simulated read failure'));
        },
      });
      await assert.rejects(streamToNewFile(src, path.join(dir, `f${i}`)), /simulated read failure/);
      // a file created by a late open would show up here
      await new Promise((r) => setTimeout(r, 2));
      assert.deepEqual(await fsp.readdir(dir), [], `round ${i}`);
    }
  } finally {
    await fsp.rm(dir, { recursive: true, force: true });
  }
});
