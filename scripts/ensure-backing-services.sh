#!/usr/bin/env bash
# Makes sure PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) answer before the tests
# run: starts them when they are installed but stopped, installs them from Debian's
# packages when they are missing. Installs Prometheus too (the deployment health-gate tests
# start their own on loopback). Safe to run any number of times.
set -euo pipefail

need_root() { if [ "$(id -u)" -ne 0 ]; then echo "sudo"; fi; }

install_packages() {
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cannot install $*: no apt-get on this machine" >&2
    return 1
  fi
  $(need_root) apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -qq "$@"
}

postgres_up() { pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

wait_for() {
  local what=$1 check=$2
  for _ in $(seq 1 60); do
    if $check; then return 0; fi
    sleep 0.5
  done
  echo "$what did not come up" >&2
  return 1
}

if ! postgres_up; then
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    install_packages postgresql
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version"
  $(need_root) pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for PostgreSQL postgres_up
fi

if ! redis_up; then
  if ! command -v redis-server >/dev/null 2>&1; then
    install_packages redis-server
  fi
  echo "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/switchyard-redis.log
  wait_for Redis redis_up
fi

if ! command -v prometheus >/dev/null 2>&1 && [ ! -x /usr/bin/prometheus ]; then
  # Only the server: the exporters it recommends are not needed.
  if command -v apt-get >/dev/null 2>&1; then
    $(need_root) apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $(need_root) apt-get install -y -qq --no-install-recommends prometheus
  else
    echo "cannot install prometheus: no apt-get on this machine" >&2
    exit 1
  fi
fi

echo "PostgreSQL and Redis are up; Prometheus is installed"
