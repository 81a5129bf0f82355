#!/bin/bash
# check --read-data only, interleaved before / after / restic, from repositories made once (not timed):
# usage: SRC=DIR BEFORE=/path/to/before/dist/src/cli/main.js [AFTER=dist/src/cli/main.js] [OUT=file] [REPS=3] [WORK=dir] bash bench/check-quick.sh
# The Lifeboat repository is made by AFTER's backup, the restic one as in bench/steps-all.sh (repository version 2,
# --compression auto). Each line of OUT: tool check wall_s user_s sys_s peak_rss_kB; a check that fails is named.
# Summarise with: python3 bench/steps-median.py OUT
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-check-quick}; mkdir -p $W
OUT=${OUT:-$W/results.txt}; : > $OUT
SRC=${SRC:?SRC=the data to back up}
BEFORE=${BEFORE:?BEFORE=path to the before build main.js}; AFTER=${AFTER:-dist/src/cli/main.js}
# Run as users run it: through the checkout's bin/lifeboat (node with the launcher's flags, e.g. --max-semi-space-size=4)
# when it is there (…/dist/src/cli/main.js -> …/bin/lifeboat), else node with NODE_FLAGS (default: the launcher's flags).
cli() { local d; d=$(cd "$(dirname "$1")/../../.." 2>/dev/null && pwd); if [ -n "$d" ] && [ -x "$d/bin/lifeboat" ]; then echo "$d/bin/lifeboat"; else echo "node ${NODE_FLAGS---max-semi-space-size=4} $1"; fi; }
RUN_BEFORE=$(cli $BEFORE); RUN_AFTER=$(cli $AFTER)
if [ ! -d $W/repo ]; then $RUN_AFTER init -q -r $W/repo >/dev/null; $RUN_AFTER backup -q -r $W/repo $SRC; fi
if [ ! -d $W/restic ]; then
  restic init -q -r $W/restic --repository-version 2 >/dev/null
  restic -q -r $W/restic backup --compression auto $SRC >/dev/null
fi
for r in $(seq 1 ${REPS:-3}); do
  for t in before after restic; do
    sync
    echo "# load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
    case $t in
      before) /usr/bin/time -f "$t check %e %U %S %M" -a -o $OUT $RUN_BEFORE check --read-data -q -r $W/repo || echo "# $t: check failed" >> $OUT;;
      after) /usr/bin/time -f "$t check %e %U %S %M" -a -o $OUT $RUN_AFTER check --read-data -q -r $W/repo || echo "# $t: check failed" >> $OUT;;
      restic) /usr/bin/time -f "$t check %e %U %S %M" -a -o $OUT restic -q -r $W/restic check --read-data >/dev/null || echo "# $t: check failed" >> $OUT;;
    esac
  done
done
echo DONE >> $OUT
