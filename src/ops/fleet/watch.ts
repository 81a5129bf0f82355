import type { Tier } from '../../config/tiers.js';
import type { Finding } from '../monitor.js';
import type { FleetStore } from './store.js';

/**
 * Missed heartbeats as monitor findings: one per agent (job "agent:ID",
 * check "heartbeat"): critical while its heartbeat is more than missedAfter
 * intervals old, ok when live or cleanly stopped (so the alert resolves).
 * The AlertManager routes and deduplicates them by key like the backup checks.
 *
 * Who may watch (`eligible`): an agent while it is live itself; the server
 * (no selfId) only while no agent is live. Of those, the one holding the
 * watch lease reports (startFleetWatch), so one process at a time reads and
 * writes these alerts' dedup state and sends each message once.
 */
export async function fleetFindings(store: FleetStore, opts: { selfId?: string; tier: Tier; missedAfter: number }): Promise<{ findings: Finding[]; eligible: boolean }> {
  const { now, agents } = await store.agents();
  const live = agents.filter((a) => a.state === 'live').map((a) => a.id);
  const eligible = opts.selfId === undefined ? live.length === 0 : live.includes(opts.selfId);
  const findings: Finding[] = agents.map((a) => {
    const ageMs = Math.max(0, now.getTime() - a.lastSeen.getTime());
    const message =
      a.state === 'missed'
        ? `agent ${a.id} (host ${a.hostname}) missed its heartbeat: last seen ${a.lastSeen.toISOString()}, more than ${opts.missedAfter} × ${Math.round(a.heartbeatMs / 1000)} s ago`
        : a.state === 'stopped'
          ? `agent ${a.id} (host ${a.hostname}) stopped at ${a.stoppedAt!.toISOString()}`
          : `agent ${a.id} (host ${a.hostname}) is live`;
    return {
      job: `agent:${a.id}`,
      check: 'heartbeat',
      severity: a.state === 'missed' ? 'critical' : 'ok',
      tier: opts.tier,
      message,
      details: { agent: a.id, hostname: a.hostname, state: a.state, lastSeen: a.lastSeen.toISOString(), ageMs },
    };
  });
  return { findings, eligible };
}

/** The watch lease's name in the catalog (fleet_watch). */
export const HEARTBEAT_WATCH = 'missed-heartbeats';

/**
 * Check the fleet every `everyMs`; when this process is eligible and holds
 * the watch lease (missedAfter × everyMs, renewed at every check), hand the
 * findings to the alert manager. When the holder dies another eligible
 * process takes over once the lease expired; stop() gives it up at once.
 * Never throws; a check still running makes the next one skip.
 */
export function startFleetWatch(o: {
  store: FleetStore;
  alerts: { process(findings: Finding[]): Promise<unknown> };
  /** Who holds the lease (unique per process). */
  holder: string;
  selfId?: string;
  tier: Tier;
  missedAfter: number;
  everyMs: number;
  log: (m: string) => void;
}): { check(): Promise<void>; stop(): Promise<void> } {
  let busy: Promise<void> | undefined;
  let stopped = false;
  const leaseMs = o.missedAfter * o.everyMs;
  const check = async () => {
    if (busy || stopped) return;
    busy = (async () => {
      try {
        const f = await fleetFindings(o.store, { ...(o.selfId !== undefined ? { selfId: o.selfId } : {}), tier: o.tier, missedAfter: o.missedAfter });
        if (f.eligible && !stopped && (await o.store.holdWatch(HEARTBEAT_WATCH, o.holder, leaseMs))) await o.alerts.process(f.findings);
      } catch (e) {
        o.log(`fleet: watch: ${(e as Error).message}`);
      }
    })();
    await busy;
    busy = undefined;
  };
  const timer = setInterval(() => void check(), o.everyMs);
  timer.unref();
  return {
    check,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await busy;
      await o.store.releaseWatch(HEARTBEAT_WATCH, o.holder).catch((e: unknown) => o.log(`fleet: watch: ${(e as Error).message}`));
    },
  };
}
