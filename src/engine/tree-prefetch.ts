import type { Tree } from '../repo/tree.js';

/**
 * Read-ahead of the trees a restore's walk will enter. The walk goes depth
 * first, one directory at a time (bounded memory), and each directory's tree
 * was read and decoded only when the walk got there: a ranged read and a
 * decode queued behind the file work on the thread pool, then the tree's JSON,
 * one after the other: on the bench's 1.1 GB restore (1,888 directories) the
 * walk waited ~1.75 s of its ~4 s for them, and behind a network every tree is
 * a request (docs/benchmarks.md, "Trees read ahead").
 *
 * Each tree, once read, announces its subtrees (`children`); they are read
 * ahead in the order the walk will enter them (depth-first preorder of their
 * positions: the child indexes from the walk's root), at most `limits.trees`
 * trees and `limits.bytes` bytes of tree plaintext (the index's size) read or
 * being read and not yet taken. A tree larger than that budget is read ahead
 * only when nothing else is. The walk takes each tree at its position
 * (`take`); anything read ahead for a position it has passed (a directory it
 * did not enter: an error, or excluded after all) is dropped then.
 *
 * The same tree id can sit at several positions (identical directories), so
 * entries are keyed by position, never by id. A read that fails is not
 * retried: the walk gets its error when it takes that position, as it would
 * have reading it itself. Memory beyond the limits: one small entry per
 * announced subdirectory not yet passed, i.e. at most the directory entries of
 * the trees the walk holds and of those read ahead.
 */
export type TreePos = readonly number[];

/** True when `a` comes before `b` in depth-first preorder (an ancestor before its descendants). */
export function precedes(a: TreePos, b: TreePos): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! < b[i]!;
  return a.length < b.length;
}

interface Wanted<C> {
  id: string;
  pos: TreePos;
  key: string;
  ctx: C;
}

interface Started<C> {
  want: Wanted<C>;
  bytes: number;
  tree: Promise<Tree>;
  /** The read is over (a settled entry can be evicted: no read is under way for it). */
  settled: boolean;
}

export interface TreePrefetchLimits {
  /** Trees read (or being read) ahead and not yet taken, at most. */
  trees: number;
  /** Their plaintext bytes, at most (one larger tree alone is allowed). */
  bytes: number;
}

/**
 * The restore's limits for a storage of `kind`: 32 trees and 4 MiB of their plaintext ahead where a
 * read waits for a network (S3, SFTP, rclone: a restore from S3 behind ~10 ms of round trip, 321
 * directories, took 6.1 s reading each tree when the walk got there, 1.9 s reading ahead); none for a
 * local repository, where a read costs a thread-pool hop and reading ahead only cost CPU (the bench's
 * 1.1 GB restore: +0.2-0.35 user s, +4 MB; docs/benchmarks.md, "Trees read ahead").
 * LIFEBOAT_RESTORE_TREES_AHEAD sets the number of trees for every storage (0: none read ahead).
 */
export function treesAhead(env: NodeJS.ProcessEnv, kind: string): TreePrefetchLimits {
  const n = Number(env.LIFEBOAT_RESTORE_TREES_AHEAD);
  const set = env.LIFEBOAT_RESTORE_TREES_AHEAD !== undefined && env.LIFEBOAT_RESTORE_TREES_AHEAD !== '' && Number.isSafeInteger(n) && n >= 0;
  return { trees: set ? n : kind === 'local' ? 0 : 32, bytes: 4 * 1024 * 1024 };
}

export class TreePrefetch<C> {
  /** Positions announced and not started, a binary heap in preorder. */
  private readonly heap: Array<Wanted<C>> = [];
  private readonly started = new Map<string, Started<C>>();
  private bytes = 0;
  /** The last position taken: nothing before it is read any more. */
  private cursor: TreePos | undefined;
  /** Trees taken that had been read ahead (tests, docs/benchmarks.md). */
  hits = 0;
  /** Trees read ahead and then dropped for nearer ones (read again when their turn comes). */
  evicted = 0;

  constructor(
    private readonly load: (id: string) => Promise<Tree>,
    /** The subtrees a tree's walk will enter: the index of each node in `tree.nodes`, its tree id and what `children` needs for its own. */
    private readonly children: (tree: Tree, ctx: C) => Array<{ index: number; id: string; ctx: C }>,
    /** A tree's plaintext bytes (the index's rawLength), 0 when unknown. */
    private readonly sizeOf: (id: string) => number,
    private readonly limits: TreePrefetchLimits = { trees: 32, bytes: 4 * 1024 * 1024 },
  ) {}

  /** Trees read ahead (or being read) and not taken (tests). */
  get size(): number {
    return this.started.size;
  }

  /** The tree `id` the walk enters at `pos` (positions are taken in preorder): read ahead, or read now. */
  async take(id: string, pos: TreePos, ctx: C): Promise<Tree> {
    if (this.limits.trees === 0) return this.load(id); // nothing is ever read ahead
    this.cursor = pos;
    for (const [key, s] of this.started) {
      if (precedes(s.want.pos, pos)) this.release(key, s);
    }
    const key = pos.join('/');
    const s = this.started.get(key);
    let tree: Tree;
    if (s && s.want.id === id) {
      this.release(key, s);
      this.hits++;
      tree = await s.tree; // its subtrees were announced when it was read
    } else {
      if (s) this.release(key, s);
      tree = await this.load(id);
      this.announce(tree, pos, ctx);
    }
    return tree;
  }

  /** Forget an entry read ahead (taken, passed or evicted). */
  private forget(key: string, s: Started<C>): void {
    this.started.delete(key);
    this.bytes -= s.bytes;
  }

  private release(key: string, s: Started<C>): void {
    this.forget(key, s);
    this.pump();
  }

  private announce(tree: Tree, pos: TreePos, ctx: C): void {
    for (const c of this.children(tree, ctx)) {
      const p = [...pos, c.index];
      this.push({ id: c.id, pos: p, key: p.join('/'), ctx: c.ctx });
    }
    this.pump();
  }

  private pump(): void {
    for (;;) {
      const w = this.heap[0];
      if (!w) return;
      if ((this.cursor && !precedes(this.cursor, w.pos)) || this.started.has(w.key)) {
        this.pop(); // passed (or being taken now), or already read ahead
        continue;
      }
      const bytes = this.sizeOf(w.id);
      const full = this.started.size >= this.limits.trees || (this.started.size > 0 && this.bytes + bytes > this.limits.bytes);
      if (full) {
        // a nearer position than the furthest tree read ahead takes that one's place
        if (!this.evictAfter(w.pos)) return;
        continue;
      }
      this.pop();
      this.start(w, bytes);
    }
  }

  private start(w: Wanted<C>, bytes: number): void {
    const tree = this.load(w.id);
    const s: Started<C> = { want: w, bytes, tree, settled: false };
    this.started.set(w.key, s);
    this.bytes += bytes;
    tree.then(
      (t) => {
        s.settled = true;
        // still wanted (not passed by the walk): its own subtrees are next in line
        try {
          if (this.started.get(w.key) === s || !this.cursor || !precedes(w.pos, this.cursor)) this.announce(t, w.pos, w.ctx);
        } catch {
          // nothing read ahead below it: the walk reads those trees itself (and meets the error there)
        }
      },
      () => {
        s.settled = true; // the walk gets the error when it takes this position
      },
    );
  }

  /**
   * Drop the furthest tree read ahead (in the walk's order) if it comes after `pos` and its read is
   * over; it goes back in line, to be read again when its turn comes. False when there is none.
   */
  private evictAfter(pos: TreePos): boolean {
    let far: [string, Started<C>] | undefined;
    for (const e of this.started) {
      if (e[1].settled && precedes(pos, e[1].want.pos) && (!far || precedes(far[1].want.pos, e[1].want.pos))) far = e;
    }
    if (!far) return false;
    this.forget(far[0], far[1]);
    this.evicted++;
    this.push(far[1].want);
    return true;
  }

  private push(w: Wanted<C>): void {
    const h = this.heap;
    h.push(w);
    let i = h.length - 1;
    while (i > 0) {
      const up = (i - 1) >> 1;
      if (!precedes(h[i]!.pos, h[up]!.pos)) break;
      [h[i], h[up]] = [h[up]!, h[i]!];
      i = up;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && precedes(h[l]!.pos, h[m]!.pos)) m = l;
      if (r < h.length && precedes(h[r]!.pos, h[m]!.pos)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
