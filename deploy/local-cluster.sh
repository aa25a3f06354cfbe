#!/usr/bin/env bash
# A ringcast cluster to try on one machine (README, "Deploying" → "A local cluster"):
#   deploy/local-cluster.sh start    three nodes over a 3-master Redis Cluster, the push-service
#                                    simulator, Prometheus scraping the nodes' admin listeners
#                                    with deploy/prometheus/alerts.yml loaded; prints where to look
#   deploy/local-cluster.sh status   what runs, and where
#   deploy/local-cluster.sh stop     ends everything `start` started and removes its folder
#
# Everything lives in one folder (RINGCAST_LOCAL_CLUSTER_DIR, default
# ${TMPDIR:-/tmp}/ringcast-local-cluster): configs, logs, data and a pid file per process, so
# `stop` ends exactly what `start` started. Ports are RINGCAST_LOCAL_CLUSTER_PORT (default
# 17000) and up: Redis +0..+2 (cluster bus +10000..), simulator +10/+11, node APIs +20..+22,
# admin listeners +30..+32, Prometheus +40; the bus ports must lie below the kernel's ephemeral
# range. Needs redis-server, redis-cli and python3; Prometheus is Debian's package (installed
# with apt when missing; without it the cluster runs unscraped). The binary is RINGCAST_BIN, else built with
# cargo (RINGCAST_PROFILE=release for an optimised one).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${RINGCAST_LOCAL_CLUSTER_DIR:-${TMPDIR:-/tmp}/ringcast-local-cluster}
base=${RINGCAST_LOCAL_CLUSTER_PORT:-17000}
redis_ports=($((base)) $((base + 1)) $((base + 2)))
sim_port=$((base + 10))
sim_http1_port=$((base + 11))
api_ports=($((base + 20)) $((base + 21)) $((base + 22)))
admin_ports=($((base + 30)) $((base + 31)) $((base + 32)))
prometheus_port=$((base + 40))
# The development default's demo tenant (config/ringcast.toml): its server key.
server_key=ringcast-dev-server-key
# A PushKit (VoIP) token by the simulator's rule (src/simulator/apns.rs), as `demo` prints.
voip_token=a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: $*" >&2; exit 1; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Starts "$@" in the background, its output in $dir/$name.log, its pid in $dir/$name.pid.
launch() {
  local name=$1
  shift
  "$@" >"$dir/$name.log" 2>&1 &
  echo $! >"$dir/$name.pid"
}

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

# Waits up to 30 s for "$@" to succeed; $1 is the awaited process's name (launch's), $2 says
# what is awaited. Gives up at once if the process exits. Either way the end of its log goes to
# stderr: a failed start removes $dir, and with it the log that says why.
wait_for() {
  local name=$1 what=$2 outcome="did not come up within 30 s"
  shift 2
  for _ in $(seq 1 300); do
    "$@" >/dev/null 2>&1 && return 0
    alive "$name" || { outcome="exited before it came up"; break; }
    sleep 0.1
  done
  echo "--- the end of $name.log:" >&2
  tail -n 15 "$dir/$name.log" >&2 || true
  die "$what $outcome"
}

# Whether 127.0.0.1:$1 can be bound: a listener there, but also an outgoing connection that the
# kernel gave that local port, makes Redis abort ("Failed listening on port ... (cluster)").
port_free() {
  python3 -c 'import socket, sys; socket.socket().bind(("127.0.0.1", int(sys.argv[1])))' "$1" \
    2>/dev/null
}

# A Redis Cluster node also listens on its port + 10000 (the cluster bus). Inside the kernel's
# ephemeral range that port may be handed to any outgoing connection between the check above
# and Redis's bind, so the bus ports must lie below it.
bus_ports_below_ephemeral_range() {
  local low
  low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null) || return 0
  [ $((redis_ports[2] + 10000)) -lt "$low" ] \
    || die "the cluster bus ports ($((redis_ports[0] + 10000))..) fall in the kernel's ephemeral range ($low..): set RINGCAST_LOCAL_CLUSTER_PORT below $((low - 10002))"
}

binary() {
  if [ -n "${RINGCAST_BIN:-}" ]; then
    echo "$RINGCAST_BIN"
    return
  fi
  local profile=${RINGCAST_PROFILE:-debug} flag=()
  [ "$profile" = release ] && flag=(--release)
  (cd "$repo" && cargo build --quiet --locked "${flag[@]}" --bin ringcast) >&2
  echo "${CARGO_TARGET_DIR:-$repo/target}/$profile/ringcast"
}

start_redis() {
  for port in "${redis_ports[@]}"; do
    mkdir -p "$dir/redis-$port"
    launch "redis-$port" redis-server --port "$port" --bind 127.0.0.1 \
      --cluster-enabled yes --cluster-config-file nodes.conf --dir "$dir/redis-$port" \
      --save "" --appendonly no --hash-max-listpack-value 128 --hz 100
  done
  for port in "${redis_ports[@]}"; do
    wait_for "redis-$port" "Redis on $port" redis-cli -p "$port" ping
  done
  redis-cli --cluster create "${redis_ports[@]/#/127.0.0.1:}" --cluster-replicas 0 \
    --cluster-yes >"$dir/redis-cluster-create.log" 2>&1 \
    || die "redis-cli --cluster create failed (see $dir/redis-cluster-create.log)"
  for port in "${redis_ports[@]}"; do
    wait_for "redis-$port" "the Redis Cluster (node $port)" \
      sh -c "redis-cli -p $port cluster info | grep -q cluster_state:ok"
  done
}

start_simulator() {
  local bin=$1
  # The development service account, its token_uri moved to this simulator.
  python3 - "$repo/config/dev/fcm-service-account.json" "$dir/fcm-service-account.json" \
    "https://127.0.0.1:$sim_http1_port/token" <<'PY'
import json, sys
account = json.load(open(sys.argv[1]))
account["token_uri"] = sys.argv[3]
json.dump(account, open(sys.argv[2], "w"))
PY
  # From the repository, so the simulator finds the development keys and certificate.
  (cd "$repo" && launch simulator "$bin" simulate --listen "127.0.0.1:$sim_port" \
    --http1-listen "127.0.0.1:$sim_http1_port" --cert-out "$dir/simulator.pem" \
    --fcm-service-account "$dir/fcm-service-account.json")
  wait_for simulator "the simulator" curl -sk "https://127.0.0.1:$sim_port/stats"
}

write_node_config() {
  local dev="$repo/config/dev" nodes=""
  for port in "${redis_ports[@]}"; do nodes+="\"redis://127.0.0.1:$port\", "; done
  cat >"$dir/ringcast.toml" <<EOF
# Written by deploy/local-cluster.sh: the development default's demo tenant on a Redis
# Cluster, every provider at this cluster's simulator. Each node overrides the listeners with
# RINGCAST__SERVER__LISTEN and RINGCAST__ADMIN__LISTEN.
[server]
listen = "127.0.0.1:${api_ports[0]}"
[admin]
listen = "127.0.0.1:${admin_ports[0]}"
[registry]
store = "redis-cluster"
[registry.redis]
nodes = [${nodes%, }]
[providers.apns]
production_url = "https://127.0.0.1:$sim_port"
sandbox_url = "https://localhost:$sim_port"
trusted_roots = "simulator.pem"
[providers.fcm]
base_url = "https://127.0.0.1:$sim_port"
trusted_roots = "simulator.pem"
[providers.wns]
token_url = "https://127.0.0.1:$sim_http1_port/wns/token"
channel_base_url = "https://127.0.0.1:$sim_port"
trusted_roots = "simulator.pem"
[providers.webpush]
trusted_roots = "simulator.pem"
[webpush]
allowed_hosts = ["127.0.0.1:$sim_port"]
allowed_private_addresses = ["127.0.0.1:$sim_port"]
[log]
level = "info"

[tenants.demo]
server_keys = [{ sha256 = "$(printf %s "$server_key" | sha256sum | cut -d' ' -f1)" }]
max_ttl_seconds = 15552000
[tenants.demo.identity_tokens]
algorithm = "HS256"
key = { file = "$dev/identity-token-hs256.secret" }
[tenants.demo.apps.ios]
platform = "apns"
bundle_id = "com.example.ringcast"
team_id = "DEVTEAM123"
key_id = "DEVKEY1234"
key = { file = "$dev/apns-dev-key.p8" }
[tenants.demo.apps.android]
platform = "fcm"
project_id = "ringcast-demo"
service_account = { file = "fcm-service-account.json" }
[tenants.demo.apps.windows]
platform = "wns"
package_sid = "ms-app://s-1-15-2-ringcast-demo"
client_secret = { file = "$dev/wns-dev-client.secret" }
[tenants.demo.apps.web]
platform = "webpush"
vapid_key = { file = "$dev/vapid-dev-key.pem" }
vapid_subject = "mailto:ops@example.com"
EOF
}

start_nodes() {
  local bin=$1
  "$bin" check-config "$dir/ringcast.toml" >"$dir/check-config.log" 2>&1 \
    || die "the generated config is refused: $(cat "$dir/check-config.log")"
  for i in 0 1 2; do
    RINGCAST__SERVER__LISTEN="127.0.0.1:${api_ports[$i]}" \
      RINGCAST__ADMIN__LISTEN="127.0.0.1:${admin_ports[$i]}" \
      RINGCAST__CLUSTER__NODE_ID="local-node-$((i + 1))" \
      launch "node-$((i + 1))" "$bin" serve --config "$dir/ringcast.toml"
  done
  for i in 0 1 2; do
    wait_for "node-$((i + 1))" "node $((i + 1))" curl -sf "http://127.0.0.1:${admin_ports[$i]}/readyz"
  done
}

start_prometheus() {
  if ! command -v prometheus >/dev/null 2>&1; then
    say "installing prometheus (Debian package)"
    as_root apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
      prometheus >/dev/null || true
  fi
  if ! command -v prometheus >/dev/null 2>&1; then
    say "prometheus is not installed: the nodes run unscraped"
    return
  fi
  local targets=""
  for port in "${admin_ports[@]}"; do targets+="\"127.0.0.1:$port\", "; done
  cat >"$dir/prometheus.yml" <<EOF
# Written by deploy/local-cluster.sh: deploy/prometheus/prometheus.example.yml for this cluster.
global:
  scrape_interval: 5s
  evaluation_interval: 5s
rule_files:
  - $repo/deploy/prometheus/alerts.yml
scrape_configs:
  - job_name: ringcast
    metrics_path: /metrics
    static_configs:
      - targets: [${targets%, }]
EOF
  launch prometheus prometheus --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/prometheus-data" \
    --web.listen-address="127.0.0.1:$prometheus_port"
  wait_for prometheus "Prometheus" curl -sf "http://127.0.0.1:$prometheus_port/-/ready"
}

where_to_look() {
  echo
  echo "ringcast local cluster ($dir)"
  for i in 0 1 2; do
    echo "  node $((i + 1)):    API http://127.0.0.1:${api_ports[$i]}   admin http://127.0.0.1:${admin_ports[$i]}/metrics"
  done
  echo "  redis cluster: ${redis_ports[*]/#/127.0.0.1:}"
  echo "  simulator:  https://127.0.0.1:$sim_port/stats"
  if alive prometheus; then
    echo "  prometheus: http://127.0.0.1:$prometheus_port (targets: /targets, alerts: /alerts)"
  fi
  cat <<EOF

Register alice's iPhone on node 1, ring her through node 2:
  curl -s -X PUT http://127.0.0.1:${api_ports[0]}/v1/identities/alice/registrations/iphone \\
    -H 'Authorization: Bearer $server_key' -H 'Content-Type: application/json' \\
    -d '{"platform":"apns","app":"ios","token":"$voip_token"}'
  curl -s -X POST 'http://127.0.0.1:${api_ports[1]}/v1/calls?wait=true' \\
    -H 'Authorization: Bearer $server_key' -H 'Content-Type: application/json' \\
    -d '{"call_id":"call-1","callee":"alice","caller":{"id":"+15550100"}}'
Stop everything: $0 stop
EOF
}

names() {
  local name
  for name in prometheus node-3 node-2 node-1 simulator; do echo "$name"; done
  for port in "${redis_ports[@]}"; do echo "redis-$port"; done
}

stop_all() {
  [ -d "$dir" ] || { say "not running ($dir does not exist)"; return; }
  local name pid
  for name in $(names); do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    kill "$pid" 2>/dev/null || true
  done
  for name in $(names); do
    [ -f "$dir/$name.pid" ] || continue
    pid=$(cat "$dir/$name.pid")
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$dir"
  say "stopped; removed $dir"
}

case "${1:-}" in
  start)
    if [ -d "$dir" ]; then
      alive node-1 && { where_to_look; exit 0; }
      die "$dir exists but the cluster is not running: run '$0 stop' first"
    fi
    command -v redis-server >/dev/null || die "redis-server is missing (apt-get install redis-server)"
    bus_ports_below_ephemeral_range
    for port in "${redis_ports[@]}" "$sim_port" "$sim_http1_port" "${api_ports[@]}" \
      "${admin_ports[@]}" "$prometheus_port" $((base + 10000)) $((base + 10001)) $((base + 10002)); do
      port_free "$port" || die "port $port is taken (set RINGCAST_LOCAL_CLUSTER_PORT)"
    done
    bin=$(binary)
    mkdir -p "$dir"
    # Anything that fails from here leaves nothing running behind.
    started=no
    trap '[ "$started" = yes ] || stop_all >/dev/null' EXIT
    start_redis
    start_simulator "$bin"
    write_node_config
    start_nodes "$bin"
    start_prometheus
    started=yes
    where_to_look
    ;;
  stop) stop_all ;;
  status)
    [ -d "$dir" ] || { say "not running"; exit 1; }
    for name in $(names); do
      [ -f "$dir/$name.pid" ] || continue
      if alive "$name"; then state=running; else state=exited; fi
      printf '  %-12s %s (pid %s)\n' "$name" "$state" "$(cat "$dir/$name.pid")"
    done
    where_to_look
    ;;
  *) die "usage: $0 start|stop|status" ;;
esac
