#!/usr/bin/env bash
# A big stream with 1% scattered changes (issue 18): day 1 then day 2 of bench/big-dump.mjs piped into
# Lifeboat (`backup --stdin`) and restic 0.14 (`backup --stdin`, repository v2, --compression auto), a fresh
# repository per tool and rep, tools interleaved. Nothing of the dump is stored on disk but the repositories.
#
#   bash bench/stream-20g.sh MB REPS OUT TOOL...      TOOL: lb:<name>=<dist dir> (a Lifeboat build, run through
#   its checkout's bin/lifeboat, <dist dir>/../bin/lifeboat) or restic
#   e.g. bash bench/stream-20g.sh 2000 3 /tmp/s20.txt lb:before=/tmp/before-dist lb:after=dist restic
#
# One line per backup on OUT: tool rep day MB wall_s user_s sys_s maxrss_KB bytes_added.
# /usr/bin/time measures the backup process only (not the generator, which runs on its own core at ~300 MB/s).
# Lifeboat runs with bench/rss-probe.mjs preloaded (OUT.<tool>.<rep>.<day>.json: where the peak RSS went).
# ALSO_DAY2='lb:<name>=<dist dir> ...': after each Lifeboat tool's day 2, these other builds also back up day 2
# into copies of the day-1 repository (saves day-1 runs when only day 2 is compared).
# INIT_ARGS: extra arguments to `lifeboat init` (e.g. smaller chunks: more chunks per GB).
set -euo pipefail
MB=$1 REPS=$2 OUT=$3
shift 3
HERE=$(cd "$(dirname "$0")/.." && pwd)
WORK=${STREAM_BENCH_DIR:-/tmp/stream20-bench}
export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench
mkdir -p "$WORK"
gen() { node "$HERE/bench/big-dump.mjs" --day "$1" --mb "$MB"; }
size() { du -sb "$1" | cut -f1; }
run_lb() { # dist repo day tag
  local dist=$1 repo=$2 day=$3 tag=$4 t b0 b1
  b0=$(size "$repo")
  # through the build's launcher (bin/lifeboat: its node flags and malloc settings), as operators run it
  t=$(gen "$day" | { LIFEBOAT_RSS_PROBE="$OUT.$tag.$day.json" LIFEBOAT_NODE_FLAGS="--max-semi-space-size=4 --import $HERE/bench/rss-probe.mjs" /usr/bin/time -f '%e %U %S %M' "$dist/../bin/lifeboat" backup --repo "$repo" -q --stdin --stdin-filename dump.sql; } 2>&1 >/dev/null | tail -1)
  b1=$(size "$repo")
  echo "$tag $day $MB $t $((b1 - b0))" | tee -a "$OUT"
}
run_restic() { # repo day tag
  local repo=$1 day=$2 tag=$3 t b0 b1
  b0=$(size "$repo")
  t=$(gen "$day" | { /usr/bin/time -f '%e %U %S %M' restic -q -r "$repo" backup --compression auto --stdin --stdin-filename dump.sql; } 2>&1 >/dev/null | tail -1)
  b1=$(size "$repo")
  echo "$tag $day $MB $t $((b1 - b0))" | tee -a "$OUT"
}
echo "# $(date -u +%FT%TZ) MB=$MB reps=$REPS tools=$* load=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
for rep in $(seq 1 "$REPS"); do
  for tool in "$@"; do
    repo="$WORK/repo"
    rm -rf "$repo" "$repo"-*
    case $tool in
      restic)
        restic init -q -r "$repo" --repository-version 2
        run_restic "$repo" 1 "restic.$rep"
        run_restic "$repo" 2 "restic.$rep"
        ;;
      lb:*=*)
        name=${tool#lb:}
        name=${name%%=*}
        dist=${tool#*=}
        "$dist/../bin/lifeboat" init --repo "$repo" -q ${INIT_ARGS:-}
        run_lb "$dist" "$repo" 1 "lb-$name.$rep"
        k=0
        for also in ${ALSO_DAY2:-}; do k=$((k + 1)); cp -a "$repo" "$repo-also$k"; done
        run_lb "$dist" "$repo" 2 "lb-$name.$rep"
        rm -rf "$repo"
        k=0
        for also in ${ALSO_DAY2:-}; do
          k=$((k + 1))
          oname=${also#lb:}
          oname=${oname%%=*}
          run_lb "${also#*=}" "$repo-also$k" 2 "lb-$oname-on-$name-day1.$rep"
          rm -rf "$repo-also$k"
        done
        ;;
    esac
    echo "# load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT"
  done
done
rm -rf "$WORK/repo" "$WORK"/repo-*
