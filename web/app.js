// Lifeboat dashboard: vanilla JS, no build step, no external resources.
// Talks to the JSON API (/api/v1) with the session cookie and sends the
// session's CSRF token on every state-changing request. All text is inserted
// with textContent (never innerHTML).
'use strict';

const state = { user: null, role: null, csrf: null, timers: [] };

// ---------------------------------------------------------------- helpers

function h(tag, attrs, ...children) {
  const svg = ['svg', 'path', 'polyline', 'line', 'circle', 'text', 'g', 'rect', 'title'].includes(tag);
  const el = svg ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && !svg) el.value = v;
    else if (k === 'checked' && !svg) el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(method, path, body) {
  const headers = { accept: 'application/json' };
  if (method !== 'GET') {
    headers['x-csrf-token'] = state.csrf || '';
    if (body !== undefined) headers['content-type'] = 'application/json';
  }
  const res = await fetch('/api/v1' + path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 401) {
    location.href = '/login?next=' + encodeURIComponent('/' + location.hash);
    throw new Error('not logged in');
  }
  const type = res.headers.get('content-type') || '';
  const data = type.includes('json') ? await res.json() : await res.text();
  if (!res.ok) throw new Error((data && data.error) || `HTTP ${res.status}`);
  return data;
}

const isOperator = () => state.role === 'operator';

function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < u.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(n >= 100 ? 0 : 1)} ${u[i]}`;
}

function fmtDur(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = s / 60;
  if (m < 60) return `${Math.floor(m)}m ${Math.round(s % 60)}s`;
  const hr = m / 60;
  if (hr < 48) return `${Math.floor(hr)}h ${Math.round(m % 60)}m`;
  return `${Math.floor(hr / 24)}d ${Math.round(hr % 24)}h`;
}

function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  return d.toLocaleString(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

function ago(iso) {
  return iso ? fmtDur(Date.now() - new Date(iso).getTime()) + ' ago' : 'never';
}

function light(color, label) {
  return h('span', { class: `light ${color}`, title: label || color }, label || '');
}

const SEV_COLOR = { ok: 'green', warning: 'amber', critical: 'red' };
const STATUS_COLOR = { success: 'green', partial: 'amber', failed: 'red', running: 'blue', waiting: 'amber', interrupted: 'red', 'rolled-back': 'amber', 'rollback-failed': 'red', pending: 'grey', skipped: 'grey' };

function badge(status) {
  return h('span', { class: `badge ${STATUS_COLOR[status] || 'grey'}`, dataset: { status } }, status);
}

function toast(msg, bad) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = 'toast' + (bad ? ' bad' : '');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 5000);
}

function table(headers, rows, attrs) {
  return h('table', attrs || {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows));
}

function every(ms, fn) {
  const id = setInterval(fn, ms);
  state.timers.push(id);
}

function section(title, ...body) {
  return h('section', { class: 'card' }, h('h2', {}, title), ...body);
}

/** Run an action; show errors in a toast. */
async function act(fn, okMsg) {
  try {
    const r = await fn();
    if (okMsg) toast(okMsg);
    return r;
  } catch (e) {
    toast(e.message, true);
    return undefined;
  }
}

function followTask(task, onDone) {
  const box = h('div', { class: 'task', dataset: { task: task.id } }, h('strong', {}, task.title), ' ', badge(task.status), h('pre', { class: 'log' }, task.log.join('\n')));
  const update = async () => {
    const t = await api('GET', `/tasks/${task.id}`).catch(() => null);
    if (!t) return;
    box.replaceChildren(h('strong', {}, t.title), ' ', badge(t.status), t.error ? h('div', { class: 'error' }, t.error) : null, h('pre', { class: 'log' }, t.log.join('\n')));
    box.dataset.status = t.status;
    if (t.status !== 'running') {
      clearInterval(id);
      if (onDone) onDone(t);
    }
  };
  const id = setInterval(update, 700);
  state.timers.push(id);
  void update();
  return box;
}

// ---------------------------------------------------------------- charts

/** Line chart as inline SVG: points [{t: Date, v: number, status}] */
function lineChart(title, points, fmt) {
  const W = 460, H = 160, L = 64, R = 12, T = 22, B = 26;
  const svg = h('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': title });
  svg.append(h('text', { x: L, y: 14, class: 'chart-title' }, title));
  const pts = points.filter((p) => p.v !== null && p.v !== undefined);
  if (pts.length === 0) {
    svg.append(h('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'no data yet'));
    return svg;
  }
  const t0 = pts[0].t.getTime(), t1 = pts[pts.length - 1].t.getTime();
  const vmax = Math.max(...pts.map((p) => p.v)) || 1;
  const x = (t) => (t1 === t0 ? L + (W - L - R) / 2 : L + ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    svg.append(h('line', { x1: L, x2: W - R, y1: y(vmax * f), y2: y(vmax * f), class: 'grid' }));
    svg.append(h('text', { x: L - 6, y: y(vmax * f) + 4, 'text-anchor': 'end', class: 'axis' }, fmt(vmax * f)));
  }
  svg.append(h('text', { x: L, y: H - 8, class: 'axis' }, new Date(t0).toLocaleDateString()));
  svg.append(h('text', { x: W - R, y: H - 8, 'text-anchor': 'end', class: 'axis' }, new Date(t1).toLocaleString()));
  svg.append(h('polyline', { points: pts.map((p) => `${x(p.t.getTime()).toFixed(1)},${y(p.v).toFixed(1)}`).join(' '), class: 'line' }));
  for (const p of pts) svg.append(h('circle', { cx: x(p.t.getTime()).toFixed(1), cy: y(p.v).toFixed(1), r: 3, class: `dot ${STATUS_COLOR[p.status] || ''}` }, h('title', {}, `${fmtTime(p.t.toISOString())}: ${fmt(p.v)}`)));
  return svg;
}

// ---------------------------------------------------------------- pages

const pages = {};

pages.overview = async (root) => {
  const o = await api('GET', '/overview');
  const alerts = o.alerts.filter((a) => a.severity !== 'ok');
  root.append(
    h('h1', {}, 'Overview ', light(o.light, { green: 'all good', amber: 'attention', red: 'failing' }[o.light])),
    section(
      `Alerts (${alerts.length})`,
      alerts.length
        ? h('ul', { class: 'alerts', id: 'alerts' }, alerts.map((a) => h('li', { class: `alert ${SEV_COLOR[a.severity]}`, dataset: { job: a.job, severity: a.severity } }, light(SEV_COLOR[a.severity]), ' ', h('strong', {}, a.job), ` · ${a.check}: ${a.message}`)))
        : h('p', { class: 'muted', id: 'alerts' }, 'No alerts: every job is within its objectives.'),
    ),
    section(
      'Jobs',
      table(
        ['', 'Job', 'Source', 'Last backup', 'Age vs RPO', 'Last run', 'Last drill / RTO', '3-2-1'],
        o.jobs.map((j) =>
          h(
            'tr',
            { class: `job-row ${j.light}`, dataset: { job: j.job, light: j.light } },
            h('td', {}, light(j.light)),
            h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(j.job)}` }, j.job), h('div', { class: 'muted' }, `${j.tier}${j.services.length ? ' · ' + j.services.join(', ') : ''}`)),
            h('td', {}, `${j.source} (${j.sourceKind})`),
            h('td', {}, j.lastBackup ? fmtTime(j.lastBackup.at) : 'never', j.lastBackup ? h('div', { class: 'muted' }, fmtBytes(j.lastBackup.totalSize)) : null),
            h('td', { class: `sev ${SEV_COLOR[j.rpoStatus]}` }, j.backupAgeMs === null ? 'no backup' : fmtDur(j.backupAgeMs), ` / ${fmtDur(j.rpoMs)}`),
            h('td', {}, j.lastRun ? badge(j.lastRun.status) : '–', j.lastRun && j.lastRun.error ? h('div', { class: 'error small' }, j.lastRun.error) : null),
            h(
              'td',
              { class: `sev ${{ ok: 'green', never: 'amber', missed: 'amber', failed: 'red' }[j.rtoStatus]}` },
              j.lastDrill ? `${fmtDur(j.lastDrill.restoreMs)} / ${fmtDur(j.rtoMs)} (${j.lastDrill.status}, ${ago(j.lastDrill.at)})` : `never / ${fmtDur(j.rtoMs)}`,
            ),
            h('td', { class: `sev ${j.threeTwoOne.ok ? 'green' : 'amber'}`, title: j.threeTwoOne.failing.join(', ') }, j.threeTwoOne.ok ? 'ok' : 'missing: ' + j.threeTwoOne.failing.join(', ')),
          ),
        ),
        { id: 'jobs-table' },
      ),
    ),
    o.services.length
      ? section('Services', h('div', { class: 'chips' }, o.services.map((s) => h('span', { class: `chip ${s.light}`, dataset: { service: s.name } }, light(s.light), ' ', s.name))))
      : null,
    section('Backup size over time', h('div', { class: 'charts' }, o.jobs.map((j) => lineChart(j.job, j.history.map((p) => ({ t: new Date(p.startedAt), v: p.totalSize, status: p.status })), fmtBytes)))),
  );
  every(15000, () => route());
};

pages.jobs = async (root, name) => {
  if (name) return jobDetail(root, name);
  const jobs = await api('GET', '/jobs');
  root.append(
    h('h1', {}, 'Jobs'),
    section(
      'All jobs',
      table(
        ['Job', 'Source', 'Schedule', 'Last run', ''],
        jobs.map((j) =>
          h(
            'tr',
            { dataset: { job: j.name } },
            h('td', {}, h('a', { href: `#/jobs/${encodeURIComponent(j.name)}` }, j.name)),
            h('td', {}, `${j.source} (${j.sourceKind})`),
            h('td', {}, j.schedule || 'manual'),
            h('td', {}, j.lastRun ? [badge(j.lastRun.status), ' ', fmtTime(j.lastRun.startedAt)] : 'never'),
            h('td', {}, isOperator() ? h('button', { type: 'button', class: 'run-now', onclick: () => runNow(j.name) }, 'Run now') : null),
          ),
        ),
      ),
    ),
    h('div', { id: 'task-area' }),
  );
};

async function runNow(name) {
  const t = await act(() => api('POST', `/jobs/${encodeURIComponent(name)}/run`), `job ${name} started`);
  if (t) document.getElementById('task-area').prepend(followTask(t));
}

async function jobDetail(root, name) {
  const runs = await api('GET', `/jobs/${encodeURIComponent(name)}/runs?limit=100`);
  const backups = runs.filter((r) => r.kind === 'backup' && r.status !== 'running').reverse();
  const logBox = h('div', { id: 'run-log' });
  root.append(
    h('h1', {}, 'Job ', name, ' ', isOperator() ? h('button', { type: 'button', onclick: () => runNow(name) }, 'Run now') : null),
    h('div', { id: 'task-area' }),
    section(
      'History',
      h(
        'div',
        { class: 'charts' },
        lineChart('Backup size', backups.map((r) => ({ t: new Date(r.startedAt), v: r.totalSize, status: r.status })), fmtBytes),
        lineChart('Duration', backups.map((r) => ({ t: new Date(r.startedAt), v: r.durationMs, status: r.status })), fmtDur),
      ),
    ),
    section(
      'Runs',
      table(
        ['Run', 'Kind', 'Status', 'Started', 'Duration', 'Size', 'Added', 'Error'],
        runs.map((r) =>
          h(
            'tr',
            { dataset: { run: r.id } },
            h('td', {}, h('a', { href: '#', onclick: (e) => (e.preventDefault(), showRun(r.id, logBox)) }, `#${r.id}`)),
            h('td', {}, r.kind),
            h('td', {}, badge(r.status)),
            h('td', {}, fmtTime(r.startedAt)),
            h('td', {}, fmtDur(r.durationMs)),
            h('td', {}, fmtBytes(r.totalSize)),
            h('td', {}, fmtBytes(r.bytesAdded)),
            h('td', { class: 'error small' }, r.error || ''),
          ),
        ),
      ),
    ),
    logBox,
  );
}

async function showRun(id, box) {
  const r = await api('GET', `/runs/${id}`);
  box.replaceChildren(section(`Run #${r.id} (${r.status})`, r.error ? h('p', { class: 'error' }, r.error) : null, h('pre', { class: 'log' }, r.logTail || '(no log lines recorded)')));
}

pages.snapshots = async (root, repoName, snapId) => {
  const repos = await api('GET', '/repositories');
  const current = repoName || (repos[0] && repos[0].name);
  root.append(
    h('h1', {}, 'Snapshots'),
    h('p', {}, 'Repository: ', h('select', { id: 'repo-select', onchange: (e) => (location.hash = `#/snapshots/${encodeURIComponent(e.target.value)}`) }, repos.map((r) => h('option', { value: r.name, selected: r.name === current }, `${r.name} (${r.kind}${r.offsite ? ', off-site' : ''})`)))),
  );
  if (!current) return;
  if (snapId) return browse(root, current, snapId);
  const snaps = await api('GET', `/repositories/${encodeURIComponent(current)}/snapshots`);
  root.append(
    section(
      `${snaps.length} snapshot(s)`,
      table(
        ['ID', 'Time', 'Source / paths', 'Tags', 'Size', ''],
        snaps.map((s) =>
          h(
            'tr',
            { dataset: { snapshot: s.id } },
            h('td', {}, h('code', {}, s.shortId)),
            h('td', {}, fmtTime(s.time)),
            h('td', {}, s.source ? `${s.source.kind}:${s.source.name || ''}` : s.paths.join(' ')),
            h('td', {}, s.tags.join(', ')),
            h('td', {}, fmtBytes(s.totalBytes)),
            h(
              'td',
              {},
              s.kind === 'files'
                ? h('a', { href: `#/snapshots/${encodeURIComponent(current)}/${s.id}`, class: 'browse' }, 'Browse')
                : isOperator() && s.source && s.source.name
                  ? h('button', { type: 'button', onclick: () => restoreDbDialog(s) }, 'Restore…')
                  : null,
            ),
          ),
        ),
      ),
    ),
    h('div', { id: 'task-area' }),
  );
};

async function browse(root, repo, snapId) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  let dir = params.get('path');
  if (!dir) {
    // start at the backed-up path itself when there is exactly one
    const first = await api('GET', `/repositories/${encodeURIComponent(repo)}/snapshots/${snapId}/tree?path=/`);
    dir = first.snapshot.paths.length === 1 ? first.snapshot.paths[0] : '/';
  }
  const t = await api('GET', `/repositories/${encodeURIComponent(repo)}/snapshots/${snapId}/tree?path=${encodeURIComponent(dir)}`);
  const link = (p) => `#/snapshots/${encodeURIComponent(repo)}/${snapId}?path=${encodeURIComponent(p)}`;
  const parts = t.path.split('/').filter(Boolean);
  const crumbs = [h('a', { href: link('/') }, '/')];
  parts.forEach((p, i) => crumbs.push(h('a', { href: link('/' + parts.slice(0, i + 1).join('/')) }, p), i < parts.length - 1 ? ' / ' : ''));
  root.append(
    section(
      `Snapshot ${snapId.slice(0, 8)} · ${fmtTime(t.snapshot.time)}`,
      h('p', { class: 'crumbs', id: 'crumbs' }, crumbs),
      isOperator() ? h('p', {}, h('button', { type: 'button', id: 'restore-dir', onclick: () => restoreDialog(repo, t.snapshot, t.path) }, `Restore ${t.path}…`)) : null,
      table(
        ['Name', 'Type', 'Size', 'Modified', ''],
        t.entries.map((e) =>
          h(
            'tr',
            { class: 'entry', dataset: { path: e.path, type: e.type } },
            h('td', {}, e.type === 'dir' ? h('a', { href: link(e.path) }, e.name + '/') : e.name + (e.linktarget !== undefined ? ` → ${e.linktarget}` : '')),
            h('td', {}, e.type),
            h('td', {}, e.type === 'file' ? fmtBytes(e.size) : ''),
            h('td', {}, fmtTime(e.mtime)),
            h('td', {}, isOperator() ? h('button', { type: 'button', class: 'link restore-entry', onclick: () => restoreDialog(repo, t.snapshot, e.path) }, 'Restore…') : null),
          ),
        ),
        { id: 'tree' },
      ),
    ),
    h('div', { id: 'task-area' }),
  );
}

function dialog(title, body, confirmLabel, onConfirm) {
  const err = h('p', { class: 'error' });
  const dlg = h(
    'dialog',
    { class: 'dialog', id: 'confirm-dialog' },
    h('form', { method: 'dialog' }, h('h2', {}, title), body, err, h('menu', {}, h('button', { value: 'cancel', type: 'submit', id: 'dialog-cancel' }, 'Cancel'), ' ', h('button', { type: 'button', class: 'danger', id: 'dialog-confirm', onclick: async () => {
      const r = await onConfirm().catch((e) => (err.textContent = e.message, false));
      if (r !== false) dlg.close();
    } }, confirmLabel))),
  );
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

function restoreDialog(repo, snap, p) {
  const target = h('input', { id: 'restore-target', size: 50, placeholder: '/absolute/empty/directory', required: true });
  const overwrite = h('input', { type: 'checkbox', id: 'restore-overwrite' });
  dialog(
    'Restore files',
    [
      h('p', {}, 'Restore ', h('code', {}, p), ' from snapshot ', h('code', {}, snap.id.slice(0, 8)), ` (${fmtTime(snap.time)}) into:`),
      h('label', {}, 'Target directory ', target),
      h('label', { class: 'check' }, overwrite, ' allow a non-empty target (existing files are overwritten)'),
      h('p', { class: 'muted' }, 'Every restored file is verified against the snapshot.'),
    ],
    'Restore',
    async () => {
      if (!target.value) throw new Error('enter the target directory');
      const t = await api('POST', '/restore', { type: 'files', repository: repo, snapshot: snap.id, path: p, target: target.value, overwrite: overwrite.checked, confirm: target.value });
      document.getElementById('task-area').prepend(followTask(t, (done) => toast(done.status === 'success' ? `restore finished: ${done.result.files} files, ${fmtBytes(done.result.bytes)} verified` : `restore ${done.status}: ${done.error}`, done.status !== 'success')));
    },
  );
}

function restoreDbDialog(snap) {
  const to = h('input', { id: 'restore-db-target', size: 40, placeholder: 'database name / URL (no password) / file; empty = the source\'s own' });
  const clean = h('input', { type: 'checkbox', id: 'restore-db-clean' });
  const force = h('input', { type: 'checkbox', id: 'restore-db-force' });
  const confirm = h('input', { id: 'restore-db-confirm', size: 40 });
  dialog(
    `Restore ${snap.source.kind} source ${snap.source.name}`,
    [
      h('p', {}, 'Snapshot ', h('code', {}, snap.shortId), ` (${fmtTime(snap.time)})`),
      h('label', {}, 'Target ', to),
      h('label', { class: 'check' }, clean, ' drop existing objects first (clean)'),
      h('label', { class: 'check' }, force, ' allow a non-empty target (force)'),
      h('label', {}, 'Type the target (or the source name when empty) to confirm ', confirm),
    ],
    'Restore',
    async () => {
      const body = { type: 'database', source: snap.source.name, snapshot: snap.id, confirm: confirm.value, clean: clean.checked, force: force.checked };
      if (to.value) body.toDatabase = to.value;
      const t = await api('POST', '/restore', body);
      document.getElementById('task-area').prepend(followTask(t));
    },
  );
}

pages.drills = async (root) => {
  const [drills, jobs] = await Promise.all([api('GET', '/drills?limit=100'), api('GET', '/jobs')]);
  const sel = h('select', { id: 'drill-job' }, jobs.map((j) => h('option', { value: j.name }, j.name)));
  root.append(
    h('h1', {}, 'Restore drills'),
    isOperator()
      ? section('Start a drill', h('p', {}, sel, ' ', h('button', { type: 'button', id: 'start-drill', onclick: async () => {
          const t = await act(() => api('POST', '/drills', { job: sel.value }), 'drill started');
          if (t) document.getElementById('task-area').prepend(followTask(t, () => setTimeout(route, 500)));
        } }, 'Start drill')))
      : null,
    h('div', { id: 'task-area' }),
    section(
      'History',
      drills.length
        ? table(
            ['When', 'Job', 'Kind', 'Status', 'Restore time / RTO', 'Backup age / RPO', 'Checks'],
            drills.map((d) =>
              h(
                'tr',
                { dataset: { drill: d.id } },
                h('td', {}, fmtTime(d.startedAt)),
                h('td', {}, d.job),
                h('td', {}, d.kind),
                h('td', {}, badge(d.status)),
                h('td', { class: `sev ${d.rtoMet ? 'green' : 'red'}` }, `${fmtDur(d.restoreMs)} / ${fmtDur(d.rtoMs)}`),
                h('td', { class: `sev ${d.rpoMet ? 'green' : 'red'}` }, `${fmtDur(d.backupAgeMs)} / ${fmtDur(d.rpoMs)}`),
                h('td', {}, `${d.checks.filter((c) => c.ok).length}/${d.checks.length} ok`, d.error ? h('div', { class: 'error small' }, d.error) : null),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No drills yet.'),
    ),
  );
};

pages.runbooks = async (root) => {
  const [books, runs] = await Promise.all([api('GET', '/runbooks'), api('GET', '/runbook-runs?limit=30').catch(() => [])]);
  const planBox = h('div', { id: 'plan' });
  root.append(
    h('h1', {}, 'Runbooks'),
    section(
      'Runbooks',
      books.length
        ? table(
            ['Runbook', 'Scenario', 'Severity', 'Services', 'Steps', ''],
            books.map((b) =>
              h(
                'tr',
                { dataset: { runbook: b.name } },
                h('td', {}, h('strong', {}, b.title || b.name), h('div', { class: 'muted' }, b.description || '')),
                h('td', {}, b.scenario || ''),
                h('td', {}, b.severity || ''),
                h('td', {}, (b.services || []).join(', ')),
                h('td', {}, String(b.steps.length)),
                h(
                  'td',
                  {},
                  h('button', { type: 'button', class: 'link', onclick: () => showPlan(b.name, planBox) }, 'Plan'),
                  ' ',
                  isOperator() ? h('button', { type: 'button', class: 'start-runbook', onclick: () => startRunbook(b) }, 'Start') : null,
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No runbooks in the config.'),
    ),
    planBox,
    section(
      'Recent runs',
      runs.length
        ? table(
            ['Run', 'Runbook', 'Status', 'Started', 'By'],
            runs.map((r) => h('tr', {}, h('td', {}, h('a', { href: `#/runbook-runs/${r.id}` }, `#${r.id}`)), h('td', {}, r.runbook), h('td', {}, badge(r.status)), h('td', {}, fmtTime(r.startedAt)), h('td', {}, r.actor))),
          )
        : h('p', { class: 'muted' }, 'No runs yet.'),
    ),
  );
};

async function showPlan(name, box) {
  const p = await act(() => api('GET', `/runbooks/${encodeURIComponent(name)}/plan`));
  if (!p) return;
  box.replaceChildren(section(`Plan: ${p.runbook.title || name}`, h('ol', {}, p.steps.map((s) => h('li', {}, h('strong', {}, s.name), ` (${s.type}) `, h('span', { class: 'muted' }, s.description || ''), s.rollback ? h('div', { class: 'muted' }, 'rollback: ' + s.rollback) : null)))));
}

function startRunbook(b) {
  const ic = b.incident || { open: true, publish: false };
  const pub = !ic.open
    ? h('p', { class: 'muted', id: 'start-incident' }, 'No incident is opened.')
    : !ic.publish
      ? h('p', { id: 'start-incident' }, 'Opens a private incident: nothing is shown on the public status page unless you publish it from the incident page.')
      : h('div', { id: 'start-incident' }, h('p', { class: 'warn' }, 'This runbook publishes its incident on the public status page with this text:'), h('blockquote', {}, h('strong', {}, ic.publicTitle || ''), h('br'), ic.publicMessage || ''));
  dialog(`Start runbook ${b.title || b.name}?`, [h('p', {}, `${b.steps.length} step(s). Manual steps wait for confirmation here.`), pub], 'Start', async () => {
    const r = await api('POST', `/runbooks/${encodeURIComponent(b.name)}/runs`);
    if (r.runId) location.hash = `#/runbook-runs/${r.runId}`;
    else {
      toast(`runbook did not start: ${r.task.error || r.task.status}`, true);
    }
  });
}

pages['runbook-runs'] = async (root, id) => {
  const box = h('div', { id: 'runbook-run' });
  root.append(box);
  let lastKey = '';
  let plan = null;
  const render = async () => {
    const r = await api('GET', `/runbook-runs/${id}`);
    if (!plan) plan = await api('GET', `/runbooks/${encodeURIComponent(r.runbook)}/plan`).catch(() => ({ steps: [] }));
    const describe = (s) => (plan.steps.find((p) => p.index === s.index && p.name === s.name) || {}).description;
    const key = JSON.stringify(r);
    if (key === lastKey) return r;
    lastKey = key;
    box.replaceChildren(
      h('h1', {}, `Runbook ${r.runbook} · run #${r.id} `, badge(r.status)),
      h('p', { class: 'muted' }, `started ${fmtTime(r.startedAt)} by ${r.actor}${r.finishedAt ? ` · finished ${fmtTime(r.finishedAt)}` : ''}${r.incidentId ? ` · incident #${r.incidentId}` : ''}`),
      h(
        'ol',
        { class: 'steps' },
        r.steps.map((s) =>
          h(
            'li',
            { class: `step ${STATUS_COLOR[s.status] || ''}`, dataset: { index: s.index, status: s.status } },
            h('div', {}, h('strong', {}, s.name), ` (${s.type}) `, badge(s.status), s.confirmedBy ? h('span', { class: 'muted' }, ` confirmed by ${s.confirmedBy}`) : null),
            describe(s) ? h('div', { class: s.type === 'manual' && s.status === 'waiting' ? 'instructions' : 'muted' }, describe(s)) : null,
            s.output ? h('pre', { class: 'log' }, s.output) : null,
            s.error ? h('div', { class: 'error' }, s.error) : null,
            s.status === 'waiting' && isOperator()
              ? h(
                  'div',
                  { class: 'confirm-step' },
                  h('button', { type: 'button', class: 'confirm-step-ok', onclick: () => act(() => api('POST', `/runbook-runs/${r.id}/steps/${s.index}/confirm`, { ok: true }), 'step confirmed').then(render) }, 'Confirm step done'),
                  ' ',
                  h('button', { type: 'button', class: 'danger', onclick: () => act(() => api('POST', `/runbook-runs/${r.id}/steps/${s.index}/confirm`, { ok: false }), 'step rejected').then(render) }, 'Reject'),
                )
              : null,
          ),
        ),
      ),
    );
    return r;
  };
  await render();
  every(1000, () => void render().catch(() => {}));
};

pages.incidents = async (root, id) => {
  if (id) return incidentDetail(root, id);
  const [list, status] = await Promise.all([api('GET', '/incidents?limit=200'), api('GET', '/status')]);
  const services = status.components.map((c) => c.name);
  const title = h('input', { id: 'incident-title', size: 50, required: true });
  const impact = h('select', { id: 'incident-impact' }, ['minor', 'major', 'critical', 'none'].map((x) => h('option', { value: x }, x)));
  const svc = services.map((s) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: s, class: 'incident-service' }), ' ', s));
  const msg = h('textarea', { id: 'incident-message', rows: 3, cols: 60 });
  root.append(
    h('h1', {}, 'Incidents'),
    isOperator()
      ? section('Open an incident', h('form', { id: 'incident-form', onsubmit: async (e) => {
          e.preventDefault();
          const chosen = [...document.querySelectorAll('.incident-service')].filter((c) => c.checked).map((c) => c.value);
          const i = await act(() => api('POST', '/incidents', { title: title.value, impact: impact.value, services: chosen, ...(msg.value ? { message: msg.value } : {}) }), 'incident opened');
          if (i) location.hash = `#/incidents/${i.id}`;
        } }, h('label', {}, 'Title ', title), h('label', {}, 'Impact ', impact), h('div', {}, 'Services: ', svc), h('label', {}, 'First update (public) ', msg), h('button', { type: 'submit' }, 'Open incident')))
      : null,
    section(
      'All incidents',
      list.length
        ? table(
            ['#', 'Title', 'Status', 'Impact', 'Services', 'Status page', 'Started', 'Resolved'],
            list.map((i) => h('tr', { dataset: { incident: i.id, visibility: i.visibility } }, h('td', {}, h('a', { href: `#/incidents/${i.id}` }, `#${i.id}`)), h('td', {}, i.title), h('td', {}, badge(i.status)), h('td', {}, i.impact), h('td', {}, i.services.join(', ')), h('td', {}, i.visibility === 'public' ? 'public' : 'private'), h('td', {}, fmtTime(i.startedAt)), h('td', {}, fmtTime(i.resolvedAt)))),
          )
        : h('p', { class: 'muted' }, 'No incidents.'),
    ),
  );
};

async function incidentDetail(root, id) {
  const i = await api('GET', `/incidents/${id}`);
  const status = h('select', { id: 'update-status' }, h('option', { value: '' }, '(unchanged)'), ['investigating', 'identified', 'monitoring'].map((s) => h('option', { value: s }, s)));
  const msg = h('textarea', { id: 'update-message', rows: 3, cols: 60 });
  const pub = h('input', { type: 'checkbox', id: 'update-public', checked: i.visibility === 'public' });
  const pm = {
    summary: h('textarea', { rows: 2, cols: 60, value: i.summary || '' }),
    rootCause: h('textarea', { rows: 2, cols: 60, value: i.rootCause || '' }),
    lessonsLearned: h('textarea', { rows: 2, cols: 60, value: i.lessonsLearned || '' }),
    actionItems: h('textarea', { rows: 3, cols: 60, value: (i.actionItems || []).join('\n') }),
  };
  root.append(
    h('h1', {}, `Incident #${i.id}: ${i.title} `, badge(i.status)),
    h('p', { class: 'muted' }, `${i.impact} impact · ${i.services.join(', ') || 'no services'} · started ${fmtTime(i.startedAt)}${i.resolvedAt ? ` · resolved ${fmtTime(i.resolvedAt)}` : ''}${i.runbookRunId ? ` · runbook run #${i.runbookRunId}` : ''}`),
    publishSection(i),
    section('Updates', h('ul', { class: 'updates' }, i.updates.slice().reverse().map((u) => h('li', {}, h('strong', {}, u.status || 'update'), ` · ${fmtTime(u.at)} · ${u.author || ''}${u.system ? ' · system (never public)' : u.public ? ' · public' : ' · internal'}`, h('div', {}, u.message))))),
    isOperator() && i.status !== 'resolved'
      ? section('Post an update', h('form', { onsubmit: async (e) => {
          e.preventDefault();
          const body = { message: msg.value, public: pub.checked };
          if (status.value) body.status = status.value;
          if (await act(() => api('POST', `/incidents/${i.id}/updates`, body), 'update posted')) route();
        } }, h('label', {}, 'Status ', status), h('label', {}, 'Message ', msg), h('label', { class: 'check' }, pub, i.visibility === 'public' ? ' public (shown on the status page)' : ' public (shown on the status page once the incident is published)'), h('button', { type: 'submit' }, 'Post update'), ' ', h('button', { type: 'button', class: 'danger', id: 'resolve-incident', onclick: async () => {
          if (!msg.value) return toast('write a resolution message first', true);
          if (await act(() => api('POST', `/incidents/${i.id}/resolve`, { message: msg.value }), 'incident resolved')) route();
        } }, 'Resolve with this message')))
      : null,
    section('Timeline', h('ul', { class: 'timeline' }, (i.timeline || []).map((t) => h('li', {}, `${fmtTime(t.at)} · ${t.kind}: ${t.text}`)))),
    section('Postmortem', isOperator()
      ? h('form', { onsubmit: async (e) => {
          e.preventDefault();
          await act(() => api('PUT', `/incidents/${i.id}/postmortem`, { summary: pm.summary.value, rootCause: pm.rootCause.value, lessonsLearned: pm.lessonsLearned.value, actionItems: pm.actionItems.value.split('\n').map((s) => s.trim()).filter(Boolean) }), 'postmortem saved');
        } }, h('label', {}, 'Summary ', pm.summary), h('label', {}, 'Root cause ', pm.rootCause), h('label', {}, 'Lessons learned ', pm.lessonsLearned), h('label', {}, 'Action items (one per line) ', pm.actionItems), h('button', { type: 'submit' }, 'Save postmortem'))
      : h('pre', {}, [i.summary, i.rootCause, i.lessonsLearned, ...(i.actionItems || [])].filter(Boolean).join('\n\n')),
      h('p', {}, h('a', { href: '#', onclick: async (e) => {
        e.preventDefault();
        const md = await act(() => api('GET', `/incidents/${i.id}/postmortem`));
        if (md !== undefined) document.getElementById('pm-md').textContent = md;
      } }, 'Show as Markdown')), h('pre', { id: 'pm-md', class: 'log' })),
  );
}

/**
 * The incident's place on the public status page: a toggle. Publishing shows
 * a preview of exactly what the public page will show (rendered by the
 * server with the status page's own markup) and needs confirmation.
 */
function publishSection(i) {
  const isPublic = i.visibility === 'public';
  const vis = h('p', { id: 'visibility', dataset: { visibility: i.visibility } }, isPublic ? 'Public: shown on the status page.' : 'Private: not shown on the status page.');
  if (!isOperator()) return section('Status page', vis);
  const title = h('input', { id: 'publish-title', size: 50, maxlength: 200, value: i.publicTitle || '', placeholder: i.title });
  const msg = h('textarea', { id: 'publish-message', rows: 3, cols: 60, maxlength: 10000, placeholder: 'What the public should read (optional if an earlier public update says it)' });
  const toggle = h('input', { type: 'checkbox', id: 'publish-toggle', checked: isPublic, onchange: () => {
    toggle.checked = isPublic; // changes only after confirmation
    if (isPublic) {
      dialog('Remove from the status page?', [h('p', {}, 'The incident becomes private. Its updates are kept.')], 'Unpublish', async () => {
        await api('POST', `/incidents/${i.id}/unpublish`);
        toast('removed from the status page');
        route();
      });
      return;
    }
    void publishDialog(i, title.value.trim(), msg.value.trim());
  } });
  return section(
    'Status page',
    vis,
    h('label', { class: 'check' }, toggle, ' Show on the public status page'),
    isPublic ? null : h('div', { class: 'publish-fields' }, h('label', {}, 'Public headline ', title), h('label', {}, 'Public message ', msg), h('p', { class: 'muted' }, 'Only this text and public updates you write appear publicly; the timeline, runbook steps, errors and names never do.')),
  );
}

async function publishDialog(i, title, message) {
  const body = { ...(title ? { title } : {}), ...(message ? { message } : {}) };
  const p = await act(() => api('POST', `/incidents/${i.id}/publish-preview`, body));
  if (!p) return;
  const frame = h('iframe', { id: 'publish-preview', class: 'preview', sandbox: '', title: 'Preview of the public status page' });
  frame.srcdoc = p.html;
  dialog(
    'Publish on the status page?',
    [
      h('p', {}, 'The public status page will show exactly this:'),
      frame,
      p.incident.updates.length ? null : h('p', { class: 'warn' }, 'No public update yet: only the headline and impact are shown.'),
    ],
    'Publish',
    async () => {
      await api('POST', `/incidents/${i.id}/publish`, body);
      toast('published on the status page');
      route();
    },
  );
}

/** A datetime-local value ("2031-01-31T22:00", local time) as ISO 8601 with this browser's offset ("2031-01-31T22:00:00+01:00"). */
function localWithOffset(value) {
  const d = new Date(value); // datetime-local values are parsed as local time
  if (Number.isNaN(d.getTime())) throw new Error(`invalid date/time "${value}"`);
  const off = -d.getTimezoneOffset();
  const pad = (n) => String(Math.abs(n)).padStart(2, '0');
  return `${value.length === 16 ? value + ':00' : value}${off >= 0 ? '+' : '-'}${pad(Math.trunc(off / 60))}:${pad(off % 60)}`;
}

/** A Date as a datetime-local value in this browser's time zone. */
function toLocalInput(d) {
  return new Date(d.getTime() - d.getTimezoneOffset() * 60e3).toISOString().slice(0, 16);
}

pages['status-admin'] = async (root) => {
  const [st, windows] = await Promise.all([api('GET', '/status'), api('GET', '/maintenance-windows')]);
  const title = h('input', { id: 'mw-title', size: 40 });
  const now = new Date(Math.ceil((Date.now() + 3600e3) / 60e3) * 60e3);
  const start = h('input', { id: 'mw-start', type: 'datetime-local', value: toLocalInput(now) });
  const end = h('input', { id: 'mw-end', type: 'datetime-local', value: toLocalInput(new Date(now.getTime() + 3600e3)) });
  const zoneName = Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  const zone = h('span', { id: 'mw-zone', class: 'muted' }, `times in ${zoneName} (${localWithOffset(toLocalInput(now)).slice(-6).replace(/^/, 'UTC')})`);
  const svc = st.components.map((c) => h('label', { class: 'check' }, h('input', { type: 'checkbox', value: c.name, class: 'mw-service' }), ' ', c.name));
  const desc = h('input', { id: 'mw-description', size: 60 });
  root.append(
    h('h1', {}, 'Status page ', h('a', { href: '/status', target: '_blank', class: 'small' }, 'open public page ↗')),
    section('Current public state', h('p', {}, light({ operational: 'green', degraded: 'amber', outage: 'red' }[st.state]), ' ', st.state), h('ul', {}, st.components.map((c) => h('li', { dataset: { component: c.name } }, `${c.name}: ${c.state}${c.reasons.length ? ' — ' + c.reasons.join(' · ') : ''}`)))),
    isOperator()
      ? section('Announce maintenance', h('form', { id: 'mw-form', onsubmit: async (e) => {
          e.preventDefault();
          const services = [...document.querySelectorAll('.mw-service')].filter((c) => c.checked).map((c) => c.value);
          // datetime-local is this browser's local time: send it with the browser's explicit UTC offset
          const w = await act(() => api('POST', '/maintenance-windows', { title: title.value, services, start: localWithOffset(start.value), end: localWithOffset(end.value), ...(desc.value ? { description: desc.value } : {}) }), 'maintenance window announced');
          if (w) route();
        } }, h('label', {}, 'Title ', title), h('label', {}, 'Start ', start), h('label', {}, 'End ', end), zone, h('div', {}, 'Services: ', svc), h('label', {}, 'Description ', desc), h('button', { type: 'submit' }, 'Announce')))
      : null,
    section(
      'Maintenance windows',
      windows.length
        ? table(
            ['#', 'Title', 'State', 'Start', 'End', 'Services', ''],
            windows.map((w) => h('tr', { dataset: { window: w.id } }, h('td', {}, `#${w.id}`), h('td', {}, w.title), h('td', {}, w.state), h('td', {}, fmtTime(w.startsAt)), h('td', {}, fmtTime(w.endsAt)), h('td', {}, w.services.join(', ')), h('td', {}, isOperator() && (w.state === 'scheduled' || w.state === 'in-progress') ? h('button', { type: 'button', class: 'link', onclick: async () => { if (await act(() => api('POST', `/maintenance-windows/${w.id}/cancel`), 'cancelled')) route(); } }, 'Cancel') : null))),
          )
        : h('p', { class: 'muted' }, 'None.'),
    ),
    section('Open incidents', st.incidents.length ? h('ul', {}, st.incidents.map((i) => h('li', {}, h('a', { href: `#/incidents/${i.id}` }, i.title), ` · ${i.status} · ${i.impact}`))) : h('p', { class: 'muted' }, 'None. Open one on the Incidents page.')),
  );
};

pages.tasks = async (root, id) => {
  if (id) {
    const t = await api('GET', `/tasks/${id}`);
    root.append(h('h1', {}, `Task #${t.id}`), followTask(t));
    return;
  }
  const list = await api('GET', '/tasks?limit=100');
  root.append(h('h1', {}, 'Tasks'), section('Background tasks', list.length ? table(['#', 'Task', 'Status', 'By', 'Started', 'Finished', 'Error'], list.map((t) => h('tr', {}, h('td', {}, h('a', { href: `#/tasks/${t.id}` }, `#${t.id}`)), h('td', {}, t.title), h('td', {}, badge(t.status)), h('td', {}, t.actor), h('td', {}, fmtTime(t.startedAt)), h('td', {}, fmtTime(t.finishedAt)), h('td', { class: 'error small' }, t.error || '')))) : h('p', { class: 'muted' }, 'No tasks yet.')));
};

// ---------------------------------------------------------------- router

async function route() {
  for (const id of state.timers) clearInterval(id);
  state.timers = [];
  const hash = location.hash.replace(/^#\/?/, '').split('?')[0];
  const [page, ...args] = hash.split('/').map(decodeURIComponent);
  const name = pages[page] ? page : 'overview';
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name || (name === 'runbook-runs' && a.dataset.page === 'runbooks'));
  const root = h('div', { class: 'page', dataset: { page: name } });
  try {
    await pages[name](root, ...args);
  } catch (e) {
    root.append(h('p', { class: 'error' }, `Could not load this page: ${e.message}`));
  }
  document.getElementById('app').replaceChildren(root);
}

async function start() {
  const s = await api('GET', '/session');
  Object.assign(state, { user: s.user, role: s.role, csrf: s.csrfToken });
  document.getElementById('who').textContent = `${s.user} (${s.role})`;
  document.body.dataset.role = s.role;
  document.getElementById('logout').addEventListener('click', async () => {
    await api('POST', '/logout').catch(() => {});
    location.href = '/login';
  });
  window.addEventListener('hashchange', route);
  await route();
}

document.addEventListener('DOMContentLoaded', () => void start());
