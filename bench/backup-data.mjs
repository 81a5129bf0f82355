// Dataset for bench/backup-steps.sh: the same generators as bench/compare.ts (data | mutate | dump).
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, openSync, writeSync, closeSync } from 'node:fs';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
const [,, cmd, dir, scaleS, extra] = process.argv;
const SCALE = Number(scaleS ?? '0.3'); const MB = 1e6;
function randomBytesSeeded(seed, n) { const out = Buffer.allocUnsafe(n); let off = 0; for (let i = 0; off < n; i++) off += createHash('sha256').update(`${seed}:${i}`).digest().copy(out, off); return out; }
function textBytes(seed, n) { let s = seed >>> 0; const r = () => ((s = (s ^ (s << 13)) >>> 0), (s = (s ^ (s >>> 17)) >>> 0), (s = (s ^ (s << 5)) >>> 0), s / 2 ** 32);
  const words = ['GET','POST','/api/v1/items','/login','user','session','ok','error','timeout','cache','hit','miss']; const parts = []; let len = 0; let i = 0;
  while (len < n) { const line = `2026-11-${String(1 + (i % 28)).padStart(2, '0')}T12:${String(i % 60).padStart(2, '0')}:00Z ${words[Math.floor(r() * 12)]} ${words[Math.floor(r() * 12)]} id=${Math.floor(r() * 1e6)} ms=${Math.floor(r() * 900)}\n`; parts.push(line); len += line.length; i++; }
  return Buffer.from(parts.join('')).subarray(0, n); }
function writeFile(p, data) { mkdirSync(path.dirname(p), { recursive: true }); const fd = openSync(p, 'w'); writeSync(fd, data); closeSync(fd); }
function du(p) { let t = 0; for (const e of readdirSync(p, { withFileTypes: true, recursive: true })) if (e.isFile()) t += statSync(path.join(e.parentPath, e.name)).size; return t; }
function makeDataset(dir) { rmSync(dir, { recursive: true, force: true }); const big = Math.round(350 * MB * SCALE);
  for (let i = 0; i < 4; i++) writeFile(path.join(dir, `random/r${i}.bin`), randomBytesSeeded(`r${i}`, Math.round(big / 4)));
  for (let i = 0; i < 4; i++) writeFile(path.join(dir, `logs/app${i}.log`), textBytes(i + 1, Math.round(big / 4)));
  const small = Math.max(50, Math.round(5000 * SCALE));
  for (let i = 0; i < small; i++) { const size = 1024 + ((i * 7919) % (63 * 1024)); writeFile(path.join(dir, `small/d${i % 50}/f${i}.${i % 2 ? 'txt' : 'bin'}`), i % 2 ? textBytes(i, size) : randomBytesSeeded(`s${i}`, size)); }
  return du(dir); }
function mutate(dir) { const total = du(dir); const budget = total * 0.05; let done = 0;
  const files = ['random/r0.bin', 'random/r1.bin', 'logs/app0.log', 'logs/app1.log'].map((f) => path.join(dir, f));
  for (let k = 0; done < budget * 0.8; k++) { const f = files[k % files.length]; const size = statSync(f).size; const len = 64 * 1024; const fd = openSync(f, 'r+'); writeSync(fd, randomBytesSeeded(`m${k}`, len), 0, len, (k * 7_777_777) % Math.max(1, size - len)); closeSync(fd); done += len; }
  for (let i = 0; done < budget; i++) { const b = randomBytesSeeded(`new${i}`, 256 * 1024); writeFile(path.join(dir, `new/n${i}.bin`), b); done += b.length; }
  rmSync(path.join(dir, 'small/d1'), { recursive: true, force: true }); }
function makeDump(file, size, day) { const fd = openSync(file, 'w'); let written = 0; let row = 0; let chunk = ['COPY public.orders (id, customer, amount, status, created) FROM stdin;\n']; let clen = 0;
  while (written < size) { const amount = (row * 7919) % 100000 + (day && row % 100 === 37 ? 1 : 0);
    const line = `${row}\tcustomer-${(row * 31) % 9973}\t${amount}\t${row % 5 ? 'shipped' : 'open'}\t2026-0${1 + (row % 9)}-1${row % 10} 10:00:00\n`; chunk.push(line); clen += line.length; row++;
    if (clen > 1 << 20) { const b = Buffer.from(chunk.join('')); writeSync(fd, b); written += b.length; chunk = []; clen = 0; } }
  closeSync(fd); }
if (cmd === 'data') console.log(makeDataset(dir));
else if (cmd === 'mutate') mutate(dir);
else if (cmd === 'dump') makeDump(dir, Math.round(300 * MB * SCALE), Number(extra));
