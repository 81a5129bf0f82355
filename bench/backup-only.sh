#!/bin/bash
# The three file-backup steps of bench/steps-all.sh only (first, unchanged, after a 5% change), interleaved
# builds and restic 0.14, fresh repositories each round; same OUT format (steps-median.py reads it).
# usage: SRC=DIR [ROUNDS=3] [WORK=/tmp/lb-backup-only] [OUT=file] [NORESTIC=1] [ENV_<label>=...] bash bench/backup-only.sh label=/checkout [...]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-backup-only}; OUT=${OUT:-$W/steps.txt}; ROUNDS=${ROUNDS:-3}
SRC=${SRC:?SRC=the data to back up}
mkdir -p $W; : > $OUT
. $HERE/steps-lib.sh
steps_labels "$@"
for round in $(seq 1 $ROUNDS); do
  for t in "${LABELS[@]}"; do
    R=$W/repo-$t
    rm -rf $R $W/src
    cp -a $SRC $W/src
    if [ $t = restic ]; then
      restic init -q -r $R --repository-version 2 >/dev/null
      bk="restic -q -r $R backup --compression auto $W/src"
    else
      c=${CLI[$t]}
      $c init -q -r $R
      bk="$c backup -q -r $R $W/src"
    fi
    T $t first $R "$bk"; T $t unchanged $R "$bk"
    node $HERE/backup-data.mjs mutate $W/src >/dev/null || echo "FAIL $t mutate" | tee -a $OUT
    T $t change5 $R "$bk"
  done
  echo "round $round done $(uptime)" >> $OUT
done
rm -rf $W/src $W/repo-*
