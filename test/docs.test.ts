import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig } from '../src/config/load.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

test('every example config and every lifeboat.yaml snippet in the README is valid', () => {
  for (const f of readdirSync(path.join(ROOT, 'examples')).filter((f) => f.endsWith('.yaml'))) {
    assert.doesNotThrow(() => loadConfig(path.join(ROOT, 'examples', f)), `examples/${f}`);
  }
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
  assert.ok(blocks.length >= 2);
  for (const b of blocks) {
    const text = b.includes('repositories:') ? b : `repositories:\n  local: { location: /tmp/x }\n${b}`;
    assert.doesNotThrow(() => parseConfig(text, 'README.md'), b.slice(0, 80));
  }
});

test('defaults of omitted sections are filled in (daemon: catalog, listen, concurrency)', () => {
  const cfg = parseConfig('repositories:\n  local: { location: /tmp/x }\n', 'min.yaml');
  assert.equal(cfg.daemon.catalog, '.lifeboat/catalog.db');
  assert.equal(cfg.daemon.listen, '127.0.0.1:9187');
  assert.equal(cfg.daemon.concurrency, 2);
  assert.deepEqual(cfg.services, {});
});
