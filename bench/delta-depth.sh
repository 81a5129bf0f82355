#!/usr/bin/env bash
# Long-horizon delta-depth study (issue 18, docs/benchmarks.md "Delta depth over 24 days"):
# days 0..N-1 of the bench dump (bench/restore-data.mjs dumpday), each backed up with
# `backup --stdin` into repositories made with maxDeltaDepth 1, 2 and 4; prints the bytes each
# backup added, each repository's size, then the wall time of restoring every snapshot.
# Run after `npm run build`. N (days, default 24), WORK (a scratch directory, default /tmp/delta-depth).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${N:-24}
W=${WORK:-/tmp/delta-depth}
LB="$ROOT/bin/lifeboat"
rm -rf "$W"
mkdir -p "$W"
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-bench}
for d in 1 2 4; do
  ROOT="$ROOT" REPO="$W/r$d" DEPTH=$d node --input-type=module -e '
    const { Repository } = await import(`${process.env.ROOT}/dist/src/repo/repository.js`);
    const { LocalStorage } = await import(`${process.env.ROOT}/dist/src/storage/local.js`);
    const r = await Repository.init(new LocalStorage(process.env.REPO), process.env.LIFEBOAT_PASSWORD, { maxDeltaDepth: Number(process.env.DEPTH) });
    await r.close();'
done
for ((day = 0; day < N; day++)); do
  node "$ROOT/bench/restore-data.mjs" dumpday "$W/day.sql" 1 "$day" >/dev/null
  line="day $day"
  for d in 1 2 4; do
    before=$(du -sb "$W/r$d" | cut -f1)
    "$LB" backup -q --repo "$W/r$d" --stdin --stdin-filename dump.sql <"$W/day.sql"
    after=$(du -sb "$W/r$d" | cut -f1)
    line="$line d$d +$(((after - before) / 1000))KB"
  done
  echo "$line"
done
rm -f "$W/day.sql"
for d in 1 2 4; do echo "repo d$d total $(du -sb "$W/r$d" | cut -f1)"; done
for d in 1 2 4; do
  ids=$("$LB" snapshots --json --repo "$W/r$d" | node -e 'let s="";process.stdin.on("data",(c)=>(s+=c)).on("end",()=>{const a=JSON.parse(s);a.sort((x,y)=>(x.time<y.time?-1:1));console.log(a.map((x)=>x.id).join(" "))})')
  line="restore d$d, s (day 0 first):"
  for id in $ids; do
    rm -rf "$W/rt"
    s=$(date +%s%N)
    "$LB" restore "$id" -q --repo "$W/r$d" --target "$W/rt"
    e=$(date +%s%N)
    line="$line $(awk -v a="$s" -v b="$e" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
  done
  echo "$line"
done
rm -rf "$W/rt"
