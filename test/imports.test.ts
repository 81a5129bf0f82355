import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Every module of the library can be the first one imported (a program using
 * Lifeboat as a library, or a test, may start anywhere). An import cycle that
 * reaches a `const` before it is initialized would only show up for some entry
 * points; this imports each module in its own process.
 */
const SRC = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');
const ENTRY_ONLY = new Set(['repo/worker.js', 'repo/decode-worker.js']); // worker thread entries: need workerData

function modules(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...modules(path.join(dir, e.name), r));
    else if (e.name.endsWith('.js') && !e.name.endsWith('.test.js') && !ENTRY_ONLY.has(r)) out.push(r);
  }
  return out;
}

function importAlone(file: string): Promise<{ file: string; code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', `await import(${JSON.stringify(file)})`], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('close', (code) => resolve({ file, code, stderr }));
  });
}

test('every module imports on its own (no initialization-order import cycles)', { timeout: 300_000 }, async () => {
  const files = modules(SRC);
  assert.ok(files.length > 50, `found ${files.length} modules`);
  const failures: string[] = [];
  const queue = [...files];
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let f = queue.shift(); f; f = queue.shift()) {
        const r = await importAlone(path.join(SRC, f));
        if (r.code !== 0) failures.push(`${f}: ${r.stderr.split('\n').find((l) => /Error/.test(l)) ?? r.stderr.slice(0, 200)}`);
      }
    }),
  );
  assert.deepEqual(failures, []);
});
