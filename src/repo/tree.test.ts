import assert from 'node:assert/strict';
import { test } from 'node:test';
import { IntegrityError } from '../errors.js';
import { decodeTree } from './tree.js';

/** A tree blob of empty files with these names (a string: `name`; raw bytes: `nameBytes`, as a tree stores a name that is not UTF-8). */
function treeOf(names: Array<string | Buffer>): Buffer {
  const nodes = names.map((n) => ({
    name: typeof n === 'string' ? n : 'shown',
    ...(typeof n === 'string' ? {} : { nameBytes: n.toString('base64') }),
    type: 'file',
    mode: 0o644,
    mtime: 1_700_000_000_000,
    size: 0,
    uid: 0,
    gid: 0,
    content: [],
  }));
  return Buffer.from(JSON.stringify({ v: 2, nodes }));
}

const refused = (names: Array<string | Buffer>, re: RegExp) =>
  assert.throws(() => decodeTree(treeOf(names), 't'), (e: unknown) => e instanceof IntegrityError && re.test(e.message), JSON.stringify(names.map(String)));

test('decodeTree: names that are not one path component of 1-4096 bytes are refused', () => {
  for (const bad of ['', '.', '..', 'a/b', '/', 'nul\0byte', '\0', 'x'.repeat(4097), 'é'.repeat(2049), '\u{1F600}'.repeat(1025), '€'.repeat(1366)]) {
    refused([bad], /invalid node name/);
  }
  for (const bad of [Buffer.from([0xff, 0x2f]), Buffer.from([0x00, 0xff]), Buffer.alloc(4097, 0xff)]) refused([bad], /invalid node name/);
  // at the limit, and names that only look like the refused ones
  const ok = ['x'.repeat(4096), 'é'.repeat(2048), '\u{1F600}'.repeat(1024), '€'.repeat(1365), '...', '.a', 'a.', '. ', 'a\\b', 'a\uD800'];
  const t = decodeTree(treeOf(ok), 't');
  assert.deepEqual(
    t.nodes.map((n) => n.name),
    ok,
  );
  assert.equal(decodeTree(treeOf([Buffer.alloc(4096, 0xff)]), 't').nodes.length, 1);
});

test('decodeTree: two names with the same bytes are one name, whichever way they are stored', () => {
  refused(['a', 'b', 'a'], /duplicate name "a"/);
  refused([Buffer.from([0xe9]), Buffer.from([0xe9])], /duplicate name/);
  // a lone surrogate is written as U+FFFD's bytes (EF BF BD): the same name as U+FFFD itself
  assert.equal(Buffer.from('a\uD800').equals(Buffer.from('a\uFFFD')), true);
  refused(['a\uD800', 'a\uFFFD'], /duplicate name/);
  refused(['a\uFFFD', 'a\uDC00'], /duplicate name/);
  refused(['\uD800x', '\uDBFFx'], /duplicate name/);
  // a surrogate pair is one character, not two lone ones
  assert.equal(decodeTree(treeOf(['\u{1F600}', '\uFFFD\uFFFD', '\uD83D']), 't').nodes.length, 3);
});

test('decodeTree: a raw name and a string name with different bytes are two names', () => {
  // the raw byte E9 ("é" in latin1) and the string "é" (C3 A9): different bytes, two files
  const t = decodeTree(treeOf([Buffer.from([0xe9]), 'é', Buffer.from([0xc3, 0xff]), 'Ã\u00ff']), 't');
  assert.equal(t.nodes.length, 4);
  assert.deepEqual(
    t.nodes.filter((n) => n.nameBytes !== undefined).map((n) => Buffer.from(n.nameBytes!, 'base64').toString('hex')),
    ['e9', 'c3ff'],
  );
  // raw bytes that are valid UTF-8 must be stored as a string
  refused([Buffer.from('é')], /is valid UTF-8/);
});
