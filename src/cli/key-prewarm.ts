import { readFileSync, statSync } from 'node:fs';
import { secretText } from '../util/secret-text.js';

/**
 * The repository key's scrypt started before the command's code is loaded (main.ts).
 *
 * Opening a repository derives the key-file key with scrypt (≈ 90 ms of CPU at the default
 * N = 2^15) on a thread-pool thread while the main thread waits; before that the main
 * thread spends ≈ 70-120 ms loading the command's modules with the other core idle. When
 * the command line (or the environment) names a local repository and a password that can
 * be read without side effects, the derivation starts first and runs beside the loading:
 * a short command (wal-push, wal-fetch, an unchanged re-backup) ends that much sooner.
 *
 * Only a guess, never a decision: the command resolves its repository and password as
 * always, and takes the prewarmed key only if it is for the same key file and password
 * (repo/keys.ts). A wrong guess (a repository name from the config, another password)
 * costs one derivation on an otherwise idle thread. Never for a password command (it would
 * run twice), a remote repository, help, or a spool client (which opens no repository).
 * LIFEBOAT_KEY_PREWARM=0 turns it off.
 */
export interface PrewarmTarget {
  dir: string;
  password: string;
}

/** The value of an option of argv (`-r X`, `--repo X`, `--repo=X`, `-rX`), the last one given; undefined if absent. */
function optionValue(args: string[], short: string, long: string): string | undefined {
  let v: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === short || a === long) v = args[++i];
    else if (a.startsWith(`${long}=`)) v = a.slice(long.length + 1);
    else if (short && a.startsWith(short) && a.length > short.length && !a.startsWith('--')) v = a.slice(short.length);
  }
  return v;
}

export function prewarmTarget(argv: string[], env: NodeJS.ProcessEnv = process.env): PrewarmTarget | undefined {
  if (env.LIFEBOAT_KEY_PREWARM === '0') return undefined;
  const args = argv.slice(2);
  const end = args.indexOf('--');
  const opts = end < 0 ? args : args.slice(0, end);
  if (opts.some((a) => a === '-h' || a === '--help' || a === '-V' || a === '--version' || a === '--spool' || a === '--password-command' || a.startsWith('--password-command='))) return undefined;
  if (opts[0] === 'help' || opts[0] === 'init') return undefined;
  let location = optionValue(opts, '-r', '--repo') ?? env.LIFEBOAT_REPOSITORY;
  if (!location) return undefined;
  if (location.startsWith('local:')) location = location.slice('local:'.length);
  // anything with a scheme (s3:, rclone:, sftp:, a directory named "x:y") is left to the command
  else if (/^[a-zA-Z][a-zA-Z0-9+.-]+:/.test(location)) return undefined;
  if (!location.trim() || location.includes('\0')) return undefined;
  // the password in the command's own order (cli/context.ts password()), as far as it needs no config
  const file = optionValue(opts, '-p', '--password-file');
  // only a regular file: a FIFO or /dev/stdin read here would be empty for the command
  // read as config/password.ts resolveSecret reads a file (secretText), which is not imported: --version loads no config code
  const readFile = (f: string) => (statSync(f).isFile() ? secretText(readFileSync(f, 'utf8')) : undefined);
  let password: string | undefined;
  try {
    if (file !== undefined) password = readFile(file);
    else if (env.LIFEBOAT_PASSWORD) password = env.LIFEBOAT_PASSWORD;
    else if (env.LIFEBOAT_PASSWORD_FILE) password = readFile(env.LIFEBOAT_PASSWORD_FILE);
  } catch {
    return undefined; // the command says what is wrong with it
  }
  return password ? { dir: location, password } : undefined;
}

/**
 * Start the derivation for `target`; resolves once it is running (or was not started), at
 * the latest after `waitMs` (a hung mount must not hold up the command, which has its own
 * deadlines). Never throws.
 */
export async function startKeyPrewarm(target: PrewarmTarget, waitMs = 250): Promise<void> {
  // imported here, not at the top: a command with nothing to prewarm (--version, help) loads no repository code
  const started = (async () => {
    const [{ prewarmKeys }, { LocalStorage }] = await Promise.all([import('../repo/keys.js'), import('../storage/local.js')]);
    return prewarmKeys(new LocalStorage(target.dir), target.password);
  })().catch(() => 0);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([started, new Promise<void>((resolve) => (timer = setTimeout(resolve, waitMs)))]);
  clearTimeout(timer);
}
