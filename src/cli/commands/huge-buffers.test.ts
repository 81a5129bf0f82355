import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { requireAddon } from '../../util/native.js';

/**
 * Which commands make their large buffers in huge pages (util/huge-buffer.ts): a files restore read
 * through the C codec, not a stream restore, a backup, a restore through the decode worker
 * (LIFEBOAT_NATIVE_READ=0: Node does not transfer such buffers to a worker) or LIFEBOAT_HUGE_BUFFERS=0.
 * Each is a real command in a child process with a probe preloaded that asks at exit whether
 * largeBuffer() makes one (the same module instance as the command's). The restored tree is compared too.
 */
const skip = typeof requireAddon<{ hugeBuffer?: unknown }>('mem')?.hugeBuffer === 'function' && requireAddon('codec') ? false : 'native/mem.c or codec.c did not build';
const main = new URL('../main.js', import.meta.url).pathname;
const huge = new URL('../../util/huge-buffer.js', import.meta.url).href;

test('a files restore through the C codec makes its large buffers in huge pages; stream restores, backups, the decode worker and LIFEBOAT_HUGE_BUFFERS=0 do not', { skip }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lb-huge-buffers-'));
  try {
    const env = { ...process.env, LIFEBOAT_PASSWORD: 'pw', LIFEBOAT_TEST_SCRYPT_N: '1024', LIFEBOAT_HUGE_BUFFERS: '', LIFEBOAT_NATIVE_READ: '' };
    const repo = path.join(dir, 'repo');
    const src = path.join(dir, 'src');
    mkdirSync(src);
    // chunks of 1 MiB and more (random: nothing compresses), and small files
    const big = Buffer.alloc(6 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
    writeFileSync(path.join(src, 'big.bin'), big);
    for (let i = 0; i < 20; i++) writeFileSync(path.join(src, `f${i}.txt`), `file ${i}\n`.repeat(100 + i));
    execFileSync(process.execPath, [main, 'init', '-q', '-r', repo], { env });
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, '--tag', 'files', src], { env });
    execFileSync(process.execPath, [main, 'backup', '-q', '-r', repo, '--tag', 'stream', '--stdin', '--stdin-filename', 'dump.sql'], { env, input: big });
    const probe = path.join(dir, 'probe.mjs');
    const out = path.join(dir, 'probe.json');
    writeFileSync(
      probe,
      `import { writeFileSync } from 'node:fs';
import { largeBuffer } from ${JSON.stringify(huge)};
process.on('exit', () => writeFileSync(${JSON.stringify(out)}, JSON.stringify({ huge: largeBuffer(3 * 1024 * 1024) !== undefined })));
`,
    );
    let n = 0;
    const hugeIn = (args: string[], extra: NodeJS.ProcessEnv = {}): boolean => {
      rmSync(out, { force: true });
      execFileSync(process.execPath, ['--import', probe, main, ...args], { env: { ...env, ...extra } });
      return (JSON.parse(readFileSync(out, 'utf8')) as { huge: boolean }).huge;
    };
    const restore = (tag: string) => {
      const target = path.join(dir, `out${n++}`);
      return { args: ['restore', 'latest', '-q', '-r', repo, '--tag', tag, '--target', target], target };
    };
    const files = restore('files');
    assert.equal(hugeIn(files.args), true, 'a files restore: on');
    const back = path.join(files.target, src);
    assert.ok(readFileSync(path.join(back, 'big.bin')).equals(big), 'restored as it was');
    for (let i = 0; i < 20; i++) assert.equal(readFileSync(path.join(back, `f${i}.txt`), 'utf8'), `file ${i}\n`.repeat(100 + i));
    assert.equal(hugeIn(restore('files').args, { LIFEBOAT_HUGE_BUFFERS: '0' }), false, 'LIFEBOAT_HUGE_BUFFERS=0: off');
    const viaWorker = restore('files');
    assert.equal(hugeIn(viaWorker.args, { LIFEBOAT_NATIVE_READ: '0' }), false, 'through the decode worker: off');
    assert.ok(readFileSync(path.join(viaWorker.target, src, 'big.bin')).equals(big));
    assert.equal(hugeIn(restore('stream').args), false, 'a stream restore: off');
    assert.equal(hugeIn(['backup', '-q', '-r', repo, src]), false, 'a backup: off');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
