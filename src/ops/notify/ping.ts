import { randomUUID } from 'node:crypto';
import type { PingConfig } from '../../config/ping.js';
import { errorMessage } from '../../errors.js';
import { formatDuration } from '../../util/format.js';
import { redactText, redactUrl } from '../templates.js';
import { USER_AGENT } from './http.js';

/**
 * Dead-man's-switch pings of one job (jobs.NAME.ping, schema and protocol in
 * src/config/notifiers.ts's sibling src/config/ping.ts): Healthchecks.io
 * style (URL/start, URL, URL/fail, URL/<exit code>, paired by ?rid=) or
 * Uptime Kuma push monitors (URL?status=up|down&msg=&ping=).
 *
 * Never throws: a ping that cannot be delivered is logged (the URL shown as
 * scheme://host only) and the run goes on.
 */

/** Body limit: Healthchecks.io keeps the first 100 kB of a ping body; the tail of the error is what matters. */
export const PING_BODY_MAX = 10_000;

export interface PingOptions {
  url: string;
  style: PingConfig['style'];
  start: boolean;
  exitCode: boolean;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  log?: (msg: string) => void;
  sleep?: (ms: number) => Promise<void>;
}

export interface PingOutcome {
  /** 0 for a success; the run's exit code otherwise. */
  exitCode: number;
  /** Failure reason (or warnings of a partial run); sent as the body, tail first kept. */
  error?: string;
  /** Short line for a successful run (body of the success ping). */
  summary?: string;
  durationMs: number;
}

export interface PingRequest {
  method: 'GET' | 'POST';
  url: string;
  body?: string;
}

/** The last `max` characters of a text, marked when cut. */
export function tail(text: string, max = PING_BODY_MAX): string {
  return text.length <= max ? text : `…${text.slice(text.length - max + 1)}`;
}

export class Pinger {
  readonly target: string;
  readonly rid = randomUUID();
  readonly #o: PingOptions;

  constructor(opts: PingOptions) {
    this.#o = opts;
    this.target = redactUrl(opts.url);
  }

  /** The request that starts a run, or undefined when the style/config sends none. */
  startRequest(): PingRequest | undefined {
    if (this.#o.style !== 'healthchecks' || !this.#o.start) return undefined;
    return { method: 'POST', url: this.#hc('start'), body: '' };
  }

  /** The request that ends a run. */
  endRequest(o: PingOutcome): PingRequest {
    const ok = o.exitCode === 0;
    const text = redactText(ok ? (o.summary ?? 'ok') : (o.error ?? `exit code ${o.exitCode}`), [this.#o.url]);
    if (this.#o.style === 'uptime-kuma') {
      const u = new URL(this.#o.url);
      u.search = '';
      u.searchParams.set('status', ok ? 'up' : 'down');
      // one line: Uptime Kuma shows msg in its event list
      u.searchParams.set('msg', tail(text.replace(/\s+/g, ' ').trim(), 400));
      u.searchParams.set('ping', String(Math.max(0, Math.round(o.durationMs))));
      return { method: 'GET', url: u.toString() };
    }
    const suffix = this.#o.exitCode ? String(o.exitCode) : ok ? '' : 'fail';
    return { method: 'POST', url: this.#hc(suffix), body: tail(text) };
  }

  /** URL/<suffix>?rid=<uuid> (an existing query string is kept). */
  #hc(suffix: string): string {
    const u = new URL(this.#o.url);
    if (suffix) u.pathname = `${u.pathname.replace(/\/+$/, '')}/${suffix}`;
    u.searchParams.set('rid', this.rid);
    return u.toString();
  }

  async start(): Promise<boolean> {
    const r = this.startRequest();
    return r ? this.#send(r, 'start') : true;
  }

  async finish(o: PingOutcome): Promise<boolean> {
    return this.#send(this.endRequest(o), o.exitCode === 0 ? 'success' : `fail (exit ${o.exitCode})`);
  }

  /** One ping with timeout and retries; true when the server accepted it. Never throws. */
  async #send(r: PingRequest, what: string): Promise<boolean> {
    const log = this.#o.log ?? (() => {});
    const sleep = this.#o.sleep ?? ((ms: number) => new Promise<void>((res) => setTimeout(res, ms)));
    let last = '';
    for (let attempt = 1; attempt <= this.#o.retries + 1; attempt++) {
      if (attempt > 1) await sleep(this.#o.retryDelayMs * 2 ** (attempt - 2));
      try {
        const res = await fetch(r.url, {
          method: r.method,
          headers: { 'user-agent': USER_AGENT, ...(r.body !== undefined ? { 'content-type': 'text/plain; charset=utf-8' } : {}) },
          ...(r.body !== undefined ? { body: r.body } : {}),
          redirect: 'follow',
          signal: AbortSignal.timeout(this.#o.timeoutMs),
        });
        await res.arrayBuffer().catch(() => undefined);
        if (res.ok) return true;
        last = `HTTP ${res.status}`;
        // 4xx other than 408/429: the URL or check is wrong; retrying will not help
        if (res.status < 500 && res.status !== 408 && res.status !== 429) break;
      } catch (err) {
        const e = err as Error & { cause?: { code?: string; message?: string } };
        last = e.name === 'TimeoutError' ? `timed out after ${formatDuration(this.#o.timeoutMs)}` : (e.cause?.code ?? e.cause?.message ?? errorMessage(e));
      }
    }
    log(`ping ${what} to ${this.target} failed: ${redactText(last, [this.#o.url])} (the run is not affected)`);
    return false;
  }
}
