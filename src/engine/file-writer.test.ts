import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DirHandle, TempFile, realpathBytes } from './file-writer.js';

const scratch = () => Buffer.from(mkdtempSync(path.join(os.tmpdir(), 'lb-file-writer-')));

test('TempFile: written under a temporary name, visible under the final name only once published', async () => {
  const dir = scratch();
  try {
    const dst = Buffer.concat([dir, Buffer.from('/final')]);
    const tf = await TempFile.create(dir);
    assert.equal(statSync(tf.path).mode & 0o777, 0o600);
    tf.writePieces(Buffer.from('hello '), [[0, 6]]);
    await tf.writePiecesAsync(Buffer.from('world'), [[6, 5]]);
    assert.deepEqual(readdirSync(dir), [path.basename(tf.path.toString())], 'nothing under the final name before publish');
    await tf.publish(dst);
    assert.deepEqual(readdirSync(dir), ['final'], 'the temporary name is gone');
    assert.equal(readFileSync(dst, 'utf8'), 'hello world');
    await assert.rejects(tf.publish(dst), /already published/);
  } finally {
    rmSync(dir.toString(), { recursive: true, force: true });
  }
});

test('TempFile: pieces land at their file offsets, holes stay zero, truncate sets a trailing hole', async () => {
  const dir = scratch();
  try {
    const dst = Buffer.concat([dir, Buffer.from('/holes')]);
    const tf = await TempFile.create(dir);
    // one content buffer split over two data regions: [0,3) and [8,11); the file ends with a hole at 16
    tf.writePieces(Buffer.from('abcdef'), [
      [0, 3],
      [8, 3],
    ]);
    tf.truncate(16);
    await tf.publish(dst);
    const got = readFileSync(dst);
    assert.equal(got.length, 16);
    assert.deepEqual(got, Buffer.concat([Buffer.from('abc'), Buffer.alloc(5), Buffer.from('def'), Buffer.alloc(5)]));
  } finally {
    rmSync(dir.toString(), { recursive: true, force: true });
  }
});

test('TempFile: a failure before the rename leaves neither the temporary file nor anything under the final name', async () => {
  const dir = scratch();
  try {
    const dst = Buffer.concat([dir, Buffer.from('/final')]);
    const tf = await TempFile.create(dir);
    tf.writePieces(Buffer.from('half'), [[0, 4]]);
    await assert.rejects(
      tf.publish(dst, async () => {
        throw new Error('parent changed');
      }),
      /parent changed/,
    );
    await tf.discard();
    assert.deepEqual(readdirSync(dir), []);
    // discarding an open file removes it too
    const tf2 = await TempFile.create(dir);
    tf2.writePieces(Buffer.from('x'), [[0, 1]]);
    await tf2.discard();
    await tf2.discard(); // idempotent
    assert.deepEqual(readdirSync(dir), []);
  } finally {
    rmSync(dir.toString(), { recursive: true, force: true });
  }
});

test('TempFile: publish replaces a link under the final name instead of writing through it', async () => {
  const dir = scratch();
  const outside = scratch();
  try {
    const victim = path.join(outside.toString(), 'victim');
    writeFileSync(victim, 'untouched');
    const dst = Buffer.concat([dir, Buffer.from('/name')]);
    symlinkSync(victim, dst.toString());
    const tf = await TempFile.create(dir);
    tf.writePieces(Buffer.from('new'), [[0, 3]]);
    await tf.publish(dst);
    assert.equal(readFileSync(victim, 'utf8'), 'untouched');
    assert.ok(!statSync(dst).isSymbolicLink());
    assert.equal(readFileSync(dst, 'utf8'), 'new');
  } finally {
    rmSync(dir.toString(), { recursive: true, force: true });
    rmSync(outside.toString(), { recursive: true, force: true });
  }
});

test('realpathBytes resolves links (the restorer compares it with the expected parent)', async () => {
  const dir = scratch();
  try {
    const link = Buffer.concat([dir, Buffer.from('/link')]);
    symlinkSync(os.tmpdir(), link.toString());
    assert.deepEqual(await realpathBytes(dir), dir);
    assert.deepEqual(await realpathBytes(link), Buffer.from(await import('node:fs').then((f) => f.realpathSync.native(os.tmpdir()))));
  } finally {
    rmSync(dir.toString(), { recursive: true, force: true });
  }
});

test('DirHandle: a directory replaced by a symbolic link after its handle was opened: the file lands in the directory itself, nothing outside', async (t) => {
  const root = scratch();
  const outside = scratch();
  try {
    const rootH = await DirHandle.openRoot(root);
    if (!rootH) {
      t.skip('no /proc/self/fd here: the restorer checks each parent by realpath instead');
      return;
    }
    mkdirSync(path.join(root.toString(), 'd'));
    const h = await rootH.child(Buffer.from('d'), true);
    // the attack: between the check (here, the open) and the use, d becomes a link leading outside
    renameSync(path.join(root.toString(), 'd'), path.join(root.toString(), 'moved'));
    symlinkSync(outside.toString(), path.join(root.toString(), 'd'));
    const tf = await TempFile.create(h.base);
    tf.writePieces(Buffer.from('inside'), [[0, 6]]);
    await tf.publish(h.at(Buffer.from('f')));
    assert.deepEqual(readdirSync(outside), [], 'nothing was written through the link');
    assert.equal(readFileSync(path.join(root.toString(), 'moved', 'f'), 'utf8'), 'inside');
    // and a handle is never opened through a link
    await assert.rejects(rootH.child(Buffer.from('d')), /ELOOP|ENOTDIR/);
    // messages name the directory, not the descriptor
    assert.equal(DirHandle.shown(`EACCES: open '${h.at(Buffer.from('x'))}'`), `EACCES: open '${path.join(root.toString(), 'd', 'x')}'`);
    h.unref();
    rootH.unref();
    assert.equal(DirHandle.shown(`${h.base}`), `${h.base}`, 'a closed handle is not named');
    assert.throws(() => h.ref(), /already closed/);
  } finally {
    rmSync(root.toString(), { recursive: true, force: true });
    rmSync(outside.toString(), { recursive: true, force: true });
  }
});
