// Data for bench/restore-steps.sh: a daily SQL dump whose rows change a little each day
// (about 1% updated, 0.5% inserted, 0.2% deleted per day), so a week of dumps makes a delta chain.
//   node bench/restore-data.mjs dumpday <file> <scale> <day>
import { closeSync, openSync, writeSync } from 'node:fs';
const [,, cmd, file, scaleS, dayS] = process.argv;
const SCALE = Number(scaleS ?? '1'); const DAY = Number(dayS ?? '0'); const MB = 1e6;
const h = (a, b) => { let x = (Math.imul(a, 2654435761) ^ Math.imul(b + 1, 40503)) >>> 0; x ^= x >>> 15; x = Math.imul(x, 2246822519) >>> 0; x ^= x >>> 13; return (x >>> 0) % 10000; };
function dumpDay(file, size, day) {
  const fd = openSync(file, 'w'); let written = 0; let chunk = ['COPY public.orders (id, customer, amount, status, created) FROM stdin;\n']; let clen = 0;
  const flush = () => { const b = Buffer.from(chunk.join('')); writeSync(fd, b); written += b.length; chunk = []; clen = 0; };
  const emit = (row, born) => {
    let amount = (row * 7919) % 100000; let status = row % 5 ? 'shipped' : 'open';
    for (let d = born + 1; d <= day; d++) { if (h(row, d) < 20) return; if (h(row, d + 1000) < 100) { amount += d; status = 'updated'; } }
    const line = `${row}\tcustomer-${(row * 31) % 9973}\t${amount}\t${status}\t2026-0${1 + (row % 9)}-1${row % 10} 10:00:00\n`; chunk.push(line); clen += line.length;
    if (clen > 1 << 20) flush();
  };
  let row = 0;
  const base = Math.round(size / 62); // rows of day 0 (about 62 bytes a row)
  for (; row < base; row++) emit(row, 0);
  for (let d = 1; d <= day; d++) for (let i = 0; i < base * 0.005; i++) emit(row++, d);
  flush(); closeSync(fd); return written;
}
if (cmd === 'dumpday') console.log(dumpDay(file, Math.round(300 * MB * SCALE), DAY));
