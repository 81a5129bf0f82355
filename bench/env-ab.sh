#!/bin/bash
# One environment setting against the default, on the bench's own data and repositories, interleaved:
#   npm run bench -- --scale 1 --reps 1 --settle 0 --keep --dir /tmp/lbb     (once: makes DIR; overwrites bench/results/latest.*)
#   DIR=/tmp/lbb OFF='LIFEBOAT_TRIM_MS=0' [REPS=4] [LB=bin/lifeboat] [OUT=file] bash bench/env-ab.sh
# Steps, each run once per round with OFF set ("off") and without ("on"): a first backup of DIR/data into a fresh
# repository, the day-3 dump's backup onto a copy of a repository holding days 0-2, the restore of
# DIR/repo-lifeboat's dump snapshot (day 3) and of its third files snapshot (after the 5% change) into /dev/shm,
# and check --read-data of DIR/repo-lifeboat. Each line of OUT: step-off|on wall_s user_s sys_s peak_rss_kB;
# the summary gives medians and every run's peak RSS and wall.
set -eu
export LIFEBOAT_PASSWORD=bench
DIR=${DIR:?DIR=the directory of npm run bench -- --keep}; OFF=${OFF:?OFF=NAME=value, the setting to compare}
REPS=${REPS:-4}; LB=${LB:-$(cd "$(dirname "$0")/.." && pwd)/bin/lifeboat}
W=${WORK:-/tmp/lb-env-ab}; mkdir -p $W; OUT=${OUT:-$W/results.txt}; : > $OUT
R=$DIR/repo-lifeboat
ids=$($LB snapshots --json -r $R | python3 -c "
import json,sys
s=json.load(sys.stdin); files=[x for x in s if not x.get('stream')]; dumps=[x for x in s if x.get('stream')]
print(files[2]['id'], dumps[-1]['id'])")
FILES=${ids% *}; DUMP=${ids#* }
# days 0-2 of DIR's dumps (made anew each time: WORK may hold another DIR's)
rm -rf $W/repo-days02; $LB init -q -r $W/repo-days02 >/dev/null
for d in 0 1 2; do $LB backup -q -r $W/repo-days02 --stdin --stdin-filename dump.sql < $DIR/dump$d.sql; done
T=/dev/shm/lb-env-ab; trap 'rm -rf $T $W/repo-first $W/repo-day3 $W/repo-days02' EXIT
for r in $(seq $REPS); do for m in off on; do
  # "on": the setting's name unset, whatever the caller's environment holds
  if [ $m = off ]; then E="env $OFF"; else E="env -u ${OFF%%=*}"; fi
  rm -rf $W/repo-first; $LB init -q -r $W/repo-first >/dev/null; sync
  /usr/bin/time -a -o $OUT -f "first-$m %e %U %S %M" $E $LB backup -q -r $W/repo-first $DIR/data
  rm -rf $W/repo-day3; cp -r $W/repo-days02 $W/repo-day3; sync
  /usr/bin/time -a -o $OUT -f "dump3-$m %e %U %S %M" $E $LB backup -q -r $W/repo-day3 --stdin --stdin-filename dump.sql < $DIR/dump3.sql
  rm -rf $T; mkdir $T
  /usr/bin/time -a -o $OUT -f "dumprestore-$m %e %U %S %M" $E $LB restore $DUMP -q -r $R --target $T
  rm -rf $T; mkdir $T
  /usr/bin/time -a -o $OUT -f "restore-$m %e %U %S %M" $E $LB restore $FILES -q -r $R --target $T
  rm -rf $T
  /usr/bin/time -a -o $OUT -f "check-$m %e %U %S %M" $E $LB check -q --read-data -r $R >/dev/null
done; done
python3 - $OUT <<'PY'
import sys, statistics, collections
d = collections.defaultdict(list)
for l in open(sys.argv[1]):
    p = l.split()
    if len(p) == 5: d[p[0]].append([float(x) for x in p[1:]])
for k in sorted(d):
    c = list(zip(*d[k]))
    print('%-16s wall %.2f  cpu %.2f  peak RSS %.0f MB  | RSS %s | wall %s' % (k, statistics.median(c[0]), statistics.median([a + b for a, b in zip(c[1], c[2])]), statistics.median(c[3]) / 1024,
          ' '.join('%.0f' % (x / 1024) for x in c[3]), ' '.join('%.2f' % x for x in c[0])))
PY
echo "raw: $OUT"
