#!/bin/bash
# Backup-path steps (issue 18) with CPU seconds (user+sys) and peak RSS per step, for one build or restic:
#   bash bench/backup-steps.sh <lifeboat checkout with dist/> <label> [scale]   (label "restic" runs restic)
# The data is the compare.ts dataset (bench/backup-data.mjs): scale 0.3 = ~265 MB of files + a 90 MB dump.
# CPU seconds and RSS are steadier than wall time on a shared machine; compare builds interleaved.
HERE=$(cd "$(dirname "$0")" && pwd); ROOT=$1; LABEL=$2; S=${3:-0.3}; W=${BENCH_DIR:-/tmp/lifeboat-backup-steps}/$LABEL
rm -rf $W; mkdir -p $W
export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench
CLI="node $ROOT/dist/src/cli/main.js"
T() { local name=$1; shift; /usr/bin/time -f "$name %e %U %S %M" -o $W/t.txt sh -c "$*" >/dev/null 2>$W/err.txt || { echo "FAIL $name"; cat $W/err.txt; }; cat $W/t.txt | awk '{printf "%-12s wall %6.2f cpu %6.2f (u %5.2f s %5.2f) rss %5.0f MB\n",$1,$2,$3+$4,$3,$4,$5/1024}'; }
node $HERE/backup-data.mjs data $W/data $S >/dev/null
if [ "$LABEL" = restic ]; then
  restic init -q -r $W/repo --repository-version 2 >/dev/null
  B="restic -q -r $W/repo backup --compression auto"
  T first "$B $W/data"; T unchanged "$B $W/data"; node $HERE/backup-data.mjs mutate $W/data; T changed5 "$B $W/data"
  node $HERE/backup-data.mjs dump $W/dump.sql $S 0; T dump1 "$B --stdin --stdin-filename dump.sql < $W/dump.sql"
  node $HERE/backup-data.mjs dump $W/dump.sql $S 1; T dump2 "$B --stdin --stdin-filename dump.sql < $W/dump.sql"
else
  $CLI init -q --repo $W/repo
  B="$CLI backup -q --repo $W/repo"
  T first "$B $W/data"; T unchanged "$B $W/data"; node $HERE/backup-data.mjs mutate $W/data; s0=$(du -sb $W/repo|cut -f1); T changed5 "$B $W/data"; s1=$(du -sb $W/repo|cut -f1); echo "  added $(( (s1-s0)/1000000 )) MB"
  node $HERE/backup-data.mjs dump $W/dump.sql $S 0; T dump1 "$B --stdin --stdin-filename dump.sql < $W/dump.sql"
  node $HERE/backup-data.mjs dump $W/dump.sql $S 1; s0=$(du -sb $W/repo|cut -f1); T dump2 "$B --stdin --stdin-filename dump.sql < $W/dump.sql"; s1=$(du -sb $W/repo|cut -f1); echo "  added $(( (s1-s0)/1000 )) kB"
fi
