#!/bin/bash
# 1M small files (issue 18 "Scale"): Lifeboat vs restic, first backup / unchanged re-backup / full restore,
# interleaved per rep, fresh repository per rep. Data: node bench/many-files.mjs DIR N.
# usage: SRC=DIR [REPS=3] [TOOLS="lifeboat restic"] [LB=dist/src/cli/main.js] [STEPS="first unchanged restore"]
#        (TOOLS may also name "before" and "after": BEFORE=… AFTER=… paths of other builds' main.js)
#        [OUT=file] [WORK=/tmp/scale1m-work] bash bench/many-files.sh
# each line of OUT: tool step wall_s user_s sys_s peak_rss_kB ; "== rep" lines carry the load average
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
SRC=${SRC:?SRC=the data to back up}; REPS=${REPS:-3}; TOOLS=${TOOLS:-"lifeboat restic"}; LB=${LB:-dist/src/cli/main.js}
STEPS=${STEPS:-"first unchanged restore"}; WORK=${WORK:-/tmp/scale1m-work}; OUT=${OUT:-$WORK/out.txt}
mkdir -p $WORK; : > $OUT
has() { [[ " $STEPS " == *" $1 "* ]]; }
for r in $(seq 1 $REPS); do
  echo "== rep $r $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) src $SRC" >> $OUT
  for t in $TOOLS; do
    R=$WORK/repo-$t; rm -rf $R $WORK/restore
    if [ $t = restic ]; then
      restic init -q -r $R >/dev/null
      /usr/bin/time -f "$t first %e %U %S %M" -a -o $OUT restic -q -r $R backup $SRC >/dev/null
      has unchanged && /usr/bin/time -f "$t unchanged %e %U %S %M" -a -o $OUT restic -q -r $R backup $SRC >/dev/null
      has restore && /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT restic -q -r $R restore latest --target $WORK/restore >/dev/null
    else
      case $t in before) M=${BEFORE:?};; after) M=${AFTER:?};; *) M=$LB;; esac
      node $M init -q -r $R >/dev/null
      /usr/bin/time -f "$t first %e %U %S %M" -a -o $OUT node $M backup -q -r $R $SRC
      has unchanged && /usr/bin/time -f "$t unchanged %e %U %S %M" -a -o $OUT node $M backup -q -r $R $SRC
      has restore && /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT node $M restore latest -q -r $R --target $WORK/restore
    fi
    rm -rf $WORK/restore; sync
    echo "   $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
  done
done
rm -rf $WORK/repo-* $WORK/restore
echo "== end $(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
