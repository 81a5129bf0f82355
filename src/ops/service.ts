import type { LifeboatConfig } from '../config/load.js';
import { openCatalog, runFinishFromJobResult, type Catalog } from './catalog.js';
import { Daemon, type DaemonHooks } from './daemon.js';
import type { HealthServer } from './health-server.js';
import { jobRepository } from '../config/repos.js';
import type { JobResult } from './jobs.js';
import { evaluate, jobsFromConfig, type MonitorReport } from './monitor.js';
import { AlertManager, parseNotifiersConfig } from './notify.js';
import { escalateIncidents } from './incidents.js';
import { runDrill } from '../verify/drill.js';
import { nextRotation } from '../verify/drill-rotation.js';

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
  evaluateNow(): Promise<MonitorReport>;
  stop(): Promise<void>;
}

export async function openConfigCatalog(cfg: LifeboatConfig): Promise<Catalog> {
  return openCatalog(cfg.daemon.catalog, { baseDir: cfg.dir });
}

/** Catalog hooks for a daemon (or a one-off run). */
export function catalogHooks(cfg: LifeboatConfig, catalog: Catalog, after?: (r: JobResult) => Promise<void>): Required<Pick<DaemonHooks, 'onRunStart' | 'onRunEnd' | 'lastSuccess'>> {
  return {
    onRunStart: async (job, attempt) => {
      const j = cfg.jobs[job]!;
      return catalog.startRun({ job, source: j.source, repository: jobRepository(cfg, j), attempt });
    },
    onRunEnd: async (result, runId, _attempt, final) => {
      if (runId !== undefined) await catalog.finishRun(runId as number, runFinishFromJobResult(result, { willRetry: !final }));
      await after?.(result);
    },
    lastSuccess: async (job) => (await catalog.lastSuccess(job, { includePartial: true }))?.startedAt,
  };
}

export async function startService(
  cfg: LifeboatConfig,
  opts: { log?: (m: string) => void; listen?: string | false; evaluateEveryMs?: number } = {},
): Promise<OpsService> {
  const log = opts.log ?? (() => {});
  const catalog = await openConfigCatalog(cfg);
  const interrupted = await catalog.markInterruptedRuns();
  if (interrupted) log(`catalog: ${interrupted} run(s) left running by a crashed process marked failed`);
  const jobs = jobsFromConfig(cfg);
  const alerts = cfg.notifiers ? AlertManager.fromConfig(parseNotifiersConfig(cfg.notifiers), { catalog, baseDir: cfg.dir, log }) : undefined;
  const evaluateNow = async () => {
    const report = await evaluate(catalog, jobs);
    if (alerts) await alerts.process(report.findings);
    if (cfg.incidents) await escalateIncidents(cfg, catalog, new Date(), { log }).catch((e) => log(`incidents: escalation: ${(e as Error).message}`));
    return report;
  };
  const daemon = new Daemon(cfg, {
    ...catalogHooks(cfg, catalog, async () => {
      await evaluateNow().catch((e) => log(`monitor: ${(e as Error).message}`));
    }),
    log,
    // scheduled restore drills (jobs.NAME.drill.schedule): recorded, alerting through the notifiers
    runDrill: async (job, signal) => {
      await runDrill(cfg, job, { catalog, signal, log });
    },
    // rotating read-data checks (daemon.maintenance.checkReadDataSubset)
    checkSubset: async (id, name, subset) => (await nextRotation(catalog, id, name, subset)).subset,
  });
  // loaded here, not at the top: prom-client is only needed by the daemon
  const health = opts.listen === false ? undefined : await (await import('./health-server.js')).startHealthServer({ listen: opts.listen ?? cfg.daemon.listen, catalog, jobs });
  if (health) log(`metrics and health on ${health.url} (/metrics, /health, /health/backup)`);
  await daemon.start();
  await evaluateNow().catch((e) => log(`monitor: ${(e as Error).message}`));
  const timer = setInterval(() => void evaluateNow().catch((e) => log(`monitor: ${(e as Error).message}`)), opts.evaluateEveryMs ?? 60_000);
  timer.unref();
  return {
    catalog,
    daemon,
    ...(health ? { health } : {}),
    ...(alerts ? { alerts } : {}),
    evaluateNow,
    async stop() {
      clearInterval(timer);
      await daemon.stop();
      await health?.close();
      await alerts?.close();
      await catalog.close();
    },
  };
}
