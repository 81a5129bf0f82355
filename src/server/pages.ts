import { escapeHtml } from './http.js';

/** Server-rendered HTML: the login form and the dashboard shell (the dashboard itself is web/app.js). No inline script or style (strict CSP). */

export function loginPage(o: { next: string; error?: string; user?: string }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Lifeboat — sign in</title><link rel="stylesheet" href="/static/app.css"></head>
<body class="login-body"><main class="login">
<h1>Lifeboat</h1>
<form method="post" action="/login" id="login-form">
${o.error ? `<p class="error" role="alert" id="login-error">${escapeHtml(o.error)}</p>` : ''}
<input type="hidden" name="next" value="${escapeHtml(o.next)}">
<label>User <input name="user" id="user" autocomplete="username" required value="${escapeHtml(o.user ?? '')}"></label>
<label>Password <input name="password" id="password" type="password" autocomplete="current-password" required></label>
<button type="submit" id="login-submit">Sign in</button>
</form>
<p class="muted"><a href="/status">Public status page</a></p>
</main></body></html>
`;
}

export function shellPage(o: { title: string }): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Lifeboat — ${escapeHtml(o.title)}</title><link rel="stylesheet" href="/static/app.css">
<script src="/static/app.js" defer></script></head>
<body>
<header class="top"><span class="brand">Lifeboat</span>
<nav id="nav">
<a href="#/overview" data-page="overview">Overview</a>
<a href="#/jobs" data-page="jobs">Jobs</a>
<a href="#/fleet" data-page="fleet">Fleet</a>
<a href="#/snapshots" data-page="snapshots">Snapshots</a>
<a href="#/drills" data-page="drills">Drills</a>
<a href="#/runbooks" data-page="runbooks">Runbooks</a>
<a href="#/incidents" data-page="incidents">Incidents</a>
<a href="#/status-admin" data-page="status-admin">Status page</a>
<a href="#/tasks" data-page="tasks">Tasks</a>
</nav>
<span class="who"><button type="button" id="tz-toggle" class="link" title="Show times in UTC or in this browser's time zone"></button> <span id="who"></span> <button type="button" id="logout" class="link">Sign out</button></span></header>
<main id="app"><p class="muted">Loading…</p></main>
<div id="toast" class="toast" role="status" aria-live="polite" hidden></div>
<noscript>The dashboard needs JavaScript. The JSON API is at /api/v1 (see /api/v1/openapi.json).</noscript>
</body></html>
`;
}

export function notFoundPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found</title><link rel="stylesheet" href="/static/app.css"></head><body><main class="login"><h1>Not found</h1><p><a href="/">Dashboard</a> · <a href="/status">Status</a></p></main></body></html>\n`;
}
