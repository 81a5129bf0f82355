#!/usr/bin/env python3
"""Medians of bench/steps-all.sh output: per step and tool, wall s, CPU s (user+sys), peak RSS MB,
bytes added MB; speed ratio = restic wall / tool wall (>1: faster than restic), CPU ratio likewise.
usage: python3 bench/steps-median.py OUT [--md]"""
import sys, statistics as st, collections
rows = collections.defaultdict(list)
fails = []
for line in open(sys.argv[1]):
    p = line.split()
    if not p or p[0] == 'round' or p[0].startswith('#') or p[0] == 'DONE':
        continue
    if p[0] == 'FAIL':
        fails.append(line.strip()); continue
    t, s, wall, u, sy, rss = p[:6]
    added = int(p[6]) if len(p) > 6 else 0
    rows[(s, t)].append((float(wall), float(u) + float(sy), int(rss) / 1024, added / 1e6))
steps = []
for s, _ in rows:
    if s not in steps: steps.append(s)
tools = []
for _, t in rows:
    if t not in tools: tools.append(t)
med = {k: tuple(st.median(x[i] for x in v) for i in range(4)) + (len(v),) for k, v in rows.items()}
print('| step | tool | wall s | CPU s | peak RSS MB | MB added | speed vs restic | CPU vs restic | n |')
print('|---|---|---|---|---|---|---|---|---|')
for s in steps:
    r = med.get((s, 'restic'))
    for t in tools:
        m = med.get((s, t))
        if not m: continue
        sp = f'{r[0] / m[0]:.2f}×' if r and t != 'restic' else ''
        cp = f'{r[1] / m[1]:.2f}×' if r and t != 'restic' else ''
        print(f'| {s} | {t} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.0f} | {m[3]:.1f} | {sp} | {cp} | {m[4]} |')
for f in fails: print('\n' + f)
