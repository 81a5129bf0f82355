# Medians of bench/pitr-wal-segment.sh output, per tool and operation.
import sys, statistics as st, collections
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) == 6: d[(p[0], p[1])].append((int(p[3]), float(p[4]), int(p[5])))
for (tool, op), v in sorted(d.items()):
    print(f"{tool:8} {op:6} n={len(v):2}  wall ms median {st.median(x[0] for x in v):6.0f} (p90 {sorted(x[0] for x in v)[int(0.9*(len(v)-1))]:5})  CPU s median {st.median(x[1] for x in v):.2f}  RSS MiB median {st.median(x[2] for x in v)/1024:.0f}")
