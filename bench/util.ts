/** Shared helpers of the benchmarks: timing under GNU time, medians, deterministic data sets. */
import { spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, statSync, writeSync } from 'node:fs';
import * as path from 'node:path';

export const MB = 1e6;
export const benchEnv = {
  ...process.env,
  LIFEBOAT_PASSWORD: 'bench',
  RESTIC_PASSWORD: 'bench',
  BORG_PASSPHRASE: 'bench',
  BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: 'yes',
  BORG_RELOCATED_REPO_ACCESS_IS_OK: 'yes',
};

export interface Measure {
  ms: number;
  rssKb: number;
  /** CPU seconds of the child and its children (user + system, GNU time %U + %S). */
  cpuS: number;
}

/** Run a shell command under GNU time: wall time, peak RSS and CPU seconds (user + system) of the command. */
export function timed(cmd: string, env: NodeJS.ProcessEnv = benchEnv): Measure {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('/usr/bin/time', ['-f', 'LBTIME %M %U %S', 'sh', '-c', cmd], { env, stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  const err = r.stderr.toString().trim().split('\n');
  if (r.status !== 0) throw new Error(`${cmd} failed: ${err.slice(-5).join('\n')}`);
  const m = /^LBTIME (\d+) ([\d.]+) ([\d.]+)$/.exec([...err].reverse().find((l) => l.startsWith('LBTIME ')) ?? '');
  if (!m) throw new Error(`${cmd}: no GNU time output`);
  return { ms, rssKb: Number(m[1]), cpuS: Number(m[2]) + Number(m[3]) };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

export function du(p: string): number {
  if (!existsSync(p)) return 0;
  let total = 0;
  for (const e of readdirSync(p, { withFileTypes: true, recursive: true })) if (e.isFile()) total += statSync(path.join(e.parentPath, e.name)).size;
  return total;
}

export function countFiles(p: string): number {
  if (!existsSync(p)) return 0;
  let n = 0;
  for (const e of readdirSync(p, { withFileTypes: true, recursive: true })) if (e.isFile()) n++;
  return n;
}

export function writeFile(p: string, data: Buffer): void {
  mkdirSync(path.dirname(p), { recursive: true });
  const fd = openSync(p, 'w');
  writeSync(fd, data);
  closeSync(fd);
}

/**
 * Copy real files (e.g. /usr/share, /usr/lib, /usr/include) into `dest`,
 * deterministically: a sorted depth-first walk, regular readable files only
 * (symlinks, devices, sockets, FIFOs and unreadable files skipped), at most
 * `maxFileBytes` per file, until `capBytes` are copied. Returns bytes and files copied.
 */
export function copyRealFiles(sources: string[], dest: string, capBytes: number, maxFileBytes = 16 * MB): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  const walk = (dir: string, rel: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch {
      return;
    }
    for (const name of names) {
      if (bytes >= capBytes) return;
      const abs = path.join(dir, name);
      let st;
      try {
        st = lstatSync(abs);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(abs, path.join(rel, name));
      else if (st.isFile() && st.size <= maxFileBytes && st.size <= capBytes - bytes) {
        const to = path.join(dest, rel, name);
        try {
          mkdirSync(path.dirname(to), { recursive: true });
          copyFileSync(abs, to);
        } catch {
          continue; // unreadable: skipped
        }
        bytes += st.size;
        files++;
      }
    }
  };
  for (const s of sources) walk(s, path.basename(s));
  return { bytes, files };
}

export const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
