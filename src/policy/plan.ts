import type { LifeboatConfig } from '../config/config.js';
import { parseLocation } from '../storage/open.js';
import { jobRepository, resolveLocation } from '../config/repos.js';

/**
 * The 3-2-1 rule per source: at least 3 copies of the data (the live data plus
 * backups), on at least 2 different kinds of storage, at least 1 off-site.
 * Derived from the plan: the repositories a source's jobs back up into or copy to.
 */
export interface PlanRule {
  rule: '3 copies' | '2 storage kinds' | '1 off-site';
  ok: boolean;
  message: string;
}

export interface SourcePlan {
  source: string;
  repositories: Array<{ name: string; kind: string; offsite: boolean }>;
  copies: number;
  kinds: string[];
  offsite: number;
  rules: PlanRule[];
  ok: boolean;
}

export function repositoryKind(cfg: LifeboatConfig, name: string): { kind: string; offsite: boolean } {
  const conf = cfg.repositories[name]!;
  let kind = 'local';
  try {
    kind = parseLocation(resolveLocation(cfg, conf.location)).kind;
  } catch {
    kind = 'unknown';
  }
  // network backends count as off-site unless the config says otherwise (an rclone remote on a local disk: offsite: false)
  return { kind, offsite: conf.offsite ?? (kind === 's3' || kind === 'rclone' || kind === 'sftp') };
}

export function planCheck(cfg: LifeboatConfig): SourcePlan[] {
  const out: SourcePlan[] = [];
  for (const source of Object.keys(cfg.sources)) {
    const names = new Set<string>();
    for (const j of Object.values(cfg.jobs)) {
      if (j.source !== source) continue;
      names.add(jobRepository(cfg, j));
      for (const c of j.copyTo) names.add(c);
    }
    const repositories = [...names].map((name) => ({ name, ...repositoryKind(cfg, name) }));
    // the live data counts as one copy, on its own (local) storage
    const copies = 1 + repositories.length;
    // the live data sits on local storage: a second kind means a backup on other media (e.g. S3)
    const kinds = [...new Set(['local', ...repositories.map((r) => r.kind)])];
    const offsite = repositories.filter((r) => r.offsite).length;
    const rules: PlanRule[] = [
      {
        rule: '3 copies',
        ok: copies >= 3,
        message: copies >= 3 ? `${copies} copies (live + ${repositories.length} backups)` : `only ${copies} cop${copies === 1 ? 'y' : 'ies'}: add ${3 - copies} more repository copies (jobs' copyTo)`,
      },
      {
        rule: '2 storage kinds',
        ok: kinds.length >= 2,
        message: kinds.length >= 2 ? `storage kinds: ${kinds.join(', ')}` : 'everything is on local storage: add a copy on another kind (e.g. S3)',
      },
      {
        rule: '1 off-site',
        ok: offsite >= 1,
        message: offsite >= 1 ? `${offsite} off-site (${repositories.filter((r) => r.offsite).map((r) => r.name).join(', ')})` : 'no off-site copy: add an S3 repository or mark one "offsite: true"',
      },
    ];
    out.push({ source, repositories, copies, kinds, offsite, rules, ok: rules.every((r) => r.ok) });
  }
  return out;
}
