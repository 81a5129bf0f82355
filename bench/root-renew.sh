#!/usr/bin/env bash
# Roots renewed (issue 18, docs/benchmarks.md "Roots renewed"): days 0..N-1 of the bench dump
# (bench/restore-data.mjs dumpday), each backed up with `backup --stdin` into two repositories
# (default maxDeltaDepth 4): one with the chain roots never renewed (LIFEBOAT_RENEW_ROOT=0), one
# with this build's rule (or SHARE). Prints the bytes each backup added and each backup's wall
# time, then each repository's size, then the wall time of restoring the last RESTORES snapshots.
# Run after `npm run build`. N (default 48), SHARE (default: the build's), WORK (default /tmp/root-renew).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-48}
RESTORES=${RESTORES:-8}
W=${WORK:-/tmp/root-renew}
LB="$ROOT/bin/lifeboat"
rm -rf "$W"
mkdir -p "$W"
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench}
on=${SHARE:+LIFEBOAT_RENEW_ROOT=$SHARE}
for v in off on; do "$LB" init -q --repo "$W/$v"; done
t() { local s e; s=$(date +%s%N); "$@"; e=$(date +%s%N); awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'; }
for ((day = 0; day < N; day++)); do
  node "$ROOT/bench/restore-data.mjs" dumpday "$W/day.sql" 1 "$day" >/dev/null
  line="day $day"
  for v in off on; do
    before=$(du -sb "$W/$v" | cut -f1)
    if [ $v = off ]; then s=$(t env LIFEBOAT_RENEW_ROOT=0 "$LB" backup -q --repo "$W/$v" --stdin --stdin-filename dump.sql <"$W/day.sql")
    else s=$(t env $on "$LB" backup -q --repo "$W/$v" --stdin --stdin-filename dump.sql <"$W/day.sql"); fi
    after=$(du -sb "$W/$v" | cut -f1)
    line="$line $v +$(((after - before) / 1000))KB ${s}s"
  done
  echo "$line"
done
rm -f "$W/day.sql"
for v in off on; do echo "repo $v total $(du -sb "$W/$v" | cut -f1)"; done
for v in off on; do
  ids=$("$LB" snapshots --json --repo "$W/$v" | node -e 'let s="";process.stdin.on("data",(c)=>(s+=c)).on("end",()=>{const a=JSON.parse(s);a.sort((x,y)=>(x.time<y.time?-1:1));console.log(a.slice(-Number(process.argv[1])).map((x)=>x.id).join(" "))})' "$RESTORES")
  line="restore $v, s (the last $RESTORES days, oldest first):"
  for id in $ids; do
    rm -rf "$W/rt"
    line="$line $(t "$LB" restore "$id" -q --repo "$W/$v" --target "$W/rt")"
  done
  echo "$line"
done
rm -rf "$W/rt"
