import { agentIdOf } from '../config/agent-id.js';
import { resolvePlan } from '../config/resolve.js';
import type { LifeboatConfig } from '../config/config.js';
import { openCatalog } from './catalog/open.js';
import { runFinishFromJobResult } from './catalog/job-result.js';
import type { Catalog } from './catalog/types.js';
import { Daemon, type DaemonHooks } from './daemon.js';
import type { HealthServer } from './health-server.js';
import { jobRepository } from '../config/repos.js';
import { firstRunFromCatalog, type JobResult } from './jobs.js';
import { evaluate, jobsFromPlan, type MonitorReport } from './monitor.js';
import { AlertManager } from './notify/manager.js';
import { parseNotifiersConfig } from '../config/notifiers.js';
import { escalateIncidents, remindIncidents } from './incidents.js';
import { runDrill } from '../verify/drill.js';
import { nextRotation } from '../verify/drill-rotation.js';
import { pingOutcomeOf, RunPings } from './run-hooks.js';
import { evaluateReplicas, replicaTriggers, replicasFromConfig, withFindings } from './replica-monitor.js';
import { AlertTriggers } from './alert-triggers.js';
import { FleetAgent, type RequestOutcome } from './fleet/agent.js';
import { agentJobsFromPlan } from './fleet/definitions.js';
import { startFleetWatch } from './fleet/watch.js';
import { PROCESS_INSTANCE } from './catalog/instance.js';
import type { RequestKind } from './fleet/store.js';
import { parseDuration } from '../util/duration.js';
import { errorMessage } from '../errors.js';
import { PROGRAM } from '../repo/repository.js';
import type { DrillResult } from '../verify/drill-types.js';
import { JobSlots } from './catalog/job-slots.js';
import { slotHolderId } from './slot-holder.js';
import { SLOT_ALERT_WINDOW_MS, slotFinding, slotReport } from './slot-report.js';

/**
 * The running service: the scheduler daemon wired to the catalog (every run
 * recorded), the monitor + alert manager (evaluated after every run and every
 * minute), and the metrics/health HTTP server. The CLI's `daemon` command is a
 * thin wrapper around this.
 */
export interface OpsService {
  catalog: Catalog;
  daemon: Daemon;
  health?: HealthServer;
  alerts?: AlertManager;
  /** Runbooks started by alerts (replicas.NAME.onCritical). */
  triggers: AlertTriggers;
  /** This daemon as a fleet agent (registration, heartbeat, run requests). */
  fleet: FleetAgent;
  evaluateNow(): Promise<MonitorReport>;
  stop(): Promise<void>;
}

export async function openConfigCatalog(cfg: LifeboatConfig): Promise<Catalog> {
  return openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
}

/** Catalog hooks for a daemon (or a one-off run), with the job's pings (jobs.NAME.ping: start at the first attempt, end at the final one). */
export function catalogHooks(
  cfg: LifeboatConfig,
  catalog: Catalog,
  after?: (r: JobResult) => Promise<void>,
  opts: { log?: (m: string) => void } = {},
): Required<Pick<DaemonHooks, 'onRunStart' | 'onRunEnd' | 'lastSuccess' | 'firstRun'>> {
  const pings = new RunPings(cfg, opts.log ?? (() => {}));
  return {
    onRunStart: async (job, attempt) => {
      if (attempt === 1) pings.started(job);
      const j = cfg.jobs[job]!;
      return catalog.startRun({ job, source: j.source, repository: jobRepository(cfg, j), attempt, agentId: agentIdOf(cfg.daemon) });
    },
    onRunEnd: async (result, runId, _attempt, final) => {
      try {
        if (runId !== undefined) await catalog.finishRun(runId as number, runFinishFromJobResult(result, { willRetry: !final }));
      } finally {
        if (final) await pings.finished(result.job, pingOutcomeOf(result));
      }
      await after?.(result);
    },
    lastSuccess: async (job) => (await catalog.lastSuccess(job, { includePartial: true }))?.startedAt,
    firstRun: (job) => firstRunFromCatalog(catalog, job)(),
  };
}

export async function startService(
  cfg: LifeboatConfig,
  opts: {
    log?: (m: string) => void;
    listen?: string | false;
    evaluateEveryMs?: number;
    runbookPollMs?: number;
    /** Each time no job, drill or maintenance run is left running (Daemon `idle`). */
    idle?: () => void;
  } = {},
): Promise<OpsService> {
  const log = opts.log ?? (() => {});
  const catalog = await openConfigCatalog(cfg);
  const interrupted = await catalog.markInterruptedRuns();
  if (interrupted) log(`catalog: ${interrupted} run(s) left running by a crashed process marked failed`);
  // the plan, resolved once at start-up: the scheduler and its runs take it, not the config
  const plan = resolvePlan(cfg);
  const jobs = jobsFromPlan(plan);
  const alerts = cfg.notifiers ? AlertManager.fromConfig(parseNotifiersConfig(cfg.notifiers), { catalog, baseDir: cfg.dir, log }) : undefined;
  const replicas = replicasFromConfig(cfg);
  const triggerMap = replicaTriggers(replicas);
  const triggers = new AlertTriggers(cfg, catalog, { log, ownAlerts: !alerts, ...(opts.runbookPollMs ? { pollMs: opts.runbookPollMs } : {}) });
  const agentId = agentIdOf(cfg.daemon);
  const fleetCfg = cfg.daemon.fleet;
  let fleet: FleetAgent | undefined;
  const anyJobs = Object.values(plan.jobs)
    .filter((j) => j.job.runOn === 'any' && j.job.schedule)
    .map((j) => ({ name: j.name, schedule: j.job.schedule! }));
  const slotLister = anyJobs.length ? new JobSlots(catalog.sql, 'monitor', { leaseMs: parseDuration(plan.daemon.slots.lease), deadlineMs: 30_000 }) : undefined;
  const evaluateOnce = async () => {
    let report = await evaluate(catalog, jobs);
    if (replicas.length) report = withFindings(report, await evaluateReplicas(replicas));
    if (slotLister) {
      // runOn: any: a slot no agent ran (or a dead agent's slot nobody took over) is a warning
      try {
        const to = new Date();
        const since = new Date(to.getTime() - SLOT_ALERT_WINDOW_MS);
        const rows = await slotLister.list({ since, until: to });
        // a job is graded from its first claimed slot on: the slots before any agent ran it are not "missed"
        const first = await slotLister.firstSlots();
        const missedAfterMs = parseDuration(plan.daemon.slots.missedAfter);
        for (const job of anyJobs) {
          const f = first.get(job.name);
          if (!f) continue;
          const from = f > since ? f : since;
          const [rep] = slotReport([job], rows, { from, to, now: to, missedAfterMs });
          report = withFindings(report, [slotFinding(rep!, plan.jobs[job.name]!.objectives.tier)]);
        }
      } catch (err) {
        log(`monitor: slot report: ${errorMessage(err)}`);
      }
    }

    if (alerts) await alerts.process(report.findings);
    if (triggerMap.size) await triggers.process(report.findings, triggerMap);
    if (cfg.incidents) await escalateIncidents(cfg, catalog, new Date(), { log }).catch((e) => log(`incidents: escalation: ${(e as Error).message}`));
    if (cfg.incidents) await remindIncidents(cfg, catalog, new Date(), { log }).catch((e) => log(`incidents: update reminders: ${(e as Error).message}`));
    return report;
  };
  // Coalesced: every caller gets an evaluation that started after its call,
  // but at most one runs and one waits, however many runs end at once (a
  // fleet's many short jobs would otherwise each evaluate every job).
  let inflight: Promise<MonitorReport> | undefined;
  let queued: Promise<MonitorReport> | undefined;
  const evaluateNow = (): Promise<MonitorReport> => {
    if (!inflight) {
      inflight = evaluateOnce().finally(() => (inflight = undefined));
      return inflight;
    }
    queued ??= inflight
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return evaluateNow();
      });
    return queued;
  };
  // runOn: any jobs: their slots are claimed in the shared catalog (config/config.ts refuses them with a SQLite catalog)
  const claims = Object.values(plan.jobs).some((j) => j.job.runOn === 'any')
    ? new JobSlots(catalog.sql, slotHolderId(agentId), { leaseMs: parseDuration(plan.daemon.slots.lease) })
    : undefined;
  if (claims) log(`high-availability jobs: agent ${claims.agentId}, slot lease ${plan.daemon.slots.lease}`);
  const daemon = new Daemon(plan, {
    ...catalogHooks(
      cfg,
      catalog,
      async () => {
        await evaluateNow().catch((e) => log(`monitor: ${(e as Error).message}`));
      },
      { log },
    ),
    log,
    // scheduled restore drills (jobs.NAME.drill.schedule): recorded, alerting through the notifiers
    runDrill: async (job, signal) => runDrill(plan, job, { catalog, signal, log }),
    // rotating read-data checks (daemon.maintenance.checkReadDataSubset)
    checkSubset: async (id, name, subset) => (await nextRotation(catalog, id, name, subset)).subset,
  }, { ...(claims ? { claims } : {}), ...(opts.idle ? { idle: opts.idle } : {}) });
  // the fleet: register before anything runs, so a duplicate agent id starts nothing
  const execute = async (kind: RequestKind, name: string): Promise<RequestOutcome> => {
    if (kind === 'drill') {
      const d = await daemon.drillNow(name);
      if (d === 'busy') return { status: 'failed', result: { error: `a drill of ${name} is already running on agent ${agentId}` } };
      if (!d.ok) return { status: 'failed', result: { error: d.error.message } };
      const r = d.value as DrillResult;
      return { status: r.status, result: { drillId: r.id ?? null, restoreMs: r.restoreMs, rtoMet: r.rtoMet, ...(r.error ? { error: r.error } : {}) } };
    }
    const r = await daemon.runNow(name, 'requested');
    if (r === 'busy') return { status: 'failed', result: { error: `job ${name} is already running on agent ${agentId}` } };
    const [run] = await catalog.runs({ job: name, agentId, kind: 'backup', limit: 1 }).catch(() => []);
    return { status: r.status, result: { runId: run?.id ?? null, snapshotId: r.snapshotId ?? null, ...(r.error ? { error: r.error } : {}) } };
  };
  try {
    fleet = await FleetAgent.start({
      id: agentId,
      version: PROGRAM.split(' ')[1]!,
      catalog,
      heartbeatMs: parseDuration(fleetCfg.heartbeat),
      missedAfter: fleetCfg.missedAfter,
      requestPollMs: parseDuration(fleetCfg.requestPoll),
      timeoutMs: parseDuration(fleetCfg.catalogTimeout),
      jobs: agentJobsFromPlan(plan, cfg.services),
      execute,
      onLost: () => {
        log(`daemon: agent id ${agentId} now belongs to another process: schedules stopped (running jobs finish); restart this process to rejoin`);
        void daemon.stop().then(
          () => log(`daemon: agent id ${agentId}: schedules stopped, no job of this process running any more`),
          (e) => log(`daemon: stopping the schedules: ${errorMessage(e)}`),
        );
      },
      log,
    });
  } catch (err) {
    await alerts?.close();
    await catalog.close();
    throw err;
  }
  // loaded here, not at the top: prom-client is only needed by the daemon
  let health: HealthServer | undefined;
  try {
    health = opts.listen === false ? undefined : await (await import('./health-server.js')).startHealthServer({ listen: opts.listen ?? cfg.daemon.listen, catalog, jobs });
  } catch (err) {
    // not started after all: say goodbye in the catalog ("stopped", not "missed heartbeat")
    await fleet.stop();
    await alerts?.close();
    await catalog.close();
    throw err;
  }
  if (health) log(`metrics and health on ${health.url} (/metrics, /health, /health/backup)`);
  await daemon.start();
  await evaluateNow().catch((e) => log(`monitor: ${(e as Error).message}`));
  const timer = setInterval(() => void evaluateNow().catch((e) => log(`monitor: ${(e as Error).message}`)), opts.evaluateEveryMs ?? 60_000);
  timer.unref();
  // missed heartbeats of the fleet's agents, checked at the heartbeat's pace: reported
  // by the one live agent holding the watch lease (one sender; another takes over when it dies)
  const fleetWatch = alerts
    ? startFleetWatch({ store: fleet.store, alerts, holder: `agent ${agentId} ${PROCESS_INSTANCE}`, selfId: agentId, tier: fleetCfg.tier, missedAfter: fleetCfg.missedAfter, everyMs: parseDuration(fleetCfg.heartbeat), log })
    : undefined;
  return {
    catalog,
    daemon,
    ...(health ? { health } : {}),
    ...(alerts ? { alerts } : {}),
    triggers,
    fleet,
    evaluateNow,
    async stop() {
      clearInterval(timer);
      await fleetWatch?.stop();
      await daemon.stop();
      await fleet!.stop();
      await triggers.stop();
      await health?.close();
      await alerts?.close();
      await catalog.close();
    },
  };
}
