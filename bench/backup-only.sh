#!/bin/bash
# The three file-backup steps of bench/steps-all.sh only (first, unchanged, after a 5% change), interleaved
# builds and restic 0.14, fresh repositories each round; same OUT format (steps-median.py reads it).
# usage: SRC=DIR [ROUNDS=3] [WORK=/tmp/lb-backup-only] [OUT=file] [NORESTIC=1] bash bench/backup-only.sh label=/checkout [...]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-backup-only}; OUT=${OUT:-$W/steps.txt}; ROUNDS=${ROUNDS:-3}
SRC=${SRC:?SRC=the data to back up}
mkdir -p $W; : > $OUT
declare -A CLI; LABELS=()
# a label's environment: ENV_<label>="VAR=value ..." (e.g. ENV_nohelp="LIFEBOAT_MAIN_HELPS=0")
for a in "$@"; do l=${a%%=*}; e=ENV_$l; CLI[$l]="env ${!e:-} node ${a#*=}/dist/src/cli/main.js"; LABELS+=($l); done
[ -n "${NORESTIC:-}" ] || LABELS+=(restic)
size() { du -sb "$1" | cut -f1; }
T() {
  local t=$1 s=$2 r=$3; shift 3
  local before=$(size $r 2>/dev/null || echo 0)
  sync
  if ! /usr/bin/time -f "$t $s %e %U %S %M" -o $W/time.txt sh -c "$*" >/dev/null 2>$W/err.txt; then
    echo "FAIL $t $s: $(tail -3 $W/err.txt)" | tee -a $OUT
    return
  fi
  echo "$(cat $W/time.txt) $(( $(size $r) - before ))" >> $OUT
}
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
