// Lifeboat dashboard: vanilla JS, no build step, no external resources.
// Talks to the JSON API (/api/v1) with the session cookie and sends the
// session's CSRF token on every state-changing request. All text is inserted
// with textContent (never innerHTML).
'use strict';

const state = { user: null, role: null, csrf: null, timers: [], tz: readTz() };

/** One rule for time: every time shows its zone; the user picks UTC or the browser's zone (kept in localStorage). */
function readTz() {
  try {
    return localStorage.getItem('lb-tz') === 'utc' ? 'utc' : 'local';
  } catch {
    return 'local';
  }
}

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

const pad2 = (n) => String(n).padStart(2, '0');

/** The zone label of a date in the chosen zone: 'UTC' or 'UTC+01:00' (the browser's offset on that date). */
function zoneLabel(d) {
  if (state.tz === 'utc') return 'UTC';
  const off = -d.getTimezoneOffset();
  return `UTC${off < 0 ? '-' : '+'}${pad2(Math.floor(Math.abs(off) / 60))}:${pad2(Math.abs(off) % 60)}`;
}

/** 'YYYY-MM-DD HH:MM:SS ZONE' in the chosen zone (seconds: twenty snapshots in one minute stay apart). */
function fmtTime(iso, opts) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const u = state.tz === 'utc';
  const date = `${u ? d.getUTCFullYear() : d.getFullYear()}-${pad2((u ? d.getUTCMonth() : d.getMonth()) + 1)}-${pad2(u ? d.getUTCDate() : d.getDate())}`;
  if (opts && opts.dateOnly) return `${date} ${zoneLabel(d)}`;
  const time = `${pad2(u ? d.getUTCHours() : d.getHours())}:${pad2(u ? d.getUTCMinutes() : d.getMinutes())}:${pad2(u ? d.getUTCSeconds() : d.getSeconds())}`;
  return `${date} ${time} ${zoneLabel(d)}`;
}

function ago(iso) {
  return iso ? fmtDur(Date.now() - new Date(iso).getTime()) + ' ago' : 'never';
}

/** A traffic light: colour for the eye, a name for screen readers (role img + label), never colour alone. */
function light(color, label) {
  const name = label || { green: 'ok', amber: 'attention', red: 'failing', blue: 'info' }[color] || color;
  return h('span', { class: `light ${color}`, role: 'img', 'aria-label': name, title: name }, label || '');
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
  // announced by screen readers: errors at once, confirmations politely
  t.setAttribute('role', bad ? 'alert' : 'status');
  t.setAttribute('aria-live', bad ? 'assertive' : 'polite');
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 5000);
}

/** A table in a keyboard-scrollable region; on a phone a hint says that it scrolls sideways. */
function scrollBox(tbl, label) {
  return h('div', { class: 'table-scroll-wrap' }, h('p', { class: 'muted scroll-hint' }, 'Scroll sideways for more columns →'), h('div', { class: 'table-scroll', tabindex: 0, role: 'region', 'aria-label': label || 'table' }, tbl));
}

function table(headers, rows, attrs) {
  return scrollBox(h('table', attrs || {}, h('thead', {}, h('tr', {}, headers.map((x) => h('th', {}, x)))), h('tbody', {}, rows)), (attrs && attrs.id) || headers.filter(Boolean).slice(0, 3).join(', '));
}

/**
 * A long list as a filtered, sorted, paged table: a text filter, optional
 * select filters (source, host, status …), sortable columns and pages of
 * `pageSize` rows, so 500 snapshots are 10 pages, not one 17,000-pixel table.
 * columns: [{ label, sort?: (item) => string|number, cell: (item) => Node|string }]
 * filters: [{ label, get: (item) => string }] ; text: (item) => string (searched)
 */
const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
/** Numbers by value, text naturally (page2 before page10, case-insensitive). */
function compareNatural(x, y) {
  if (typeof x === 'number' && typeof y === 'number') return x - y;
  return collator.compare(String(x), String(y));
}

function listView(o) {
  const pageSize = o.pageSize || 50;
  const st = { q: '', sel: {}, sortCol: o.defaultSort ? o.defaultSort.col : -1, dir: o.defaultSort ? o.defaultSort.dir : 1, page: 0 };
  const wrap = h('div', { class: 'listview', id: o.id });
  const body = h('div', {});
  const search = h('input', { type: 'search', class: 'lv-search', placeholder: o.placeholder || 'Filter…', 'aria-label': `Filter ${o.what || 'rows'}` });
  search.addEventListener('input', () => {
    st.q = search.value.trim().toLowerCase();
    st.page = 0;
    draw();
  });
  const selects = (o.filters || []).map((f, i) => {
    const values = [...new Set(o.items.map(f.get).filter((v) => v !== '' && v !== null && v !== undefined))].sort();
    const sel = h('select', { class: 'lv-filter', 'aria-label': f.label, dataset: { filter: f.label } }, h('option', { value: '' }, `${f.label}: all`), values.map((v) => h('option', { value: v }, v)));
    sel.addEventListener('change', () => {
      st.sel[i] = sel.value;
      st.page = 0;
      draw();
    });
    return sel;
  });
  function rows() {
    let r = o.items.filter((it) => (!st.q || o.text(it).toLowerCase().includes(st.q)) && (o.filters || []).every((f, i) => !st.sel[i] || f.get(it) === st.sel[i]));
    const c = o.columns[st.sortCol];
    if (c && c.sort) r = [...r].sort((a, b) => compareNatural(c.sort(a), c.sort(b)) * st.dir);
    return r;
  }
  function draw() {
    const r = rows();
    const pages = Math.max(1, Math.ceil(r.length / pageSize));
    st.page = Math.min(st.page, pages - 1);
    const shown = r.slice(st.page * pageSize, st.page * pageSize + pageSize);
    const head = o.columns.map((c, i) =>
      c.sort
        ? h('th', { 'aria-sort': st.sortCol === i ? (st.dir > 0 ? 'ascending' : 'descending') : 'none' }, h('button', { type: 'button', class: 'link sort', onclick: () => { st.dir = st.sortCol === i ? -st.dir : 1; st.sortCol = i; draw(); } }, c.label, st.sortCol === i ? (st.dir > 0 ? ' ▲' : ' ▼') : ''))
        : h('th', {}, c.label),
    );
    const tbl = h('table', {}, h('thead', {}, h('tr', {}, head)), h('tbody', {}, shown.map((it) => o.row(it))));
    const from = r.length ? st.page * pageSize + 1 : 0;
    const pager = h(
      'p',
      { class: 'pager' },
      h('button', { type: 'button', class: 'lv-prev', disabled: st.page === 0, onclick: () => { st.page--; draw(); } }, '‹ Previous'),
      ' ',
      h('span', { class: 'lv-count', 'aria-live': 'polite' }, `${from}–${from + shown.length - (r.length ? 1 : 0)} of ${r.length}${r.length !== o.items.length ? ` (filtered from ${o.items.length})` : ''}`),
      ' ',
      h('button', { type: 'button', class: 'lv-next', disabled: st.page >= pages - 1, onclick: () => { st.page++; draw(); } }, 'Next ›'),
    );
    body.replaceChildren(r.length ? scrollBox(tbl, o.what) : h('p', { class: 'muted' }, o.empty || 'Nothing matches.'), pager);
  }
  wrap.append(h('p', { class: 'lv-controls' }, search, ' ', selects), body);
  draw();
  return wrap;
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

/** What a task box shows: title, status, error, a link to what it produced, and its log. */
function taskBody(t) {
  const drillId = t.kind === 'drill' && t.result && t.result.drillId;
  return [
    h('strong', {}, t.title),
    ' ',
    badge(t.status),
    drillId ? [' ', h('a', { href: `#/drills/${drillId}`, class: 'drill-link' }, `drill #${drillId} details`)] : null,
    t.error ? h('div', { class: 'error' }, t.error) : null,
    h('pre', { class: 'log' }, (t.log || []).join('\n')),
  ];
}

function followTask(task, onDone) {
  const box = h('div', { class: 'task', role: 'status', dataset: { task: task.id, status: task.status } }, taskBody(task));
  const update = async () => {
    const t = await api('GET', `/tasks/${task.id}`).catch(() => null);
    if (!t) return;
    // replaceChildren() would print a literal "null" for an absent part: build through h()
    box.replaceChildren(...h('div', {}, taskBody(t)).childNodes);
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

/** Show a task at the top of the page's task area and bring it into view (it may sit below a long list). */
function showTask(task, onDone) {
  const area = document.getElementById('task-area');
  const box = followTask(task, onDone);
  if (area) area.prepend(box);
  box.scrollIntoView({ block: 'nearest' });
  return box;
}

/**
 * Re-render the current page after a task finished (new runs, charts, drill
 * rows) and keep the finished task boxes, with their logs, at the top.
 */
async function refreshKeepingTasks(hash) {
  if (location.hash !== hash) return; // the user went elsewhere
  const done = [...document.querySelectorAll('#task-area > .task')].filter((b) => b.dataset.status !== 'running');
  const running = [...document.querySelectorAll('#task-area > .task')].filter((b) => b.dataset.status === 'running').map((b) => b.dataset.task);
  await route();
  const area = document.getElementById('task-area');
  if (!area) return;
  area.prepend(...done);
  for (const id of running) area.prepend(followTask({ id, title: `task #${id}`, status: 'running', log: [] }));
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
  svg.append(h('text', { x: L, y: H - 8, class: 'axis' }, fmtTime(new Date(t0).toISOString(), { dateOnly: true })));
  svg.append(h('text', { x: W - R, y: H - 8, 'text-anchor': 'end', class: 'axis' }, fmtTime(new Date(t1).toISOString())));
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
    o.incidents.length || o.maintenance.length
      ? section(
          'Incidents and maintenance',
          o.incidents.length
            ? h(
                'ul',
                { class: 'alerts', id: 'open-incidents' },
                o.incidents.slice(0, 5).map((i) =>
                  h('li', { class: `alert ${i.impact === 'critical' || i.impact === 'major' ? 'red' : 'amber'}`, dataset: { incident: i.id } }, h('a', { href: `#/incidents/${i.id}` }, `#${i.id} ${i.title}`), ` · ${i.status}, impact ${i.impact}, ${i.visibility}, since ${fmtTime(i.startedAt)}`),
                ),
                o.incidents.length > 5 ? h('li', { class: 'muted' }, h('a', { href: '#/incidents' }, `and ${o.incidents.length - 5} more open incident(s)…`)) : null,
              )
            : null,
          o.maintenance.length
            ? h(
                'ul',
                { class: 'alerts', id: 'maintenance-now' },
                o.maintenance.map((w) => h('li', { class: 'alert blue', dataset: { window: w.id, state: w.state } }, h('strong', {}, w.title), ` · ${w.state}, ${fmtTime(w.startsAt)} – ${fmtTime(w.endsAt)}${w.services.length ? ' · ' + w.services.join(', ') : ''}`)),
              )
            : null,
        )
      : null,
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
    o.services.length ? servicesSection(o) : null,
    section('Backup size over time', h('div', { class: 'charts' }, o.jobs.map((j) => lineChart(j.job, j.history.map((p) => ({ t: new Date(p.startedAt), v: p.totalSize, status: p.status })), fmtBytes)))),
  );
  every(15000, () => route());
};

/** '99.95 %' (no trailing zeros, at most 3 decimals). */
function fmtPercent(p) {
  return p === null || p === undefined ? '–' : `${Number(p.toFixed(3))} %`;
}

/**
 * Services with their state and measured availability over 30 and 90 days
 * (src/ops/availability.ts) from every incident, private ones included: the
 * operators' view, which may differ from the public page (published incidents only).
 */
function servicesSection(o) {
  const win = (s, days) => s.availability && s.availability.windows.find((w) => w.days === days);
  const cell = (s, days) => {
    const w = win(s, days);
    if (!w) return h('td', {}, '–');
    const bad = w.meetsTarget === false;
    return h('td', { class: `avail sev ${bad ? 'red' : w.percent < 100 ? 'amber' : 'green'}`, dataset: { days, percent: w.percent } }, fmtPercent(w.percent), w.downtimeSeconds > 0 ? h('div', { class: 'muted' }, `${fmtDur(w.downtimeSeconds * 1000)} down`) : null);
  };
  return section(
    'Services',
    table(
      ['Service', 'Jobs', 'Uptime 30 days', 'Uptime 90 days', 'Target'],
      o.services.map((s) =>
        h(
          'tr',
          { class: 'service-row', dataset: { service: s.name, light: s.light } },
          h('td', {}, light(s.light), ' ', h('strong', {}, s.name), s.description ? h('div', { class: 'muted' }, s.description) : null),
          h('td', {}, s.jobs.join(', ')),
          cell(s, 30),
          cell(s, 90),
          h('td', {}, s.availability && s.availability.target !== null ? fmtPercent(s.availability.target) : 'none'),
        ),
      ),
      { id: 'services-table' },
    ),
    h('p', { class: 'muted' }, o.availabilityError ? `Availability could not be computed: ${o.availabilityError}` : 'Uptime from every incident, private ones included (critical = outage, major = half); maintenance is not downtime. The public status page counts only published incidents.'),
  );
}

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
            h('td', { class: 'schedule' }, j.scheduleInfo ? [j.scheduleInfo.text, h('div', { class: 'muted' }, j.scheduleInfo.next ? `next ${fmtTime(j.scheduleInfo.next)}` : `cron ${j.schedule}`)] : 'manual (no schedule)'),
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
  if (!t) return;
  const hash = location.hash;
  showTask(t, () => setTimeout(() => void refreshKeepingTasks(hash), 300));
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
      listView({
        id: 'run-list',
        what: 'runs',
        items: runs,
        text: (r) => [`#${r.id}`, r.kind, r.status, r.startedAt, fmtTime(r.startedAt), r.error || ''].join(' '),
        filters: [
          { label: 'Kind', get: (r) => r.kind },
          { label: 'Status', get: (r) => r.status },
        ],
        defaultSort: { col: 3, dir: -1 },
        columns: [
          { label: 'Run', sort: (r) => r.id },
          { label: 'Kind', sort: (r) => r.kind },
          { label: 'Status', sort: (r) => r.status },
          { label: 'Started', sort: (r) => r.startedAt },
          { label: 'Duration', sort: (r) => r.durationMs || 0 },
          { label: 'Size', sort: (r) => r.totalSize || 0 },
          { label: 'Added', sort: (r) => r.bytesAdded || 0 },
          { label: 'Error' },
        ],
        row: (r) =>
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
      }),
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
    h('p', {}, 'Repository: ', h('select', { id: 'repo-select', 'aria-label': 'Repository', onchange: (e) => (location.hash = `#/snapshots/${encodeURIComponent(e.target.value)}`) }, repos.map((r) => h('option', { value: r.name, selected: r.name === current }, `${r.name} (${r.kind}${r.offsite ? ', off-site' : ''})`)))),
  );
  if (!current) return;
  if (snapId) return browse(root, current, snapId);
  const snaps = await api('GET', `/repositories/${encodeURIComponent(current)}/snapshots`);
  const what = (s) => (s.source ? `${s.source.kind}:${s.source.name || ''}` : s.paths.join(' '));
  root.append(
    section(
      `${snaps.length} snapshot(s)`,
      listView({
        id: 'snapshot-list',
        what: 'snapshots',
        placeholder: 'Filter by id, source, path, tag, date…',
        items: snaps,
        text: (s) => [s.shortId, what(s), s.hostname, s.tags.join(' '), s.time, fmtTime(s.time)].join(' '),
        filters: [
          { label: 'Source', get: (s) => (s.source && s.source.name) || (s.tags.find((t) => t.startsWith('source:')) || '').slice(7) || '' },
          { label: 'Host', get: (s) => s.hostname || '' },
          { label: 'Tag', get: (s) => s.tags.find((t) => !t.startsWith('source:')) || '' },
        ],
        defaultSort: { col: 1, dir: -1 },
        columns: [
          { label: 'ID', sort: (s) => s.shortId },
          { label: 'Time', sort: (s) => s.time },
          { label: 'Source / paths', sort: what },
          { label: 'Host', sort: (s) => s.hostname || '' },
          { label: 'Tags' },
          { label: 'Size', sort: (s) => s.totalBytes || 0 },
          { label: '' },
        ],
        row: (s) =>
          h(
            'tr',
            { dataset: { snapshot: s.id } },
            h('td', {}, h('code', {}, s.shortId)),
            h('td', {}, fmtTime(s.time)),
            h('td', {}, what(s)),
            h('td', {}, s.hostname || ''),
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
      }),
    ),
    h('div', { id: 'task-area' }),
  );
};

const snapApi = (repo, snapId) => `/repositories/${encodeURIComponent(repo)}/snapshots/${encodeURIComponent(snapId)}`;
const fileUrl = (repo, snapId, p) => `/api/v1${snapApi(repo, snapId)}/file?path=${encodeURIComponent(p)}`;
const parentOf = (p) => '/' + p.split('/').filter(Boolean).slice(0, -1).join('/');

/**
 * A snapshot's files: opens at the data (the common directory of the backed-up
 * paths, chosen by the server), one click up, names in natural order, a
 * server-side name search under the current directory, a download link per
 * file and a diff against another snapshot.
 */
async function browse(root, repo, snapId) {
  const params = new URLSearchParams(location.hash.split('?')[1] || '');
  const dir = params.get('path');
  const t = await api('GET', `${snapApi(repo, snapId)}/tree${dir ? `?path=${encodeURIComponent(dir)}` : ''}`);
  const link = (p) => `#/snapshots/${encodeURIComponent(repo)}/${snapId}?path=${encodeURIComponent(p)}`;
  const parts = t.path.split('/').filter(Boolean);
  const crumbs = [h('a', { href: link('/') }, '/')];
  parts.forEach((p, i) => crumbs.push(h('a', { href: link('/' + parts.slice(0, i + 1).join('/')) }, p), i < parts.length - 1 ? ' / ' : ''));
  const up = t.path !== '/' ? h('a', { href: link(parentOf(t.path)), id: 'browse-up', class: 'up' }, '↑ Up to ', parentOf(t.path)) : null;
  const results = h('div', { id: 'search-results', 'aria-live': 'polite' });
  const q = h('input', { type: 'search', id: 'snap-search-q', placeholder: 'Find a file or directory name…', 'aria-label': `Find names under ${t.path}` });
  const search = h(
    'form',
    { id: 'snap-search', class: 'lv-controls', role: 'search', onsubmit: (e) => (e.preventDefault(), void runSearch()) },
    q,
    h('button', { type: 'submit' }, 'Search'),
  );
  async function runSearch() {
    if (!q.value.trim()) return results.replaceChildren();
    results.replaceChildren(h('p', { class: 'muted' }, 'Searching…'));
    const r = await api('GET', `${snapApi(repo, snapId)}/search?q=${encodeURIComponent(q.value.trim())}&path=${encodeURIComponent(t.path)}`).catch((e) => ({ error: e.message }));
    if (r.error) return results.replaceChildren(h('p', { class: 'error' }, r.error));
    results.replaceChildren(
      h('h3', {}, 'Search results ', h('button', { type: 'button', class: 'link', id: 'search-clear', onclick: () => { q.value = ''; results.replaceChildren(); } }, 'Clear')),
      h('p', { class: 'muted', id: 'search-count' }, `${r.matches.length} match(es) for “${r.query}” under ${r.path}`, r.truncated ? ` — search cut short (first ${r.matches.length} shown, ${r.visited} entries looked at): narrow it down` : ''),
      r.matches.length
        ? table(
            ['Found', 'Size', '', 'Type'],
            r.matches.map((m) =>
              h(
                'tr',
                { class: 'match', dataset: { path: m.path, type: m.type } },
                h('td', { class: 'found' }, h('a', { href: link(m.type === 'dir' ? m.path : parentOf(m.path)) }, m.path + (m.type === 'dir' ? '/' : ''))),
                h('td', { class: 'num' }, m.type === 'file' ? fmtBytes(m.size) : ''),
                h('td', { class: 'actions' }, m.type === 'file' ? h('a', { href: fileUrl(repo, snapId, m.path), download: m.name, class: 'download', 'aria-label': `Download ${m.name}` }, 'Download') : null),
                h('td', {}, m.type),
              ),
            ),
            { id: 'search-table' },
          )
        : null,
    );
  }
  const diffBox = h('div', { id: 'diff' });
  const others = h('select', { id: 'diff-other', 'aria-label': 'Snapshot to compare with' }, h('option', { value: '' }, 'Loading snapshots…'));
  const diffForm = h('form', { id: 'diff-form', class: 'lv-controls', onsubmit: (e) => (e.preventDefault(), void runDiff()) }, h('label', { for: 'diff-other' }, 'Compare with '), others, h('button', { type: 'submit', id: 'diff-run' }, 'Show changes'));
  let snapList = [];
  void api('GET', `/repositories/${encodeURIComponent(repo)}/snapshots`).then((list) => {
    snapList = list;
    const same = list.filter((s) => s.id !== t.snapshot.id && s.kind === 'files');
    // the snapshot before this one of the same paths is the usual question: "what changed since?"
    const key = (s) => s.paths.join('\n');
    const older = same.filter((s) => s.time < t.snapshot.time && key(s) === t.snapshot.paths.join('\n'));
    others.replaceChildren(...(same.length ? same.map((s) => h('option', { value: s.id, selected: older[0] && s.id === older[0].id }, `${s.shortId} · ${fmtTime(s.time)}${key(s) === t.snapshot.paths.join('\n') ? '' : ' · ' + s.paths.join(' ')}`)) : [h('option', { value: '' }, 'no other snapshot')]));
  });
  async function runDiff() {
    const other = others.value;
    if (!other) return;
    diffBox.replaceChildren(h('p', { class: 'muted' }, 'Comparing…'));
    const o = snapList.find((x) => x.id === other);
    // always from the older snapshot to the newer one
    const [a, b] = o && o.time > t.snapshot.time ? [t.snapshot.id, other] : [other, t.snapshot.id];
    const d = await api('GET', `/repositories/${encodeURIComponent(repo)}/diff?from=${encodeURIComponent(a)}&to=${encodeURIComponent(b)}`).catch((e) => ({ error: e.message }));
    if (d.error) return diffBox.replaceChildren(h('p', { class: 'error' }, d.error));
    const { from, to, changes } = d;
    const SYM = { added: 'added', removed: 'removed', modified: 'changed', metadata: 'metadata', type: 'type changed' };
    const COL = { added: 'green', removed: 'red', modified: 'amber', metadata: 'grey', type: 'amber' };
    diffBox.replaceChildren(
      section(
        `Changes from ${from.id.slice(0, 8)} (${fmtTime(from.time)}) to ${to.id.slice(0, 8)} (${fmtTime(to.time)})`,
        h('p', { id: 'diff-counts' }, `${d.counts.added} added, ${d.counts.removed} removed, ${d.counts.modified} changed, ${d.counts.metadata} metadata only${d.counts.type ? `, ${d.counts.type} changed type` : ''}`, d.truncated ? ` (first ${changes.length} listed)` : ''),
        changes.length
          ? listView({
              id: 'diff-list',
              what: 'changes',
              placeholder: 'Filter by path…',
              items: changes,
              text: (c) => c.path,
              filters: [{ label: 'Change', get: (c) => SYM[c.change] }],
              defaultSort: { col: 0, dir: 1 },
              columns: [{ label: 'Path', sort: (c) => c.path }, { label: 'Change', sort: (c) => c.change }],
              row: (c) => h('tr', { class: 'change', dataset: { change: c.change, path: c.path } }, h('td', {}, h('code', {}, c.path)), h('td', {}, h('span', { class: `badge ${COL[c.change]}` }, SYM[c.change]))),
            })
          : h('p', { class: 'muted' }, 'No differences.'),
      ),
    );
  }
  root.append(
    section(
      `Snapshot ${snapId.slice(0, 8)} · ${fmtTime(t.snapshot.time)}`,
      h('p', { class: 'muted' }, 'Backed up: ', t.snapshot.paths.join(', ')),
      h('p', { class: 'crumbs', id: 'crumbs' }, crumbs),
      up ? h('p', {}, up) : null,
      isOperator() ? h('p', {}, h('button', { type: 'button', id: 'restore-dir', onclick: () => restoreDialog(repo, t.snapshot, t.path) }, `Restore ${t.path}…`)) : null,
      search,
      results,
      table(
        // what matters first (name, size, the actions), so a phone shows them without scrolling sideways
        ['Name', 'Size', '', 'Modified', 'Type'],
        // directories first, then names in natural order (page2 before page10)
        [...t.entries].sort((a, b) => (a.type === 'dir') !== (b.type === 'dir') ? (a.type === 'dir' ? -1 : 1) : compareNatural(a.name, b.name)).map((e) =>
          h(
            'tr',
            { class: 'entry', dataset: { path: e.path, type: e.type } },
            h('td', {}, e.type === 'dir' ? h('a', { href: link(e.path) }, e.name + '/') : e.name + (e.linktarget !== undefined ? ` → ${e.linktarget}` : '')),
            h('td', { class: 'num' }, e.type === 'file' ? fmtBytes(e.size) : ''),
            h(
              'td',
              { class: 'actions' },
              e.type === 'file' ? h('a', { href: fileUrl(repo, snapId, e.path), download: e.name, class: 'download', 'aria-label': `Download ${e.name}` }, 'Download') : null,
              isOperator() ? [' ', h('button', { type: 'button', class: 'link restore-entry', 'aria-label': `Restore ${e.name}`, onclick: () => restoreDialog(repo, t.snapshot, e.path) }, 'Restore…')] : null,
            ),
            h('td', { class: 'mtime' }, fmtTime(e.mtime)),
            h('td', {}, e.type),
          ),
        ),
        { id: 'tree' },
      ),
    ),
    h('div', { id: 'task-area' }),
    section('Compare with another snapshot', diffForm, diffBox),
  );
}

function dialog(title, body, confirmLabel, onConfirm) {
  const err = h('p', { class: 'error', id: 'dialog-error', role: 'alert' });
  const dlg = h(
    'dialog',
    { class: 'dialog', id: 'confirm-dialog', 'aria-label': title },
    h('form', { method: 'dialog' }, h('h2', {}, title), body, err, h('menu', {}, h('button', { value: 'cancel', type: 'submit', id: 'dialog-cancel' }, 'Cancel'), ' ', h('button', { type: 'button', class: 'danger', id: 'dialog-confirm', onclick: async () => {
      err.textContent = '';
      const r = await onConfirm().catch((e) => (err.textContent = e.message, false));
      if (r !== false) dlg.close();
    } }, confirmLabel))),
  );
  dlg.addEventListener('close', () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return dlg;
}

/** The checkbox that allows a non-empty target; the server's refusal names it (src/server/snapshots.ts OVERWRITE_LABEL). */
const OVERWRITE_LABEL = 'Overwrite existing files';

function restoreDialog(repo, snap, p) {
  const target = h('input', { id: 'restore-target', class: 'wide', placeholder: '/absolute/empty/directory', required: true });
  const overwrite = h('input', { type: 'checkbox', id: 'restore-overwrite' });
  dialog(
    'Restore files',
    [
      h('p', {}, 'Restore ', h('code', {}, p), ' from snapshot ', h('code', {}, snap.id.slice(0, 8)), ` (${fmtTime(snap.time)}) into:`),
      h('label', {}, 'Target directory ', target),
      h('label', { class: 'check' }, overwrite, ` ${OVERWRITE_LABEL}`, h('span', { class: 'muted' }, ' (allow a non-empty target)')),
      h('p', { class: 'muted' }, 'Every restored file is verified against the snapshot.'),
    ],
    'Restore',
    async () => {
      if (!target.value) throw new Error('enter the target directory');
      const req = { type: 'files', repository: repo, snapshot: snap.id, path: p, target: target.value, overwrite: overwrite.checked };
      // checked before the dialog closes: a non-empty target is refused here, naming the checkbox
      await api('POST', '/restore/check', req);
      const t = await api('POST', '/restore', { ...req, confirm: target.value });
      showTask(t, (done) => toast(done.status === 'success' ? `restore finished: ${done.result.files} files, ${fmtBytes(done.result.bytes)} verified` : `restore ${done.status}: ${done.error}`, done.status !== 'success'));
    },
  );
}

async function restoreDbDialog(snap) {
  const source = snap.source.name;
  const info = await act(() => api('GET', `/sources/${encodeURIComponent(source)}/restore-target`));
  if (!info) return;
  const emptyMeans = `empty = restore into the live database ${info.live}`;
  // a textarea: the placeholder wraps and stays fully visible at any width (one line of value; Enter does not add a line)
  const to = h('textarea', { id: 'restore-db-target', class: 'wide', rows: 2, placeholder: emptyMeans, 'aria-describedby': 'restore-db-target-hint', spellcheck: 'false', onkeydown: (e) => e.key === 'Enter' && e.preventDefault() });
  const hint = h('p', { class: 'muted', id: 'restore-db-target-hint' }, 'A database name, a URL without password, or a file; ', h('strong', {}, emptyMeans), '.');
  const clean = h('input', { type: 'checkbox', id: 'restore-db-clean' });
  const force = h('input', { type: 'checkbox', id: 'restore-db-force' });
  const confirm = h('input', { id: 'restore-db-confirm', class: 'wide', autocomplete: 'off' });
  const confirmLabel = h('span', { id: 'restore-db-confirm-label' });
  const warning = h('p', { class: 'warn', id: 'restore-db-live' });
  const targetValue = () => to.value.replace(/\s+/g, ' ').trim();
  const update = () => {
    const live = !targetValue();
    warning.textContent = live ? `This overwrites the live database at ${info.live}.` : '';
    confirmLabel.textContent = live ? `Type the source name “${source}” to confirm` : 'Type the target again to confirm';
  };
  to.addEventListener('input', update);
  update();
  dialog(
    `Restore ${snap.source.kind} source ${source}`,
    [
      h('p', {}, 'Snapshot ', h('code', {}, snap.shortId), ` (${fmtTime(snap.time)})`),
      h('label', { for: 'restore-db-target' }, 'Target'),
      to,
      hint,
      warning,
      h('label', { class: 'check' }, clean, ' drop existing objects first (clean)'),
      h('label', { class: 'check' }, force, ' allow a non-empty target (force)'),
      h('label', {}, confirmLabel, ' ', confirm),
    ],
    'Restore',
    async () => {
      const target = targetValue();
      const expected = target || source;
      if (confirm.value !== expected) throw new Error(target ? 'type the target exactly as above to confirm' : `this restores into the live database ${info.live}: type the source name “${source}” to confirm`);
      const body = { type: 'database', source, snapshot: snap.id, confirm: confirm.value, clean: clean.checked, force: force.checked };
      if (target) body.toDatabase = target;
      const t = await api('POST', '/restore', body);
      showTask(t);
    },
  );
}

/** One drill: what was restored where, each phase's time, each verification check. */
async function drillDetail(root, id) {
  const d = await api('GET', `/drills/${encodeURIComponent(id)}`);
  const restored = d.snapshotId !== null && d.snapshotId !== undefined;
  root.append(
    h('h1', {}, `Drill #${d.id}: ${d.job} `, badge(d.status)),
    h('p', {}, h('a', { href: '#/drills' }, '← all drills')),
    d.error ? h('p', { class: 'error', id: 'drill-error' }, d.error) : null,
    section(
      'Summary',
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Started'), h('dd', {}, fmtTime(d.startedAt)),
        h('dt', {}, 'Finished'), h('dd', {}, fmtTime(d.finishedAt)),
        h('dt', {}, 'Source'), h('dd', {}, `${d.source} (${d.kind})`),
        h('dt', {}, 'Snapshot'), h('dd', {}, restored ? `${d.snapshotId.slice(0, 8)} of ${fmtTime(d.snapshotTime)}` : 'none (nothing was restored)'),
        h('dt', {}, 'Scratch target'), h('dd', {}, d.target || '–'),
        h('dt', {}, 'Restore time / RTO'), h('dd', { class: restored ? `sev ${d.rtoMet ? 'green' : 'red'}` : '' }, restored ? `${fmtDur(d.restoreMs)} / ${fmtDur(d.rtoMs)} (${d.rtoMet ? 'met' : 'missed'})` : `– / ${fmtDur(d.rtoMs)}`),
        h('dt', {}, 'Backup age / RPO'), h('dd', { class: `sev ${d.rpoMet ? 'green' : 'red'}` }, `${fmtDur(d.backupAgeMs)} / ${fmtDur(d.rpoMs)}`),
      ),
    ),
    section('Phases', d.phases && d.phases.length ? table(['Phase', 'Started', 'Time', 'Result', 'Detail'], d.phases.map((p) => h('tr', { dataset: { phase: p.name } }, h('td', {}, p.name), h('td', {}, fmtTime(p.startedAt)), h('td', {}, fmtDur(p.ms)), h('td', {}, badge(p.ok ? 'success' : 'failed')), h('td', { class: 'small' }, p.detail || '')))) : h('p', { class: 'muted' }, 'No phase recorded.')),
    section('Checks', d.checks && d.checks.length ? table(['Check', 'Result', 'Detail'], d.checks.map((c) => h('tr', { dataset: { check: c.name } }, h('td', {}, c.name), h('td', {}, badge(c.ok ? 'success' : 'failed')), h('td', { class: 'small' }, c.detail || '')))) : h('p', { class: 'muted' }, 'No verification check ran.')),
  );
}

pages.drills = async (root, id) => {
  if (id) return drillDetail(root, id);
  const [drills, jobs] = await Promise.all([api('GET', '/drills?limit=100'), api('GET', '/jobs')]);
  const sel = h('select', { id: 'drill-job', 'aria-label': 'Job to drill' }, jobs.map((j) => h('option', { value: j.name }, j.name)));
  root.append(
    h('h1', {}, 'Restore drills'),
    isOperator()
      ? section('Start a drill', h('p', {}, sel, ' ', h('button', { type: 'button', id: 'start-drill', onclick: async () => {
          const t = await act(() => api('POST', '/drills', { job: sel.value }), 'drill started');
          if (!t) return;
          const hash = location.hash;
          showTask(t, () => setTimeout(() => void refreshKeepingTasks(hash), 300));
        } }, 'Start drill')))
      : null,
    h('div', { id: 'task-area' }),
    section(
      'History',
      drills.length
        ? listView({
            id: 'drill-list',
            what: 'drills',
            items: drills,
            text: (d) => [d.job, d.kind, d.status, fmtTime(d.startedAt), d.error || ''].join(' '),
            filters: [
              { label: 'Job', get: (d) => d.job },
              { label: 'Status', get: (d) => d.status },
            ],
            defaultSort: { col: 0, dir: -1 },
            columns: [
              { label: 'When', sort: (d) => String(d.startedAt) },
              { label: 'Job', sort: (d) => d.job },
              { label: 'Kind', sort: (d) => d.kind },
              { label: 'Status', sort: (d) => d.status },
              { label: 'Restore time / RTO', sort: (d) => d.restoreMs || 0 },
              { label: 'Backup age / RPO', sort: (d) => d.backupAgeMs || 0 },
              { label: 'Checks' },
            ],
            row: (d) =>
              h(
                'tr',
                { dataset: { drill: d.id } },
                h('td', {}, h('a', { href: `#/drills/${d.id}` }, fmtTime(d.startedAt))),
                h('td', {}, d.job),
                h('td', {}, d.kind),
                h('td', {}, badge(d.status)),
                d.snapshotId ? h('td', { class: `sev ${d.rtoMet ? 'green' : 'red'}` }, `${fmtDur(d.restoreMs)} / ${fmtDur(d.rtoMs)}`) : h('td', {}, `– / ${fmtDur(d.rtoMs)}`),
                h('td', { class: `sev ${d.rpoMet ? 'green' : 'red'}` }, `${fmtDur(d.backupAgeMs)} / ${fmtDur(d.rpoMs)}`),
                h('td', {}, `${d.checks.filter((c) => c.ok).length}/${d.checks.length} ok`, d.error ? h('div', { class: 'error small' }, d.error) : null),
              ),
          })
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
        ? listView({
            id: 'incident-list',
            what: 'incidents',
            items: list,
            text: (i) => [`#${i.id}`, i.title, i.status, i.impact, i.services.join(' '), i.visibility, fmtTime(i.startedAt)].join(' '),
            filters: [
              { label: 'Status', get: (i) => i.status },
              { label: 'Impact', get: (i) => i.impact },
              { label: 'Status page', get: (i) => i.visibility },
            ],
            defaultSort: { col: 6, dir: -1 },
            columns: [
              { label: '#', sort: (i) => i.id },
              { label: 'Title', sort: (i) => i.title },
              { label: 'Status', sort: (i) => i.status },
              { label: 'Impact', sort: (i) => i.impact },
              { label: 'Services' },
              { label: 'Status page', sort: (i) => i.visibility },
              { label: 'Started', sort: (i) => i.startedAt },
              { label: 'Resolved', sort: (i) => i.resolvedAt || '' },
            ],
            row: (i) => h('tr', { dataset: { incident: i.id, visibility: i.visibility } }, h('td', {}, h('a', { href: `#/incidents/${i.id}` }, `#${i.id}`)), h('td', {}, i.title), h('td', {}, badge(i.status)), h('td', {}, i.impact), h('td', {}, i.services.join(', ')), h('td', {}, i.visibility === 'public' ? 'public' : 'private'), h('td', {}, fmtTime(i.startedAt)), h('td', {}, fmtTime(i.resolvedAt))),
          })
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

// ---------------------------------------------------------------- fleet

/**
 * The fleet: every agent (daemon) sharing the catalog, its state, version,
 * last heartbeat and jobs (last run by that agent); filters by host and
 * service; Run / Drill on one agent leave a run request the agent picks up,
 * and the request's state is shown until it finishes.
 */
const AGENT_STATE = { live: ['green', 'live'], missed: ['red', 'missed heartbeat'], stopped: ['grey', 'stopped'] };
state.fleetFilter = { host: '', service: '' };

pages.fleet = async (root) => {
  const f = state.fleetFilter;
  const query = () => {
    const q = new URLSearchParams();
    if (f.host) q.set('host', f.host);
    if (f.service) q.set('service', f.service);
    const s = q.toString();
    return s ? `/fleet?${s}` : '/fleet';
  };
  const first = await api('GET', query());
  const content = h('div', { id: 'fleet-content' });
  const mkSelect = (id, label, key, values) => {
    const sel = h('select', { id, 'aria-label': `Filter by ${label}` }, h('option', { value: '' }, `${label}: all`), values.map((v) => h('option', { value: v }, v)));
    sel.value = f[key];
    sel.addEventListener('change', () => {
      f[key] = sel.value;
      void draw();
    });
    return sel;
  };
  const controls = h('p', { class: 'lv-controls fleet-filters' }, mkSelect('fleet-host', 'Host', 'host', first.hosts), ' ', mkSelect('fleet-service', 'Service', 'service', first.services));

  async function request(agent, kind, job) {
    const r = await act(() => api('POST', `/fleet/agents/${encodeURIComponent(agent)}/requests`, { kind, name: job }), `${kind === 'job' ? 'run' : 'drill'} of ${job} requested on ${agent}`);
    if (r) void draw();
  }

  function render(v) {
    const agents = v.agents.length
      ? table(
          ['Agent', 'State', 'Host', 'Version', 'Last heartbeat', 'Started', 'Jobs'],
          v.agents.map((a) => {
            const [color, label] = AGENT_STATE[a.state] || ['grey', a.state];
            return h(
              'tr',
              { class: 'agent-row', dataset: { agent: a.id, state: a.state } },
              h('td', {}, a.id),
              h('td', {}, h('span', { class: `badge ${color}`, dataset: { state: a.state } }, label)),
              h('td', {}, a.hostname),
              h('td', {}, a.version),
              h('td', {}, fmtTime(a.lastSeen), h('div', { class: 'muted' }, ago(a.lastSeen))),
              h('td', {}, fmtTime(a.startedAt)),
              h('td', {}, String(a.jobs.length)),
            );
          }),
          { id: 'agents-table' },
        )
      : h('p', { class: 'muted', id: 'no-agents' }, 'No agent matches. Each host runs `lifeboat daemon` with this catalog (daemon.catalog: postgres://…).');
    const jobs = v.agents.map((a) =>
      h(
        'section',
        { class: 'card agent-jobs', id: `agent-${a.id}`, dataset: { agent: a.id } },
        h('h2', {}, `Jobs on ${a.id}`),
        a.jobs.length
          ? table(
              ['Job', 'Source', 'Schedule', 'Services', 'Last run', ''],
              a.jobs.map((j) =>
                h(
                  'tr',
                  { class: 'fleet-job', dataset: { agent: a.id, job: j.name } },
                  h('td', {}, j.name),
                  h('td', {}, `${j.source} (${j.sourceKind})`),
                  h('td', {}, j.schedule || 'manual'),
                  h('td', {}, j.services.join(', ') || '–'),
                  h('td', { class: 'last-run' }, j.lastRun ? [badge(j.lastRun.status), ' ', fmtTime(j.lastRun.startedAt)] : 'never'),
                  h(
                    'td',
                    {},
                    isOperator()
                      ? [
                          h('button', { type: 'button', class: 'fleet-run', 'aria-label': `Run ${j.name} on ${a.id}`, onclick: () => request(a.id, 'job', j.name) }, 'Run'),
                          ' ',
                          h('button', { type: 'button', class: 'fleet-drill', 'aria-label': `Drill ${j.name} on ${a.id}`, onclick: () => request(a.id, 'drill', j.name) }, 'Drill'),
                        ]
                      : null,
                  ),
                ),
              ),
              { id: `jobs-${a.id}` },
            )
          : h('p', { class: 'muted' }, 'This agent reports no jobs.'),
      ),
    );
    const reqs = section(
      'Run requests',
      v.requests.length
        ? table(
            ['#', 'Agent', 'Kind', 'Job', 'By', 'Requested', 'State', 'Result'],
            v.requests.map((r) =>
              h(
                'tr',
                { class: 'request-row', dataset: { request: r.id, status: r.status, agent: r.agentId } },
                h('td', {}, `#${r.id}`),
                h('td', {}, r.agentId),
                h('td', {}, r.kind),
                h('td', {}, r.name),
                h('td', {}, r.requestedBy),
                h('td', {}, fmtTime(r.requestedAt)),
                h('td', {}, badge(r.status)),
                h('td', { class: 'small' }, r.result ? (r.result.error ? h('span', { class: 'error' }, String(r.result.error)) : r.result.runId ? `run #${r.result.runId}` : r.result.drillId ? h('a', { href: `#/drills/${r.result.drillId}` }, `drill #${r.result.drillId}`) : '') : r.status === 'pending' ? 'waiting for the agent' : ''),
              ),
            ),
            { id: 'requests-table' },
          )
        : h('p', { class: 'muted' }, 'No run requests yet.'),
    );
    content.replaceChildren(section(`Hosts (${v.agents.length})`, agents), ...jobs, reqs);
  }

  // responses may arrive out of order (a filter change while the periodic refresh is in flight): only the newest is shown
  let drawn = 0;
  async function draw() {
    const seq = ++drawn;
    const v = await api('GET', query()).catch((e) => {
      toast(e.message, true);
      return null;
    });
    if (v && seq === drawn) render(v);
  }

  render(first);
  root.append(h('h1', {}, 'Fleet'), controls, content);
  every(3000, () => void draw());
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
  const tz = document.getElementById('tz-toggle');
  const showTz = () => (tz.textContent = state.tz === 'utc' ? 'Times: UTC' : `Times: local (${zoneLabel(new Date())})`);
  showTz();
  tz.addEventListener('click', () => {
    state.tz = state.tz === 'utc' ? 'local' : 'utc';
    try {
      localStorage.setItem('lb-tz', state.tz);
    } catch {
      /* private mode: the choice lasts for this page */
    }
    showTz();
    void route();
  });
  document.getElementById('logout').addEventListener('click', async () => {
    await api('POST', '/logout').catch(() => {});
    location.href = '/login';
  });
  window.addEventListener('hashchange', route);
  await route();
}

document.addEventListener('DOMContentLoaded', () => void start());
