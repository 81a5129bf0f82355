// Peak-RSS probe (issue 18): preload into any lifeboat command to see where its resident memory goes.
//   LIFEBOAT_RSS_PROBE=/tmp/out.json node --import ./bench/rss-probe.mjs dist/src/cli/main.js backup ...
// Every 50 ms (main thread): /proc/self/status (VmRSS, RssAnon, RssFile, Threads), process.memoryUsage(),
// V8 heap spaces, and process.memoryUsage() of every worker thread (each posts its own on a BroadcastChannel:
// worker.getHeapStatistics() is not in Node 20; --import runs this file in the workers too). Writes the peak of each and the sample
// taken at the peak RSS (so the parts add up to one moment) as JSON when the process exits.
import { isMainThread, threadId, BroadcastChannel } from 'node:worker_threads';
import wt from 'node:worker_threads';
import { syncBuiltinESMExports } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import v8 from 'node:v8';

const out = process.env.LIFEBOAT_RSS_PROBE;
// LIFEBOAT_RSS_PROBE_TRACE=1: every 10th sample to stderr as `probe <epoch ms> <json>` (LIFEBOAT_RSS_PROBE_MS: the sampling interval).
// LIFEBOAT_RSS_PROBE_GC=<ms> (with node --expose-gc): a full GC in every thread that often, to tell garbage from live memory
const gcEvery = Number(process.env.LIFEBOAT_RSS_PROBE_GC) || 0;
const gcType = process.env.LIFEBOAT_RSS_PROBE_GCTYPE ?? 'major';
if (gcEvery && globalThis.gc) setInterval(() => globalThis.gc({ type: gcType, execution: 'sync' }), gcEvery).unref();
if (!isMainThread && out) {
  const ch = new BroadcastChannel('lifeboat-rss-probe');
  ch.unref();
  const post = () => {
    const mu = process.memoryUsage();
    ch.postMessage({ threadId, heapTotal: mu.heapTotal, external: mu.external, arrayBuffers: mu.arrayBuffers });
  };
  setInterval(post, 50).unref();
}
if (isMainThread && out) {
  const workers = new Set();
  const Orig = wt.Worker;
  wt.Worker = class extends Orig {
    constructor(...a) {
      super(...a);
      workers.add(this);
      this.once('exit', () => {
        workers.delete(this);
        workerHeaps.delete(this.threadId);
      });
    }
  };
  syncBuiltinESMExports();
  const MB = (n) => +(n / 1048576).toFixed(1);
  const peak = {};
  let atPeak = {};
  const workerHeaps = new Map();
  const ch = new BroadcastChannel('lifeboat-rss-probe');
  ch.unref();
  ch.onmessage = (e) => workerHeaps.set(e.data.threadId, e.data);
  let maxWorkers = 0;
  let tick = 0;
  const status = () => {
    const s = readFileSync('/proc/self/status', 'utf8');
    const g = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { VmRSS: g('VmRSS'), RssAnon: g('RssAnon'), RssFile: g('RssFile'), Threads: g('Threads') / 1024 };
  };
  const sample = () => {
    const st = status();
    const mu = process.memoryUsage();
    const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((x) => [x.space_name, x.space_size]));
    let wTotal = 0;
    let wExt = 0;
    for (const h of workerHeaps.values()) {
      wTotal += h.heapTotal;
      wExt += h.external;
    }
    const s = {
      VmRSS: MB(st.VmRSS), RssAnon: MB(st.RssAnon), RssFile: MB(st.RssFile), Threads: st.Threads,
      heapTotal: MB(mu.heapTotal), heapUsed: MB(mu.heapUsed), external: MB(mu.external), arrayBuffers: MB(mu.arrayBuffers),
      newSpace: MB(spaces.new_space ?? 0), codeSpace: MB(spaces.code_space ?? 0), oldSpace: MB(spaces.old_space ?? 0),
      workers: workers.size, workerHeapTotal: MB(wTotal), workerExternal: MB(wExt), // external includes arrayBuffers
    };
    for (const [k, v] of Object.entries(s)) peak[k] = Math.max(peak[k] ?? 0, v);
    if (s.VmRSS >= (atPeak.VmRSS ?? 0)) atPeak = s;
    maxWorkers = Math.max(maxWorkers, workers.size);
    if (process.env.LIFEBOAT_RSS_PROBE_TRACE && ++tick % 10 === 0) process.stderr.write(`probe ${Date.now()} ${JSON.stringify(s)}\n`);
  };
  setInterval(sample, Number(process.env.LIFEBOAT_RSS_PROBE_MS) || 50).unref();
  process.on('exit', () => {
    sample();
    writeFileSync(out, JSON.stringify({ peak, atPeak }) + '\n');
  });
}
