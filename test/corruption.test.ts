import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import * as path from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { tmpDir, runCli, describeTree, CLI } from './helpers/tmp.js';

/**
 * Every kind of damage to every kind of repository file: detected and reported
 * by name, and never silently restored as wrong data. Each case damages a
 * fresh copy of the same pristine repository, then runs the real CLI.
 */
const env = { LIFEBOAT_PASSWORD: 'corrupt-pw' };
type Damage = 'bitflip' | 'truncate' | 'delete' | 'duplicate' | 'foreign';
type Kind = 'config' | 'keys' | 'snapshots' | 'index' | 'data';

async function files(repo: string, kind: Kind): Promise<string[]> {
  if (kind === 'config') return [path.join(repo, 'config')];
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(repo, kind), { withFileTypes: true, recursive: true })) {
    if (e.isFile() && !e.name.startsWith('.')) out.push(path.join(e.parentPath, e.name));
  }
  return out.sort();
}

async function damage(file: string, how: Damage, foreignRepo: string, kind: Kind): Promise<string> {
  const buf = await fsp.readFile(file);
  switch (how) {
    case 'bitflip':
      buf[Math.floor(buf.length / 2)]! ^= 0x04;
      await fsp.writeFile(file, buf);
      return file;
    case 'truncate':
      await fsp.writeFile(file, buf.subarray(0, Math.floor(buf.length * 0.7)));
      return file;
    case 'delete':
      await fsp.rm(file);
      return file;
    case 'duplicate': {
      // the same bytes under another (valid-looking) name
      const name = createHash('sha256').update(randomBytes(8)).digest('hex');
      const dst = kind === 'data' ? path.join(path.dirname(path.dirname(file)), name.slice(0, 2), name) : path.join(path.dirname(file), name);
      await fsp.mkdir(path.dirname(dst), { recursive: true });
      await fsp.writeFile(dst, buf);
      return dst;
    }
    case 'foreign': {
      // a file of the same kind from another repository, under this file's name
      const other = (await files(foreignRepo, kind)).sort((a, b) => a.length - b.length)[0]!;
      await fsp.copyFile(other, file);
      return file;
    }
  }
}

test('corruption matrix: every damage to every file kind is detected, named, and never restored silently', { timeout: 10 * 60_000 }, async () => {
  const t = tmpDir();
  try {
    const data = path.join(t.dir, 'data');
    await fsp.mkdir(path.join(data, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(data, 'a.bin'), randomBytes(3 * 1024 * 1024));
    await fsp.writeFile(path.join(data, 'sub/b.txt'), 'hello world\n'.repeat(20000));
    const pristine = path.join(t.dir, 'pristine');
    const foreign = path.join(t.dir, 'foreign');
    for (const r of [pristine, foreign]) {
      assert.equal((await runCli(['init', '--repo', r, '--pack-size', '1MiB'], { env })).code, 0);
      assert.equal((await runCli(['backup', '--repo', r, data], { env })).code, 0);
      await fsp.writeFile(path.join(data, 'c.bin'), randomBytes(1024 * 1024));
      assert.equal((await runCli(['backup', '--repo', r, data], { env })).code, 0);
      await fsp.rm(path.join(data, 'c.bin'));
    }
    const expected = new Map<string, Awaited<ReturnType<typeof describeTree>>>();
    const snaps = JSON.parse((await runCli(['snapshots', '--repo', pristine, '--json'], { env })).stdout) as Array<{ id: string }>;
    for (const s of snaps) {
      const out = path.join(t.dir, `expect-${s.id}`);
      assert.equal((await runCli(['restore', s.id, '--repo', pristine, '--target', out], { env })).code, 0);
      expected.set(s.id, await describeTree(path.join(out, data)));
    }

    const kinds: Kind[] = ['config', 'keys', 'snapshots', 'index', 'data'];
    const damages: Damage[] = ['bitflip', 'truncate', 'delete', 'duplicate', 'foreign'];
    let n = 0;
    for (const kind of kinds) {
      for (const how of damages) {
        if (kind === 'config' && how === 'duplicate') continue; // a single fixed name
        const repo = path.join(t.dir, `case-${n++}`);
        spawnSync('cp', ['-a', pristine, repo]);
        const victim = (await files(repo, kind))[0]!;
        const damaged = await damage(victim, how, foreign, kind);
        const name = path.basename(damaged);
        const label = `${how} ${kind}/${name.slice(0, 12)}`;
        const check = await runCli(['check', '--repo', repo, '--read-data'], { env });
        // deleting a snapshot or a key file leaves a consistent repository (that data is simply gone / that password revoked)
        const undetectable = how === 'delete' && (kind === 'snapshots' || kind === 'keys');
        if (kind === 'keys' && how !== 'duplicate') {
          // the only key is unusable: the repository cannot be opened, and says so
          assert.notEqual(check.code, 0, label);
          assert.match(check.stderr, /wrong password|key|no key files|config: authentication failed/i, label);
        } else if (kind === 'config') {
          assert.notEqual(check.code, 0, label);
          assert.match(check.stderr, /config|no Lifeboat repository/, label);
        } else if (!undetectable && !(kind === 'keys' && how === 'duplicate')) {
          assert.notEqual(check.code, 0, `${label}: check passed\n${check.stdout}`);
          if (kind === 'index' && how === 'delete') assert.match(check.stderr, /repair index/, `${label}: lost index not diagnosed`);
          else assert.ok(check.stderr.includes(name.slice(0, 8)) || check.stderr.includes(path.basename(victim).slice(0, 8)), `${label}: not named\n${check.stderr}`);
        }
        // every snapshot restores byte-identical, or the restore fails loudly
        for (const [id, tree] of expected) {
          const out = path.join(t.dir, `out-${n}-${id.slice(0, 8)}`);
          const r = await runCli(['restore', id, '--repo', repo, '--target', out], { env });
          if (r.code === 0) {
            assert.deepEqual(await describeTree(path.join(out, data)), tree, `${label}: restore of ${id.slice(0, 8)} returned wrong data`);
          } else {
            assert.match(r.stderr, /RESTORE|error|lifeboat:/, `${label}: silent failure`);
          }
          await fsp.rm(out, { recursive: true, force: true });
        }
        await fsp.rm(repo, { recursive: true, force: true });
      }
    }
  } finally {
    t.cleanup();
  }
});
void CLI;
