import { test } from 'node:test';
import assert from 'node:assert/strict';
import { walFastCommand } from './wal-command.js';

const argv = (...a: string[]) => ['node', 'main.js', ...a];

test('walFastCommand: the WAL commands with the options it knows before or after them', () => {
  assert.equal(walFastCommand(argv('wal-push', 'pg_wal/X', '-r', '/srv/repo')), 'wal-push');
  assert.equal(walFastCommand(argv('-r', '/srv/repo', 'wal-push', 'pg_wal/X')), 'wal-push');
  assert.equal(walFastCommand(argv('--repo=/srv/repo', '-p', '/etc/pw', '--json', 'wal-fetch', 'X', 'dest')), 'wal-fetch');
  assert.equal(walFastCommand(argv('-r/srv/repo', '-p/etc/pw', '-q', '--retry-lock', '30s', 'wal-push', 'X')), 'wal-push');
  assert.equal(walFastCommand(argv('--password-command', 'cat pw', 'wal-spool-worker', 'push', '/spool')), 'wal-spool-worker');
  // a value that looks like a command is the option's value, not the command
  assert.equal(walFastCommand(argv('-r', 'wal-push', 'backup', 'wal-push')), undefined);
});

test('walFastCommand: anything else is left to the full CLI', () => {
  assert.equal(walFastCommand(argv()), undefined);
  assert.equal(walFastCommand(argv('backup', 'wal-push')), undefined);
  assert.equal(walFastCommand(argv('-r', '/srv/repo', 'snapshots')), undefined);
  // an option this parser does not take, before the command: the full CLI (config, limits, locks)
  assert.equal(walFastCommand(argv('-c', 'lifeboat.yaml', 'wal-push', 'X')), undefined);
  assert.equal(walFastCommand(argv('--limit-upload', '100', 'wal-push', 'X')), undefined);
  assert.equal(walFastCommand(argv('--no-lock', 'wal-fetch', 'X', 'dest')), undefined);
  assert.equal(walFastCommand(argv('-qr', '/srv/repo', 'wal-push', 'X')), undefined);
  assert.equal(walFastCommand(argv('-r')), undefined);
});
