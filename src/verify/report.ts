import type { LifeboatConfig } from '../config/config.js';
import type { Catalog } from '../ops/catalog/types.js';
import { resolveObjectives } from '../policy/objectives.js';
import { planCheck } from '../policy/plan.js';
import { formatDurationPrecise as formatDuration } from '../util/format.js';
import type { DrillResult } from './drill-types.js';
import { listDrills } from './drill-store.js';

/**
 * The recoverability report: per job (i.e. per source as backed up by that
 * job) the last backup and its age against the RPO, the last verified restore
 * (drill) and its measured restore time against the RTO, the 3-2-1 status of
 * the source, and the history of drill restore times and backup ages over the
 * window (default 30 days). Rendered as Markdown (tables + Unicode
 * sparklines) or as one self-contained HTML file (inline SVG charts, no
 * external resources, every text escaped).
 */

export interface ReportHistory {
  /** Drills in the window, oldest first. */
  drills: Array<{ at: Date; restoreMs: number; ok: boolean; rtoMet: boolean }>;
  /** Age of the newest successful backup, sampled evenly over the window (null: none yet). */
  backupAges: Array<{ at: Date; ageMs: number | null }>;
  /** Successful (or partial) backups in the window. */
  backups: number;
}

export interface ReportSource {
  job: string;
  source: string;
  tier: string;
  lastBackup: Date | null;
  backupAgeMs: number | null;
  rpoMs: number;
  rpoMet: boolean;
  lastDrill: DrillResult | null;
  lastVerifiedRestore: Date | null;
  measuredRtoMs: number | null;
  rtoMs: number;
  rtoMet: boolean | null;
  threeTwoOne: { ok: boolean; failing: string[] };
  history?: ReportHistory;
}

export interface RecoverabilityReport {
  generatedAt: Date;
  sources: ReportSource[];
  /** History window in days. */
  days?: number;
}

const SAMPLES = 48;

function restoredOk(d: DrillResult): boolean {
  return d.phases.some((p) => p.name === 'restore' && p.ok) && d.phases.some((p) => p.name === 'integrity' && p.ok);
}

export async function buildReport(cfg: LifeboatConfig, catalog: Catalog, opts: { now?: Date; days?: number } = {}): Promise<RecoverabilityReport> {
  const now = opts.now ?? new Date();
  const days = opts.days ?? 30;
  const windowStart = new Date(now.getTime() - days * 86_400_000);
  const plans = new Map(planCheck(cfg).map((p) => [p.source, p]));
  const sources: ReportSource[] = [];
  for (const [job, j] of Object.entries(cfg.jobs)) {
    const o = resolveObjectives(j.tier, { ...(j.rpo ? { rpo: j.rpo } : {}), ...(j.rto ? { rto: j.rto } : {}) });
    const last = await catalog.lastSuccess(job, { includePartial: true });
    const lastBackup = last?.startedAt ?? null;
    const backupAgeMs = lastBackup ? Math.max(0, now.getTime() - lastBackup.getTime()) : null;
    const drills = await listDrills(catalog, { job, limit: 1000 });
    const lastDrillR = drills[0] ?? null;
    const lastOk = drills.find((d) => d.status === 'success');
    const lastRestored = drills.find(restoredOk);
    const measuredRtoMs = lastRestored ? lastRestored.restoreMs : null;
    const plan = plans.get(j.source);

    // backup age over the window: age of the newest success at each sample time
    const inWindow = await catalog.runs({ job, kind: 'backup', status: ['success', 'partial'], since: windowStart, until: now, order: 'asc', limit: 100_000 });
    const before = await catalog.runs({ job, kind: 'backup', status: ['success', 'partial'], until: windowStart, order: 'desc', limit: 1 });
    const starts = [...before, ...inWindow].map((r) => r.startedAt.getTime()).sort((a, b) => a - b);
    const backupAges: ReportHistory['backupAges'] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const t = windowStart.getTime() + ((now.getTime() - windowStart.getTime()) * i) / (SAMPLES - 1);
      let lastBefore: number | undefined;
      for (const s of starts) {
        if (s <= t) lastBefore = s;
        else break;
      }
      backupAges.push({ at: new Date(t), ageMs: lastBefore === undefined ? null : t - lastBefore });
    }
    const drillHist = drills
      .filter((d) => d.startedAt >= windowStart)
      .reverse()
      .map((d) => ({ at: d.startedAt, restoreMs: d.restoreMs, ok: d.status === 'success', rtoMet: d.rtoMet }));

    sources.push({
      job,
      source: j.source,
      tier: o.tier,
      lastBackup,
      backupAgeMs,
      rpoMs: o.rpoMs,
      rpoMet: backupAgeMs !== null && backupAgeMs <= o.rpoMs,
      lastDrill: lastDrillR,
      lastVerifiedRestore: lastOk ? lastOk.finishedAt : null,
      measuredRtoMs,
      rtoMs: o.rtoMs,
      rtoMet: measuredRtoMs === null ? null : measuredRtoMs <= o.rtoMs,
      threeTwoOne: plan ? { ok: plan.ok, failing: plan.rules.filter((r) => !r.ok).map((r) => `${r.rule}: ${r.message}`) } : { ok: false, failing: ['no plan for this source'] },
      history: { drills: drillHist, backupAges, backups: inWindow.length },
    });
  }
  return { generatedAt: now, sources, days };
}

// ------------------------------------------------------------------ helpers

function dur(ms: number | null): string {
  return ms === null ? '-' : formatDuration(Math.round(ms));
}

function when(d: Date | null): string {
  return d ? d.toISOString().slice(0, 19).replace('T', ' ') + ' UTC' : 'never';
}

function verdict(b: boolean | null): string {
  return b === null ? 'unknown' : b ? 'met' : 'MISSED';
}

const BARS = '▁▂▃▄▅▆▇█';

/** Unicode sparkline; null values are shown as a space. */
export function sparkline(values: ReadonlyArray<number | null>): string {
  const nums = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (!nums.length) return '';
  const lo = Math.min(...nums);
  const hi = Math.max(...nums);
  return values
    .map((v) => {
      if (v === null || !Number.isFinite(v)) return ' ';
      const i = hi === lo ? 3 : Math.round(((v - lo) / (hi - lo)) * (BARS.length - 1));
      return BARS[i]!;
    })
    .join('');
}

function overall(r: RecoverabilityReport): { ok: number; total: number } {
  const ok = r.sources.filter((s) => s.rpoMet && s.rtoMet === true && s.lastDrill?.status === 'success' && s.threeTwoOne.ok).length;
  return { ok, total: r.sources.length };
}

// ------------------------------------------------------------------ markdown

function mdCell(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/[\r\n]+/g, ' ').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderReportMarkdown(r: RecoverabilityReport): string {
  const out: string[] = [];
  const o = overall(r);
  out.push('# Recoverability report', '');
  out.push(`Generated ${when(r.generatedAt)}; history window ${r.days ?? 30} days. ${o.ok} of ${o.total} job(s) fully compliant (RPO met, last drill passed within the RTO, 3-2-1).`, '');
  out.push('| Job | Source | Tier | Last backup | Backup age | RPO target | RPO met | Last verified restore | Measured restore | RTO target | RTO met | 3-2-1 |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const s of r.sources) {
    out.push(
      '| ' +
        [
          s.job,
          s.source,
          s.tier,
          when(s.lastBackup),
          dur(s.backupAgeMs),
          dur(s.rpoMs),
          verdict(s.lastBackup ? s.rpoMet : null),
          when(s.lastVerifiedRestore),
          dur(s.measuredRtoMs),
          dur(s.rtoMs),
          verdict(s.rtoMet),
          s.threeTwoOne.ok ? 'ok' : 'FAIL',
        ]
          .map(mdCell)
          .join(' | ') +
        ' |',
    );
  }
  for (const s of r.sources) {
    out.push('', `## ${mdCell(s.job)} (source ${mdCell(s.source)}, tier ${s.tier})`, '');
    const d = s.lastDrill;
    if (d) {
      out.push(
        `- Last drill: ${when(d.startedAt)}, **${d.status === 'success' ? 'passed' : 'FAILED'}**, restore ${dur(d.restoreMs)} (RTO ${dur(d.rtoMs)}: ${verdict(d.rtoMet)}), snapshot ${d.snapshotId?.slice(0, 8) ?? '-'}${d.error ? `; error: ${mdCell(d.error.slice(0, 300))}` : ''}`,
      );
      const phases = d.phases.map((p) => `${p.name} ${dur(p.ms)}${p.ok ? '' : ' (failed)'}`).join(', ');
      if (phases) out.push(`- Phases: ${mdCell(phases)}`);
      const failed = d.checks.filter((c) => !c.ok);
      out.push(`- Checks: ${d.checks.length - failed.length}/${d.checks.length} passed${failed.length ? ` — failed: ${mdCell(failed.map((c) => `${c.name} (${c.detail})`).join('; ').slice(0, 500))}` : ''}`);
    } else out.push('- No restore drill recorded: run `lifeboat drill ' + mdCell(s.job) + '` (or set `drill.schedule`).');
    if (!s.threeTwoOne.ok) out.push(`- 3-2-1: ${mdCell(s.threeTwoOne.failing.join('; '))}`);
    const h = s.history;
    if (h) {
      if (h.drills.length) {
        const times = h.drills.map((x) => x.restoreMs);
        out.push(
          `- Drill restore times (${h.drills.length} in window): \`${sparkline(times)}\` min ${dur(Math.min(...times))}, max ${dur(Math.max(...times))}, RTO ${dur(s.rtoMs)}`,
        );
      }
      const ages = h.backupAges.map((x) => x.ageMs);
      const known = ages.filter((x): x is number => x !== null);
      if (known.length) {
        out.push(`- Backup age over ${r.days ?? 30} days (${h.backups} backup(s)): \`${sparkline(ages)}\` max ${dur(Math.max(...known))}, RPO ${dur(s.rpoMs)}`);
      }
      if (h.drills.length) {
        out.push('', '| Drill | Result | Restore time | RTO met |', '|---|---|---|---|');
        for (const x of [...h.drills].reverse().slice(0, 20)) out.push(`| ${when(x.at)} | ${x.ok ? 'passed' : 'FAILED'} | ${dur(x.restoreMs)} | ${x.rtoMet ? 'yes' : 'no'} |`);
      }
    }
  }
  out.push('');
  return out.join('\n');
}

// ------------------------------------------------------------------ html

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

interface ChartPoint {
  x: number;
  y: number | null;
  bad?: boolean;
}

/** A small line chart as inline SVG: points (x = time ms), optional objective line. */
export function svgChart(title: string, points: ChartPoint[], objective: { label: string; value: number } | undefined, fmt: (v: number) => string): string {
  const W = 520;
  const H = 160;
  const L = 64;
  const R = 12;
  const T = 22;
  const B = 24;
  const ys = points.map((p) => p.y).filter((y): y is number => y !== null);
  if (!ys.length) return `<p class="muted">${escapeHtml(title)}: no data in the window</p>`;
  const xs = points.map((p) => p.x);
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs);
  let yMax = Math.max(...ys) * 1.15 || 1;
  // show the objective line when it is on the same scale as the data
  const showObj = objective && objective.value <= yMax * 3;
  if (showObj) yMax = Math.max(yMax, objective!.value * 1.1);
  const px = (x: number) => L + (x1 === x0 ? (W - L - R) / 2 : ((x - x0) / (x1 - x0)) * (W - L - R));
  const py = (y: number) => T + (H - T - B) * (1 - y / yMax);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeHtml(title)}">`);
  parts.push(`<title>${escapeHtml(title)}</title>`);
  parts.push(`<text x="${L}" y="14" class="ct">${escapeHtml(title)}</text>`);
  parts.push(`<line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" class="ax"/><line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" class="ax"/>`);
  for (const f of [0, 0.5, 1]) {
    const v = yMax * f;
    parts.push(`<text x="${L - 4}" y="${(py(v) + 4).toFixed(1)}" text-anchor="end" class="tk">${escapeHtml(fmt(v))}</text>`);
  }
  parts.push(`<text x="${L}" y="${H - 6}" class="tk">${escapeHtml(new Date(x0).toISOString().slice(0, 10))}</text>`);
  parts.push(`<text x="${W - R}" y="${H - 6}" text-anchor="end" class="tk">${escapeHtml(new Date(x1).toISOString().slice(0, 10))}</text>`);
  if (showObj) {
    const y = py(objective!.value).toFixed(1);
    parts.push(`<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" class="obj"/><text x="${W - R}" y="${Number(y) - 3}" text-anchor="end" class="tk obj-t">${escapeHtml(objective!.label)}</text>`);
  } else if (objective) {
    parts.push(`<text x="${W - R}" y="14" text-anchor="end" class="tk">${escapeHtml(objective.label)} (above the chart)</text>`);
  }
  // line through consecutive known points
  let d = '';
  let pen = false;
  for (const p of points) {
    if (p.y === null) {
      pen = false;
      continue;
    }
    d += `${pen ? 'L' : 'M'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)} `;
    pen = true;
  }
  if (d) parts.push(`<path d="${d.trim()}" class="ln"/>`);
  for (const p of points) {
    if (p.y === null) continue;
    parts.push(`<circle cx="${px(p.x).toFixed(1)}" cy="${py(p.y).toFixed(1)}" r="${points.length > 60 ? 1.5 : 3}" class="${p.bad ? 'pt bad' : 'pt'}"><title>${escapeHtml(`${new Date(p.x).toISOString().slice(0, 16).replace('T', ' ')}: ${fmt(p.y)}`)}</title></circle>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

function badge(b: boolean | null, yes = 'met', no = 'MISSED'): string {
  if (b === null) return '<span class="b unk">unknown</span>';
  return b ? `<span class="b ok">${escapeHtml(yes)}</span>` : `<span class="b bad">${escapeHtml(no)}</span>`;
}

export function renderReportHtml(r: RecoverabilityReport): string {
  const o = overall(r);
  const rows = r.sources
    .map(
      (s) =>
        `<tr><td><a href="#job-${escapeHtml(s.job)}">${escapeHtml(s.job)}</a></td><td>${escapeHtml(s.source)}</td><td>${escapeHtml(s.tier)}</td>` +
        `<td>${escapeHtml(when(s.lastBackup))}</td><td>${escapeHtml(dur(s.backupAgeMs))}</td><td>${escapeHtml(dur(s.rpoMs))}</td><td>${badge(s.lastBackup ? s.rpoMet : null)}</td>` +
        `<td>${escapeHtml(when(s.lastVerifiedRestore))}</td><td>${escapeHtml(dur(s.measuredRtoMs))}</td><td>${escapeHtml(dur(s.rtoMs))}</td><td>${badge(s.rtoMet)}</td>` +
        `<td>${badge(s.threeTwoOne.ok, 'ok', 'FAIL')}</td></tr>`,
    )
    .join('\n');
  const sections = r.sources
    .map((s) => {
      const d = s.lastDrill;
      const h = s.history;
      const body: string[] = [];
      body.push(`<section id="job-${escapeHtml(s.job)}"><h2>${escapeHtml(s.job)} <small>source ${escapeHtml(s.source)}, tier ${escapeHtml(s.tier)}</small></h2>`);
      if (d) {
        body.push(
          `<p>Last drill ${escapeHtml(when(d.startedAt))}: ${d.status === 'success' ? '<span class="b ok">passed</span>' : '<span class="b bad">FAILED</span>'}, restore ${escapeHtml(dur(d.restoreMs))} (RTO ${escapeHtml(dur(d.rtoMs))} ${badge(d.rtoMet)}), snapshot <code>${escapeHtml(d.snapshotId?.slice(0, 8) ?? '-')}</code>, target ${escapeHtml(d.target)}</p>`,
        );
        if (d.error) body.push(`<p class="err">${escapeHtml(d.error.slice(0, 1000))}</p>`);
        body.push(
          '<table class="small"><tr><th>Phase</th><th>Time</th><th>Result</th><th>Detail</th></tr>' +
            d.phases.map((p) => `<tr><td>${escapeHtml(p.name)}</td><td>${escapeHtml(dur(p.ms))}</td><td>${badge(p.ok, 'ok', 'failed')}</td><td>${escapeHtml(p.detail ?? '')}</td></tr>`).join('') +
            '</table>',
        );
        if (d.checks.length) {
          body.push(
            '<table class="small"><tr><th>Check</th><th>Result</th><th>Detail</th></tr>' +
              d.checks.map((c) => `<tr><td>${escapeHtml(c.name)}</td><td>${badge(c.ok, 'ok', 'failed')}</td><td>${escapeHtml(c.detail)}</td></tr>`).join('') +
              '</table>',
          );
        }
      } else body.push(`<p class="muted">No restore drill recorded: run <code>lifeboat drill ${escapeHtml(s.job)}</code> or set <code>drill.schedule</code>.</p>`);
      if (!s.threeTwoOne.ok) body.push(`<p>3-2-1: ${s.threeTwoOne.failing.map(escapeHtml).join('; ')}</p>`);
      if (h) {
        body.push('<div class="charts">');
        body.push(
          svgChart(
            `Drill restore time (${h.drills.length} drill(s))`,
            h.drills.map((x) => ({ x: x.at.getTime(), y: x.restoreMs, bad: !x.ok })),
            { label: `RTO ${dur(s.rtoMs)}`, value: s.rtoMs },
            (v) => dur(v),
          ),
        );
        body.push(
          svgChart(
            `Backup age (${h.backups} backup(s) in ${r.days ?? 30} days)`,
            h.backupAges.map((x) => ({ x: x.at.getTime(), y: x.ageMs, bad: x.ageMs !== null && x.ageMs > s.rpoMs })),
            { label: `RPO ${dur(s.rpoMs)}`, value: s.rpoMs },
            (v) => dur(v),
          ),
        );
        body.push('</div>');
      }
      body.push('</section>');
      return body.join('\n');
    })
    .join('\n');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Recoverability report ${escapeHtml(r.generatedAt.toISOString().slice(0, 10))}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2433;max-width:1200px}
h1{margin-bottom:.2rem}h2 small{font-weight:normal;color:#667}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #d5d9e0;padding:.3rem .5rem;text-align:left;font-size:.9rem;vertical-align:top}
th{background:#f1f3f7}table.small td,table.small th{font-size:.8rem}
.b{padding:.05rem .4rem;border-radius:.6rem;font-size:.8rem;font-weight:600}.ok{background:#dff3e4;color:#17612c}.bad{background:#fbe0e0;color:#9b1c1c}.unk{background:#eceff3;color:#555}
.muted{color:#667}.err{color:#9b1c1c;white-space:pre-wrap}.charts{display:flex;flex-wrap:wrap;gap:1rem}
svg .ax{stroke:#99a}svg .ln{fill:none;stroke:#2f6fd6;stroke-width:1.5}svg .pt{fill:#2f6fd6}svg .pt.bad{fill:#c62828}
svg .obj{stroke:#c62828;stroke-dasharray:4 3}svg .tk{font-size:10px;fill:#556}svg .ct{font-size:12px;font-weight:600;fill:#1d2433}svg .obj-t{fill:#c62828}
section{border-top:1px solid #e3e6eb;margin-top:1.5rem;padding-top:.5rem}
</style></head>
<body>
<h1>Recoverability report</h1>
<p class="muted">Generated ${escapeHtml(when(r.generatedAt))}; history window ${r.days ?? 30} days. <strong>${o.ok} of ${o.total}</strong> job(s) fully compliant (RPO met, last drill passed within the RTO, 3-2-1).</p>
<table>
<tr><th>Job</th><th>Source</th><th>Tier</th><th>Last backup</th><th>Backup age</th><th>RPO</th><th>RPO</th><th>Last verified restore</th><th>Measured restore</th><th>RTO</th><th>RTO</th><th>3-2-1</th></tr>
${rows}
</table>
${sections}
</body></html>
`;
}
