#!/bin/bash
# Every step of issue 18's goal, Lifeboat builds against restic 0.14, interleaved, fresh repositories each round:
#   files: first backup, unchanged re-backup, re-backup after a 5% change (bench/backup-data.mjs mutate),
#          full restore (compared with the source by diff -r), check --read-data;
#   dump:  days 0-3 of bench/restore-data.mjs (each day ~1% of rows updated, 0.5% inserted, 0.2% deleted):
#          the day-1 backup (the daily delta backup) and the restore of day 3 (the end of a delta chain).
# usage: SRC=DIR [ROUNDS=3] [ENV_<label>='VAR=value ...'] [WORK=/tmp/lb-steps-all] [OUT=file] [DUMPSCALE=1] \
#          bash bench/steps-all.sh label=/path/to/lifeboat/checkout [label2=...]
# SRC is copied to WORK/src for each tool and round (so the 5% change starts from the same bytes); it must hold
# the files of `node bench/backup-data.mjs data DIR SCALE` at its top (random/, logs/, small/: what the change edits).
# Each line of OUT: tool step wall_s user_s sys_s peak_rss_kB [bytes_added]; summarise with
#   python3 bench/steps-median.py OUT
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-steps-all}; OUT=${OUT:-$W/steps.txt}; ROUNDS=${ROUNDS:-3}
SRC=${SRC:?SRC=the data to back up}
mkdir -p $W; : > $OUT
if [ ! -f $W/dump3.sql ]; then
  for d in 0 1 2 3; do node $HERE/restore-data.mjs dumpday $W/dump$d.sql ${DUMPSCALE:-1} $d >/dev/null; done
fi
. $HERE/steps-lib.sh
steps_labels "$@"
for round in $(seq 1 $ROUNDS); do
  for t in "${LABELS[@]}"; do
    R=$W/repo-$t D=$W/dump-$t
    rm -rf $R $D $W/src $W/out
    cp -a $SRC $W/src
    if [ $t = restic ]; then
      restic init -q -r $R --repository-version 2 >/dev/null
      restic init -q -r $D --repository-version 2 >/dev/null
      bk="restic -q -r $R backup --compression auto $W/src"
      rs="restic -q -r $R restore latest --target $W/out"
      ck="restic -q -r $R check --read-data"
      dbk="restic -q -r $D backup --compression auto --stdin --stdin-filename dump.sql"
      drs="restic -q -r $D restore latest --target $W/out"
    else
      c=${CLI[$t]}
      $c init -q -r $R; $c init -q -r $D
      bk="$c backup -q -r $R $W/src"
      rs="$c restore latest -q -r $R --target $W/out"
      ck="$c check --read-data -q -r $R"
      dbk="$c backup -q -r $D --stdin --stdin-filename dump.sql"
      drs="$c restore latest -q -r $D --target $W/out"
    fi
    T $t first $R "$bk"; T $t unchanged $R "$bk"
    node $HERE/backup-data.mjs mutate $W/src >/dev/null || echo "FAIL $t mutate (SRC needs the files of bench/backup-data.mjs data at its top)" | tee -a $OUT
    T $t change5 $R "$bk"
    T $t restore $R "$rs"
    diff -r --no-dereference $W/src $W/out$W/src >/dev/null || echo "FAIL $t restored tree differs" | tee -a $OUT
    T $t check $R "$ck"
    for d in 0 1 2 3; do T $t dump$d $D "$dbk < $W/dump$d.sql"; done
    rm -rf $W/out; T $t dumprestore $D "$drs"
    cmp -s $W/out/dump.sql $W/dump3.sql || echo "FAIL $t dump restore differs" | tee -a $OUT
    rm -rf $W/out
  done
  echo "round $round done $(uptime)" >> $OUT
done
rm -rf $W/src $W/out $W/repo-* $W/dump-*
