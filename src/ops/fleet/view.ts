import type { Catalog, RunRecord } from '../catalog/types.js';
import type { AgentJob, AgentRecord, AgentState, FleetStore, RunRequest } from './store.js';

/**
 * The fleet as one picture (the dashboard's Fleet page, `lifeboat fleet ls`):
 * every agent with its state, version and last heartbeat, and each of its
 * jobs with the last run that agent recorded (runs.agent_id); filtered by
 * host (agent id) and by service (the services the agent's config lists the
 * job in). Agents that no longer match a filter are left out; an agent
 * whose jobs are all filtered away by a service filter is left out too.
 */

export interface FleetJobView extends AgentJob {
  lastRun: Pick<RunRecord, 'id' | 'kind' | 'status' | 'startedAt' | 'finishedAt' | 'snapshotId' | 'error'> | null;
}

export interface FleetAgentView extends Omit<AgentRecord, 'jobs'> {
  state: AgentState;
  jobs: FleetJobView[];
}

export interface FleetView {
  at: Date;
  agents: FleetAgentView[];
  /** Every agent id and service name (for the filters), unfiltered. */
  hosts: string[];
  services: string[];
  requests: RunRequest[];
}

export async function fleetView(store: FleetStore, catalog: Catalog, filter: { host?: string; service?: string; requests?: number } = {}): Promise<FleetView> {
  const { now, agents } = await store.agents();
  const services = [...new Set(agents.flatMap((a) => a.jobs.flatMap((j) => j.services)))].sort();
  const out: FleetAgentView[] = [];
  for (const a of agents) {
    if (filter.host !== undefined && a.id !== filter.host) continue;
    const jobs = filter.service === undefined ? a.jobs : a.jobs.filter((j) => j.services.includes(filter.service!));
    if (filter.service !== undefined && jobs.length === 0) continue;
    const withRuns: FleetJobView[] = [];
    for (const j of jobs) {
      const [r] = await catalog.runs({ job: j.name, agentId: a.id, limit: 1 });
      withRuns.push({
        ...j,
        lastRun: r ? { id: r.id, kind: r.kind, status: r.status, startedAt: r.startedAt, finishedAt: r.finishedAt, snapshotId: r.snapshotId, error: r.error } : null,
      });
    }
    out.push({ ...a, jobs: withRuns });
  }
  const requests = await store.requests({ ...(filter.host !== undefined ? { agentId: filter.host } : {}), limit: filter.requests ?? 20 });
  return { at: now, agents: out, hosts: agents.map((a) => a.id), services, requests };
}
