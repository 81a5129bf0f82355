#!/bin/bash
# A daemon's memory over its life (issue 18; docs/benchmarks.md, "Configured jobs and the daemon"): one
# `lifeboat daemon` runs a files job at :00 and :30 of each minute and a dump job (a `kind: command` source
# that cats a file) at :15 and :45. Between runs the files directory alternates between two copies (A, B:
# e.g. B = A after `node bench/backup-data.mjs mutate B 1`) and the dump moves on a day (dump0..3.sql in
# DUMPS, from `node bench/restore-data.mjs dumpday DUMPS/dumpN.sql 1 N`). The daemon's VmRSS is sampled
# every 0.5 s for DUR seconds.
# MODE=serve: the same jobs without schedules, run by `lifeboat serve` when this script asks its API
# (POST /api/v1/jobs/NAME/run with an operator token) at the same seconds: the memory of API-started runs.
# usage: A=dir B=dir DUMPS=dir [MODE=daemon|serve] [DUR=150] [WORK=/tmp/lb-daemon-life] [LIFEBOAT=bin/lifeboat] \
#          [label=name] bash bench/daemon-life.sh   (environment such as LIFEBOAT_MMAP_THRESHOLD=0 passes to the process)
# Writes WORK/<label>.txt (lines: epoch_s rss_kB) and prints the peak and the idle RSS (the lowest sample 2-4 s
# before each job starts), median and range, in MB.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
A=${A:?A=first copy of the files} B=${B:?B=second copy} DUMPS=${DUMPS:?DUMPS=dir with dump0..3.sql}
W=${WORK:-/tmp/lb-daemon-life}; L=${LIFEBOAT:-$HERE/../bin/lifeboat}; label=${label:-run}; MODE=${MODE:-daemon}
case $MODE in daemon) fsched='schedule: "0,30 * * * * *"'; dsched='schedule: "15,45 * * * * *"' ;; serve) fsched='tier: normal'; dsched='tier: normal' ;; *) echo "MODE=daemon or serve" >&2; exit 2 ;; esac
export LIFEBOAT_PASSWORD=${LIFEBOAT_PASSWORD:-pw}
mkdir -p $W; rm -rf $W/repo $W/catalog.db* $W/auth.hdr; OUT=$W/$label.txt; : > $OUT
if [ -e $W/data ]; then echo "$W/data exists (a copy a killed run left there?): move it back to A or B first" >&2; exit 1; fi
cat > $W/lifeboat.yaml <<YAML
version: 1
repositories:
  local: { location: $W/repo, password: { env: LIFEBOAT_PASSWORD }, autoInit: true }
sources:
  files: { kind: files, paths: [$W/data] }
  dump: { kind: command, command: "cat $W/cur.sql" }
jobs:
  files: { source: files, $fsched }
  dump: { source: dump, $dsched }
daemon: { catalog: $W/catalog.db, listen: "127.0.0.1:0" }
YAML
# the files job backs up $W/data: a copy of A or B, swapped by renaming (the copies are moved, not copied)
mv "$A" $W/data; cur=A; ln -sf $DUMPS/dump0.sql $W/cur.sql; day=0
restore_dirs() { if [ $cur = A ]; then mv $W/data "$A"; else mv $W/data "$B"; fi; }
trap restore_dirs EXIT
# start 10 s before a job
while s=$(date +%S); [ $((10#$s % 30)) -ne 20 ]; do sleep 0.3; done
if [ $MODE = serve ]; then
  # the token goes to curl in a header file (curl -H @FILE), not on its command line
  ( umask 077; t=$($L token create bench --role operator -c $W/lifeboat.yaml 2>/dev/null) && printf 'Authorization: Bearer %s\n' "$t" > $W/auth.hdr ) || { echo "token create failed" >&2; exit 1; }
  PORT=$(( 20000 + RANDOM % 20000 ))
  $L serve -c $W/lifeboat.yaml --listen 127.0.0.1:$PORT > $W/$label.log 2>&1 &
else
  $L daemon -c $W/lifeboat.yaml > $W/$label.log 2>&1 &
fi
P=$!
trigger() { curl -s -o /dev/null -w '%{http_code}' -X POST -H @$W/auth.hdr http://127.0.0.1:$PORT/api/v1/jobs/$1/run; }
ran=; runs=0
end=$(( $(date +%s) + ${DUR:-150} )); swapped=; dswap=
# one clock reading per pass: the second tested and the one remembered are the same (a pass that read :00
# and then :01 would act twice in one slot)
while now=$(date +%s); [ $now -lt $end ]; do
  s=$(( now % 30 ))
  echo "$(date +%s.%N | cut -c1-14) $(awk '/VmRSS/{print $2}' /proc/$P/status)" >> $OUT
  if [ $s -eq 10 ] && [ "$swapped" != $now ]; then
    swapped=$now
    if [ $cur = A ]; then mv $W/data "$A"; mv "$B" $W/data; cur=B; else mv $W/data "$B"; mv "$A" $W/data; cur=A; fi
  fi
  if [ $s -eq 25 ] && [ "$dswap" != $now ]; then dswap=$now; day=$(( (day + 1) % 4 )); ln -sf $DUMPS/dump$day.sql $W/cur.sql; fi
  if [ $MODE = serve ] && { [ $s -eq 0 ] || [ $s -eq 15 ]; } && [ "$ran" != $now ]; then
    ran=$now; if [ $s -eq 0 ]; then j=files; else j=dump; fi
    code=$(trigger $j); [ "$code" = 202 ] && runs=$((runs + 1)) || echo "$(date +%T) POST of job $j: HTTP $code (409: a run of it is still going)" >&2
  fi
  sleep 0.5
done
if [ $MODE = serve ]; then
  sleep 8  # the last run ends
  curl -s -H @$W/auth.hdr "http://127.0.0.1:$PORT/api/v1/tasks?limit=100" > $W/$label.tasks.json
  ok=$(node -e 'const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")); console.log(t.filter((x) => x.status === "success").length)' $W/$label.tasks.json)
fi
kill -TERM $P; wait $P
if [ $MODE = serve ]; then echo "$label: $runs job runs started through the API, $ok succeeded"
else echo "$label: $(grep -c 'attempt 1 success' $W/$label.log) job runs succeeded"; fi
awk -v f=$label 'NF==2 { s = int($1) % 15; w = int($1 / 15); if ($2 > pk) pk = $2; if (s >= 11 && s <= 13 && (!(w in lo) || $2 < lo[w])) lo[w] = $2 }
  END { n = 0; for (w in lo) v[++n] = lo[w] / 1024; asort(v); printf "%s: peak %d MB, idle before each job median %d MB (%d-%d, n=%d)\n", f, pk / 1024, v[int((n + 1) / 2)], v[1], v[n], n }' $OUT
