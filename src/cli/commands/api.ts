import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { ConfigError, ExitCode, LifeboatError } from '../../errors.js';
import type { CliContext } from '../context.js';

/**
 * `lifeboat api METHOD PATH`: the CLI speaking to a running `lifeboat serve`
 * over its JSON API (docs/openapi.json), authenticated with an API token — for
 * scripts and for operators on another machine. The token comes from
 * --token-file, LIFEBOAT_TOKEN or LIFEBOAT_TOKEN_FILE, never from argv.
 *
 * Exit status: 0 for 2xx; 2 for 4xx (bad request, unauthenticated,
 * forbidden, not found); 1 for 5xx or an unreachable server.
 */
export function registerApi(program: Command, ctxOf: (cmd: Command) => CliContext): void {
  program
    .command('api')
    .description('call the JSON API of a running "lifeboat serve" (see docs/openapi.json), e.g. "lifeboat api GET /api/v1/overview"')
    .argument('<method>', 'GET, POST, PUT or DELETE')
    .argument('<path>', 'API path, e.g. /api/v1/jobs (the /api/v1 prefix may be left out)')
    .option('--server <url>', 'server URL (env LIFEBOAT_SERVER; default http://127.0.0.1:8080)')
    .option('--token-file <file>', 'file holding an API token (env LIFEBOAT_TOKEN or LIFEBOAT_TOKEN_FILE)')
    .option('-d, --data <json>', 'JSON request body ("@file" reads it from a file, "-" from stdin)')
    .action(async (method: string, apiPath: string, o: { server?: string; tokenFile?: string; data?: string }, cmd: Command) => {
      const ctx = ctxOf(cmd);
      const m = method.toUpperCase();
      if (!['GET', 'POST', 'PUT', 'DELETE'].includes(m)) throw new ConfigError(`api: unsupported method ${method} (GET, POST, PUT, DELETE)`);
      const server = (o.server ?? process.env.LIFEBOAT_SERVER ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
      let url: URL;
      try {
        url = new URL(server + (apiPath.startsWith('/api/') ? apiPath : `/api/v1${apiPath.startsWith('/') ? '' : '/'}${apiPath}`));
      } catch {
        throw new ConfigError(`api: invalid server URL ${server}`);
      }
      const tokenFile = o.tokenFile ?? process.env.LIFEBOAT_TOKEN_FILE;
      let token = process.env.LIFEBOAT_TOKEN;
      if (tokenFile) {
        try {
          token = readFileSync(tokenFile, 'utf8').trim();
        } catch {
          throw new ConfigError(`api: cannot read the token file ${tokenFile}`);
        }
      }
      let body: string | undefined;
      if (o.data !== undefined) {
        body = o.data === '-' ? readFileSync(0, 'utf8') : o.data.startsWith('@') ? readFileSync(o.data.slice(1), 'utf8') : o.data;
        try {
          JSON.parse(body);
        } catch (err) {
          throw new ConfigError(`api: --data is not valid JSON: ${(err as Error).message}`);
        }
      }
      let res: Response;
      try {
        res = await fetch(url, {
          method: m,
          headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(body !== undefined ? { body } : {}),
          redirect: 'manual',
        });
      } catch (err) {
        throw new LifeboatError(`api: cannot reach ${url.origin}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
      }
      const text = await res.text();
      let parsed: unknown;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = undefined;
      }
      if (res.ok) {
        process.stdout.write(parsed === undefined ? text : JSON.stringify(parsed, null, ctx.out.json ? 0 : 2) + '\n');
        return;
      }
      const msg = (parsed as { error?: string } | undefined)?.error ?? text.slice(0, 300);
      process.stderr.write(`lifeboat: api ${m} ${url.pathname}: HTTP ${res.status}: ${msg}\n`);
      process.exitCode = res.status >= 500 ? ExitCode.FATAL : ExitCode.USAGE;
    });
}
