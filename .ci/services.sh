#!/usr/bin/env bash
# Make sure the database servers the source tests talk to are up:
# PostgreSQL 127.0.0.1:5432, MariaDB 127.0.0.1:3306, Redis 127.0.0.1:6379;
# and install Debian's chromium for the dashboard's browser tests.
# Each is checked first and started only when it is installed but down; one that
# runs but does not answer a query within 15 s is restarted once; then we wait (up
# to WAIT_SECONDS) until it accepts connections (or answers, after a restart).
# Exit status: 0 when every installed server is up, 1 otherwise.
set -uo pipefail

WAIT_SECONDS="${WAIT_SECONDS:-60}"
failed=0

say() { echo "== services: $*"; }

wait_for() { # name, check command...
  local name="$1"
  shift
  local i
  for ((i = 0; i < WAIT_SECONDS * 2; i++)); do
    if "$@" >/dev/null 2>&1; then
      say "$name is up"
      return 0
    fi
    sleep 0.5
  done
  say "ERROR: $name did not accept connections within ${WAIT_SECONDS}s"
  return 1
}

# A server that takes connections but does not answer (every connection slot held, a stuck cluster)
# would hold the tests until CI's limit: a running one must answer a query within 15 s, or it is
# restarted once.

# ---- PostgreSQL
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -t 2; }
pg_answers() { timeout 15 psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'select 1' 2>/dev/null | grep -qx 1; }
pg_clusters() { # start | restart -m fast
  local ver
  for ver in $(ls /etc/postgresql); do
    say "PostgreSQL $ver: $1"
    timeout 120 pg_ctlcluster --skip-systemctl-redirect "$ver" main "$@" || say "pg_ctlcluster $ver main $1 failed"
  done
}
if command -v pg_isready >/dev/null && command -v psql >/dev/null && [ -d /etc/postgresql ]; then
  if ! pg_up >/dev/null 2>&1; then
    pg_clusters start
    wait_for PostgreSQL pg_up || failed=1
  elif pg_answers; then
    say "PostgreSQL already running and answers queries"
  else
    say "PostgreSQL does not answer a query within 15 s"
    pg_clusters restart -m fast
    wait_for PostgreSQL pg_answers || failed=1
  fi
else
  say "PostgreSQL not installed, skipping"
fi

# ---- MariaDB
my_up() { mariadb-admin --protocol=TCP -h 127.0.0.1 -P 3306 -uroot --connect-timeout=2 ping; }
my_answers() { timeout 15 mariadb --protocol=TCP -h 127.0.0.1 -P 3306 -uroot --connect-timeout=5 -N -e 'select 1' 2>/dev/null | grep -qx 1; }
my_start() {
  say "starting MariaDB"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || say "start-stop-daemon for mariadbd failed"
}
if [ -x /usr/sbin/mariadbd ] && command -v mariadb-admin >/dev/null && command -v mariadb >/dev/null; then
  if my_answers; then
    say "MariaDB already running and answers queries"
  elif ! pgrep -x mariadbd >/dev/null; then
    my_start
    wait_for MariaDB my_up || failed=1
  else
    # (every connection held: mariadb-admin ping fails as well, so running is told by the process)
    say "MariaDB is running but does not answer a query within 15 s: stopping it"
    timeout 60 mariadb-admin --protocol=TCP -h 127.0.0.1 -P 3306 -uroot shutdown >/dev/null 2>&1 || pkill -9 -x mariadbd || true
    for ((i = 0; i < 60; i++)); do pgrep -x mariadbd >/dev/null || break; sleep 1; done
    my_start
    wait_for MariaDB my_answers || failed=1
  fi
else
  say "MariaDB not installed, skipping"
fi

# ---- Redis
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }
if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
  if redis_up; then
    say "Redis already running"
  else
    say "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || say "redis-server failed to start"
    wait_for Redis redis_up || failed=1
  fi
else
  say "Redis not installed, skipping"
fi

# ---- Chromium (the dashboard's browser tests drive Debian's chromium through playwright-core)
if [ -x /usr/bin/chromium ]; then
  say "chromium present"
elif command -v apt-get >/dev/null; then
  say "installing Debian chromium"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q chromium >/tmp/lifeboat-apt.log 2>&1; then
    apt-get update -q >>/tmp/lifeboat-apt.log 2>&1 || true
    apt-get install -y -q chromium >>/tmp/lifeboat-apt.log 2>&1 || { say "ERROR: could not install chromium (see /tmp/lifeboat-apt.log)"; failed=1; }
  fi
  [ -x /usr/bin/chromium ] && say "chromium installed: $(/usr/bin/chromium --version 2>/dev/null)"
else
  say "ERROR: chromium missing and apt-get not available"
  failed=1
fi

# ---- rclone and OpenSSH server (storage tests: rclone: and sftp: backends; the
# SFTP test starts its own sshd on a loopback port, so the system service stays off)
need=""
command -v rclone >/dev/null || need="$need rclone"
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh-keygen >/dev/null || need="$need openssh-client"
if [ -z "$need" ]; then
  say "rclone and sshd present"
elif command -v apt-get >/dev/null; then
  say "installing$need"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q $need >>/tmp/lifeboat-apt.log 2>&1; then
    apt-get update -q >>/tmp/lifeboat-apt.log 2>&1 || true
    apt-get install -y -q $need >>/tmp/lifeboat-apt.log 2>&1 || { say "ERROR: could not install$need (see /tmp/lifeboat-apt.log)"; failed=1; }
  fi
else
  say "ERROR:$need missing and apt-get not available"
  failed=1
fi

if [ "$failed" -ne 0 ]; then
  say "some database servers are not available; the source tests will fail"
  exit 1
fi
exit 0
