// preload (-r): per-thread CPU (user+sys s) from /proc; workers report their own thread at exit
const fs = require('fs');
const { isMainThread, threadId } = require('worker_threads');
const hz = 100;
function stat(p) { const s = fs.readFileSync(p, 'utf8'); const f = s.slice(s.lastIndexOf(')') + 2).split(' '); return [+f[11] / hz, +f[12] / hz]; }
if (!isMainThread) {
  process.on('exit', () => { try { const [u, s] = stat('/proc/thread-self/stat'); process.stderr.write(`worker${threadId} u${u.toFixed(2)} s${s.toFixed(2)}\n`); } catch {} });
} else process.on('exit', () => {
  const rows = [];
  const self = fs.readlinkSync('/proc/thread-self').split('/').pop();
  for (const t of fs.readdirSync('/proc/self/task')) { try { rows.push([t, ...stat(`/proc/self/task/${t}/stat`)]); } catch {} }
  const main = rows.find(r => r[0] === self); let ou = 0, os = 0; for (const r of rows) if (r !== main) { ou += r[1]; os += r[2]; }
  const tot = process.cpuUsage();
  process.stderr.write(`main u${main[1].toFixed(2)} s${main[2].toFixed(2)} | other live threads u${ou.toFixed(2)} s${os.toFixed(2)} | process u${(tot.user/1e6).toFixed(2)} s${(tot.system/1e6).toFixed(2)}\n`);
});
