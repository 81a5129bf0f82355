#!/bin/bash
# Restore only, interleaved before / after / restic, from repositories made once (not timed):
# usage: SRC=DIR BEFORE=/path/to/before/dist/src/cli/main.js [AFTER=dist/src/cli/main.js] [OUT=file] [REPS=3] bash bench/restore-quick.sh
# each line of OUT: tool restore wall_s user_s sys_s peak_rss_kB; every restored tree is compared with SRC (diff -r --no-dereference)
# FRESH=1: every run restores into a new directory and the trees are removed only at the end, after a 40 s pause
# before the first run: on an ext4 without a journal, creating inodes right after 13k were deleted skips each of
# them (find_inode_bit/recently_deleted, ~30 s window: 46% of both tools' CPU in restore8's profile); FRESH=1
# measures the tools' own work (needs REPS x 3 x the data's size of free space).
export LIFEBOAT_PASSWORD=pw RESTIC_PASSWORD=pw
W=${WORK:-/tmp/lb-restore-quick}; mkdir -p $W
OUT=${OUT:-$W/results.txt}; : > $OUT
SRC=${SRC:?SRC=the data to back up}
BEFORE=${BEFORE:?BEFORE=path to the before build main.js}; AFTER=${AFTER:-dist/src/cli/main.js}
# Run as users run it: through the checkout's bin/lifeboat (node with the launcher's flags, e.g. --max-semi-space-size=4)
# when it is there (…/dist/src/cli/main.js -> …/bin/lifeboat), else node with NODE_FLAGS (default: the launcher's flags).
cli() { local d; d=$(cd "$(dirname "$1")/../../.." 2>/dev/null && pwd); if [ -n "$d" ] && [ -x "$d/bin/lifeboat" ]; then echo "$d/bin/lifeboat"; else echo "node ${NODE_FLAGS---max-semi-space-size=4} $1"; fi; }
RUN_BEFORE=$(cli $BEFORE); RUN_AFTER=$(cli $AFTER)
if [ ! -d $W/repo ]; then $RUN_AFTER init -q -r $W/repo >/dev/null; $RUN_AFTER backup -q -r $W/repo $SRC; fi
if [ ! -d $W/restic ]; then restic init -q -r $W/restic >/dev/null; restic -q -r $W/restic backup $SRC >/dev/null; fi
if [ -n "${FRESH:-}" ]; then rm -rf $W/out $W/fresh; mkdir -p $W/fresh; sync; sleep 40; fi
for r in $(seq 1 ${REPS:-3}); do
  for t in before after restic; do
    if [ -n "${FRESH:-}" ]; then O=$W/fresh/$r-$t; else O=$W/out; rm -rf $O; fi; sync
    echo "# load $(cut -d' ' -f1-3 /proc/loadavg)" >> $OUT
    case $t in
      before) /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT $RUN_BEFORE restore latest -q -r $W/repo --target $O;;
      after) /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT $RUN_AFTER restore latest -q -r $W/repo --target $O;;
      restic) /usr/bin/time -f "$t restore %e %U %S %M" -a -o $OUT restic -q -r $W/restic restore latest --target $O >/dev/null;;
    esac
    diff -r --no-dereference $SRC $O$SRC >/dev/null 2>&1 || diff -r --no-dereference $SRC $O >/dev/null 2>&1 || echo "# $t: restored tree differs" >> $OUT
  done
done
[ -n "${FRESH:-}" ] && rm -rf $W/out $W/fresh
echo DONE >> $OUT
