#!/bin/bash
# Restore steps (issue 18): full restore of the compare.ts file set and restore of a dump at the end of a
# delta chain (day 0 + 3 daily dumps), Lifeboat builds vs restic, interleaved, CPU s (user+sys) and peak RSS.
#   bash bench/restore-steps.sh <scale> <reps> <label>=<lifeboat checkout with dist/> [...]
# Each label restores the same snapshots from its own repository (made once with that build); restic too.
HERE=$(cd "$(dirname "$0")" && pwd); S=$1; REPS=$2; shift 2; W=${BENCH_DIR:-/tmp/lifeboat-restore-steps}
export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench
mkdir -p $W
T() { local name=$1; shift; sync; /usr/bin/time -f "$name %e %U %S %M" -o $W/t.txt sh -c "$*" >/dev/null 2>$W/err.txt || { echo "FAIL $name"; cat $W/err.txt; }; cat $W/t.txt | awk '{printf "%-22s wall %6.2f cpu %6.2f (u %5.2f s %5.2f) rss %5.0f MB\n",$1,$2,$3+$4,$3,$4,$5/1024}'; }
if [ ! -d $W/data ]; then
  node $HERE/backup-data.mjs data $W/data $S >/dev/null
  node -e "import('$HERE/../dist/bench/util.js').then(u=>console.log(u.copyRealFiles(['/usr/share','/usr/lib','/usr/include'],'$W/data/real',Math.round(300e6*$S))))"
  for d in 0 1 2 3; do node $HERE/restore-data.mjs dumpday $W/dump$d.sql $S $d >/dev/null; done
fi
du -sb $W/data
mk() { # label cli
  local R=$W/repo-$1 D=$W/dumprepo-$1
  [ -d $R ] && return
  if [ "$1" = restic ]; then
    restic init -q -r $R --repository-version 2 >/dev/null; restic -q -r $R backup --compression auto $W/data >/dev/null
    restic init -q -r $D --repository-version 2 >/dev/null
    for d in 0 1 2 3; do restic -q -r $D backup --compression auto --stdin --stdin-filename dump.sql < $W/dump$d.sql >/dev/null; done
  else
    $2 init -q --repo $R; $2 backup -q --repo $R $W/data
    $2 init -q --repo $D
    for d in 0 1 2 3; do $2 backup -q --repo $D --stdin --stdin-filename dump.sql < $W/dump$d.sql; done
  fi
}
declare -A CLIS; LABELS=()
for a in "$@"; do l=${a%%=*}; CLIS[$l]="node ${a#*=}/dist/src/cli/main.js"; LABELS+=($l); mk $l "${CLIS[$l]}"; done
mk restic
for rep in $(seq 1 $REPS); do
  for l in "${LABELS[@]}" restic; do
    rm -rf $W/t; sync
    if [ $l = restic ]; then T "$l-full" "restic -q -r $W/repo-$l restore latest --target $W/t"; else T "$l-full" "${CLIS[$l]} restore latest -q --repo $W/repo-$l --target $W/t"; fi
    rm -rf $W/t
    if [ $l = restic ]; then T "$l-dump3" "restic -q -r $W/dumprepo-$l restore latest --target $W/t"; else T "$l-dump3" "${CLIS[$l]} restore latest -q --repo $W/dumprepo-$l --target $W/t"; fi
    cmp -s $W/t/dump.sql $W/dump3.sql 2>/dev/null || [ -f $W/t$W/dump.sql ] || echo "  $l: dump differs!"
  done
done
rm -rf $W/t
