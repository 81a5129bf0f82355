import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

/**
 * A real OpenSSH server for the SFTP tests: started by the test as the current
 * user on a free 127.0.0.1 port, with a generated host key and client key
 * (ssh-keygen), its own sshd_config in a temporary directory
 * (`/usr/sbin/sshd -D -f cfg -e`), and killed afterwards. `.ci/services.sh`
 * installs openssh-server; tests skip with sshdMissing()'s reason otherwise.
 */
export interface SshServer {
  host: string;
  port: number;
  user: string;
  /** Client private key (no passphrase). */
  keyFile: string;
  /** known_hosts with the server's host key for [127.0.0.1]:port. */
  knownHostsFile: string;
  dir: string;
  stop(): Promise<void>;
  /** kill -9 the server (connections in flight break). */
  kill(): void;
}

const SSHD = '/usr/sbin/sshd';

export function sshdMissing(): string | false {
  if (!existsSync(SSHD)) return 'sshd is not installed (apt-get install -y openssh-server; .ci/services.sh does it)';
  if (spawnSync('ssh-keygen', ['-?'], { encoding: 'utf8' }).error) return 'ssh-keygen is not installed (apt-get install -y openssh-client)';
  return false;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

function keygen(file: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen failed: ${r.stderr}`);
}

export async function startSshd(): Promise<SshServer> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lb-sshd-'));
  const user = os.userInfo().username;
  keygen(path.join(dir, 'host_key'));
  keygen(path.join(dir, 'client_key'));
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client_key.pub')), { mode: 0o600 });
  // privilege separation directory (Debian's sshd refuses to start without it)
  if (process.getuid?.() === 0 && !existsSync('/run/sshd')) mkdirSync('/run/sshd', { mode: 0o755 });
  let lastErr = '';
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const cfg = path.join(dir, 'sshd_config');
    writeFileSync(
      cfg,
      [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        `HostKey ${path.join(dir, 'host_key')}`,
        `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
        `PidFile ${path.join(dir, 'sshd.pid')}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'StrictModes no',
        'UsePAM no',
        'PermitRootLogin prohibit-password',
        `AllowUsers ${user}`,
        'Subsystem sftp internal-sftp',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const child: ChildProcess = spawn(SSHD, ['-D', '-f', cfg, '-e'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
      if (stderr.length < 10_000) stderr += d;
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const up = await waitPort(port, child, 10_000);
    if (!up) {
      child.kill('SIGKILL');
      await exited;
      lastErr = stderr.trim();
      continue;
    }
    const hostPub = readFileSync(path.join(dir, 'host_key.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
    const knownHostsFile = path.join(dir, 'known_hosts');
    writeFileSync(knownHostsFile, `[127.0.0.1]:${port} ${hostPub}\n`);
    let stopped = false;
    return {
      host: '127.0.0.1',
      port,
      user,
      keyFile: path.join(dir, 'client_key'),
      knownHostsFile,
      dir,
      kill() {
        child.kill('SIGKILL');
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        if (child.exitCode === null && child.signalCode === null) {
          child.kill('SIGTERM');
          const t = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(t);
        }
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  rmSync(dir, { recursive: true, force: true });
  throw new Error(`sshd did not start: ${lastErr}`);
}

async function waitPort(port: number, child: ChildProcess, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}
