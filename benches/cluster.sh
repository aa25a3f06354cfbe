#!/usr/bin/env bash
# Cluster scenarios (issue 15): two real `ringcast serve` nodes over one Redis and the
# simulator, 400 ring events at 100/s, one node stopped half-way (none, kill -9, SIGTERM).
# Prints one line per scenario: events accepted, rung, lost, duplicate pushes, p99 (first
# send → the push service's record, ms). Redis: 127.0.0.1:6379 if it answers, else a private
# redis-server (tests/support/redis_server.rs).
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
