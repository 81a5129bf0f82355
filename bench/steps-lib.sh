# Shared by bench/steps-all.sh, backup-only.sh and dump-quick.sh (sourced; needs W and OUT set):
#   steps_labels label=/checkout ...: fills CLI[label] and LABELS (restic appended unless NORESTIC=1).
#     A checkout with bin/lifeboat (the installed command: node with its flags) runs through it, as users
#     run it; else node dist/src/cli/main.js. ENV_<label>="VAR=value ..." gives a label its own environment.
#   T tool step repo command...: one timed step (/usr/bin/time: wall, user, sys, peak RSS kB) appended to OUT
#     with the bytes the repository grew by; a failing command appends a FAIL line instead.
declare -A CLI; LABELS=()
steps_labels() {
  local a l d e
  for a in "$@"; do l=${a%%=*}; d=${a#*=}; e=ENV_$l
    if [ -x $d/bin/lifeboat ]; then CLI[$l]="env ${!e:-} $d/bin/lifeboat"; else CLI[$l]="env ${!e:-} node $d/dist/src/cli/main.js"; fi
    LABELS+=($l)
  done
  [ -n "${NORESTIC:-}" ] || LABELS+=(restic)
}
size() { du -sb "$1" | cut -f1; }
T() {
  local t=$1 s=$2 r=$3; shift 3
  local before=$(size $r 2>/dev/null || echo 0)
  sync
  if ! /usr/bin/time -f "$t $s %e %U %S %M" -o $W/time.txt sh -c "$*" >/dev/null 2>$W/err.txt; then
    echo "FAIL $t $s: $(tail -3 $W/err.txt)" | tee -a $OUT
    return
  fi
  echo "$(cat $W/time.txt) $(( $(size $r) - before ))" | tee -a $OUT >/dev/null
}
