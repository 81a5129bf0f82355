import * as fsp from 'node:fs/promises';
import type { Tree } from '../repo/tree.js';
import { type NumStat, scanAddon, scanDir } from './scan-native.js';

/**
 * A directory listing as the archiver walks it: names as raw bytes, sorted by bytes;
 * with the native addon, each entry's lstat (or its error) too (`stat`).
 */
export type DirListing = Array<{ name: Buffer; isDirectory(): boolean; stat?: NumStat | NodeJS.ErrnoException }>;

/**
 * Lists a directory: raw names, sorted bytewise (the order of the tree). With the
 * native addon (scan-native.ts) in one thread-pool round trip with every entry's
 * lstat, and without following a symlink; else readdir (the walk lstats each entry).
 */
export async function listDir(abs: Buffer, native = scanAddon() !== undefined): Promise<DirListing> {
  if (native) return scanDir(abs);
  const entries = (await fsp.readdir(abs, { encoding: 'buffer', withFileTypes: true })) as unknown as DirListing;
  return entries.sort((a, b) => Buffer.compare(a.name, b.name));
}

interface Pending {
  listing: Promise<DirListing>;
  /** The parent snapshot's tree of this directory (undefined: none, or unreadable). */
  parentTree?: Promise<Tree | undefined>;
  subtree?: string;
}

/**
 * Read-ahead for the directory walk of a files backup. The walk enters one
 * directory at a time (bounded memory); each step waited for a readdir and for
 * the parent snapshot's tree of that directory, one round trip after the other,
 * so an unchanged re-backup of many directories spent about half its time idle.
 * The walk announces the next subdirectories it will enter (`ahead`); their
 * listings and parent trees are requested then and taken when the walk gets there.
 *
 * Memory: at most `limit` directories read ahead at once, and a listing of more
 * than `maxEntries` names is not kept (the walk lists that directory itself when
 * it enters it). A directory that is no longer one when the walk reaches it
 * (its own lstat decides) is dropped (`drop`). What is listed ahead may be a
 * moment older than the lstat that follows: the same race as any walk of a live
 * tree, and the entries are each lstat'ed later anyway.
 */
export class DirPrefetch {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly loadTree: (id: string) => Promise<Tree | undefined>,
    private readonly limit = 16,
    private readonly maxEntries = 10_000,
  ) {}

  /** Start reading `abs` ahead (no-op when full or already pending). `subtree`: its parent snapshot tree id. */
  ahead(abs: Buffer, subtree: string | undefined): void {
    const key = abs.toString('latin1');
    if (this.pending.size >= this.limit || this.pending.has(key)) return;
    const p: Pending = {
      listing: listDir(abs).then((l) => {
        if (l.length > this.maxEntries) throw new TooLarge();
        return l;
      }),
    };
    p.listing.catch(() => {}); // taken (and awaited) by the walk, or dropped
    if (subtree) {
      p.subtree = subtree;
      p.parentTree = this.loadTree(subtree);
      p.parentTree.catch(() => {});
    }
    this.pending.set(key, p);
  }

  /** The parent tree read ahead for `abs`, if it was requested with the same id. */
  parentTree(abs: Buffer, subtree: string): Promise<Tree | undefined> | undefined {
    const p = this.pending.get(abs.toString('latin1'));
    return p?.subtree === subtree ? p.parentTree : undefined;
  }

  /**
   * The listing of `abs`, read ahead or now; the read-ahead entry is released.
   * Errors are those of readdir (a listing too large to keep is read again).
   */
  async listing(abs: Buffer): Promise<DirListing> {
    const key = abs.toString('latin1');
    const p = this.pending.get(key);
    this.pending.delete(key);
    if (p) {
      try {
        return await p.listing;
      } catch (err) {
        if (!(err instanceof TooLarge)) throw err;
      }
    }
    return listDir(abs);
  }

  /** Forget what was read ahead for `abs` (the walk did not list it: not a directory any more, or excluded). */
  drop(abs: Buffer): void {
    this.pending.delete(abs.toString('latin1'));
  }

  /** Directories read ahead and not yet taken (tests). */
  get size(): number {
    return this.pending.size;
  }
}

class TooLarge extends Error {}
