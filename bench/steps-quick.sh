#!/bin/bash
# interleaved: before / after / restic; first backup, unchanged re-backup, full restore
# usage: SRC=DIR BEFORE=/path/to/before/dist/src/cli/main.js [AFTER=dist/src/cli/main.js] [OUT=file] bash bench/steps-quick.sh
# (restic must be installed); each line of OUT: tool step wall_s user_s sys_s peak_rss_kB
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw; mkdir -p ${WORK:-/tmp/lb-steps-quick}
OUT=${OUT:-/tmp/lb-steps-quick.txt}; : > $OUT
SRC=${SRC:?SRC=the data to back up}
for r in 1 2 3; do
  for t in before after restic; do
    R=${WORK:-/tmp/lb-steps-quick}/repo-$t; rm -rf $R ${WORK:-/tmp/lb-steps-quick}/out
    case $t in
      before) cli="node ${BEFORE:?BEFORE=path to the before build main.js}";;
      after) cli="node ${AFTER:-dist/src/cli/main.js}";;
    esac
    if [ $t = restic ]; then
      restic init -q -r $R >/dev/null
      /usr/bin/time -f "$t first %e %U %S %M" -a -o $OUT restic -q -r $R backup $SRC >/dev/null
      /usr/bin/time -f "$t unchanged %e %U %S %M" -a -o $OUT restic -q -r $R backup $SRC >/dev/null
      /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT restic -q -r $R restore latest --target ${WORK:-/tmp/lb-steps-quick}/out >/dev/null
    else
      $cli init -q -r $R >/dev/null
      /usr/bin/time -f "$t first %e %U %S %M" -a -o $OUT $cli backup -q -r $R $SRC
      /usr/bin/time -f "$t unchanged %e %U %S %M" -a -o $OUT $cli backup -q -r $R $SRC
      /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT $cli restore latest -q -r $R --target ${WORK:-/tmp/lb-steps-quick}/out
    fi
    sync
  done
done
echo DONE >> $OUT
