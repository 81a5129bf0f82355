#!/bin/bash
# Daily delta backup of a database dump and restore at the end of the delta chain (issue 18, branch dump4):
# days 0-3 of `node bench/restore-data.mjs dumpday FILE SCALE DAY` backed up in order with --stdin, then the
# restore of day 3 (compared with cmp). Lifeboat builds against restic, interleaved, fresh repositories each round.
# usage: [ROUNDS=3] [ENV_<label>=...] [WORK=/tmp/lb-dump-quick] [OUT=file] [DUMPSCALE=1] [DUMPS=dir with dump0..3.sql] \
#          bash bench/dump-quick.sh label=/path/to/lifeboat/checkout [label2=...]
# Each line of OUT: tool step wall_s user_s sys_s peak_rss_kB bytes_added; summarise with
#   python3 bench/steps-median.py OUT
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-dump-quick}; OUT=${OUT:-$W/steps.txt}; ROUNDS=${ROUNDS:-3}
DD=${DUMPS:-$W}
mkdir -p $W $DD; : > $OUT
if [ ! -f $DD/dump3.sql ]; then
  for d in 0 1 2 3; do node $HERE/restore-data.mjs dumpday $DD/dump$d.sql ${DUMPSCALE:-1} $d >/dev/null; done
fi
. $HERE/steps-lib.sh
steps_labels "$@"
for round in $(seq 1 $ROUNDS); do
  for t in "${LABELS[@]}"; do
    D=$W/dump-$t
    rm -rf $D $W/out
    if [ $t = restic ]; then
      restic init -q -r $D --repository-version 2 >/dev/null
      dbk="restic -q -r $D backup --compression auto --stdin --stdin-filename dump.sql"
      drs="restic -q -r $D restore latest --target $W/out"
    else
      c=${CLI[$t]}
      $c init -q -r $D
      dbk="$c backup -q -r $D --stdin --stdin-filename dump.sql"
      drs="$c restore latest -q -r $D --target $W/out"
    fi
    for d in 0 1 2 3; do T $t dump$d $D "$dbk < $DD/dump$d.sql"; done
    T $t dumprestore $D "$drs"
    cmp -s $W/out/dump.sql $DD/dump3.sql || echo "FAIL $t dump restore differs" | tee -a $OUT
    rm -rf $W/out
  done
  echo "round $round done $(uptime)" >> $OUT
done
rm -rf $W/out $W/dump-*
