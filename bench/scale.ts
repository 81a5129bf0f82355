/**
 * How cost grows with the number of files and blobs (issue 18, "Scale").
 *
 *   npm run bench:scale -- [--files 100000] [--blobs 1000000] [--snapshots 20] [--reps 1] [--dir /tmp/lifeboat-scale] [--only files|blobs]
 *
 * (a) N tiny files (1–4 KB each, seeded, in a nested tree of 100 files per
 *     directory): first backup, unchanged re-backup and full restore, Lifeboat
 *     and restic: wall time, CPU seconds (user + system) and peak RSS.
 * (b) A repository of many blobs, generated through the repository layer:
 *     --snapshots snapshots, each referencing its own --blobs/--snapshots small
 *     unique data blobs (one index file and consecutive packs per snapshot).
 *     Steps: open (list snapshots: loads the index), backup of a small change,
 *     check, forget 10% of the snapshots (the oldest) and prune. Reported as
 *     time, peak RSS, and RSS above the same step on an empty repository per blob.
 * --no-restic skips restic (e.g. to re-measure Lifeboat alone).
 * --cache <dir> keeps the generated blob repository there and reuses it (the steps run on a copy);
 * --generate-only (with --cache) only generates it.
 * Results of the last run: bench/results/scale-last.md and scale-last.json (bench/results/scale.md is the
 * before/after record of issue 18). The full runs of the issue are
 * --files 1000000 and --blobs 10000000 (hours of CPU on a small machine).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalStorage } from '../src/storage/local.js';
import { Repository } from '../src/repo/repository.js';
import { seal } from '../src/repo/crypto.js';
import type { IndexFilePack } from '../src/repo/index.js';
import { PackWriter } from '../src/repo/pack.js';
import type { TreeNode } from '../src/repo/tree.js';
import { MB, type Measure, benchEnv, du, has, median, timed, writeFile } from './util.js';

const args = process.argv.slice(2);
const opt = (name: string, def: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1]! : def;
};
const FILES = Number(opt('files', '100000'));
const BLOBS = Number(opt('blobs', '1000000'));
const SNAPS = Number(opt('snapshots', '20'));
const REPS = Number(opt('reps', '1'));
const ONLY = opt('only', '');
const DIR = opt('dir', '/tmp/lifeboat-scale');
/** Keep the generated blob repository here and reuse it on the next run (steps run on a copy). */
const CACHE = opt('cache', '');
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = path.resolve(ROOT, process.env.LIFEBOAT_CLI ?? 'dist/src/cli/main.js');
const LB = `node ${CLI}`;

/** xorshift32-filled bytes: cheap, seeded, incompressible enough to defeat dedup. */
function seededBytes(seed: number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n + 3);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i += 4) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    b.writeUInt32LE(s, i);
  }
  return b.subarray(0, n);
}

function makeTinyFiles(dir: string, n: number): number {
  rmSync(dir, { recursive: true, force: true });
  let total = 0;
  for (let i = 0; i < n; i++) {
    const size = 1024 + ((i * 7919) % 3073); // 1–4 KB
    // half text-like (compressible), half random
    const data = i % 2 ? Buffer.from(`file ${i} `.repeat(Math.ceil(size / 8)).slice(0, size)) : seededBytes(i + 1, size);
    writeFile(path.join(dir, `d${Math.floor(i / 10000)}`, `e${Math.floor(i / 100) % 100}`, `f${i}`), data);
    total += size;
  }
  return total;
}

type Row = { step: string; tool: string; ms: number; cpuS: number; rssMb: number; perItem?: number; note?: string };
const rows: Row[] = [];

function record(step: string, tool: string, ms: Measure[], extra: Partial<Row> = {}): Row {
  const r: Row = {
    step,
    tool,
    ms: median(ms.map((m) => m.ms)),
    cpuS: median(ms.map((m) => m.cpuS)),
    rssMb: median(ms.map((m) => m.rssKb / 1024)),
    ...extra,
  };
  rows.push(r);
  process.stderr.write(`${step} / ${tool}: ${(r.ms / 1000).toFixed(1)} s, ${r.cpuS.toFixed(1)} CPU-s, ${r.rssMb.toFixed(0)} MB\n`);
  return r;
}

function benchFiles(): void {
  const data = path.join(DIR, 'files');
  const total = makeTinyFiles(data, FILES);
  process.stderr.write(`tiny files: ${FILES} files, ${(total / MB).toFixed(0)} MB\n`);
  const tools = [
    {
      name: 'lifeboat',
      init: (r: string) => `${LB} init -q --repo ${r}`,
      backup: (r: string) => `${LB} backup -q --repo ${r} ${data}`,
      restore: (r: string, t: string) => `${LB} restore latest -q --repo ${r} --target ${t}`,
    },
    ...(has('restic') && !args.includes('--no-restic')
      ? [
          {
            name: 'restic',
            init: (r: string) => `restic init -q -r ${r} --repository-version 2`,
            backup: (r: string) => `restic -q -r ${r} backup --compression auto ${data}`,
            restore: (r: string, t: string) => `restic -q -r ${r} restore latest --target ${t}`,
          },
        ]
      : []),
  ];
  for (const t of tools) {
    const m: Measure[][] = [[], [], []];
    for (let rep = 0; rep < REPS; rep++) {
      const repo = path.join(DIR, `repo-${t.name}`);
      const target = path.join(DIR, 'restore');
      rmSync(repo, { recursive: true, force: true });
      rmSync(target, { recursive: true, force: true });
      spawnSync('sh', ['-c', t.init(repo)], { env: benchEnv, stdio: 'ignore' });
      m[0]!.push(timed(t.backup(repo)));
      m[1]!.push(timed(t.backup(repo)));
      m[2]!.push(timed(t.restore(repo, target)));
      rmSync(target, { recursive: true, force: true });
      rmSync(repo, { recursive: true, force: true });
    }
    record(`${FILES} files: first backup`, t.name, m[0]!);
    record(`${FILES} files: unchanged re-backup`, t.name, m[1]!);
    record(`${FILES} files: restore`, t.name, m[2]!);
  }
  rmSync(data, { recursive: true, force: true });
}

/**
 * A repository of `blobs` small unique data blobs in `snaps` snapshots, written
 * through the repository layer's pack writer: data blobs are sealed here
 * (incompressible seeded bytes: stored uncompressed, as saveBlob would store
 * them) and written in packs of the repository's pack size, with an index file
 * every 50,000 blobs (as a backup publishes them); trees go through saveTree.
 * Several times faster than saveBlob per blob (no per-blob promise and worker
 * message), which makes the 10,000,000-blob case practical.
 */
async function makeBlobRepo(dir: string, blobs: number, snaps: number): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  const repo = await Repository.init(new LocalStorage(dir), 'bench');
  const encKey = repo.key.encKey;
  const per = Math.ceil(blobs / snaps);
  let writer = new PackWriter();
  let packs: IndexFilePack[] = [];
  let unindexed = 0;
  const flushPack = async () => {
    if (writer.count === 0) return;
    const { id, data, blobs: entries } = writer.finalize(encKey);
    writer = new PackWriter();
    await repo.storage.save('data', id, data);
    packs.push({ id, blobs: entries });
  };
  const flushIndex = async () => {
    await flushPack();
    if (packs.length) await repo.writeIndexFile(packs);
    packs = [];
    unindexed = 0;
  };
  let j = 0;
  for (let s = 0; s < snaps; s++) {
    const dirs: TreeNode[] = [];
    let files: TreeNode[] = [];
    const flushDir = async () => {
      if (!files.length) return;
      const subtree = await repo.saveTree({ nodes: files });
      dirs.push({ name: `d${dirs.length}`, type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0, size: 0, subtree });
      files = [];
    };
    let content: string[] = [];
    let sizes: number[] = [];
    for (let k = 0; k < per && j < blobs; k++, j++) {
      const data = seededBytes(j + 1, 64 + (j % 64));
      const id = repo.blobId(data);
      writer.add({ id, type: 'data', rawLength: data.length, compression: 0 }, seal(encKey, data));
      if (writer.size >= repo.config.packSize) await flushPack();
      if (++unindexed >= 50_000) await flushIndex();
      content.push(id);
      sizes.push(data.length);
      if (content.length === 100 || k === per - 1 || j === blobs - 1) {
        files.push({ name: `f${files.length}`, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, size: sizes.reduce((a, b) => a + b, 0), content, sizes });
        content = [];
        sizes = [];
        if (files.length === 100) await flushDir();
      }
    }
    await flushIndex();
    await flushDir();
    const tree = await repo.saveTree({ nodes: dirs });
    await repo.flush();
    await repo.saveSnapshot({ time: new Date(Date.UTC(2026, 0, 1 + s)).toISOString(), tree, paths: ['/synthetic'], tags: [] });
    process.stderr.write(`\rsynthetic repository: ${j}/${blobs} blobs`);
  }
  process.stderr.write('\n');
  await repo.close();
}

async function benchBlobs(): Promise<void> {
  const small = path.join(DIR, 'small');
  rmSync(small, { recursive: true, force: true });
  for (let i = 0; i < 10; i++) writeFile(path.join(small, `f${i}`), seededBytes(1e9 + i, 10_000));
  const steps = (repo: string, small: string) => {
    const out: Array<[string, Measure]> = [];
    out.push(['open (list snapshots)', timed(`${LB} snapshots -q --repo ${repo}`)]);
    out.push(['backup of a small change', timed(`${LB} backup -q --repo ${repo} ${small}`)]);
    out.push(['check', timed(`${LB} check -q --repo ${repo}`)]);
    const ids = (JSON.parse(spawnSync('sh', ['-c', `${LB} snapshots --json --repo ${repo}`], { env: benchEnv }).stdout.toString()) as Array<{ id: string; time: string }>)
      .sort((a, b) => a.time.localeCompare(b.time))
      .map((s) => s.id);
    const forget = ids.slice(0, Math.max(1, Math.round(ids.length / 10)));
    timed(`${LB} forget -q --repo ${repo} ${forget.join(' ')}`);
    out.push(['prune after forgetting 10% of snapshots', timed(`${LB} prune -q --repo ${repo}`)]);
    return out;
  };
  // Baseline: the same steps on a tiny repository (what does not grow with blobs).
  const base = path.join(DIR, 'repo-base');
  if (args.includes('--generate-only')) {
    if (!CACHE) throw new Error('--generate-only needs --cache <dir>');
    return benchBlobsMain(new Map(), steps, small);
  }
  await makeBlobRepo(base, 100, 10);
  const baseline = new Map(steps(base, small).map(([s, m]) => [s, m.rssKb / 1024]));
  rmSync(base, { recursive: true, force: true });
  return benchBlobsMain(baseline, steps, small);
}

async function benchBlobsMain(baseline: Map<string, number>, steps: (repo: string, small: string) => Array<[string, Measure]>, small: string): Promise<void> {
  const all = new Map<string, Measure[]>();
  for (let rep = 0; rep < REPS; rep++) {
    const repo = path.join(DIR, 'repo-blobs');
    if (CACHE) {
      const cached = path.join(CACHE, `blobs-${BLOBS}-${SNAPS}`);
      if (!existsSync(path.join(cached, '.complete'))) {
        const t0 = Date.now();
        await makeBlobRepo(cached, BLOBS, SNAPS);
        writeFileSync(path.join(cached, '.complete'), `${Date.now() - t0} ms\n`);
      }
      if (args.includes('--generate-only')) return;
      rmSync(repo, { recursive: true, force: true });
      cpSync(cached, repo, { recursive: true, filter: (src) => !src.endsWith('.complete') });
    } else {
      const t0 = Date.now();
      await makeBlobRepo(repo, BLOBS, SNAPS);
      process.stderr.write(`generated in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
    }
    process.stderr.write(`repository: ${(du(repo) / MB).toFixed(0)} MB\n`);
    for (const [s, m] of steps(repo, small)) (all.get(s) ?? all.set(s, []).get(s)!).push(m);
    rmSync(repo, { recursive: true, force: true });
  }
  for (const [s, ms] of all) {
    const r = record(`${BLOBS} blobs: ${s}`, 'lifeboat', ms);
    if (!baseline.has(s)) continue;
    r.perItem = ((r.rssMb - baseline.get(s)!) * 1024 * 1024) / BLOBS;
    r.note = `baseline ${baseline.get(s)!.toFixed(0)} MB`;
  }
  rmSync(small, { recursive: true, force: true });
}

async function main(): Promise<void> {
  if (!has('/usr/bin/time')) throw new Error('GNU time is missing: run bash bench/setup.sh');
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  if (ONLY !== 'blobs') benchFiles();
  if (ONLY !== 'files') await benchBlobs();
  if (args.includes('--generate-only')) return;
  const lines = [
    '# Scale benchmark',
    '',
    `${new Date().toISOString()} · ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}) · median of ${REPS} rep(s)`,
    `Command: \`npm run bench:scale -- --files ${FILES} --blobs ${BLOBS} --snapshots ${SNAPS} --reps ${REPS}${ONLY ? ` --only ${ONLY}` : ''}\``,
    '',
    '| step | tool | wall s | CPU s (user+sys) | peak RSS MB | RSS above baseline per blob |',
    '|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.step} | ${r.tool} | ${(r.ms / 1000).toFixed(2)} | ${r.cpuS.toFixed(2)} | ${r.rssMb.toFixed(0)} | ${r.perItem === undefined ? '' : `${r.perItem.toFixed(0)} B (${r.note})`} |`,
    ),
  ];
  const md = lines.join('\n') + '\n';
  process.stdout.write(md);
  const out = path.join(ROOT, 'bench/results');
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, 'scale-last.md'), md);
  writeFileSync(path.join(out, 'scale-last.json'), JSON.stringify({ files: FILES, blobs: BLOBS, snapshots: SNAPS, reps: REPS, rows }, null, 2));
  rmSync(DIR, { recursive: true, force: true });
}

await main();
