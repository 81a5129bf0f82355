import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { promises as fsp, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { tmpDir, runCli, runCliMeasured } from './helpers/tmp.js';
import { Repository } from '../src/repo/repository.js';
import { LocalStorage } from '../src/storage/local.js';
import type { TreeNode } from '../src/repo/tree.js';
import { loadConfig } from '../src/config/load.js';
import { startServer, type RunningServer } from '../src/server/server.js';

/**
 * A restore never writes outside its target and never leaves a half-written
 * file under a final name. Hostile snapshots are built with the project's own
 * writer (Repository.saveBlob/saveTree/saveSnapshot) and restored with the
 * real CLI and through the real HTTP API.
 */

const PW = 'restore-safety-pw';
const env = { LIFEBOAT_PASSWORD: PW };
let tmp: { dir: string; cleanup: () => void };
let repoDir: string;
let outside: string;

const meta = { mode: 0o644, uid: 0, gid: 0, mtime: 1_700_000_000_000 };

async function writeSnapshot(build: (repo: Repository) => Promise<TreeNode[]>): Promise<string> {
  const repo = await Repository.open(new LocalStorage(repoDir), PW);
  try {
    const nodes = await build(repo);
    const tree = await repo.saveTree({ nodes });
    await repo.flush();
    return await repo.saveSnapshot({ time: new Date().toISOString(), tree, paths: ['/hostile'], tags: [] });
  } finally {
    await repo.close();
  }
}

async function fileNode(repo: Repository, name: string, data: Buffer): Promise<TreeNode> {
  const { id } = await repo.saveBlob('data', data);
  return { name, type: 'file', ...meta, size: data.length, content: [id], sizes: [data.length] };
}

/** 200 pairs: a symlink dN -> outside, and a directory dN holding a file. */
async function symlinkDirPairs(repo: Repository): Promise<TreeNode[]> {
  const nodes: TreeNode[] = [];
  const f = await fileNode(repo, 'payload', Buffer.from('written through a link'));
  const sub = await repo.saveTree({ nodes: [f] });
  for (let i = 0; i < 200; i++) {
    nodes.push({ name: `d${i}`, type: 'symlink', ...meta, mode: 0o777, size: 0, linktarget: outside });
    nodes.push({ name: `d${i}`, type: 'dir', ...meta, mode: 0o755, size: 0, subtree: sub });
  }
  nodes.push(await fileNode(repo, 'innocent.txt', Buffer.from('ok')));
  return nodes;
}

async function outsideEntries(): Promise<string[]> {
  return fsp.readdir(outside);
}

before(async () => {
  tmp = tmpDir('lb-restore-safety-');
  repoDir = path.join(tmp.dir, 'repo');
  outside = path.join(tmp.dir, 'outside');
  await fsp.mkdir(outside);
  const r = await runCli(['init', '--repo', repoDir], { env });
  assert.equal(r.code, 0, r.stderr);
});

after(() => tmp?.cleanup());

describe('restore never writes outside its target', () => {
  test('200 symlink+directory pairs with the same name: refused as damage (exit 5), nothing outside, bounded', async () => {
    const snap = await writeSnapshot(symlinkDirPairs);
    for (let run = 0; run < 3; run++) {
      const target = path.join(tmp.dir, `pairs-${run}`);
      const r = await runCliMeasured(['restore', '--repo', repoDir, snap.slice(0, 12), '--target', target], { env, killAfterMs: 60_000 });
      assert.equal(r.killed, false, 'restore hung');
      assert.equal(r.code, 5, r.stderr);
      assert.match(r.stderr, /duplicate name "d\d+"/);
      assert.match(r.stderr, /RESTORE FAILED/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      assert.deepEqual(await outsideEntries(), [], `run ${run}: files appeared outside the target`);
      assert.ok(r.ms < 30_000, `took ${r.ms} ms`);
      assert.ok(r.peakRssMb < 1024, `peak RSS ${r.peakRssMb} MiB`);
    }
  });

  test('the same pairs one level down: the rest is restored, the damaged directory is reported, exit 5', async () => {
    const snap = await writeSnapshot(async (repo) => {
      const bad = await repo.saveTree({ nodes: await symlinkDirPairs(repo) });
      return [{ name: 'bad', type: 'dir', ...meta, mode: 0o755, size: 0, subtree: bad }, await fileNode(repo, 'good.txt', Buffer.from('good'))];
    });
    const target = path.join(tmp.dir, 'nested');
    const r = await runCliMeasured(['restore', '--repo', repoDir, snap.slice(0, 12), '--target', target], { env, killAfterMs: 60_000 });
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, /error: \/bad: .*duplicate name/);
    assert.match(r.stderr, /RESTORE INCOMPLETE/);
    assert.equal(await fsp.readFile(path.join(target, 'good.txt'), 'utf8'), 'good');
    assert.deepEqual(await outsideEntries(), []);
    assert.ok(r.ms < 30_000 && r.peakRssMb < 1024, `${r.ms} ms, ${r.peakRssMb} MiB`);
  });

  test('names that would leave the directory are rejected by the tree decoder', async () => {
    const evil: Array<Partial<TreeNode>> = [
      { name: '..' },
      { name: '.' },
      { name: '../../escape' },
      { name: 'a/b' },
      { name: 'nul\0byte' },
      { name: 'x', nameBytes: Buffer.from('..').toString('base64') }, // raw bytes that are valid UTF-8 must use `name`
      { name: 'x', nameBytes: Buffer.from([0xff, 0x2f, 0x2e, 0x2e]).toString('base64') }, // a slash inside raw bytes
      { name: 'x', nameBytes: Buffer.from([0x2e, 0x2e, 0xff, 0x00]).toString('base64') }, // NUL inside raw bytes
    ];
    for (const e of evil) {
      const snap = await writeSnapshot(async (repo) => [{ ...(await fileNode(repo, 'placeholder', Buffer.from('pwned'))), ...e } as TreeNode]);
      const target = path.join(tmp.dir, `evil-${randomBytes(4).toString('hex')}`);
      const r = await runCliMeasured(['restore', '--repo', repoDir, snap.slice(0, 12), '--target', target], { env, killAfterMs: 60_000 });
      assert.equal(r.code, 5, `${JSON.stringify(e)}: ${r.stderr}`);
      assert.match(r.stderr, /invalid node name|nameBytes/, JSON.stringify(e));
      assert.deepEqual(await fsp.readdir(target), [], JSON.stringify(e));
      assert.ok(r.ms < 30_000 && r.peakRssMb < 1024);
    }
    // a symlink and then a file below a directory of the same name as the link cannot be expressed either
    assert.deepEqual(await outsideEntries(), []);
    assert.deepEqual(await fsp.readdir(tmp.dir).then((l) => l.filter((n) => n === 'escape' || n === 'pwned')), []);
  });

  test('--overwrite into a target that already holds a symlink leading outside: the link is replaced, nothing written through it', async () => {
    const snap = await writeSnapshot(async (repo) => {
      const sub = await repo.saveTree({ nodes: [await fileNode(repo, 'inside.txt', Buffer.from('inside'))] });
      return [{ name: 'd0', type: 'dir', ...meta, mode: 0o755, size: 0, subtree: sub }, await fileNode(repo, 'f', Buffer.from('file'))];
    });
    const target = path.join(tmp.dir, 'overwrite');
    await fsp.mkdir(target);
    await fsp.symlink(outside, path.join(target, 'd0'));
    await fsp.symlink(path.join(outside, 'f-through-link'), path.join(target, 'f'));
    const r = await runCliMeasured(['restore', '--repo', repoDir, snap.slice(0, 12), '--target', target, '--overwrite'], { env, killAfterMs: 60_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await outsideEntries(), []);
    assert.ok((await fsp.lstat(path.join(target, 'd0'))).isDirectory());
    assert.equal(await fsp.readFile(path.join(target, 'd0', 'inside.txt'), 'utf8'), 'inside');
    assert.ok((await fsp.lstat(path.join(target, 'f'))).isFile());
  });
});

describe('nothing half-written under a final name', () => {
  test('restore onto a full disk (4 MiB tmpfs): non-zero exit, a clear message, no partial file and no temporary file left', async (t) => {
    const src = path.join(tmp.dir, 'disk-src');
    await fsp.mkdir(src);
    await fsp.writeFile(path.join(src, 'big.bin'), randomBytes(8 * 1024 * 1024));
    await fsp.writeFile(path.join(src, 'small.txt'), 'small');
    const b = await runCli(['backup', '--repo', repoDir, src], { env });
    assert.equal(b.code, 0, b.stderr);
    const mnt = path.join(tmp.dir, 'full');
    await fsp.mkdir(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', mnt], { encoding: 'utf8', timeout: 10_000 });
    if (m.status !== 0) {
      t.skip(`cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); the full-disk case needs root and mount permission`);
      return;
    }
    try {
      const r = await runCliMeasured(['restore', '--repo', repoDir, 'latest:' + src, '--target', mnt], { env, killAfterMs: 60_000 });
      assert.notEqual(r.code, 0, r.stderr);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /big\.bin: no space left on device \(ENOSPC\)/);
      assert.match(r.stderr, /RESTORE INCOMPLETE/);
      const left = await fsp.readdir(mnt);
      assert.ok(!left.includes('big.bin'), `partial file left under its final name: ${left}`);
      assert.deepEqual(left.filter((n) => n.startsWith('.lifeboat')), [], `temporary files left: ${left}`);
      // small.txt is written while big.bin's temporary file may fill the disk: it is then either restored whole
      // or named with its own ENOSPC (never half-written, never silently missing)
      if (left.includes('small.txt')) assert.equal(await fsp.readFile(path.join(mnt, 'small.txt'), 'utf8'), 'small');
      else assert.match(r.stderr, /small\.txt: .*(ENOSPC|no space left)/i);
    } finally {
      execFileSync('umount', [mnt], { timeout: 10_000 });
    }
  });
});

describe('the API restore uses the same safe restorer', () => {
  let srv: RunningServer | undefined;
  after(async () => srv?.close());

  test('hostile snapshot through POST /api/v1/restore: the task fails with the damage named, nothing outside', async () => {
    const snap = await writeSnapshot(symlinkDirPairs);
    const roots = path.join(tmp.dir, 'restores');
    await fsp.mkdir(roots);
    writeFileSync(path.join(tmp.dir, 'repo.pw'), PW + '\n');
    const cfgFile = path.join(tmp.dir, 'lifeboat.yaml');
    writeFileSync(cfgFile, `daemon: {}\nrepositories:\n  local: { location: ./repo, password: { file: ./repo.pw } }\nserver:\n  restoreRoots: [./restores]\n`);
    const tok = await runCli(['-c', cfgFile, 'token', 'create', 'safety-operator', '--role', 'operator'], { env: { LIFEBOAT_PASSWORD: undefined } });
    assert.equal(tok.code, 0, tok.stderr);
    srv = await startServer(loadConfig(cfgFile), { listen: '127.0.0.1:0' });
    const target = path.join(roots, 'hostile');
    const headers = { authorization: `Bearer ${tok.stdout.trim()}`, 'content-type': 'application/json' };
    const res = await fetch(`${srv.url}/api/v1/restore`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ type: 'files', repository: 'local', snapshot: snap, target, confirm: target }),
    });
    assert.equal(res.status, 202, await res.clone().text());
    const { id } = (await res.json()) as { id: number };
    const deadline = Date.now() + 30_000;
    let task: { status: string; error?: string };
    for (;;) {
      task = (await (await fetch(`${srv.url}/api/v1/tasks/${id}`, { headers })).json()) as typeof task;
      if (task.status !== 'running' || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(task.status, 'failed', JSON.stringify(task));
    assert.match(task.error ?? '', /duplicate name/);
    assert.deepEqual(await outsideEntries(), []);
  });
});

describe('a dashboard download of a hostile file node', () => {
  test('content shorter than the recorded size (no holes) fails instead of padding with zeros', async () => {
    const { fileBytes } = await import('../src/server/snapshots.js');
    const repo = await Repository.open(new LocalStorage(repoDir), PW);
    try {
      const node = await fileNode(repo, 'short', Buffer.from('ten bytes!'));
      node.size = 1 << 30; // the tree claims 1 GiB
      await repo.flush();
      let sent = 0;
      await assert.rejects(
        (async () => {
          for await (const b of fileBytes(repo, node)) sent += b.length;
        })(),
        /content is 10 bytes, the snapshot records 1073741824/,
      );
      assert.equal(sent, 10, 'no zeros were sent in place of missing content');
      // a recorded trailing hole is padded (a sparse file), exactly to the size
      const sparse = { ...(await fileNode(repo, 'sparse', Buffer.from('data'))), size: 100_000, holes: [[4, 99_996]] as Array<[number, number]> };
      await repo.flush();
      let total = 0;
      for await (const b of fileBytes(repo, sparse)) total += b.length;
      assert.equal(total, 100_000);
    } finally {
      await repo.close();
    }
  });
});
