import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { tmpDir, makeTree, describeTree, runCli, Rng, textBytes } from './helpers/tmp.js';

test('copy to a second repository; restore from the copy after deleting the primary', async () => {
  const t = tmpDir();
  try {
    const primary = path.join(t.dir, 'primary');
    const second = path.join(t.dir, 'second');
    const data = path.join(t.dir, 'data');
    const pwFile = path.join(t.dir, 'primary.pw');
    await fsp.writeFile(pwFile, 'primary-pw\n');
    await makeTree(data, { files: 200, seed: 31 });
    // repeated chunks inside one file (20 MiB of zeros: the same 8 MiB chunk twice)
    await fsp.writeFile(path.join(data, 'zeros.bin'), Buffer.alloc(20 * 1024 * 1024));
    const p = { LIFEBOAT_PASSWORD: 'primary-pw' };
    const s = { LIFEBOAT_PASSWORD: 'second-pw' };
    assert.equal((await runCli(['init', '--repo', primary], { env: p })).code, 0);
    assert.equal((await runCli(['init', '--repo', second], { env: s })).code, 0);
    assert.equal((await runCli(['backup', '--repo', primary, data], { env: p })).code, 0);
    // three versions of a dump: deltas in the primary should stay deltas in the copy
    const rng = new Rng(5);
    const lines = textBytes(6 * 1024 * 1024, rng).toString().split('\n');
    const dumps: Buffer[] = [];
    for (let v = 0; v < 3; v++) {
      if (v) for (let i = v; i < lines.length; i += 100) lines[i] = `changed ${v} ${i}`;
      const d = Buffer.from(lines.join('\n'));
      dumps.push(d);
      const r = await runCli(['backup', '--repo', primary, '--stdin', '--stdin-filename', 'db.sql'], { env: p, input: d });
      assert.equal(r.code, 0, r.stderr);
    }
    let r = await runCli(['copy', '--repo', second, '--from-repo', primary, '--from-password-file', pwFile, '--json'], { env: s });
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(res.copied.length, 4);
    // idempotent
    r = await runCli(['copy', '--repo', second, '--from-repo', primary, '--from-password-file', pwFile, '--json'], { env: s });
    assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!).skipped.length, 4);
    // deltas preserved: the copy is not much bigger than the primary
    const st = async (repo: string, env: Record<string, string>) => JSON.parse((await runCli(['stats', '--repo', repo, '--json'], { env })).stdout);
    const a = await st(primary, p);
    const b = await st(second, s);
    assert.ok(b.delta_blobs > 0, 'copy stored no deltas');
    assert.ok(b.stored_size < a.stored_size * 1.2, `copy ${b.stored_size} vs primary ${a.stored_size}`);

    await fsp.rm(primary, { recursive: true });
    r = await runCli(['check', '--repo', second, '--read-data'], { env: s });
    assert.equal(r.code, 0, r.stderr);
    const out = path.join(t.dir, 'out');
    r = await runCli(['restore', 'latest', '--path', data, '--repo', second, '--target', out], { env: s });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await describeTree(path.join(out, data)), await describeTree(data));
    const snaps = JSON.parse((await runCli(['snapshots', '--repo', second, '--json'], { env: s })).stdout) as Array<{ id: string; paths: string[] }>;
    const dumpSnaps = snaps.filter((x) => x.paths[0] === '/db.sql');
    for (let v = 0; v < 3; v++) {
      const { spawnSync } = await import('node:child_process');
      const { CLI } = await import('./helpers/tmp.js');
      const c = spawnSync(process.execPath, [CLI, 'restore', dumpSnaps[v]!.id, '--repo', second, '--stdout'], { env: { ...process.env, ...s }, maxBuffer: 64 << 20 });
      assert.equal(c.status, 0, c.stderr.toString());
      assert.ok(Buffer.from(c.stdout).equals(dumps[v]!), `dump version ${v}`);
    }
  } finally {
    t.cleanup();
  }
});
