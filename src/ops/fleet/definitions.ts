import type { ResolvedPlan } from '../../config/resolve.js';
import type { AgentJob } from './store.js';

/**
 * The job definitions an agent publishes in the catalog: names, source kinds,
 * schedules, repository names and the services that list the job. Built from
 * named fields only (never the source's config), so no URL, password or path
 * of a source reaches the catalog.
 */
export function agentJobsFromPlan(plan: ResolvedPlan, services: Record<string, { jobs: string[] }>): AgentJob[] {
  return Object.values(plan.jobs).map((j) => ({
    name: j.name,
    source: j.source.name,
    sourceKind: j.source.kind,
    schedule: j.job.schedule ?? null,
    repository: j.repository,
    drillSchedule: j.drill?.schedule ?? null,
    services: Object.entries(services)
      .filter(([, s]) => s.jobs.includes(j.name))
      .map(([name]) => name),
  }));
}
