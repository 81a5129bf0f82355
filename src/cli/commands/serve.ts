import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { ConfigError, LifeboatError, errorMessage } from '../../errors.js';
import type { LifeboatConfig } from '../../config/config.js';
import type { Catalog } from '../../ops/catalog/types.js';
import { openConfigCatalog } from '../../ops/service.js';
import { AuthStore } from '../../server/auth.js';
import { MaintenanceStore, parseZonedTime } from '../../server/maintenance.js';
import { openApiFor, startServer } from '../../server/server.js';
import { exportStatusPage } from '../../server/status.js';
import { type CliContext, serviceSettings } from '../context.js';
import { collect, table } from '../output.js';
import { secretText } from '../../util/secret-text.js';

/**
 * `lifeboat serve` (dashboard, API, status page) and the commands that manage
 * what it serves: users, API tokens, maintenance windows, static status page.
 */

async function withCatalog<T>(cfg: LifeboatConfig, fn: (c: Catalog) => Promise<T>): Promise<T> {
  const c = await openConfigCatalog(cfg);
  try {
    return await fn(c);
  } finally {
    await c.close();
  }
}

/** A password from --password-file or stdin (never from argv). */
async function readPassword(file: string | undefined): Promise<string> {
  let text: string;
  if (file) {
    try {
      text = readFileSync(path.resolve(file), 'utf8');
    } catch (err) {
      throw new LifeboatError(`cannot read password file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 2);
    }
  } else {
    if (process.stdin.isTTY) throw new ConfigError('give the password with --password-file FILE or on stdin (e.g. printf %s "$PW" | lifeboat user add ...)');
    const chunks: Buffer[] = [];
    for await (const c of process.stdin) chunks.push(c as Buffer);
    text = Buffer.concat(chunks).toString('utf8');
  }
  const pw = secretText(text);
  if (!pw) throw new ConfigError('empty password');
  return pw;
}

function fmtDate(d: Date | null): string {
  return d ? d.toISOString().replace('T', ' ').slice(0, 16) : '-';
}

function parseWhen(s: string, what: string): Date {
  try {
    return parseZonedTime(s, what);
  } catch (err) {
    throw new ConfigError(errorMessage(err));
  }
}

export function registerServe(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('serve')
    .description('run the web dashboard, the JSON API (/api/v1) and the public status page (/status)')
    .option('--listen <host:port>', 'address to listen on (default: server.listen, 127.0.0.1:8080)')
    .option('--openapi', 'print the OpenAPI document of the API and exit')
    .action(async (o: { listen?: string; openapi?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      if (o.openapi) {
        process.stdout.write(JSON.stringify(openApiFor(cfg), null, 2) + '\n');
        return;
      }
      const log = (m: string) => process.stderr.write(`${new Date().toISOString()} ${m}\n`);
      // one long-lived process runs every API-started job, restore and drill: the daemon's settings
      const srv = await startServer(cfg, { log, ...(o.listen ? { listen: o.listen } : {}), idle: serviceSettings() });
      if ((await srv.auth.listUsers()).length === 0 && (await srv.auth.listTokens()).length === 0) {
        log('no users or API tokens yet: create one with "lifeboat user add NAME --role operator"');
      }
      process.stdout.write(`lifeboat serve: listening on ${srv.url} (dashboard ${srv.url}/, status page ${srv.url}/status, API ${srv.url}/api/v1)\n`);
      await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
          log(`received ${sig}, stopping`);
          void srv.close().then(resolve, resolve);
        };
        process.removeAllListeners('SIGTERM');
        process.removeAllListeners('SIGINT');
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
    });

  const user = program.command('user').description('dashboard/API users (roles: viewer = read, operator = restore, run, manage incidents)');
  user
    .command('add')
    .description('add a user; the password is read from --password-file or stdin, never from the command line')
    .argument('<name>')
    .option('--role <role>', 'viewer or operator', 'viewer')
    .action(async (name: string, o: { role: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const pw = await readPassword((cmd.optsWithGlobals() as { passwordFile?: string }).passwordFile);
      const u = await withCatalog(cfg, (c) => new AuthStore(c).addUser(name, o.role, pw));
      ctx.out.info(`added user ${u.name} (${u.role})`);
      ctx.out.emit({ name: u.name, role: u.role });
    });
  user
    .command('passwd')
    .description('set a user\'s password (from --password-file or stdin); ends the user\'s sessions')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const pw = await readPassword((cmd.optsWithGlobals() as { passwordFile?: string }).passwordFile);
      await withCatalog(cfg, (c) => new AuthStore(c).setPassword(name, pw));
      ctx.out.info(`password of ${name} changed`);
    });
  user
    .command('list')
    .description('list users')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const users = await withCatalog(ctx.config(true)!, (c) => new AuthStore(c).listUsers());
      if (ctx.out.json) ctx.out.emit(users);
      else ctx.out.info(table(['User', 'Role', 'Created', 'Last login'], users.map((u) => [u.name, u.role, fmtDate(u.createdAt), fmtDate(u.lastLoginAt)])));
    });
  user
    .command('remove')
    .description('remove a user (and end their sessions)')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const ok = await withCatalog(ctx.config(true)!, (c) => new AuthStore(c).removeUser(name));
      if (!ok) throw new LifeboatError(`no user ${name}`, 2);
      ctx.out.info(`removed user ${name}`);
    });

  const token = program.command('token').description('API tokens (Authorization: Bearer <token>)');
  token
    .command('create')
    .description('create an API token and print it once (only its hash is stored)')
    .argument('<name>')
    .option('--role <role>', 'viewer or operator', 'viewer')
    .option('--expires <date>', 'expiry (ISO 8601); default: never')
    .action(async (name: string, o: { role: string; expires?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const exp = o.expires ? parseWhen(o.expires, '--expires') : undefined;
      const r = await withCatalog(cfg, (c) => new AuthStore(c).createToken(name, o.role, exp ? { expiresAt: exp } : {}));
      if (ctx.out.json) ctx.out.emit({ name: r.info.name, role: r.info.role, token: r.token });
      else process.stdout.write(`${r.token}\n`);
      process.stderr.write(`token ${name} (${r.info.role}) created; it is shown only now, store it safely\n`);
    });
  token
    .command('list')
    .description('list API tokens (names, roles, prefixes; never the tokens)')
    .action(async (_o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const list = await withCatalog(ctx.config(true)!, (c) => new AuthStore(c).listTokens());
      if (ctx.out.json) ctx.out.emit(list);
      else ctx.out.info(table(['Token', 'Role', 'Prefix', 'Created', 'Expires', 'Last used'], list.map((t) => [t.name, t.role, t.prefix + '…', fmtDate(t.createdAt), fmtDate(t.expiresAt), fmtDate(t.lastUsedAt)])));
    });
  token
    .command('revoke')
    .description('revoke an API token')
    .argument('<name>')
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const ok = await withCatalog(ctx.config(true)!, (c) => new AuthStore(c).revokeToken(name));
      if (!ok) throw new LifeboatError(`no token ${name}`, 2);
      ctx.out.info(`revoked token ${name}`);
    });

  const sp = program.command('status-page').description('the public status page');
  sp.command('export')
    .description('write the status page as static files (index.html, status.json) into a directory')
    .requiredOption('--out <dir>', 'output directory')
    .action(async (o: { out: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const r = await withCatalog(ctx.config(true)!, (c) => exportStatusPage(ctx.config(true)!, c, o.out));
      for (const w of r.model.warnings) ctx.out.warn(w);
      ctx.out.info(`status: ${r.model.state}; wrote ${r.files.join(', ')}`);
      ctx.out.emit({ state: r.model.state, files: r.files });
    });

  const mw = program
    .command('maintenance-window')
    .description('planned maintenance windows shown on the status page (not the daemon\'s repository maintenance)');
  mw.command('add')
    .description('announce a maintenance window')
    .requiredOption('--title <text>')
    .requiredOption('--start <datetime>', 'ISO 8601 with a zone, e.g. 2025-01-31T22:00:00Z or 2025-01-31T23:00:00+01:00')
    .requiredOption('--end <datetime>', 'ISO 8601 with a zone')
    .option('--services <list>', 'affected services (comma-separated, from the config\'s services)', collect)
    .option('--description <text>')
    .action(async (o: { title: string; start: string; end: string; services?: string[]; description?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const cfg = ctx.config(true)!;
      const w = await withCatalog(cfg, (c) =>
        new MaintenanceStore(c).add(
          { title: o.title, ...(o.description ? { description: o.description } : {}), services: o.services ?? [], startsAt: parseWhen(o.start, '--start'), endsAt: parseWhen(o.end, '--end'), createdBy: process.env.USER ?? 'cli' },
          Object.keys(cfg.services),
        ),
      );
      ctx.out.info(`maintenance window ${w.id} (${w.state}): ${w.title}, ${fmtDate(w.startsAt)} – ${fmtDate(w.endsAt)} UTC`);
      ctx.out.emit(w);
    });
  mw.command('list')
    .description('list maintenance windows')
    .option('--all', 'include past and cancelled windows')
    .action(async (o: { all?: boolean }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const list = await withCatalog(ctx.config(true)!, (c) => new MaintenanceStore(c).list(o.all ? {} : { current: true }));
      if (ctx.out.json) ctx.out.emit(list);
      else ctx.out.info(table(['ID', 'State', 'Start (UTC)', 'End (UTC)', 'Services', 'Title'], list.map((w) => [String(w.id), w.state, fmtDate(w.startsAt), fmtDate(w.endsAt), w.services.join(','), w.title])));
    });
  mw.command('cancel')
    .description('cancel a maintenance window')
    .argument('<id>')
    .action(async (id: string, _o: unknown, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const n = Number(id);
      if (!Number.isInteger(n) || n <= 0) throw new ConfigError(`invalid id "${id}"`);
      const w = await withCatalog(ctx.config(true)!, (c) => new MaintenanceStore(c).cancel(n));
      ctx.out.info(`cancelled maintenance window ${w.id}: ${w.title}`);
    });
}
