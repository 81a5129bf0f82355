// Summarize a V8 .cpuprofile: self time per function (usage: node bench/backup3-prof.cjs FILE.cpuprofile...)
const fs = require('fs');
for (const f of process.argv.slice(2)) {
  const p = JSON.parse(fs.readFileSync(f));
  const byId = new Map(p.nodes.map(n => [n.id, n]));
  const self = new Map();
  const dt = p.timeDeltas; let total = 0;
  const cnt = new Map();
  for (let i = 0; i < p.samples.length; i++) { const d = dt[i] || 0; total += d; cnt.set(p.samples[i], (cnt.get(p.samples[i]) || 0) + d); }
  for (const [id, t] of cnt) { const n = byId.get(id); const cf = n.callFrame; const k = `${cf.functionName || '(anon)'} ${cf.url.split('/').slice(-2).join('/')}:${cf.lineNumber}`; self.set(k, (self.get(k) || 0) + t); }
  const arr = [...self].sort((a, b) => b[1] - a[1]);
  console.log(`== ${f} total ${(total / 1e6).toFixed(2)} s`);
  for (const [k, t] of arr.slice(0, +process.env.N || 25)) console.log(`${(t / 1e6).toFixed(2).padStart(7)} ${(100 * t / total).toFixed(1).padStart(5)}% ${k}`);
}
