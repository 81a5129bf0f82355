#!/bin/bash
# re-backup after ~5% change (backup3-mutate.mjs), interleaved, N rounds: SRC=DIR bash bench/backup3-change.sh OUT N before=/path/main.js after=/path/main.js restic=restic
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
OUT=$1; N=$2; shift 2; : > $OUT
SRC=${SRC:?SRC=the data}; D=${WORK:-/tmp/backup3-chg}
for r in $(seq 1 $N); do
  for lm in "$@"; do
    l=${lm%%=*}; m=${lm#*=}; R=/tmp/backup3-chg-repo-$l; rm -rf $R
    rsync -a --delete $SRC/ $D/
    if [ $l = restic ]; then
      restic init -q -r $R >/dev/null; restic -q -r $R backup $D >/dev/null
      node $(dirname $0)/backup3-mutate.mjs $D >/dev/null
      /usr/bin/time -f "$l changed %e %U %S %M" -a -o $OUT restic -q -r $R backup $D >/dev/null
      echo "restic repo-total $(du -sb $R | cut -f1)" >> $OUT
    else
      node $m init -q -r $R; node $m backup -q -r $R $D
      s0=$(du -sb $R | cut -f1)
      node $(dirname $0)/backup3-mutate.mjs $D >/dev/null
      /usr/bin/time -f "$l changed %e %U %S %M" -a -o $OUT node $m backup -q -r $R $D
      echo "$l repo-growth $(( $(du -sb $R | cut -f1) - s0 ))" >> $OUT
    fi
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >> $OUT
    rm -rf $R
  done
done
echo DONE >> $OUT
