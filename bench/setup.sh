#!/usr/bin/env bash
# Install what the benchmarks compare against: restic, borg, GNU time (peak RSS), pgbench.
set -euo pipefail
need=()
command -v restic >/dev/null || need+=(restic)
command -v borg >/dev/null || need+=(borgbackup)
command -v pgbackrest >/dev/null || need+=(pgbackrest)   # bench/pitr.ts only; no test needs it
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 "${need[@]}" >/dev/null
fi
restic version
borg --version
command -v pgbench >/dev/null && pgbench --version || echo "pgbench not found (PostgreSQL benchmark will be skipped)"
