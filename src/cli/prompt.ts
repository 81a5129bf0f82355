import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/**
 * Read a password from the controlling terminal without echo, as restic does
 * when no password source is configured. Synchronous on purpose: password
 * resolution is synchronous everywhere else (env, file, command).
 * Returns undefined when there is no terminal (cron, CI, pipes).
 */
export function promptPasswordSync(prompt: string): string | undefined {
  if (!process.stdin.isTTY) return undefined;
  let fd: number;
  try {
    fd = openSync('/dev/tty', 'r+');
  } catch {
    return undefined;
  }
  const stty = (arg: string) => spawnSync('stty', [arg], { stdio: [fd, 'ignore', 'ignore'] });
  try {
    stty('-echo'); // before the prompt: anything typed after it must not echo
    writeSync(fd, prompt);
    const buf = Buffer.alloc(1);
    const bytes: number[] = [];
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, 1, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') continue;
        throw err;
      }
      if (n === 0 || buf[0] === 0x0a || buf[0] === 0x0d) break;
      if (buf[0] === 0x03) return undefined; // ^C
      bytes.push(buf[0]!);
    }
    return Buffer.from(bytes).toString('utf8');
  } finally {
    stty('echo');
    try {
      writeSync(fd, '\n');
    } catch {
      /* terminal gone */
    }
    closeSync(fd);
  }
}
