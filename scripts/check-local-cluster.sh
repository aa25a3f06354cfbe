#!/usr/bin/env bash
# Checks deploy/local-cluster.sh end to end (called by scripts/check-deploy.sh): `start` in a
# private folder on its own ports, register a device on node 1 and ring it through node 2
# (`?wait=true` must answer "delivered": the rings cross nodes through the Redis Cluster),
# Prometheus must see all three admin listeners up and have the alert rules loaded, and
# `stop` must end every process it started and remove its folder.
# Needs the ringcast binary (RINGCAST_BIN, else built with cargo), redis-server, curl,
# python3; Prometheus is installed by the script under test when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

export RINGCAST_LOCAL_CLUSTER_DIR
RINGCAST_LOCAL_CLUSTER_DIR=$(mktemp -d /tmp/ringcast-check-cluster.XXXXXX)
rmdir "$RINGCAST_LOCAL_CLUSTER_DIR" # `start` makes it; an existing one means "running"
# Not the default (a cluster someone runs keeps working); its cluster bus ports (+10000) lie
# below the kernel's ephemeral range (32768..), which local-cluster.sh requires.
export RINGCAST_LOCAL_CLUSTER_PORT=${RINGCAST_LOCAL_CLUSTER_PORT:-21100}
trap 'deploy/local-cluster.sh stop >/dev/null 2>&1 || true' EXIT

fail() {
  echo "check-local-cluster: $*" >&2
  for log in "$RINGCAST_LOCAL_CLUSTER_DIR"/*.log; do
    [ -f "$log" ] && { echo "--- $log" >&2; tail -n 15 "$log" >&2; }
  done
  exit 1
}

base=$RINGCAST_LOCAL_CLUSTER_PORT
deploy/local-cluster.sh start >/dev/null || fail "start failed"
pids=$(cat "$RINGCAST_LOCAL_CLUSTER_DIR"/*.pid)
key=ringcast-dev-server-key
token=a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1

status=$(curl -s -o /dev/null -w '%{http_code}' -X PUT \
  "http://127.0.0.1:$((base + 20))/v1/identities/alice/registrations/iphone" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d "{\"platform\":\"apns\",\"app\":\"ios\",\"token\":\"$token\"}")
[ "$status" = 201 ] || fail "registering on node 1 answered $status"

answer=$(curl -s -X POST "http://127.0.0.1:$((base + 21))/v1/calls?wait=true" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"call_id":"check-1","callee":"alice","caller":{"id":"+15550100"}}')
echo "$answer" | grep -q '"outcome":"delivered"' \
  || fail "ringing through node 2 did not deliver: $answer"

if command -v prometheus >/dev/null 2>&1; then
  prometheus_url="http://127.0.0.1:$((base + 40))"
  up=0
  # Scraped every 5 s: wait (with a deadline) for all three targets to report up.
  for _ in $(seq 1 60); do
    up=$(curl -s "$prometheus_url/api/v1/targets" | python3 -c '
import json, sys
targets = json.load(sys.stdin)["data"]["activeTargets"]
print(sum(t["health"] == "up" for t in targets))' 2>/dev/null || echo 0)
    [ "$up" = 3 ] && break
    sleep 0.5
  done
  [ "$up" = 3 ] || fail "Prometheus sees $up of 3 nodes up"
  rules=$(curl -s "$prometheus_url/api/v1/rules" | python3 -c '
import json, sys
print(sum(len(g["rules"]) for g in json.load(sys.stdin)["data"]["groups"]))')
  [ "$rules" -gt 0 ] || fail "Prometheus loaded no alert rules"
else
  fail "prometheus is not installed and could not be installed"
fi

deploy/local-cluster.sh stop >/dev/null
for pid in $pids; do
  ! kill -0 "$pid" 2>/dev/null || fail "process $pid is still running after stop"
done
[ ! -e "$RINGCAST_LOCAL_CLUSTER_DIR" ] || fail "stop left $RINGCAST_LOCAL_CLUSTER_DIR behind"
echo "check-local-cluster: ok (3 nodes over a Redis Cluster, a ring across nodes, Prometheus: 3 up, $rules rules)"
