import { readdirSync, realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import type { LifeboatConfig } from '../config/config.js';
import { configPath } from '../config/paths.js';
import { openConfiguredRepo } from '../config/repos.js';
import { ConfigError, LifeboatError } from '../errors.js';
import { redactText } from '../ops/templates.js';
import { repositoryKind } from '../policy/plan.js';
import type { Repository } from '../repo/repository.js';
import { lookupPath, restoreSnapshot, type RestoreSummary } from '../engine/restorer.js';
import { diffTrees, type DiffEntry } from '../repo/inspect.js';
import type { TreeNode } from '../repo/tree.js';
import { restoreSource } from '../sources/pipeline.js';
import { snapshotLayout } from '../sources/files/kind.js';
import { resolveSource } from '../config/resolve.js';
import { SOURCE_CAPABILITIES } from '../config/sources.js';
import type { RestoreResult } from '../sources/types.js';
import { restoreTarget } from '../sources/restore-target.js';
import { HttpError } from './http.js';
import { byCodeUnit } from '../util/compare.js';

/** Repository browsing and restores for the API (thin over src/repo and src/sources). */

export function repositoryList(cfg: LifeboatConfig) {
  return Object.entries(cfg.repositories).map(([name, r]) => ({ name, location: redactText(r.location), ...repositoryKind(cfg, name) }));
}

export async function withRepo<T>(cfg: LifeboatConfig, name: string, fn: (repo: Repository) => Promise<T>): Promise<T> {
  if (!cfg.repositories[name]) throw new HttpError(404, `unknown repository "${name}"`);
  const repo = await openConfiguredRepo(cfg, name, { allowInit: false, retryLockMs: 30_000 });
  try {
    return await fn(repo);
  } finally {
    await repo.close();
  }
}

export async function listSnapshots(cfg: LifeboatConfig, name: string, filter: { source?: string } = {}) {
  return withRepo(cfg, name, async (repo) => {
    const snaps = await repo.listSnapshots();
    return snaps
      .filter((s) => !filter.source || s.source?.name === filter.source || s.tags.includes(`source:${filter.source}`))
      .sort((a, b) => byCodeUnit(b.time, a.time))
      .map((s) => ({
        id: s.id,
        shortId: s.id.slice(0, 8),
        time: s.time,
        hostname: s.hostname,
        paths: s.paths,
        tags: s.tags,
        source: s.source ? { kind: s.source.kind, name: s.source.name ?? null } : null,
        kind: snapshotLayout(s),
        totalBytes: s.summary?.totalBytes ?? null,
        dataAdded: s.summary?.dataAdded ?? null,
        durationMs: s.summary?.durationMs ?? null,
      }));
  });
}

/** One directory level of a snapshot; without `dir`, the snapshot's data (the common directory of its backed-up paths). */
export async function browseSnapshot(cfg: LifeboatConfig, name: string, ref: string, dir: string | undefined) {
  return withRepo(cfg, name, async (repo) => {
    const snap = await findSnapshotOr404(repo, ref);
    let tree = snap.tree;
    const clean = snapshotPath(dir ?? commonDir(snap.paths));
    if (clean !== '/') {
      let node;
      try {
        ({ node } = await lookupPath(repo, snap.tree, clean));
      } catch (err) {
        throw new HttpError(404, (err as Error).message);
      }
      if (node?.type !== 'dir') throw new HttpError(400, `${clean} is not a directory in snapshot ${snap.id.slice(0, 8)}`);
      tree = node.subtree!;
    }
    const t = await repo.loadTree(tree);
    return {
      snapshot: { id: snap.id, time: snap.time, paths: snap.paths, tags: snap.tags, home: commonDir(snap.paths) },
      path: clean,
      // directories first, then names in natural order (page2 before page10)
      entries: [...t.nodes].sort(byTypeThenName).map((n) => ({
        name: n.name,
        path: (clean === '/' ? '' : clean) + '/' + n.name,
        type: n.type,
        size: n.size,
        mode: n.mode,
        mtime: new Date(n.mtime).toISOString(),
        ...(n.linktarget !== undefined ? { linktarget: n.linktarget } : {}),
      })),
    };
  });
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/** Directories first, then names in natural order (page2 before page10, case-insensitive). */
function byTypeThenName(a: TreeNode, b: TreeNode): number {
  if ((a.type === 'dir') !== (b.type === 'dir')) return a.type === 'dir' ? -1 : 1;
  return collator.compare(a.name, b.name) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/** The deepest directory that holds every backed-up path ("/a/b/site" for one path, "/a/b" for /a/b/x and /a/b/y): where the browser opens. */
export function commonDir(paths: string[]): string {
  const split = paths.map((p) => p.split('/').filter(Boolean));
  if (split.length === 0) return '/';
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const seg = split[0]![i];
    if (seg === undefined || !split.every((s) => s[i] === seg)) break;
    out.push(seg);
  }
  return '/' + out.join('/');
}

/** A path inside a snapshot: absolute, no "." or ".." segments (404/400 otherwise never leave the snapshot's tree). */
function snapshotPath(p: string): string {
  const parts = p.split('/').filter(Boolean);
  if (parts.some((x) => x === '.' || x === '..')) throw new HttpError(400, 'a path inside a snapshot has no "." or ".." segments');
  return '/' + parts.join('/');
}

export const SEARCH_MAX_RESULTS = 500;
export const SEARCH_MAX_VISITED = 200_000;

/**
 * Names under a directory of a snapshot that contain `q` (case-insensitive),
 * walked on the server: at most `limit` matches and SEARCH_MAX_VISITED
 * entries visited, so a huge tree answers quickly and says it was cut short.
 */
export async function searchSnapshot(cfg: LifeboatConfig, name: string, ref: string, under: string, q: string, limit = 200) {
  const needle = q.toLowerCase();
  const max = Math.min(Math.max(1, limit), SEARCH_MAX_RESULTS);
  return withRepo(cfg, name, async (repo) => {
    const snap = await findSnapshotOr404(repo, ref);
    const base = snapshotPath(under);
    let tree = snap.tree;
    if (base !== '/') {
      const node = await nodeAt(repo, snap.tree, base);
      if (node.type !== 'dir') throw new HttpError(400, `${base} is not a directory in snapshot ${snap.id.slice(0, 8)}`);
      tree = node.subtree!;
    }
    const matches: Array<{ path: string; name: string; type: string; size: number; mtime: string }> = [];
    let visited = 0;
    let truncated = false;
    const stack: Array<{ tree: string; prefix: string }> = [{ tree, prefix: base === '/' ? '' : base }];
    while (stack.length && !truncated) {
      const { tree: id, prefix } = stack.pop()!;
      const t = await repo.loadTree(id);
      const dirs: Array<{ tree: string; prefix: string }> = [];
      for (const n of [...t.nodes].sort(byTypeThenName)) {
        if (++visited > SEARCH_MAX_VISITED || matches.length >= max) {
          truncated = true;
          break;
        }
        const p = `${prefix}/${n.name}`;
        if (n.name.toLowerCase().includes(needle)) matches.push({ path: p, name: n.name, type: n.type, size: n.size, mtime: new Date(n.mtime).toISOString() });
        if (n.type === 'dir' && n.subtree) dirs.push({ tree: n.subtree, prefix: p });
      }
      stack.push(...dirs.reverse());
    }
    return { snapshot: snap.id, path: base, query: q, matches, truncated, visited: Math.min(visited, SEARCH_MAX_VISITED), limit: max };
  });
}

async function nodeAt(repo: Repository, tree: string, p: string): Promise<TreeNode> {
  let node: TreeNode | undefined;
  try {
    ({ node } = await lookupPath(repo, tree, p));
  } catch (err) {
    throw new HttpError(404, (err as Error).message);
  }
  if (!node) throw new HttpError(404, `${p} is not in the snapshot`);
  return node;
}

/** A file name for Content-Disposition: an ASCII fallback and the UTF-8 name (RFC 6266 / 5987). */
export function contentDisposition(fileName: string): string {
  const ascii = fileName.replace(/[^\x20-\x7e]|["\\]/g, '_') || 'download';
  const utf8 = encodeURIComponent(fileName).replace(/['()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
  return `attachment; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}

/**
 * Stream one regular file of a snapshot out of the repository: `send` is
 * called once with the file's name and size and an iterator of its bytes
 * (holes of a sparse file as zeros; every blob verified as it is read). The
 * repository stays open until `send` returns. Throws (404/400) before `send`
 * for a path that is not a file of the snapshot.
 */
export async function downloadFile(cfg: LifeboatConfig, name: string, ref: string, p: string, send: (file: { name: string; size: number; mtime: string }, body: AsyncIterable<Buffer>) => Promise<void>): Promise<void> {
  const clean = snapshotPath(p);
  if (clean === '/') throw new HttpError(400, 'name a file inside the snapshot');
  await withRepo(cfg, name, async (repo) => {
    const snap = await findSnapshotOr404(repo, ref);
    const node = await nodeAt(repo, snap.tree, clean);
    if (node.type !== 'file') throw new HttpError(400, `${clean} is a ${node.type}, not a regular file: only files can be downloaded`);
    await send({ name: node.name, size: node.size, mtime: new Date(node.mtime).toISOString() }, fileBytes(repo, node));
  });
}

/** A file node's bytes as a download sends them (exported for the hostile-tree tests). */
export async function* fileBytes(repo: Repository, n: TreeNode): AsyncGenerator<Buffer> {
  const ZERO = Buffer.alloc(64 * 1024);
  function* zeros(len: number) {
    for (let left = len; left > 0; left -= ZERO.length) yield left >= ZERO.length ? ZERO : ZERO.subarray(0, left);
  }
  const holes = [...(n.holes ?? [])];
  let pos = 0; // position in the file
  for (const id of n.content ?? []) {
    let data = await repo.loadBlob(id);
    while (data.length) {
      const hole = holes[0];
      if (hole && hole[0] <= pos) {
        yield* zeros(hole[1]);
        pos += hole[1];
        holes.shift();
        continue;
      }
      const take = hole ? Math.min(data.length, hole[0] - pos) : data.length;
      yield data.subarray(0, take);
      pos += take;
      data = data.subarray(take);
    }
  }
  for (const hole of holes) {
    yield* zeros(hole[1]);
    pos += hole[1];
  }
  // a trailing hole is recorded by the size only (as the restorer truncates): only in a file with holes
  if (pos < n.size && n.holes?.length) yield* zeros(n.size - pos);
  else if (pos < n.size) throw new LifeboatError(`file ${n.name}: content is ${pos} bytes, the snapshot records ${n.size}`);
  if (pos > n.size) throw new LifeboatError(`file ${n.name}: content is ${pos} bytes, the snapshot records ${n.size}`);
}

export const DIFF_MAX_CHANGES = 5000;

/** What changed between two snapshots (the engine's diff behind `lifeboat diff`), at most DIFF_MAX_CHANGES entries listed. */
export async function diffSnapshots(cfg: LifeboatConfig, name: string, from: string, to: string) {
  return withRepo(cfg, name, async (repo) => {
    const a = await findSnapshotOr404(repo, from);
    const b = await findSnapshotOr404(repo, to);
    const changes: DiffEntry[] = await diffTrees(repo, a.tree, b.tree);
    const counts = { added: 0, removed: 0, modified: 0, metadata: 0, type: 0 };
    for (const c of changes) counts[c.change]++;
    return {
      from: { id: a.id, time: a.time, paths: a.paths },
      to: { id: b.id, time: b.time, paths: b.paths },
      counts,
      changes: changes.slice(0, DIFF_MAX_CHANGES),
      truncated: changes.length > DIFF_MAX_CHANGES,
    };
  });
}

async function findSnapshotOr404(repo: Repository, ref: string) {
  try {
    return await repo.findSnapshot(ref);
  } catch (err) {
    if (err instanceof LifeboatError) throw new HttpError(404, err.message);
    throw err;
  }
}

export interface FileRestoreRequest {
  repository: string;
  snapshot: string;
  path?: string | undefined;
  target: string;
  overwrite?: boolean | undefined;
}

/** The dialog's checkbox that allows a non-empty target (web/app.js restoreDialog): error messages name it. */
export const OVERWRITE_LABEL = 'Overwrite existing files';

/**
 * Check a file restore request before a task is started: 400 on a bad target,
 * 409 on a non-empty target without `overwrite` (the message names the
 * dialog's checkbox). Also the dialog's preflight (POST /restore/check).
 */
export function checkFileRestore(cfg: LifeboatConfig, r: FileRestoreRequest, restoreRoots: string[] | undefined): { target: string; exists: boolean; entries: number } {
  if (!cfg.repositories[r.repository]) throw new HttpError(404, `unknown repository "${r.repository}"`);
  const target = checkTargetPath(cfg, r.target, restoreRoots);
  let entries = 0;
  let exists = false;
  try {
    exists = true;
    if (!statSync(target).isDirectory()) throw new HttpError(400, `target ${target} exists and is not a directory`);
    entries = readdirSync(target).length;
  } catch (err) {
    if (err instanceof HttpError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') exists = false;
    else throw new HttpError(400, `target ${target} cannot be read: ${code ?? (err as Error).message}`);
  }
  if (entries > 0 && !r.overwrite) {
    throw new HttpError(409, `the target directory ${target} is not empty (${entries} entr${entries === 1 ? 'y' : 'ies'}): tick "${OVERWRITE_LABEL}" to restore into it anyway, or choose an empty directory`, { field: 'overwrite', entries });
  }
  return { target, exists, entries };
}

/**
 * Where a database restore with an empty target goes: the source's own (live)
 * database, as "host:port/db" (or its file, socket or URI), without secrets.
 */
export function liveTarget(cfg: LifeboatConfig, sourceName: string): { kind: string; live: string } {
  const src = cfg.sources[sourceName];
  if (!src) throw new HttpError(404, `unknown source "${sourceName}"`);
  // from the source's connection fields, whatever its kind: a URI, a file, or a server (socket or host:port) and its database(s)
  const s = src as Record<string, unknown>;
  const str = (k: string) => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
  const dbs = str('database') ?? (Array.isArray(s.databases) ? (s.databases as string[]).join(',') : undefined);
  let live: string;
  if (str('uri')) live = str('uri')!;
  else if (str('path')) live = configPath(cfg, str('path')!);
  else if (str('socket') || str('host')) {
    const server = str('socket') ?? `${str('host')}${s.port !== undefined ? `:${String(s.port)}` : ''}`;
    live = dbs ? `${server}/${dbs}` : SOURCE_CAPABILITIES[src.kind].restoresTo === 'database' ? `${server} (all databases)` : server;
  } else live = `the restoreCommand of source ${sourceName}`;
  return { kind: src.kind, live: redactText(live) };
}

/** An absolute path, inside server.restoreRoots when that is set. */
export function checkTargetPath(cfg: LifeboatConfig, p: string, restoreRoots: string[] | undefined): string {
  if (!path.isAbsolute(p)) throw new HttpError(400, 'target must be an absolute path');
  const target = path.resolve(p);
  if (restoreRoots) {
    const roots = restoreRoots.map((x) => configPath(cfg, x));
    const inside = (t: string, rs: string[]) => rs.some((root) => t === root || t.startsWith(root.endsWith(path.sep) ? root : root + path.sep));
    if (!inside(target, roots)) {
      throw new HttpError(400, `target ${target} is outside the allowed restore roots (server.restoreRoots: ${roots.join(', ')})`);
    }
    // and where it really leads: a symlink inside a root must not lead the restore outside it
    if (!inside(realExisting(target), roots.map(realExisting))) {
      throw new HttpError(400, `target ${target} leads outside the allowed restore roots through a symbolic link`);
    }
  }
  return target;
}

/** realpath of the deepest existing ancestor, with the rest of the path appended. */
function realExisting(p: string): string {
  let cur = p;
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(realpathSync(cur), ...rest.reverse());
    } catch {
      const parent = path.dirname(cur);
      if (parent === cur) return p;
      rest.push(path.basename(cur));
      cur = parent;
    }
  }
}

export async function restoreFiles(cfg: LifeboatConfig, r: FileRestoreRequest, target: string, log: (m: string) => void): Promise<RestoreSummary & { snapshotId: string }> {
  return withRepo(cfg, r.repository, async (repo) => {
    const snap = await repo.findSnapshot(r.snapshot);
    log(`restoring snapshot ${snap.id.slice(0, 8)}${r.path && r.path !== '/' ? `:${r.path}` : ''} into ${target}`);
    const s = await restoreSnapshot(repo, snap, { target, ...(r.path && r.path !== '/' ? { subpath: r.path } : {}), verify: true, overwrite: !!r.overwrite }).catch((err: unknown) => {
      // filled between the check and the start: say it in the dialog's words, not the CLI's flag
      if (err instanceof LifeboatError && /is not empty/.test(err.message)) throw new LifeboatError(`the target directory ${target} is not empty: tick "${OVERWRITE_LABEL}" to restore into it anyway, or choose an empty directory`, err.exitCode);
      throw err;
    });
    for (const w of s.warnings) log(`warning: ${w.path}: ${w.message}`);
    log(`restored ${s.files} files, ${s.dirs} dirs, ${s.bytes} bytes; ${s.verified} verified; ${s.errors.length} errors`);
    if (s.errors.length) throw new LifeboatError(`restore incomplete: ${s.errors.length} item(s) failed, first: ${s.errors[0]!.path}: ${s.errors[0]!.message}`);
    return { ...s, snapshotId: snap.id };
  });
}

export interface DatabaseRestoreRequest {
  source: string;
  snapshot: string;
  repository?: string | undefined;
  toDatabase?: string | undefined;
  clean?: boolean | undefined;
  force?: boolean | undefined;
}


export function checkDatabaseRestore(cfg: LifeboatConfig, r: DatabaseRestoreRequest, restoreRoots?: string[]): Record<string, unknown> {
  const src = cfg.sources[r.source];
  if (!src) throw new HttpError(404, `unknown source "${r.source}"`);
  if (SOURCE_CAPABILITIES[src.kind].layout === 'tree') throw new HttpError(400, `source ${r.source} is a files source: restore it with type "files"`);
  if (r.toDatabase && /^[a-z]+:\/\/[^/@]*:[^/@]*@/i.test(r.toDatabase)) {
    throw new HttpError(400, 'toDatabase must not contain a password: configure credentials on the source (passwordEnv / passwordFile)');
  }
  if (r.toDatabase && (src.kind === 'sqlite' || (src.kind === 'redis' && !/^[a-z]+:\/\//i.test(r.toDatabase)))) {
    // a file target: the same rules as a files restore (absolute, inside server.restoreRoots)
    r.toDatabase = checkTargetPath(cfg, r.toDatabase, restoreRoots);
  }
  try {
    return { ...restoreTarget(src.kind, r.toDatabase), ...(r.clean ? { clean: true } : {}), ...(r.force ? { force: true } : {}) };
  } catch (err) {
    if (err instanceof ConfigError) throw new HttpError(400, err.message);
    throw err;
  }
}

export async function restoreDatabase(cfg: LifeboatConfig, r: DatabaseRestoreRequest, target: Record<string, unknown>, log: (m: string) => void): Promise<RestoreResult & { snapshotId: string }> {
  const source = resolveSource(cfg, r.source, r.repository)!;
  return withRepo(cfg, source.repository, async (repo) => {
    log(`restoring ${source.kind} source ${r.source} (${r.snapshot})${r.toDatabase ? ` into ${redactText(r.toDatabase)}` : ''}`);
    const { snapshot, result } = await restoreSource(repo, source, r.snapshot, target);
    log(`restored snapshot ${snapshot.id.slice(0, 8)} in ${result.durationMs} ms`);
    return { ...result, snapshotId: snapshot.id };
  });
}
