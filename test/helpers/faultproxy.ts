import * as net from 'node:net';

/**
 * A TCP proxy on 127.0.0.1 that breaks connections at random: for network
 * fault tests of the storage backends (S3 over HTTP, SFTP under rclone).
 * Each new connection draws one fate with probability `rate` (from a seeded
 * generator, so a failing run can be repeated):
 *  - drop:  forward some bytes, then close both sides (FIN) mid-stream;
 *  - reset: forward some bytes, then RST both sides;
 *  - stall: forward some bytes, then forward nothing more (the client's
 *           deadline must fire), closing after `stallMs`.
 * Otherwise the connection is forwarded untouched. `enabled` switches faults
 * on and off while the proxy keeps running.
 *
 * `latencyMs` delays every forwarded chunk (a slow link: each request takes
 * at least two such delays). `down = true` makes the storage unreachable at
 * once: from then on no byte is forwarded on any connection, old or new (a
 * black hole: the client sees no error, only its deadlines).
 */
export type Fault = 'drop' | 'reset' | 'stall';

export interface FaultProxy {
  port: number;
  enabled: boolean;
  down: boolean;
  stats: Record<Fault | 'clean', number>;
  close(): Promise<void>;
}

export async function startFaultProxy(opts: {
  target: { host?: string; port: number };
  rate: number;
  seed?: number;
  faults?: Fault[];
  /** Bytes forwarded (in either direction, total) before the fault hits: random in [0, maxBytes). */
  maxBytes?: number;
  stallMs?: number;
  latencyMs?: number;
  /**
   * Connections (numbered from 0 among those made while `enabled`) that always get a fault,
   * whatever the draw: a run that makes few connections (rclone keeps its SSH connection)
   * still meets one.
   */
  faultAt?: number[];
}): Promise<FaultProxy> {
  let s = opts.seed ?? 1;
  const rnd = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const faults = opts.faults ?? ['drop', 'reset', 'stall'];
  const sockets = new Set<net.Socket>();
  let drawn = 0;
  const proxy: FaultProxy = { port: 0, enabled: true, down: false, stats: { drop: 0, reset: 0, stall: 0, clean: 0 }, close: async () => {} };
  const server = net.createServer((client) => {
    const upstream = net.connect(opts.target.port, opts.target.host ?? '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    const forced = proxy.enabled && (opts.faultAt?.includes(drawn) ?? false);
    if (proxy.enabled) drawn++;
    const fate: Fault | 'clean' = proxy.enabled && (rnd() < opts.rate || forced) ? faults[Math.floor(rnd() * faults.length)]! : 'clean';
    proxy.stats[fate]++;
    const budget = Math.floor(rnd() * (opts.maxBytes ?? 256 * 1024));
    let moved = 0;
    let broken = false;
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    const hit = () => {
      if (broken) return;
      broken = true;
      if (fate === 'drop') {
        client.end();
        upstream.end();
        setTimeout(end, 100).unref();
      } else if (fate === 'reset') {
        client.resetAndDestroy();
        upstream.resetAndDestroy();
        sockets.delete(client);
        sockets.delete(upstream);
      } else {
        setTimeout(end, opts.stallMs ?? 30_000).unref();
      }
    };
    const pipe = (from: net.Socket, to: net.Socket) => {
      from.on('data', (d: Buffer) => {
        if (broken || proxy.down) return;
        if (opts.latencyMs) {
          setTimeout(() => {
            if (!proxy.down && !to.destroyed) to.write(d);
          }, opts.latencyMs);
          return;
        }
        if (fate !== 'clean' && moved + d.length >= budget) {
          const part = d.subarray(0, Math.max(0, budget - moved));
          if (part.length) to.write(part);
          moved = budget;
          hit();
          return;
        }
        moved += d.length;
        if (!to.write(d)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
      from.on('end', () => {
        if (proxy.down) return;
        if (opts.latencyMs) setTimeout(() => to.end(), opts.latencyMs + 1);
        else if (!broken) to.end();
      });
      from.on('error', end);
      from.on('close', () => {
        if (proxy.down) return;
        if (opts.latencyMs) setTimeout(end, opts.latencyMs + 1);
        else if (!broken) end();
      });
    };
    pipe(client, upstream);
    pipe(upstream, client);
    if (fate !== 'clean' && budget === 0) hit();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as net.AddressInfo).port;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      for (const so of sockets) so.destroy();
      server.close(() => resolve());
    });
  return proxy;
}
