#!/usr/bin/env python3
# Per-thread CPU of a command (branch dump6): /proc/<pid>/task/*/stat, schedstat (on-CPU, run-queue wait) and
# context switches sampled every 4 ms; prints each thread's totals and, per 100 ms, the share of samples it was running.
# usage: [IN=file for stdin] python3 bench/thread-sample.py SAMPLES_OUT -- command args...
import os, sys, time, subprocess
out = sys.argv[1]; cmd = sys.argv[3:]
stdin = open(os.environ['IN'], 'rb') if os.environ.get('IN') else None
p = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL)
t0 = time.time(); rows = []
last = {}
names = {}
sched = {}
sw = {}
import re
while p.poll() is None:
    now = time.time() - t0
    try:
        for t in os.listdir(f'/proc/{p.pid}/task'):
            try:
                s = open(f'/proc/{p.pid}/task/{t}/stat').read()
            except OSError: continue
            name = s[s.index('(')+1:s.rindex(')')]
            f = s[s.rindex(')')+2:].split()
            cpu = int(f[11]) + int(f[12]); st = f[0]
            names[t] = name
            rows.append((now, t, cpu, st))
            try:
                ss = open(f'/proc/{p.pid}/task/{t}/schedstat').read().split()
                sched[t] = (int(ss[0])/1e9, int(ss[1])/1e9, int(ss[2]))
                cs = open(f'/proc/{p.pid}/task/{t}/status').read()
                sw[t] = (int(re.search(r'^voluntary_ctxt_switches:\s+(\d+)', cs, re.M).group(1)), int(re.search(r'^nonvoluntary_ctxt_switches:\s+(\d+)', cs, re.M).group(1)))
            except Exception: pass
    except OSError: pass
    time.sleep(0.004)
wall = time.time() - t0
with open(out, 'w') as o:
    for r in rows: o.write(f'{r[0]:.4f} {r[1]} {names[r[1]]} {r[2]} {r[3]}\n')
# summary: total cpu per thread, and per 100ms bucket state counts
tot = {}
for r in rows: tot[r[1]] = r[2]
print(f'wall {wall:.2f}')
for t, c in sorted(tot.items(), key=lambda x: -x[1]):
    if c > 0: print(f'  {t} {names[t]:16s} {c/100:.2f} s  oncpu {sched.get(t,(0,0,0))[0]:.2f} runq-wait {sched.get(t,(0,0,0))[1]:.2f} slices {sched.get(t,(0,0,0))[2]} vol/invol {sw.get(t)}')
# running-fraction per thread over time buckets (state R)
B = 0.1
buckets = {}
for now, t, cpu, st in rows:
    k = int(now / B)
    b = buckets.setdefault(k, {})
    a = b.setdefault(t, [0, 0]); a[1] += 1
    if st == 'R': a[0] += 1
top = [t for t, c in sorted(tot.items(), key=lambda x: -x[1])[:4] if c > 5]
print('t(s)  ' + ' '.join(f'{names[t][:10]+"/"+t[-3:]:>15s}' for t in top))
for k in sorted(buckets):
    b = buckets[k]
    print(f'{k*B:4.1f} ' + ' '.join(f'{(b.get(t,[0,1])[0]/max(1,b.get(t,[0,1])[1])):15.2f}' for t in top))
