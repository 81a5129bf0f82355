import { realpathSync } from 'node:fs';
import * as path from 'node:path';
import type { LifeboatConfig } from '../config/load.js';
import { configPath } from '../config/paths.js';
import { openConfiguredRepo, sourceRepository } from '../config/repos.js';
import { ConfigError, LifeboatError } from '../errors.js';
import { redactText } from '../ops/templates.js';
import { repositoryKind } from '../policy/plan.js';
import type { Repository } from '../repo/repository.js';
import { lookupPath, restoreSnapshot, type RestoreSummary } from '../engine/restorer.js';
import { runSourceRestore } from '../sources/run.js';
import type { RestoreResult } from '../sources/types.js';
import { restoreTarget } from '../sources/restore-target.js';
import { HttpError } from './http.js';

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
      .sort((a, b) => b.time.localeCompare(a.time))
      .map((s) => ({
        id: s.id,
        shortId: s.id.slice(0, 8),
        time: s.time,
        hostname: s.hostname,
        paths: s.paths,
        tags: s.tags,
        source: s.source ? { kind: s.source.kind, name: s.source.name ?? null } : null,
        kind: s.source && s.source.kind !== 'files' ? 'stream' : 'files',
        totalBytes: s.summary?.totalBytes ?? null,
        dataAdded: s.summary?.dataAdded ?? null,
        durationMs: s.summary?.durationMs ?? null,
      }));
  });
}

/** One directory level of a snapshot. */
export async function browseSnapshot(cfg: LifeboatConfig, name: string, ref: string, dir: string) {
  return withRepo(cfg, name, async (repo) => {
    const snap = await findSnapshotOr404(repo, ref);
    let tree = snap.tree;
    const clean = '/' + dir.split('/').filter(Boolean).join('/');
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
      snapshot: { id: snap.id, time: snap.time, paths: snap.paths, tags: snap.tags },
      path: clean,
      entries: t.nodes.map((n) => ({
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

/** Check a file restore request before a task is started (400 on a bad target). */
export function checkFileRestore(cfg: LifeboatConfig, r: FileRestoreRequest, restoreRoots: string[] | undefined): string {
  if (!cfg.repositories[r.repository]) throw new HttpError(404, `unknown repository "${r.repository}"`);
  return checkTargetPath(cfg, r.target, restoreRoots);
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
    const s = await restoreSnapshot(repo, snap, { target, ...(r.path && r.path !== '/' ? { subpath: r.path } : {}), verify: true, overwrite: !!r.overwrite });
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

export { sourceRepository } from '../config/repos.js';

export function checkDatabaseRestore(cfg: LifeboatConfig, r: DatabaseRestoreRequest, restoreRoots?: string[]): Record<string, unknown> {
  const src = cfg.sources[r.source];
  if (!src) throw new HttpError(404, `unknown source "${r.source}"`);
  if (src.kind === 'files') throw new HttpError(400, `source ${r.source} is a files source: restore it with type "files"`);
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
  const src = cfg.sources[r.source]!;
  return withRepo(cfg, sourceRepository(cfg, r.source, r.repository), async (repo) => {
    log(`restoring ${src.kind} source ${r.source} (${r.snapshot})${r.toDatabase ? ` into ${redactText(r.toDatabase)}` : ''}`);
    const { snapshot, result } = await runSourceRestore(repo, r.source, src, cfg, r.snapshot, target);
    log(`restored snapshot ${snapshot.id.slice(0, 8)} in ${result.durationMs} ms`);
    return { ...result, snapshotId: snapshot.id };
  });
}
