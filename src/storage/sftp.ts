import { existsSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import { RcloneStorage, type RcloneOptions } from './rclone.js';

/**
 * SFTP backend, through rclone: `sftp:user@host:/path`, `sftp://user@host[:port]/path`.
 *
 * Why rclone and not an SSH library in-process: the rclone child already is a
 * complete, maintained SFTP client (key files, ssh-agent, known_hosts, keep-alive,
 * reconnects), the same code path as every other rclone remote (one backend to
 * test and keep), and `serve restic --append-only` gives SFTP repositories the
 * append-only mode for free. The remote is an on-the-fly `:sftp:` remote whose
 * settings travel in RCLONE_SFTP_* environment variables, never in argv.
 *
 * The host key is always verified: known_hosts comes from sftp.knownHostsFile,
 * LIFEBOAT_SFTP_KNOWN_HOSTS or ~/.ssh/known_hosts; without one the location is
 * refused (rclone alone would accept any host key). The client key comes from
 * sftp.keyFile / LIFEBOAT_SFTP_KEY_FILE, else ssh-agent (SSH_AUTH_SOCK).
 */
export interface SftpLocation {
  kind: 'sftp';
  user?: string;
  host: string;
  port?: number;
  path: string;
}

export interface SftpOptions {
  keyFile?: string;
  knownHostsFile?: string;
}

export function parseSftpLocation(location: string): SftpLocation {
  const bad = (why: string) => new ConfigError(`invalid SFTP location "${location.replace(/:[^:@/]*@/, '@')}": ${why}`);
  let user: string | undefined;
  let host: string;
  let port: number | undefined;
  let p: string;
  if (location.split(/[/:]/).some((seg) => seg === '..' || seg === '%2e%2e' || seg === '%2E%2E')) throw bad('".." is not allowed in the path');
  if (location.startsWith('sftp://')) {
    let u: URL;
    try {
      u = new URL(location);
    } catch {
      throw bad('not a valid URL (expected sftp://user@host[:port]/path)');
    }
    if (u.password) throw bad('passwords are not allowed in the location; use a key file or ssh-agent');
    if (u.search || u.hash) throw bad('query strings and fragments are not supported');
    user = u.username ? decodeURIComponent(u.username) : undefined;
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = u.port ? Number(u.port) : undefined;
    p = decodeURIComponent(u.pathname);
    if (p.startsWith('/~/')) p = p.slice(3);
  } else {
    // restic style: sftp:user@host:/path  or  sftp:host:relative/path
    const rest = location.slice('sftp:'.length);
    const m = /^(?:([^@/:]+)@)?(\[[^\]]+\]|[^:/@]+):(.*)$/.exec(rest);
    if (!m) throw bad('expected sftp:user@host:/path or sftp://user@host[:port]/path');
    user = m[1];
    host = m[2]!.replace(/^\[|\]$/g, '');
    p = m[3]!;
  }
  if (!host) throw bad('no host');
  if (!/^[A-Za-z0-9.:_-]+$/.test(host)) throw bad(`host "${host}" contains characters that are not allowed`);
  if (user !== undefined && !/^[A-Za-z0-9._-]+$/.test(user)) throw bad(`user "${user}" contains characters that are not allowed`);
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) throw bad('port out of range');
  if (p.trim() === '') throw bad('no path');
  if (p.split('/').some((seg) => seg === '..')) throw bad('".." is not allowed in the path');
  if (/[\0\n\r]/.test(p)) throw bad('control characters in the path');
  return { kind: 'sftp', ...(user ? { user } : {}), host, ...(port ? { port } : {}), path: p };
}

export function describeSftp(loc: SftpLocation): string {
  return `sftp://${loc.user ? `${loc.user}@` : ''}${loc.host.includes(':') ? `[${loc.host}]` : loc.host}${loc.port ? `:${loc.port}` : ''}${loc.path.startsWith('/') ? '' : '/~/'}${loc.path}`;
}

/** The rclone settings of an SFTP location (environment, not argv). */
export function sftpRcloneOptions(
  loc: SftpLocation,
  opts: SftpOptions = {},
  env: NodeJS.ProcessEnv = process.env,
): Pick<RcloneOptions, 'remote' | 'env' | 'location' | 'kind'> {
  const knownHosts =
    opts.knownHostsFile ??
    (env.LIFEBOAT_SFTP_KNOWN_HOSTS || undefined) ??
    [path.join(os.homedir(), '.ssh', 'known_hosts')].find((f) => existsSync(f));
  if (!knownHosts) {
    throw new ConfigError(
      `SFTP ${describeSftp(loc)}: no known_hosts file to verify the server's host key: set sftp.knownHostsFile or LIFEBOAT_SFTP_KNOWN_HOSTS, or add the host to ~/.ssh/known_hosts (ssh-keyscan)`,
    );
  }
  if (!existsSync(knownHosts)) throw new ConfigError(`SFTP known_hosts file ${knownHosts} does not exist`);
  const keyFile = opts.keyFile ?? (env.LIFEBOAT_SFTP_KEY_FILE || undefined);
  if (keyFile && !existsSync(keyFile)) throw new ConfigError(`SFTP key file ${keyFile} does not exist`);
  const e: Record<string, string> = {
    RCLONE_SFTP_HOST: loc.host,
    RCLONE_SFTP_KNOWN_HOSTS_FILE: knownHosts,
    // Lifeboat verifies every object by its hash: no remote md5sum/sha1sum commands
    RCLONE_SFTP_DISABLE_HASHCHECK: 'true',
    RCLONE_SFTP_SHELL_TYPE: 'none',
    RCLONE_SFTP_SET_MODTIME: 'false',
  };
  if (loc.user) e.RCLONE_SFTP_USER = loc.user;
  if (loc.port) e.RCLONE_SFTP_PORT = String(loc.port);
  if (keyFile) e.RCLONE_SFTP_KEY_FILE = keyFile;
  return { remote: `:sftp:${loc.path}`, env: e, location: describeSftp(loc), kind: 'sftp' };
}

export function openSftp(loc: SftpLocation, opts: SftpOptions & Omit<RcloneOptions, 'remote' | 'env' | 'location' | 'kind'>, env: NodeJS.ProcessEnv = process.env): RcloneStorage {
  const { keyFile, knownHostsFile, ...rest } = opts;
  return new RcloneStorage({
    ...rest,
    ...sftpRcloneOptions(loc, { ...(keyFile ? { keyFile } : {}), ...(knownHostsFile ? { knownHostsFile } : {}) }, env),
  });
}
