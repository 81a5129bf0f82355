import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Fast key derivation in tests (the KDF itself is tested separately with default parameters).
process.env.LIFEBOAT_TEST_SCRYPT_N ??= '1024';

export function tmpDir(prefix = 'lb-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Deterministic PRNG (xorshift128+ style via SHA-256 counter) for reproducible test data. */
export class Rng {
  private state: bigint;
  constructor(seed: number) {
    this.state = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n;
  }
  next(): number {
    // splitmix64
    this.state = (this.state + 0x9e3779b97f4a7c15n) & 0xffffffffffffffffn;
    let z = this.state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & 0xffffffffffffffffn;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & 0xffffffffffffffffn;
    z = z ^ (z >> 31n);
    return Number(z & 0xffffffffn) / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  bytes(n: number): Buffer {
    // seeded stream of pseudo-random bytes (fast): SHA-256 in counter mode
    const out = Buffer.allocUnsafe(n);
    const seed = Buffer.alloc(8);
    seed.writeDoubleLE(this.next());
    let off = 0;
    let ctr = 0;
    while (off < n) {
      const h = createHash('sha256').update(seed).update(String(ctr++)).digest();
      off += h.copy(out, off);
    }
    return out;
  }
}

/** Fast incompressible bytes (not seeded; use Rng.bytes for reproducible data). */
export const random = (n: number) => randomBytes(n);

export function textBytes(n: number, rng: Rng): Buffer {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima'];
  const parts: string[] = [];
  let len = 0;
  let i = 0;
  while (len < n) {
    const line = `${i++}\t${words[rng.int(words.length)]} ${words[rng.int(words.length)]}\t${rng.int(1_000_000)}\n`;
    parts.push(line);
    len += line.length;
  }
  return Buffer.from(parts.join('')).subarray(0, n);
}

/** Generate a tree: random and compressible files, empty files, symlinks, unicode names, nested dirs. */
export async function makeTree(root: string, opts: { files: number; seed: number; maxSize?: number }): Promise<void> {
  const rng = new Rng(opts.seed);
  const maxSize = opts.maxSize ?? 64 * 1024;
  const names = ['data', 'Über', '日本語', 'emoji-😀', 'sp ace', 'a.b.c', 'ñandú'];
  await fsp.mkdir(root, { recursive: true });
  const dirs = [root];
  for (let i = 0; i < opts.files; i++) {
    if (rng.next() < 0.08) {
      const d = path.join(dirs[rng.int(dirs.length)]!, `${names[rng.int(names.length)]}-${i}`);
      await fsp.mkdir(d, { recursive: true });
      dirs.push(d);
      continue;
    }
    const dir = dirs[rng.int(dirs.length)]!;
    const name = `${names[rng.int(names.length)]}-${i}${rng.next() < 0.5 ? '.txt' : '.bin'}`;
    const p = path.join(dir, name);
    const r = rng.next();
    if (r < 0.05) await fsp.writeFile(p, '');
    else if (r < 0.1 && i > 0) {
      await fsp.symlink(rng.next() < 0.5 ? `target-${i}` : '../x', p);
      continue;
    } else if (r < 0.55) await fsp.writeFile(p, rng.bytes(1 + rng.int(maxSize)));
    else await fsp.writeFile(p, textBytes(1 + rng.int(maxSize), rng));
    await fsp.chmod(p, [0o644, 0o600, 0o755, 0o400][rng.int(4)]!);
    const t = new Date(Date.UTC(2020, rng.int(12), 1 + rng.int(28), rng.int(24), rng.int(60), rng.int(60), rng.int(1000)));
    await fsp.utimes(p, t, t);
  }
}

export interface Entry {
  type: string;
  mode: number;
  size: number;
  mtimeMs: number;
  hash?: string;
  link?: string;
}

/** Describe a tree (content hash + metadata) for byte-for-byte comparisons. */
export async function describeTree(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const walk = async (dir: string, rel: string) => {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const p = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fsp.lstat(p);
      if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode: st.mode & 0o7777, size: 0, mtimeMs: Math.floor(st.mtimeMs) });
        await walk(p, r);
      } else if (st.isSymbolicLink()) {
        out.set(r, { type: 'symlink', mode: 0, size: 0, mtimeMs: Math.floor(st.mtimeMs), link: await fsp.readlink(p) });
      } else {
        const hash = createHash('sha256').update(await fsp.readFile(p)).digest('hex');
        out.set(r, { type: 'file', mode: st.mode & 0o7777, size: st.size, mtimeMs: Math.floor(st.mtimeMs), hash });
      }
    }
  };
  await walk(root, '');
  return out;
}

export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the real CLI in a child process. */
export function runCli(args: string[], opts: { env?: Record<string, string | undefined>; input?: Buffer | string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', ...opts.env },
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) =>
      resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() }),
    );
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

export interface MeasuredResult extends RunResult {
  /** Wall time from spawn to exit. */
  ms: number;
  /** Peak resident set of the CLI process (VmHWM, polled from /proc), in MiB; 0 where /proc is not readable. */
  peakRssMb: number;
  /** True when the process had to be killed after `killAfterMs`. */
  killed: boolean;
}

/**
 * Run the real CLI and measure it: wall time and peak RSS. The process is
 * killed (SIGKILL) after `killAfterMs` so a hang ends the test with a clear
 * assertion instead of a stuck suite. For hostile-input and fault tests.
 */
export function runCliMeasured(
  args: string[],
  opts: { env?: Record<string, string | undefined>; input?: Buffer | string; cwd?: string; killAfterMs?: number } = {},
): Promise<MeasuredResult> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, LIFEBOAT_TEST_SCRYPT_N: '1024', ...opts.env },
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let peakKb = 0;
    let killed = false;
    const poll = setInterval(() => {
      try {
        const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (m) peakKb = Math.max(peakKb, Number(m[1]));
      } catch {
        /* exited */
      }
    }, 20);
    const killer = setTimeout(() => {
      killed = true;
      child.kill('SIGKILL');
    }, opts.killAfterMs ?? 60_000);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      clearTimeout(killer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString(),
        stderr: Buffer.concat(err).toString(),
        ms: Date.now() - started,
        peakRssMb: Math.round(peakKb / 1024),
        killed,
      });
    });
    child.stdin.on('error', () => {});
    if (opts.input !== undefined) child.stdin.end(opts.input);
    else child.stdin.end();
  });
}

/** 'restoreMs' -> 'restore_ms': the CLI's --json keys (src/cli/json-keys.ts) as a type. */
type SnakeKey<S extends string> = S extends `${infer H}${infer T}` ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${SnakeKey<T>}` : S;
/** A library type as the CLI's --json output shows it: every key in snake_case. */
export type Snaked<T> = T extends Date
  ? string
  : T extends Array<infer E>
    ? Array<Snaked<E>>
    : T extends object
      ? { [K in keyof T as K extends string ? SnakeKey<K> : K]: Snaked<T[K]> }
      : T;
