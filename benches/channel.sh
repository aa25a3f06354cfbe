#!/usr/bin/env bash
# The internal push channel benchmark (issue 16): on one machine, the push-service simulator,
# one node (release build, embedded store) and the load generator holding CLIENTS (10,000)
# WebSocket clients of GET /v1/channel open, one per identity as its registered APNs device
# d0, each acking every ring. Prints one table:
#   - memory per idle connection: the node's RSS (process_resident_memory_bytes, read by the
#     load generator from /metrics) after the clients connected and sat idle for 2 s, minus
#     before, ÷ connections;
#   - the maximum ring rate with every ring acked over the channel (phase 1, CONCURRENCY
#     calls in flight), and ring latency over the channel (ring sent → frame read by the
#     client) at half that rate (phase 2, open loop);
#   - platform pushes avoided (outcome delivered_internal) and pushes the simulator got.
#
#   benches/channel.sh                     # defaults below, ~1-2 minutes
#   CLIENTS=2000 benches/channel.sh
#
# Needs: python3, jq, curl. Each process holds a socket per client: the open-files limit is
# raised to the hard limit, which must exceed CLIENTS (plus a few hundred).
set -euo pipefail
cd "$(dirname "$0")/.."

CLIENTS=${CLIENTS:-10000}           # channel clients = identities
MAX_SECONDS=${MAX_SECONDS:-15}      # phase 1: as fast as possible (max concurrency)
CONCURRENCY=${CONCURRENCY:-64}
FIXED_SECONDS=${FIXED_SECONDS:-20}  # phase 2: fixed rate at half of phase 1's
RATE=${RATE:-}                      # phase 2 at this rate instead (A/B of two builds at one rate)
BIN=${BIN:-}

for tool in python3 jq curl; do
  command -v "$tool" >/dev/null || { echo "channel: $tool is missing" >&2; exit 1; }
done
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -le $((CLIENTS + 500)) ]; then
  echo "channel: the open-files hard limit ($hard) is too low for $CLIENTS clients" >&2
  exit 1
fi
ulimit -n "$hard"
if [ -z "$BIN" ]; then
  cargo build --release --locked --bin ringcast >&2
  BIN="${CARGO_TARGET_DIR:-target}/release/ringcast"
fi

work=$(mktemp -d /tmp/ringcast-channel.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "channel: timed out: $1" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
sim_port=$(free_port); sim_h1_port=$(free_port); node_port=$(free_port)

"$BIN" simulate --listen "127.0.0.1:$sim_port" --http1-listen "127.0.0.1:$sim_h1_port" >"$work/sim.log" 2>&1 &
pids+=($!)
wait_for "grep -q listening $work/sim.log"

# The development default on its embedded store (one node: nothing leaves the process),
# APNs pointed at this simulator, logging only warnings.
RINGCAST__SERVER__LISTEN="127.0.0.1:$node_port" \
RINGCAST__REGISTRY__EMBEDDED__PATH="$work/registry.redb" \
RINGCAST__PROVIDERS__APNS__PRODUCTION_URL="https://127.0.0.1:$sim_port" \
RINGCAST__PROVIDERS__APNS__SANDBOX_URL="https://127.0.0.1:$sim_port" \
RINGCAST__LOG__LEVEL=warn \
  "$BIN" serve >"$work/node.log" 2>&1 &
node_pid=$!
pids+=($node_pid)
wait_for "curl -sf http://127.0.0.1:$node_port/readyz"

common=(--target "http://127.0.0.1:$node_port" --http h2c --connections 4 --quiet
        --identities "$CLIENTS" --devices 1 --platforms apns=1 --prefix "channel-$CLIENTS")

"$BIN" loadgen "${common[@]}" --calls 1 --out "$work/register" >"$work/register.txt"

# The CPU each side used over a phase, in cores: the node from /proc, the load generator
# from time(1) (its whole run, connecting the clients included). On two shared cores a
# load generator near one full core delays its own reads, which the ring latency includes.
node_ticks() { awk '{print $14 + $15}' "/proc/$node_pid/stat"; }
hz=$(getconf CLK_TCK)
phase() { # name, loadgen arguments...
  local name=$1; shift
  local ticks_before started
  ticks_before=$(node_ticks); started=$(date +%s.%N)
  /usr/bin/time -f '%e %U %S' -o "$work/$name.time" \
    "$BIN" loadgen "${common[@]}" --reuse --channel-clients "$CLIENTS" "$@" \
    --out "$work/$name" >"$work/$name.txt"
  python3 -c "
elapsed = $(date +%s.%N) - $started
node = ($(node_ticks) - $ticks_before) / $hz / elapsed
wall, user, system = map(float, open('$work/$name.time').read().split()[-3:])
print(f'{node:.2f} {(user + system) / wall:.2f}')" >"$work/$name.cpu"
}

# Phase 1: as fast as possible, every callee's device connected and acking.
phase max --max-concurrency "$CONCURRENCY" --duration "$MAX_SECONDS"
max_rate=$(jq .calls_per_second "$work/max/report.json")
half=${RATE:-$(python3 -c "print(max(1, round($max_rate/2)))")}

# Phase 2: open loop at half that rate.
curl -s "http://127.0.0.1:$node_port/metrics" >"$work/before-half.prom"
phase half --rate "$half" --duration "$FIXED_SECONDS"
curl -s "http://127.0.0.1:$node_port/metrics" >"$work/after-half.prom"
peak_rss_kb=$(awk '/^VmHWM:/{print $2}' "/proc/$node_pid/status")

# Memory per connection is phase 1's: the node is fresh then (only registrations held); by
# phase 2 the allocator keeps phase 1's peak, and the delta around connecting means nothing.
row() { # name, phase
  jq -r --arg name "$1" --arg phase "$2" '
    [$name, (.channel.connected|tostring),
     (if $phase == "max" then ((.channel.rss_per_connection_bytes / 1024 * 100 | floor) / 100 | tostring) else "-" end),
     (.calls_per_second|tostring),
     (.channel.ring_latency.p50_ms|tostring), (.channel.ring_latency.p99_ms|tostring),
     (.channel.ring_latency.p999_ms|tostring), (.api_latency.p99_ms|tostring),
     (.channel.pushes_avoided|tostring), ((.calls_offered - .calls_ok)|tostring),
     $cpu[0], $cpu[1]]
    | "| " + join(" | ") + " |"' --argjson cpu "$(jq -Rc 'split(" ")' "$work/$2.cpu")" "$work/$2/report.json"
}
echo
echo "load average at the start: $load_start"
echo "machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs), $(awk '/MemTotal/{print int($2/1024)" MiB"}' /proc/meminfo)"
echo "scenario: $CLIENTS identities, one APNs device each, each connected to the channel as that device and acking; h2c ×4, ?wait=true"
echo
echo "| phase | clients connected | KiB per idle connection | calls/s ok | channel ring p50 ms | p99 ms | p99.9 ms | API p99 ms | pushes avoided | failed calls | node cores | load generator cores |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
row "max (concurrency $CONCURRENCY, ${MAX_SECONDS}s)" max
row "fixed $half/s (${RATE:+given, not }half of max, ${FIXED_SECONDS}s)" half
echo
# The node's side of the ring at half rate: offer over the channel → ack read
# (ringcast_channel_ack_seconds over phase 2, upper bucket bound of p50 and p99). Against the
# client's ring latency it says whether the tail comes before the offer (API, router, store)
# or after it (the session's write, the client's read and ack).
ack_wait=$(python3 - "$work/before-half.prom" "$work/after-half.prom" <<'PY'
import re, sys
def buckets(path):
    found = {}
    for line in open(path):
        m = re.match(r'ringcast_channel_ack_seconds_bucket\{le="([^"]+)"\} (\S+)', line)
        if m:
            found[float(m.group(1))] = float(m.group(2))
    return found
before, after = buckets(sys.argv[1]), buckets(sys.argv[2])
grown = sorted((le, after[le] - before.get(le, 0.0)) for le in after)
total = grown[-1][1] if grown else 0.0
def quantile(q):
    return next((le for le, count in grown if count >= q * total), float("inf"))
print(f"p50 ≤ {quantile(0.5) * 1000:g} ms, p99 ≤ {quantile(0.99) * 1000:g} ms over {int(total)} acks" if total else "no acks")
PY
)
echo "node-side ack wait at half rate (offer → ack): $ack_wait"
echo "node peak RSS: $((peak_rss_kb / 1024)) MiB; pushes the simulator accepted: $(curl -sk "https://127.0.0.1:$sim_port/stats" | jq -c '.accepted_by_service // .' 2>/dev/null || echo '?')"
for phase in max half; do
  report="$work/$phase/report.json"
  echo "$phase: outcomes $(jq -c .outcomes "$report"), channel $(jq -c '.channel | {rings_received, acks_sent, dropped, connect_errors, connect_seconds, rss_before_bytes, rss_connected_bytes}' "$report")"
done
