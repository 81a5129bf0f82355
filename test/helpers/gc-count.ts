import { PerformanceObserver, constants } from 'node:perf_hooks';

/**
 * Counts V8's full collections on this thread from now until `stop()` (`forced`: only those the
 * program asked for with gc(), as BufferReclaimer does; else V8's own too). stop() waits for the
 * observer's entries, which are delivered asynchronously.
 */
export function countFullCollections(forced = false): { stop: () => Promise<number> } {
  let n = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = (e as unknown as { detail?: { kind?: number; flags?: number } }).detail;
      if (d?.kind === constants.NODE_PERFORMANCE_GC_MAJOR && (!forced || (d.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED)) n++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  let stopped: Promise<number> | undefined;
  return {
    stop: () =>
      (stopped ??= new Promise<number>((res) =>
        setTimeout(() => {
          obs.disconnect();
          res(n);
        }, 50),
      )),
  };
}
