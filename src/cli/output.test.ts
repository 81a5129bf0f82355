import { test } from 'node:test';
import assert from 'node:assert/strict';
import { makeOutput } from './output.js';

/** Items of ~60 characters each: 5,000 make ~300 kB of JSON, several of list()'s 64 KiB pieces. */
async function* items(n: number, seen: { writesBeforeEnd: number }, writes: string[]): AsyncGenerator<{ fileName: string; i: number }> {
  for (let i = 0; i < n; i++) {
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    yield { fileName: `file-${'x'.repeat(40)}-${i}`, i };
  }
  seen.writesBeforeEnd = writes.length;
}

test('Output.list writes a listing as it is produced: the JSON array emit() would write, lines, or nothing with --quiet', async () => {
  const expected = Array.from({ length: 5000 }, (_, i) => ({ file_name: `file-${'x'.repeat(40)}-${i}`, i }));
  for (const mode of ['json', 'lines', 'quiet'] as const) {
    const writes: string[] = [];
    const out = makeOutput({ json: mode === 'json', quiet: mode === 'quiet', write: (t) => writes.push(t) });
    const seen = { writesBeforeEnd: 0 };
    const n = await out.list(items(5000, seen, writes), (it) => `${it.i} ${it.fileName}`);
    assert.equal(n, 5000, mode);
    const text = writes.join('');
    if (mode === 'quiet') {
      assert.equal(text, '');
      continue;
    }
    // written in pieces while the items were still coming, not held whole
    assert.ok(seen.writesBeforeEnd >= 3, `${mode}: ${seen.writesBeforeEnd} writes before the last item`);
    assert.ok(writes.every((w) => w.length < 64 * 1024 + 200), `${mode}: pieces of about 64 KiB`);
    if (mode === 'json') {
      assert.ok(text.endsWith(']\n'));
      assert.deepEqual(JSON.parse(text), expected);
    } else {
      const ls = text.split('\n');
      assert.equal(ls.length, 5001);
      assert.equal(ls[4999], `4999 file-${'x'.repeat(40)}-4999`);
    }
  }
  // an empty listing: "[]" (as emit([]) wrote), or nothing
  const writes: string[] = [];
  assert.equal(await makeOutput({ json: true, write: (t) => writes.push(t) }).list([], () => ''), 0);
  assert.equal(writes.join(''), '[]\n');
});
