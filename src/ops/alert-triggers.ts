import type { LifeboatConfig } from '../config/config.js';
import { errorMessage } from '../errors.js';
import { getRunbook } from '../runbook/load.js';
import { listRunbookRuns, runRunbook } from '../runbook/engine.js';
import type { AlertRecord, Catalog } from './catalog/types.js';
import type { Finding } from './monitor.js';
import { alertKey } from './notify/manager.js';

/**
 * Alert → runbook triggers: a critical finding whose source configures
 * `onCritical: { runbook }` (replicas.NAME.onCritical) starts that runbook,
 * once per alert firing — not once per monitor pass.
 *
 * The firing is the alert record of the catalog (`alerts` table, the same
 * one the AlertManager keeps; when no notifiers are configured this module
 * keeps it). One firing = one `firstAt`; the run is started with the actor
 * "alert KEY firing since FIRSTAT", so a restarted daemon finds the run it
 * already started in the catalog and does not start a second one.
 *
 * requireConfirmation (default true): the runbook must begin with a manual
 * step, so the run starts and waits ("waiting") until a human confirms it
 * (`lifeboat runbook confirm RUN 1`, or the API); nothing else runs before.
 * A runbook without that gate is not started (logged loudly).
 *
 * The runs execute in this process in the background; stop() aborts them
 * (they become "interrupted" and `lifeboat runbook resume` continues them).
 */

export interface Trigger {
  runbook: string;
  requireConfirmation: boolean;
}

export interface TriggerStart {
  key: string;
  runbook: string;
  runId: number;
  actor: string;
}

export class AlertTriggers {
  private readonly controller = new AbortController();
  private readonly runs = new Set<Promise<unknown>>();
  private readonly started = new Set<string>();
  private readonly log: (m: string) => void;

  constructor(
    private readonly cfg: LifeboatConfig,
    private readonly catalog: Catalog,
    private readonly opts: {
      log?: (m: string) => void;
      /** No AlertManager runs in this process: keep the alert records here. */
      ownAlerts?: boolean;
      /** Poll interval of the run's waiting manual step. */
      pollMs?: number;
      now?: () => Date;
    } = {},
  ) {
    this.log = opts.log ?? (() => {});
  }

  /** `triggers`: by alert key ("replica:NAME/replica"). Returns the runs started by this call. */
  async process(findings: readonly Finding[], triggers: ReadonlyMap<string, Trigger>): Promise<TriggerStart[]> {
    const out: TriggerStart[] = [];
    for (const f of findings) {
      const key = alertKey(f);
      const t = triggers.get(key);
      if (!t) continue;
      try {
        const a = await this.alertOf(f, key);
        if (!a || a.state !== 'firing' || f.severity !== 'critical') continue;
        const actor = `alert ${key} firing since ${a.firstAt.toISOString()}`;
        if (this.started.has(actor)) continue;
        if ((await listRunbookRuns(this.catalog, { runbook: t.runbook, limit: 100 })).some((r) => r.actor === actor)) {
          this.started.add(actor);
          continue;
        }
        const def = getRunbook(this.cfg, t.runbook).def;
        if (t.requireConfirmation && def.steps[0]?.type !== 'manual') {
          this.log(`ALERT ${key}: NOT starting runbook "${t.runbook}": requireConfirmation is set but its first step is not a manual step`);
          this.started.add(actor);
          continue;
        }
        this.started.add(actor);
        out.push({ key, runbook: t.runbook, actor, runId: await this.start(t.runbook, actor, key) });
      } catch (err) {
        this.log(`alert trigger ${key}: ${errorMessage(err)}`);
      }
    }
    return out;
  }

  private async alertOf(f: Finding, key: string): Promise<AlertRecord | undefined> {
    const a = await this.catalog.getAlert(key);
    if (!this.opts.ownAlerts) return a;
    const now = this.opts.now?.() ?? new Date();
    const firing = f.severity === 'critical' || f.severity === 'warning';
    if (firing && (!a || a.state === 'resolved')) {
      const rec: AlertRecord = {
        key,
        job: f.job,
        check: f.check,
        state: 'firing',
        severity: f.severity,
        firstAt: now,
        lastChangeAt: now,
        lastSentAt: null,
        count: 0,
        notified: null,
        notifiedSeverity: null,
        resolvedAt: null,
        message: f.message,
      };
      await this.catalog.saveAlert(rec);
      return rec;
    }
    if (a && a.state === 'firing' && (!firing || a.severity !== f.severity)) {
      const next: AlertRecord = firing
        ? { ...a, severity: f.severity, lastChangeAt: now, message: f.message }
        : { ...a, state: 'resolved', resolvedAt: now, lastChangeAt: now, message: f.message };
      await this.catalog.saveAlert(next);
      return next;
    }
    return a;
  }

  private start(runbook: string, actor: string, key: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      let id: number | undefined;
      const run = runRunbook(this.cfg, this.catalog, runbook, {
        actor,
        signal: this.controller.signal,
        log: (m) => this.log(`runbook ${runbook}: ${m}`),
        ...(this.opts.pollMs ? { pollMs: this.opts.pollMs } : {}),
        onStarted: (runId) => {
          id = runId;
          this.log(`ALERT ${key}: started runbook "${runbook}" as run #${runId}; it waits for confirmation: lifeboat runbook confirm ${runId} 1`);
          resolve(runId);
        },
      })
        .then((r) => this.log(`runbook ${runbook} run #${r.id} (from alert ${key}): ${r.status}`))
        .catch((err: unknown) => {
          this.log(`runbook ${runbook} (from alert ${key}): ${errorMessage(err)}`);
          if (id === undefined) reject(err);
        })
        .finally(() => this.runs.delete(run));
      this.runs.add(run);
    });
  }

  /** Abort the runs started here (they become "interrupted") and wait for them, at most waitMs. */
  async stop(waitMs = 5_000): Promise<void> {
    this.controller.abort(new Error('daemon shutting down'));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.runs]), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
  }
}
