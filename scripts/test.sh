#!/usr/bin/env bash
# Runs ringcast's whole test suite on a fresh machine:
#  - installs Debian's redis-server when it is missing (the tests start their own Redis
#    servers and a 3-master Redis Cluster on free loopback ports, and need the binary);
#  - starts a Redis on 127.0.0.1:6379 when none answers there;
#  - runs `cargo test` (extra arguments are passed on, e.g. `scripts/test.sh api`).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "test.sh: installing redis-server (Debian package)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq redis-server redis-tools >/dev/null
fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "test.sh: installing prometheus (Debian package) for promtool"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
    || echo "test.sh: could not install prometheus; the promtool checks will be skipped" >&2
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "test.sh: no Redis answers on 127.0.0.1:6379; starting one"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp --logfile /tmp/ringcast-test-redis.log
  for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break
    sleep 0.1
  done
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "test.sh: Redis did not start" >&2; exit 1; }
fi

cargo test "$@"
