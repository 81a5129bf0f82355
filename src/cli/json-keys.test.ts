import { test } from 'node:test';
import assert from 'node:assert/strict';
import { snakeCase, snakeKeys } from './json-keys.js';

test('snakeCase: camelCase field names to snake_case; other keys unchanged', () => {
  assert.equal(snakeCase('filesNew'), 'files_new');
  assert.equal(snakeCase('throughputBytesPerSec'), 'throughput_bytes_per_sec');
  assert.equal(snakeCase('snapshotID'), 'snapshot_id');
  assert.equal(snakeCase('sha256'), 'sha256');
  assert.equal(snakeCase('message_type'), 'message_type');
  assert.equal(snakeCase('SELECT count(*) FROM people'), 'SELECT count(*) FROM people');
  assert.equal(snakeCase('repo:main'), 'repo:main');
});

test('snakeKeys: nested objects and arrays, Dates as strings, data-keyed maps kept as they are', () => {
  const doc = {
    snapshotId: 'abc',
    summary: { filesNew: 1, dataAdded: 2 },
    copies: [{ snapshotId: 'x', repository: 'second' }],
    startedAt: new Date(0),
    jobs: { myJob: 'ok' },
    source: { serverVersion: '16', verificationErrors: { 'SELECT countFails': 'boom' }, verification: { myQuery: '1' } },
    nothing: null,
  };
  assert.deepEqual(snakeKeys(doc), {
    snapshot_id: 'abc',
    summary: { files_new: 1, data_added: 2 },
    copies: [{ snapshot_id: 'x', repository: 'second' }],
    started_at: '1970-01-01T00:00:00.000Z',
    jobs: { myJob: 'ok' },
    source: { server_version: '16', verification_errors: { 'SELECT countFails': 'boom' }, verification: { myQuery: '1' } },
    nothing: null,
  });
});
