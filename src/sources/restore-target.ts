import { ConfigError, redactUrlPasswords } from '../errors.js';

/**
 * Turn a restore destination (CLI --to-database, the dashboard's target) into a restore target for a source kind: a database name,
 * a URL (postgres://, mysql://, redis://, mongodb://) or a file path (SQLite, Redis RDB).
 * A password inside a URL is moved to an environment variable for the tool, never argv.
 */
export function restoreTarget(kind: string, to: string | undefined): Record<string, unknown> {
  if (!to) return {};
  let url: URL | undefined;
  if (/^[a-z]+:\/\//i.test(to)) {
    try {
      url = new URL(to);
    } catch {
      // the value may hold a password: never echo it
      throw new ConfigError(`target database "${redactUrlPasswords(to)}" is not a valid URL (e.g. postgres://user@host:5432/db; percent-encode special characters)`);
    }
  }
  const withPassword = (t: Record<string, unknown>) => {
    if (url?.password) {
      process.env.LIFEBOAT_RESTORE_TARGET_PASSWORD = decodeURIComponent(url.password);
      t.passwordEnv = 'LIFEBOAT_RESTORE_TARGET_PASSWORD';
    }
    return t;
  };
  const common = () => ({
    ...(url?.hostname ? { host: url.hostname } : {}),
    ...(url?.port ? { port: Number(url.port) } : {}),
    ...(url?.username ? { user: decodeURIComponent(url.username) } : {}),
  });
  switch (kind) {
    case 'postgres':
    case 'mysql': {
      if (!url) return { database: to };
      const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
      return withPassword({ ...common(), ...(database ? { database } : {}) });
    }
    case 'redis':
      return url ? withPassword(common()) : { file: to };
    case 'sqlite':
      return { path: to };
    case 'mongodb':
      if (!url) return { database: to };
      if (url.password) throw new ConfigError('--to-database: put no password in a MongoDB URI; use the source\'s passwordEnv/passwordFile');
      return { uri: to };
    case 'command':
      throw new ConfigError('command sources restore with their restoreCommand; --to-database does not apply');
    default:
      return {};
  }
}
