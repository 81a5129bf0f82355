import { hostname, userInfo } from 'node:os';
import { Command } from 'commander';
import { ExitCode, LifeboatError } from '../../errors.js';
import { openConfigCatalog } from '../../ops/service.js';
import { FleetStore, type RequestKind, type RunRequest } from '../../ops/fleet/store.js';
import { fleetView } from '../../ops/fleet/view.js';
import { parseDuration } from '../../util/duration.js';
import { table } from '../output.js';
import type { CliContext } from '../context.js';

/**
 * `lifeboat fleet`: the agents sharing this config's catalog. `ls` lists them
 * with their state and jobs; `run` / `drill` leave a run request for one
 * agent (it polls the catalog and picks it up); `--wait` waits for its result.
 */
export function registerFleet(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  const fleet = program.command('fleet').description('the agents (daemons) sharing the catalog: list them, run a job or a drill on one');

  fleet
    .command('ls')
    .description('every agent with its state (live / missed heartbeat / stopped), version, last heartbeat and jobs')
    .option('--host <agent>', 'only this agent')
    .option('--service <name>', 'only jobs of this service')
    .action(async (o: { host?: string; service?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const catalog = await openConfigCatalog(cfg);
      try {
        const store = storeOf(cfg, catalog);
        const v = await fleetView(store, catalog, { ...(o.host ? { host: o.host } : {}), ...(o.service ? { service: o.service } : {}) });
        ctx.out.emit(v);
        if (v.agents.length === 0) ctx.out.info('no agents registered in this catalog (start `lifeboat daemon` on each host)');
        else
          ctx.out.info(
            table(
              ['AGENT', 'STATE', 'HOST', 'VERSION', 'LAST SEEN', 'JOB', 'LAST RUN'],
              v.agents.flatMap((a) =>
                (a.jobs.length ? a.jobs : [undefined]).map((j, i) => [
                  i === 0 ? a.id : '',
                  i === 0 ? (a.state === 'missed' ? 'MISSED HEARTBEAT' : a.state) : '',
                  i === 0 ? a.hostname : '',
                  i === 0 ? a.version : '',
                  i === 0 ? a.lastSeen.toISOString() : '',
                  j ? j.name : '-',
                  j?.lastRun ? `${j.lastRun.status} ${j.lastRun.startedAt.toISOString()}` : j ? 'never' : '',
                ]),
              ),
            ),
          );
      } finally {
        await catalog.close();
      }
    });

  for (const kind of ['job', 'drill'] as const) {
    fleet
      .command(kind === 'job' ? 'run' : 'drill')
      .description(kind === 'job' ? 'ask one agent to run one of its jobs now' : 'ask one agent to run a restore drill of one of its jobs now')
      .argument('<job>', 'job name (as the agent reports it)')
      .requiredOption('--agent <id>', 'the agent that runs it')
      .option('--wait', 'wait until the agent reports the result (exit 1 if it failed)')
      .option('--timeout <duration>', 'with --wait: give up after this long', '1h')
      .action(async (job: string, o: { agent: string; wait?: boolean; timeout: string }, cmd: Command) => {
        const ctx = ctxOf(cmd);
        const cfg = ctx.config(true)!;
        const catalog = await openConfigCatalog(cfg);
        try {
          const store = storeOf(cfg, catalog);
          let r = await store.request(o.agent, kind as RequestKind, job, `cli ${cliUser()}@${hostname()}`);
          ctx.out.info(`request #${r.id}: ${kind} ${job} on agent ${o.agent} (pending; the agent picks it up at its next poll)`);
          if (o.wait) r = await waitFor(store, r.id, parseDuration(o.timeout));
          ctx.out.emit(r);
          if (o.wait) {
            ctx.out.info(`request #${r.id}: ${r.status}${r.result?.error ? `: ${String(r.result.error)}` : ''}`);
            if (r.status === 'failed') process.exitCode = ExitCode.FATAL;
            if (r.status === 'partial') process.exitCode = ExitCode.PARTIAL;
          }
        } finally {
          await catalog.close();
        }
      });
  }
}

function storeOf(cfg: { daemon: { fleet: { catalogTimeout: string; missedAfter: number } } }, catalog: Parameters<typeof fleetView>[1]): FleetStore {
  return new FleetStore(catalog, { timeoutMs: parseDuration(cfg.daemon.fleet.catalogTimeout), missedAfter: cfg.daemon.fleet.missedAfter });
}

async function waitFor(store: FleetStore, id: number, timeoutMs: number): Promise<RunRequest> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const r = await store.getRequest(id);
    if (r && r.finishedAt) return r;
    if (Date.now() > until) throw new LifeboatError(`request #${id} did not finish within ${timeoutMs} ms (state: ${r?.status ?? 'unknown'}); is the agent live? (lifeboat fleet ls)`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

/** Who asked, as recorded on the request (the OS user; no secret). */
function cliUser(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}
