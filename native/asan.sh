#!/bin/bash
# The C addons under AddressSanitizer: a use after free, a read or write out of bounds or a double free in
# native/*.c stops the process with a report instead of (sometimes) crashing it later.
#   bash native/asan.sh [SECONDS] [test files...]
# Copies this checkout (built: dist/ and node_modules/) to $WORK (default /tmp/lifeboat-asan), rebuilds native/
# there with -fsanitize=address, runs the test files given (default: the repo/ and engine/ unit tests and the
# tests that feed hostile, corrupted or fuzzed repositories, restores and stream backups to the C code) with
# libasan preloaded into every node process, then loops over real commands for SECONDS (default 600):
# a fresh repository, now and then a files backup of /usr/include, days 0-3 of the bench's daily dump
# (bench/restore-data.mjs) by backup --stdin, a restore of day 3 compared with the dump, check --read-data.
# Reports go to $WORK/asan.*; the script exits 1 when there is one (or a command failed), else 0.
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/lifeboat-asan}
SECS=${1:-600}; shift 2>/dev/null || true
LIBASAN=$(gcc -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "asan.sh: gcc's libasan.so is missing (apt install gcc)" >&2; exit 2; }
[ -d "$SRC/dist" ] && [ -d "$SRC/node_modules" ] || { echo "asan.sh: build the checkout first (npm ci, npx tsc)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
cp -a "$SRC/dist" "$SRC/node_modules" "$SRC/package.json" "$SRC/native" "$SRC/bench" "$SRC/web" "$WORK/" || exit 2
[ -d "$SRC/test" ] && cp -a "$SRC/test" "$WORK/"
cd "$WORK/native" && rm -rf build
GYP=$(dirname "$(command -v npm)")/../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
[ -f "$GYP" ] || GYP=/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js
if ! CFLAGS="-fsanitize=address -fno-omit-frame-pointer -g" LDFLAGS="-fsanitize=address" \
    node "$GYP" rebuild --nodedir="${NODEDIR:-/usr}" > "$WORK/build.log" 2>&1; then
  echo "asan.sh: the ASAN build failed, see $WORK/build.log" >&2; exit 2
fi
cd "$WORK"
export LIFEBOAT_PASSWORD=asan LD_PRELOAD="$LIBASAN" \
  ASAN_OPTIONS=detect_leaks=0:verify_asan_link_order=0:halt_on_error=1:log_path=$WORK/asan
status=0
TESTS=("$@")
if [ ${#TESTS[@]} -eq 0 ]; then
  TESTS=(dist/src/repo/*.test.js dist/src/engine/*.test.js)
  for t in hostile-repo corruption fuzz restore-fidelity restore-safety native-encode stream-backup check-walk format; do
    TESTS+=(dist/test/$t.test.js)
  done
fi
echo "asan.sh: ${#TESTS[@]} test files under ASAN"
node --test --test-concurrency=1 "${TESTS[@]}" > "$WORK/tests.log" 2>&1 || { echo "asan.sh: tests failed ($WORK/tests.log)"; status=1; }
grep -E "^# (tests|pass|fail)" "$WORK/tests.log"
for d in 0 1 2 3; do node bench/restore-data.mjs dumpday "$WORK/dump$d.sql" 1 $d > /dev/null || exit 2; done
LB="node --max-semi-space-size=4 dist/src/cli/main.js"
run() { if ! "$@" > "$WORK/last.out" 2>&1; then echo "asan.sh: failed: $*"; tail -3 "$WORK/last.out"; status=1; fi; }
end=$(( $(date +%s) + SECS )); i=0
while [ "$(date +%s)" -lt $end ] && ! ls "$WORK"/asan.* > /dev/null 2>&1; do
  i=$((i + 1)); R=$WORK/repo; rm -rf "$R" "$WORK/out"; run $LB init -q -r "$R"
  [ $((i % 3)) -eq 0 ] && run $LB backup -q -r "$R" /usr/include
  for d in 0 1 2 3; do run sh -c "$LB backup -q -r $R --stdin --stdin-filename dump.sql < $WORK/dump$d.sql"; done
  [ $((i % 2)) -eq 0 ] && run sh -c "$LB restore latest -q -r $R --target $WORK/out && cmp $WORK/out/dump.sql $WORK/dump3.sql"
  [ $((i % 4)) -eq 1 ] && run $LB check --read-data -q -r "$R"
done
echo "asan.sh: $i rounds of commands"
if ls "$WORK"/asan.* > /dev/null 2>&1; then echo "asan.sh: AddressSanitizer reports:"; head -40 "$WORK"/asan.*; status=1; fi
[ $status -eq 0 ] && echo "asan.sh: no report"
exit $status
