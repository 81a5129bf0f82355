#!/bin/bash
# Per-segment cost of the synchronous archive_command / restore_command (issue 18):
# `lifeboat wal-push FILE` / `wal-fetch NAME DEST` (one process per 16 MiB segment,
# no spool) against pgBackRest archive-push / archive-get on the same segments,
# builds and pgBackRest interleaved per round.
#
#   bench/pitr-wal-segment.sh ROUNDS SEGDIR PGDATA PGPORT PGSOCKETDIR name=/path/to/dist/src/cli/main.js ... > out.txt
#   python3 bench/pitr-wal-segment-median.py out.txt
#
# SEGDIR: finished WAL segments of the cluster at PGDATA (pgBackRest checks they are its
# own; the first one, in name order, is skipped). Run as root: every call runs as the
# postgres OS user under /usr/bin/time. Prints one line per call:
#   tool op segment wall_ms cpu_s(user+sys) peak_rss_kb
# and compares every fetched segment with the pushed one.
set -e
ROUNDS=$1 SEGDIR=$2 PGDATA=$3 PGPORT=$4 PGSOCK=$5; shift 5
W=${WORKDIR:-/tmp/lb-bench-wal-segment}; SEGS=$(ls $SEGDIR | grep -E '^[0-9A-F]{24}$' | sed 1d)
NODE=$(command -v node)
T() { # tool op seg cmd...
  local tool=$1 op=$2 seg=$3; shift 3
  local t0=$(date +%s%N)
  runuser -u postgres -- /usr/bin/time -f '%U %S %M' -o $W/t "$@" >/dev/null 2>$W/err || { echo "FAIL $tool $op $seg: $(cat $W/err)" >&2; exit 1; }
  local t1=$(date +%s%N)
  read u s m < <(tail -1 $W/t)
  echo "$tool $op $seg $(( (t1-t0)/1000000 )) $(echo "$u + $s" | bc) $m"
}
for r in $(seq $ROUNDS); do
  for spec in "$@" pgbr; do
    rm -rf $W; mkdir -p $W/in $W/out; cp $SEGDIR/* $W/in/; echo pw > $W/pw; chmod 600 $W/pw; chown -R postgres $W
    if [ $spec = pgbr ]; then
      cat > $W/pgbr.conf <<C
[global]
repo1-path=$W/repo
repo1-cipher-type=aes-256-cbc
repo1-cipher-pass=bench
compress-type=zst
compress-level=3
log-path=$W
lock-path=$W
spool-path=$W
log-level-console=warn
log-level-file=off
[bench]
pg1-path=$PGDATA
pg1-port=$PGPORT
pg1-socket-path=$PGSOCK
pg1-user=postgres
C
      chown postgres $W/pgbr.conf
      runuser -u postgres -- pgbackrest --config=$W/pgbr.conf --stanza=bench stanza-create >/dev/null 2>&1
      for s in $SEGS; do T pgbr push $s pgbackrest --config=$W/pgbr.conf --stanza=bench archive-push $W/in/$s; done
      for s in $SEGS; do T pgbr fetch $s pgbackrest --config=$W/pgbr.conf --stanza=bench archive-get $s $W/out/$s; done
    else
      name=${spec%%=*}; cli=${spec#*=}
      runuser -u postgres -- $NODE $cli init -q --repo $W/repo --password-file $W/pw
      for s in $SEGS; do T $name push $s $NODE $cli wal-push $W/in/$s --repo $W/repo --password-file $W/pw -q; done
      for s in $SEGS; do T $name fetch $s $NODE $cli wal-fetch $s $W/out/$s --repo $W/repo --password-file $W/pw -q; done
    fi
    for s in $SEGS; do cmp -s $W/in/$s $W/out/$s || { echo "MISMATCH $spec $s" >&2; exit 1; }; done
  done
done
