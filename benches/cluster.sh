#!/usr/bin/env bash
# Cluster scenarios (issue 15): real `ringcast serve` nodes and the simulator.
#  - tests/cluster/scenarios.rs: two nodes over one Redis, 400 ring events at 100/s, one node
#    stopped half-way (none, kill -9, SIGTERM), direct and durable intake. Redis:
#    127.0.0.1:6379 if it answers, else a private redis-server (tests/support/redis_server.rs).
#  - tests/cluster/failover.rs: nodes with durable intake over a Redis Cluster of 3 masters
#    and 3 replicas started by the test, 800 events at 100/s; after 200, a master fails over
#    (CLUSTER FAILOVER on its replica, or kill -9 of the master), or every node restarts in
#    turn (SIGTERM, exit 0, start).
# Prints one line per scenario: events accepted, rung, lost, duplicate pushes, p99 (first
# send → the push service's record, ms); the failover scenarios add the API's answers (503s
# while slots move; never 500) and the kill scenarios the duplicates by cause.
#
#   benches/cluster.sh            # debug build (what the tests use)
#   PROFILE=release benches/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
profile_flag=()
if [[ "${PROFILE:-debug}" == "release" ]]; then
  profile_flag=(--release)
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test "${profile_flag[@]}" --test cluster -- --ignored --nocapture --test-threads=1 scenario_ \
  >"$log" 2>&1 || status=$?
grep -o 'scenario=.*' "$log" || true
if [[ $status -ne 0 ]]; then
  grep -E 'panicked|FAILED' "$log" >&2 || tail -20 "$log" >&2
  exit "$status"
fi
