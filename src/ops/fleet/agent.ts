import { hostname } from 'node:os';
import { errorMessage } from '../../errors.js';
import { PROCESS_INSTANCE } from '../catalog/instance.js';
import type { Catalog } from '../catalog/types.js';
import { FleetStore, type AgentJob, type RequestKind, type RunRequest } from './store.js';

/**
 * This daemon as a member of the fleet: it registers in the catalog (a
 * second live agent with the same id is refused), writes a heartbeat every
 * `heartbeatMs`, polls for run requests addressed to it every
 * `requestPollMs` (agents have no inbound port), claims each one (exactly one
 * claimer wins), runs it through the daemon and records the outcome.
 *
 * Every catalog call has a deadline (FleetStore); a tick still waiting on
 * the catalog makes the next tick skip, so a hung catalog never piles up
 * calls. A failed heartbeat is logged; the agent keeps trying.
 */

export interface RequestOutcome {
  status: 'success' | 'partial' | 'failed';
  result: Record<string, unknown>;
}

export interface FleetAgentOptions {
  id: string;
  version: string;
  catalog: Catalog;
  heartbeatMs: number;
  missedAfter: number;
  requestPollMs: number;
  timeoutMs: number;
  jobs: AgentJob[];
  /** Run a job or a drill of it now (the daemon: concurrency limit, no overlap). */
  execute(kind: RequestKind, name: string): Promise<RequestOutcome>;
  /**
   * Called once when this process finds its agent id taken over by another
   * process (it missed its heartbeats: frozen, or cut off from the catalog):
   * the daemon stops scheduling, so the id's jobs never run in two places.
   */
  onLost?: () => void;
  log?: (m: string) => void;
}

export class FleetAgent {
  readonly store: FleetStore;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Set<Promise<void>>();
  private heartbeatBusy = false;
  private pollBusy = false;
  private stopping = false;
  private lostRow = false;
  private readonly log: (m: string) => void;

  private constructor(private readonly opts: FleetAgentOptions) {
    this.store = new FleetStore(opts.catalog, { timeoutMs: opts.timeoutMs, missedAfter: opts.missedAfter });
    this.log = opts.log ?? (() => {});
  }

  /** Register (throws ConfigError when a live agent already has this id) and start the heartbeat and the request poll. */
  static async start(opts: FleetAgentOptions): Promise<FleetAgent> {
    const a = new FleetAgent(opts);
    await a.store.register({
      id: opts.id,
      hostname: hostname(),
      version: opts.version,
      instance: PROCESS_INSTANCE,
      pid: process.pid,
      heartbeatMs: opts.heartbeatMs,
      jobs: opts.jobs,
    });
    const n = await a.store.failInterrupted(opts.id, PROCESS_INSTANCE);
    if (n) a.log(`fleet: ${n} run request(s) left running by a previous process of agent ${opts.id} marked failed`);
    a.log(`fleet: agent ${opts.id} registered (${opts.jobs.length} job(s)); heartbeat every ${opts.heartbeatMs} ms`);
    a.timers.push(setInterval(() => void a.beat(), opts.heartbeatMs));
    a.timers.push(setInterval(() => void a.poll(), opts.requestPollMs));
    for (const t of a.timers) t.unref();
    void a.poll();
    return a;
  }

  get id(): string {
    return this.opts.id;
  }

  private async beat(): Promise<void> {
    if (this.heartbeatBusy || this.stopping) return;
    this.heartbeatBusy = true;
    try {
      const ours = await this.store.heartbeat(this.opts.id, PROCESS_INSTANCE);
      if (!ours && !this.lostRow) {
        this.log(`fleet: AGENT ID ${this.opts.id} WAS TAKEN OVER by another process (this one missed its heartbeats); not running requests or schedules until restarted`);
        this.lostRow = true;
        this.opts.onLost?.();
      }
    } catch (err) {
      this.log(`fleet: heartbeat failed: ${errorMessage(err)}`);
    } finally {
      this.heartbeatBusy = false;
    }
  }

  private async poll(): Promise<void> {
    if (this.pollBusy || this.stopping || this.lostRow) return;
    this.pollBusy = true;
    try {
      for (const r of await this.store.pending(this.opts.id)) {
        if (this.stopping) break;
        if (!(await this.store.claim(r.id, PROCESS_INSTANCE))) continue;
        const run = this.run(r).finally(() => this.running.delete(run));
        this.running.add(run);
      }
    } catch (err) {
      this.log(`fleet: request poll failed: ${errorMessage(err)}`);
    } finally {
      this.pollBusy = false;
    }
  }

  private async run(r: RunRequest): Promise<void> {
    this.log(`fleet: request #${r.id} from ${r.requestedBy}: ${r.kind} ${r.name}`);
    let outcome: RequestOutcome;
    try {
      outcome = this.opts.jobs.some((j) => j.name === r.name)
        ? await this.opts.execute(r.kind, r.name)
        : { status: 'failed', result: { error: `agent ${this.opts.id} has no job "${r.name}"` } };
    } catch (err) {
      outcome = { status: 'failed', result: { error: errorMessage(err) } };
    }
    this.log(`fleet: request #${r.id} ${outcome.status}${outcome.result.error ? `: ${String(outcome.result.error)}` : ''}`);
    // the result must reach the catalog: a few tries, each with its deadline
    for (let i = 0; i < 3; i++) {
      try {
        await this.store.finish(r.id, outcome.status, outcome.result);
        return;
      } catch (err) {
        this.log(`fleet: cannot record the result of request #${r.id}: ${errorMessage(err)}`);
        await new Promise((res) => setTimeout(res, 1000 * (i + 1)).unref());
      }
    }
  }

  /** Stop polling and beating; wait for running requests at most waitMs; mark the agent stopped. */
  async stop(waitMs = 5_000): Promise<void> {
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    await this.store.stopped(this.opts.id, PROCESS_INSTANCE).catch((err) => this.log(`fleet: cannot mark agent stopped: ${errorMessage(err)}`));
  }
}
