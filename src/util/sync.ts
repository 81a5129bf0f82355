/** Counting semaphore for bounding concurrency (in-flight blobs, uploads, reads). */
export class Semaphore {
  private waiters: Array<() => void> = [];
  constructor(private available: number) {}

  async acquire(): Promise<void> {
    if (this.available > 0) {
      this.available--;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const w = this.waiters.shift();
    if (w) w();
    else this.available++;
  }

  async with<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }
}

/**
 * A budget of bytes in flight: acquire(n) waits until n more bytes fit (one
 * holder may always proceed, so an item larger than the whole budget is not
 * stuck). Waiters are served in order.
 */
export class ByteBudget {
  private used = 0;
  private waiters: Array<{ n: number; go: () => void }> = [];
  constructor(readonly max: number) {}

  get inUse(): number {
    return this.used;
  }

  async acquire(n: number): Promise<void> {
    if (this.waiters.length === 0 && (this.used === 0 || this.used + n <= this.max)) {
      this.used += n;
      return;
    }
    await new Promise<void>((go) => this.waiters.push({ n, go }));
  }

  release(n: number): void {
    this.used -= n;
    while (this.waiters.length > 0) {
      const w = this.waiters[0]!;
      if (this.used !== 0 && this.used + w.n > this.max) break;
      this.waiters.shift();
      this.used += w.n;
      w.go();
    }
  }
}

/** Byte-bounded LRU cache. */
export class LruCache<V extends { length: number }> {
  private readonly map = new Map<string, V>();
  private bytes = 0;
  constructor(private readonly maxBytes: number) {}

  get(key: string): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  /** False when `v` is too large to keep (more than a quarter of the cache). */
  set(key: string, v: V): boolean {
    if (v.length > this.maxBytes / 4) return false;
    const old = this.map.get(key);
    if (old) {
      this.bytes -= old.length;
      this.map.delete(key);
    }
    this.map.set(key, v);
    this.bytes += v.length;
    while (this.bytes > this.maxBytes) {
      const first = this.map.keys().next().value as string;
      this.bytes -= this.map.get(first)!.length;
      this.map.delete(first);
    }
    return true;
  }

  clear(): void {
    this.map.clear();
    this.bytes = 0;
  }
}

/** Run fn over items with at most `limit` in flight; results keep input order. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
  return out;
}
