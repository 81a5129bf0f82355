#!/bin/bash
# Read-path benchmark (issue 18): full restore and check --read-data, Lifeboat vs restic,
# on (1) a many-small-files set copied from /usr plus 2 x 60 MB of random data and
# (2) the restore of a 150 MB SQL dump at the end of a 3-day delta chain.
# Reports wall s, CPU s (user + system, steadier than wall on a shared machine) and peak RSS.
#
#   npm run build && bash bench/read-path.sh [DIR]        # default DIR /tmp/lifeboat-bench-read
#   BASE=/path/to/other/dist/src/cli/main.js REPS=3 bash bench/read-path.sh   # compare with another build
# Results: see bench/results/read-path.md.
set -euo pipefail
DIR=${1:-/tmp/lifeboat-bench-read}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
NEW=$ROOT/dist/src/cli/main.js
export LIFEBOAT_PASSWORD=bench RESTIC_PASSWORD=bench
mkdir -p "$DIR" && cd "$DIR"

if [ ! -d files ]; then
  mkdir files
  cp -r /usr/share/perl* /usr/include /usr/lib/python3* files/ 2>/dev/null || true
  head -c 60000000 /dev/urandom > files/rand1.bin
  head -c 60000000 /dev/urandom > files/rand2.bin
fi
if [ ! -f dump3.sql ]; then
  # pg_dump-like text; each day 1% of rows updated, 0.2% deleted, 0.5% inserted
  for d in 0 1 2 3; do node --input-type=module -e '
import { createWriteStream } from "node:fs"; import { once } from "node:events";
const [file, day, SIZE] = [process.argv[1], Number(process.argv[2]), 150e6];
let s = 42; const r = () => { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; return (s >>> 0) / 2 ** 32; };
const names = ["alice","bob","carol","dave","erin","frank","grace","heidi","ivan","judy"];
const out = createWriteStream(file); let written = 0, row = 0;
let buf = "COPY public.accounts (id, name, email, balance, created_at, note) FROM stdin;\n";
while (written < SIZE) {
  const id = row++, n = names[Math.floor(r() * names.length)], bal = Math.floor(r() * 1e6);
  const t = 1_700_000_000 + Math.floor(r() * 5e7), note = r().toString(36).slice(2, 12);
  let balance = bal, del = false;
  for (let d = 1; d <= day; d++) { if ((id + d) % 100 === 0) balance = bal + d * 7; if ((id * 7 + d * 13) % 500 === 0) del = true; }
  if (!del) buf += `${id}\t${n}\t${n}.${id}@example.com\t${balance}\t${new Date(t * 1000).toISOString()}\t${note}\n`;
  if (buf.length > 1 << 20) { written += buf.length; if (!out.write(buf)) await once(out, "drain"); buf = ""; }
}
for (let d = 1; d <= day; d++) for (let i = 0; i < row / 200; i++) buf += `${row + d * 1e7 + i}\tnew\tnew.${i}@example.com\t${i * 3}\t2026-01-0${d}\tx${d}${i}\n`;
buf += "\\.\n"; out.end(buf); await once(out, "finish");' dump$d.sql $d; done
fi
if [ ! -d flb ]; then
  node "$NEW" init -q --repo flb && node "$NEW" backup -q --repo flb files
  restic init -q -r frs --repository-version 2 >/dev/null && restic -q -r frs backup --compression auto files >/dev/null
  node "$NEW" init -q --repo dlb && restic init -q -r drs --repository-version 2 >/dev/null
  for d in 0 1 2 3; do
    node "$NEW" backup -q --repo dlb --stdin --stdin-filename dump.sql < dump$d.sql
    restic -q -r drs backup --compression auto --stdin --stdin-filename dump.sql < dump$d.sql >/dev/null
  done
fi

t() {
  local name=$1; shift
  /usr/bin/time -o tm -f "%e %U %S %M" "$@" >/dev/null 2>err || { echo "FAILED: $name"; cat err; exit 1; }
  read -r e u s m < tm
  printf "%-26s wall %6.2f s  cpu %5.2f s  rss %4d MB\n" "$name" "$e" "$(echo "$u + $s" | bc)" $((m / 1024))
}
for rep in $(seq 1 "${REPS:-1}"); do
  for set in files dump; do
    if [ $set = files ]; then L=flb R=frs; else L=dlb R=drs; fi
    for v in ${BASE:+base} new; do
      if [ $v = base ]; then C=$BASE; else C=$NEW; fi
      rm -rf tgt; t "$set restore lifeboat-$v" node "$C" restore latest -q --repo $L --target tgt
      if [ $set = dump ]; then cmp -s tgt/dump.sql dump3.sql || { echo "restored dump differs"; exit 1; }; fi
      t "$set check lifeboat-$v" node "$C" check -q --read-data --repo $L
    done
    rm -rf tgt; t "$set restore restic" restic -q -r $R restore latest --target tgt
    t "$set check restic" restic -q -r $R check --read-data
  done
done
rm -rf tgt
