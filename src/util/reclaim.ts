import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/**
 * Prompt collection of dropped buffers. A Buffer's bytes live outside the
 * JavaScript heap, and V8 collects them only when that heap fills or when
 * buffer memory has grown about 64 MiB past the last collection: a thread
 * that allocates large buffers and little else (restore and check: read,
 * decode, write, drop) holds up to that much garbage, per thread. A minor
 * collection (about a millisecond with a small heap) frees the young
 * buffers that are no longer referenced; asking for one every `every`
 * bytes of buffers dropped keeps the garbage near `every`.
 *
 * The collector is reached with V8's --expose-gc flag set at run time (the
 * flag is process-wide: worker threads started later see `gc` too). Where
 * that fails, reclaim() does nothing and V8's own schedule applies.
 */
type Gc = (opts?: { type?: 'minor' | 'major' }) => void;
let gcFn: Gc | null | undefined;

export function collector(): Gc | undefined {
  if (gcFn === undefined) {
    try {
      const g = (globalThis as { gc?: Gc }).gc;
      if (typeof g === 'function') gcFn = g;
      else {
        setFlagsFromString('--expose-gc');
        gcFn = runInNewContext('gc') as Gc;
      }
    } catch {
      gcFn = null;
    }
  }
  return gcFn ?? undefined;
}

/**
 * A reclaimer threshold from the environment: `name` in MiB (default `mb`) as bytes, 0 when it is 0 or
 * not a positive number (no collections of that kind). LIFEBOAT_RESTORE_FULL_GC_MB, ..._HEAP_GC_MB,
 * LIFEBOAT_BACKUP_HEAP_GC_MB.
 */
export function envMiB(name: string, mb: number, env: NodeJS.ProcessEnv = process.env): number {
  const x = Number(env[name] ?? mb);
  return Number.isFinite(x) && x > 0 ? x * 1024 * 1024 : 0;
}

/**
 * A reclaimer that runs only full collections, whenever the JavaScript heap grew by `name` MiB (default `mb`;
 * see envMiB) past its lowest since the last one (BufferReclaimer heapCap; no minor collections); undefined when
 * that is 0. The tree walks of check, prune and stats (LIFEBOAT_WALK_HEAP_GC_MB) and stream backups
 * (LIFEBOAT_STREAM_HEAP_GC_MB) call its dropped(0) as they go.
 */
export function heapReclaimer(name: string, mb: number, env: NodeJS.ProcessEnv = process.env): BufferReclaimer | undefined {
  const cap = envMiB(name, mb, env);
  return cap > 0 ? new BufferReclaimer(Number.MAX_SAFE_INTEGER, 0, cap) : undefined;
}

export class BufferReclaimer {
  private since = 0;
  private sinceFull = 0;
  /** Minor collections run so far. */
  collections = 0;
  /** Full collections run so far. */
  fullCollections = 0;
  /**
   * `full`: instead of a minor one, a full collection once that many bytes were dropped (0:
   * never). A restore keeps buffers past a minor collection (delta bases, plaintexts waiting
   * for their write): those reach the old generation, which only a full collection frees.
   * It is `gc()` without options: V8's gc({ type: 'major' }) (a collection that assumes
   * heap pointers on the stack) freed none of them in a dump's restore (the ArrayBuffer
   * memory grew to ~100 MB through such collections every 8 MiB), gc() all but the live
   * ~12 MB (docs/benchmarks.md, dumprss7).
   */
  constructor(
    readonly every = 16 * 1024 * 1024,
    readonly full = 0,
    /**
     * A full collection also once the JavaScript heap's used size has grown by this many bytes
     * past its lowest since the last one (see heapBase; 0: never; checked at each dropped(), one getHeapStatistics call). A
     * restore of small files drops few buffer bytes per file but promotes every file's state
     * (tree nodes, plans, closures) to the old generation: V8 let that reach 30+ MB committed
     * (~15 MB live) at the end of a full restore, the peak of its RSS (docs/benchmarks.md, restore8).
     */
    readonly heapCap = 0,
    /** The JavaScript heap's used size now (a parameter for tests). */
    private readonly usedHeap: () => number = () => getHeapStatistics().used_heap_size,
  ) {}
  /**
   * The lowest heap used size seen since the last full collection this reclaimer ran (or since it
   * first looked). The lowest, not the first: a baseline taken while the heap held garbage (the
   * previous job's in a daemon, a test's before) stayed above everything V8's own collection then
   * left, and the cap never fired again (a CI run: base 39.9 MB, heap 12.6-27 MB after V8's).
   */
  private heapBase = -1;

  /** Bytes noted by dropped() in all. */
  totalDropped = 0;

  /** Note `bytes` of buffers no longer referenced; collect once `every` bytes add up. */
  dropped(bytes: number): void {
    this.totalDropped += bytes;
    this.since += bytes;
    this.sinceFull += bytes;
    let heapFull = false;
    if (this.heapCap > 0) {
      const used = this.usedHeap();
      if (this.heapBase < 0 || used < this.heapBase) this.heapBase = used;
      heapFull = used > this.heapBase + this.heapCap;
    }
    if (this.since < this.every && !(this.full > 0 && this.sinceFull >= this.full) && !heapFull) return;
    this.since = 0;
    const gc = collector();
    if (!gc) return;
    if (heapFull || (this.full > 0 && this.sinceFull >= this.full)) {
      this.sinceFull = 0;
      gc();
      this.fullCollections++;
      if (this.heapCap > 0) this.heapBase = this.usedHeap();
    } else {
      gc({ type: 'minor' });
      this.collections++;
    }
  }
}
