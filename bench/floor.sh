#!/bin/bash
# The process floor of the light steps (issue 18, branch floor6), interleaved before / after / restic:
#   --version, snapshots --json and check (structure) on a small repository, restore of a small snapshot,
#   and the unchanged re-backup of SRC.
# usage: SRC=DIR SMALL=DIR BEFORE=/path/to/before/bin/lifeboat [AFTER=bin/lifeboat] [OUT=file] [REPS=5] [WORK=dir] bash bench/floor.sh
# The repositories are made once by AFTER (not timed); restic's as in bench/steps-all.sh (repository version 2).
# Each line of OUT: tool step wall_s user_s sys_s peak_rss_kB. Summarise with: python3 bench/steps-median.py OUT
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-floor}; mkdir -p $W
OUT=${OUT:-$W/results.txt}; : > $OUT
SRC=${SRC:?SRC=the data of the re-backup}; SMALL=${SMALL:?SMALL=a small directory (snapshots, check, restore)}
BEFORE=${BEFORE:?BEFORE=the before build bin/lifeboat}; AFTER=${AFTER:-bin/lifeboat}
if [ ! -d $W/small ]; then $AFTER init -q -r $W/small >/dev/null; $AFTER backup -q -r $W/small $SMALL; fi
if [ ! -d $W/all ]; then $AFTER init -q -r $W/all >/dev/null; $AFTER backup -q -r $W/all $SRC; fi
if [ ! -d $W/rsmall ]; then restic init -q -r $W/rsmall --repository-version 2 >/dev/null; restic -q -r $W/rsmall backup --compression auto $SMALL >/dev/null; fi
if [ ! -d $W/rall ]; then restic init -q -r $W/rall --repository-version 2 >/dev/null; restic -q -r $W/rall backup --compression auto $SRC >/dev/null; fi
t() { # tool step command...
  local tool=$1 step=$2; shift 2
  sync
  /usr/bin/time -f "$tool $step %e %U %S %M" -a -o $OUT "$@" >/dev/null 2>$W/err.txt || echo "FAIL $tool $step: $(tail -2 $W/err.txt)" >> $OUT
}
for r in $(seq 1 ${REPS:-5}); do
  echo "# round $r load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
  for tool in before after restic; do
    rm -rf $W/target
    case $tool in
      before|after)
        L=$BEFORE; [ $tool = after ] && L=$AFTER
        t $tool version $L --version
        t $tool snapshots $L snapshots --json -r $W/small
        t $tool check $L check -q -r $W/small
        t $tool restore-small $L restore -q -r $W/small latest --target $W/target
        t $tool rebackup $L backup -q -r $W/all $SRC;;
      restic)
        t restic version restic version
        t restic snapshots restic snapshots --json -r $W/rsmall
        t restic check restic check -q -r $W/rsmall
        t restic restore-small restic -q -r $W/rsmall restore latest --target $W/target
        t restic rebackup restic -q -r $W/rall backup $SRC;;
    esac
  done
done
rm -rf $W/target
echo DONE >> $OUT
