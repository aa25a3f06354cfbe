#!/usr/bin/env bash
# The end-to-end benchmark (issue 8): on one machine, a Redis, the push-service simulator, a
# node (release build, Redis store) and the load generator; then h2load against the same
# simulator as the ceiling of what this machine can push. Prints one table.
#
#   benches/e2e.sh                     # defaults below, ~1-2 minutes
#   IDENTITIES=20000 MAX_SECONDS=30 benches/e2e.sh
#
# Needs: redis-server, h2load (Debian nghttp2-client), openssl, python3, jq, curl. Run from anywhere;
# it works in the repository: the node is the development default (config/ringcast.toml) moved
# to this run's ports, so all four providers deliver to the simulator, which serves config/dev's
# certificate and accepts the demo apps' development credentials; the load generator registers
# each Web Push device with a subscription it makes on the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."

IDENTITIES=${IDENTITIES:-10000}     # callees
DEVICES=${DEVICES:-1,5}             # devices per callee, cycled: 1,5 → 3 on average; 1 or 5 alone
MAX_SECONDS=${MAX_SECONDS:-15}      # phase 1: as fast as possible (max concurrency)
CONCURRENCY=${CONCURRENCY:-64}
FIXED_SECONDS=${FIXED_SECONDS:-15}  # phase 2: fixed rate at half of phase 1's
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-10}  # phase 3: fixed rate at twice phase 1's (0 = skip)
H2LOAD_REQUESTS=${H2LOAD_REQUESTS:-100000}
PLATFORMS=${PLATFORMS:-apns=2,fcm=1,wns=1,webpush=1}
BIN=${BIN:-}

for tool in redis-server redis-cli h2load openssl python3 jq curl; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is missing" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
  cargo build --release --locked --bin ringcast >&2
  BIN="${CARGO_TARGET_DIR:-target}/release/ringcast"
fi

work=$(mktemp -d /tmp/ringcast-e2e.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq 100); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "e2e: timed out: $1" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
redis_port=$(free_port); sim_port=$(free_port); sim_h1_port=$(free_port); node_port=$(free_port)

# Redis: no persistence; listpack values up to 128 bytes (README "Stores").
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --hash-max-listpack-value 128 --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
wait_for "redis-cli -p $redis_port ping"

"$BIN" simulate --listen "127.0.0.1:$sim_port" --http1-listen "127.0.0.1:$sim_h1_port" --record "$work/pushes.jsonl" >"$work/sim.log" 2>&1 &
sim_pid=$!
pids+=($sim_pid)
wait_for "grep -q listening $work/sim.log"

# The development default, on Redis, every provider pointed at this simulator (the default
# says 127.0.0.1:8443), logging only warnings (a log line per call is measurable at these
# rates). The FCM token endpoint is the service account's token_uri: a copy names this
# simulator's HTTP/1.1-only listener, where the token endpoints are (as Google's and
# Microsoft's speak only HTTP/1.1).
sim="https://127.0.0.1:$sim_port"
sim_h1="https://127.0.0.1:$sim_h1_port"
jq --arg uri "$sim_h1/token" '.token_uri = $uri' config/dev/fcm-service-account.json \
  >"$work/fcm-service-account.json"
RINGCAST__SERVER__LISTEN="127.0.0.1:$node_port" \
RINGCAST__REGISTRY__STORE=redis \
RINGCAST__REGISTRY__REDIS__URL="redis://127.0.0.1:$redis_port" \
RINGCAST__PROVIDERS__APNS__PRODUCTION_URL="$sim" \
RINGCAST__PROVIDERS__APNS__SANDBOX_URL="$sim" \
RINGCAST__PROVIDERS__FCM__BASE_URL="$sim" \
RINGCAST__TENANTS__DEMO__APPS__ANDROID__SERVICE_ACCOUNT__FILE="$work/fcm-service-account.json" \
RINGCAST__PROVIDERS__WNS__TOKEN_URL="$sim_h1/wns/token" \
RINGCAST__PROVIDERS__WNS__CHANNEL_BASE_URL="$sim" \
RINGCAST__WEBPUSH__ALLOWED_HOSTS="[127.0.0.1:$sim_port]" \
RINGCAST__WEBPUSH__ALLOWED_PRIVATE_ADDRESSES="[127.0.0.1:$sim_port]" \
RINGCAST__LOG__LEVEL=warn \
  "$BIN" serve >"$work/node.log" 2>&1 &
node_pid=$!
pids+=($node_pid)
wait_for "curl -sf http://127.0.0.1:$node_port/readyz"

common=(--target "http://127.0.0.1:$node_port" --http h2c --connections 4 --quiet
        --identities "$IDENTITIES" --devices "$DEVICES" --platforms "$PLATFORMS" --prefix "e2e-${DEVICES//,/-}"
        --end-early 0.1 --answered-elsewhere 0.1 --simulator-record "$work/pushes.jsonl"
        --webpush-subscribe "$sim/wp/subscribe")

# Registration, with Redis memory before and after.
mem_before=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/{print $2+0}')
"$BIN" loadgen "${common[@]}" --calls 1 --out "$work/register" >"$work/register.txt"
mem_after=$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/{print $2+0}')
devices=$(jq .registration.devices "$work/register/report.json")
reg_seconds=$(jq .registration.seconds "$work/register/report.json")

# Where the box's CPU goes during a phase, in cores: the node, the simulator, Redis, and the
# whole box (the load generator is most of the rest). Everything shares 2 cores, so the
# simulator's work (it decrypts every Web Push body, as the browser would) limits the node.
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
box_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)
ticks() { echo "$(process_ticks "$node_pid") $(process_ticks "$sim_pid") $(process_ticks "$redis_pid") $(box_ticks) $(date +%s.%N)"; }
# Two ticks readings → "node simulator redis box" in cores.
cores() {
  python3 - "$1" "$2" "$hz" <<'PY'
import sys
b, a, hz = [float(x) for x in sys.argv[1].split()], [float(x) for x in sys.argv[2].split()], float(sys.argv[3])
print(" ".join(str(round((a[i] - b[i]) / hz / (a[4] - b[4]), 2)) for i in range(4)))
PY
}
# phase name, then the load generator's arguments; leaves $work/<phase>.cpu as
# "node simulator redis box" cores.
phase() {
  local name=$1; shift
  local before after
  before=$(ticks)
  "$BIN" loadgen "${common[@]}" --reuse "$@" --out "$work/$name" >"$work/$name.txt"
  after=$(ticks)
  cores "$before" "$after" >"$work/$name.cpu"
}

# Phase 1: as fast as possible with CONCURRENCY calls in flight.
phase max --max-concurrency "$CONCURRENCY" --duration "$MAX_SECONDS"
max_rss_kb=$(awk '/^VmHWM:/{print $2}' "/proc/$node_pid/status")
max_rate=$(jq .calls_per_second "$work/max/report.json")
half=$(python3 -c "print(max(1, round($max_rate/2)))")

# Phase 2: open loop at half that rate.
phase half --rate "$half" --duration "$FIXED_SECONDS"

# Phase 3: open loop at twice the maximum: rings must keep flowing, nothing may crash.
if [ "$OVERLOAD_SECONDS" != 0 ]; then
  double=$(python3 -c "print(round($max_rate*2))")
  phase double --rate "$double" --duration "$OVERLOAD_SECONDS"
  kill -0 "$node_pid" 2>/dev/null && node_alive=yes || node_alive=NO
fi
peak_rss_kb=$(awk '/^VmHWM:/{print $2}' "/proc/$node_pid/status")

# The ceiling: h2load sending valid voip pushes to the same simulator with the dev key. APNs
# only: a Web Push request costs the simulator far more (it decrypts every body, as the
# browser would), so with Web Push in the mix the ratio to this ceiling reads low.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
header=$(printf '{"alg":"ES256","kid":"DEVKEY1234"}' | b64url)
claims=$(printf '{"iss":"DEVTEAM123","iat":%s}' "$now" | b64url)
der_sig=$(printf '%s.%s' "$header" "$claims" | openssl dgst -sha256 -sign config/dev/apns-dev-key.p8 | openssl base64 -A)
# ES256 wants r||s (32 bytes each), openssl gives DER.
sig=$(python3 - "$der_sig" <<'PY'
import base64, sys
der = base64.b64decode(sys.argv[1])
def integer(buf, i):
    assert buf[i] == 2; n = buf[i + 1]; return buf[i + 2:i + 2 + n], i + 2 + n
r, i = integer(der, 2); s, _ = integer(der, i)
raw = r.lstrip(b"\0").rjust(32, b"\0") + s.lstrip(b"\0").rjust(32, b"\0")
print(base64.urlsafe_b64encode(raw).decode().rstrip("="))
PY
)
printf '{"aps":{},"ringcast":{"v":1,"type":"incoming_call","call_id":"h2load","caller_id":"+15550100","caller_name":"Load","video":false,"expires_at":"2099-01-01T00:00:00.000Z"}}' >"$work/push.json"
before=$(ticks)
h2load -n "$H2LOAD_REQUESTS" -c 4 -m 100 -t 1 -d "$work/push.json" \
  -H "authorization: bearer $header.$claims.$sig" -H 'apns-topic: com.example.ringcast.voip' \
  -H 'apns-push-type: voip' -H 'apns-priority: 10' -H "apns-expiration: $((now + 45))" \
  "https://127.0.0.1:$sim_port/3/device/$(printf 'a%.0s' $(seq 64))" >"$work/h2load.txt" 2>&1
after=$(ticks)
read -r _ h2load_sim_cpu _ h2load_box_cpu < <(cores "$before" "$after")
ceiling=$(awk '/^finished in/{gsub(",","");print $4}' "$work/h2load.txt")
h2load_ok=$(awk '/^status codes:/{print $3}' "$work/h2load.txt")

row() { # name, phase
  local node sim redis box
  read -r node sim redis box <"$work/$2.cpu"
  jq -r --arg name "$1" --arg cpu "$node" --arg others "$sim / $redis / $box" --arg ceiling "$ceiling" '
    [$name, (.calls_per_second|tostring), (.pushes_per_second|tostring),
     (.delivery_latency.p50_ms|tostring), (.delivery_latency.p99_ms|tostring),
     (.api_latency.p99_ms|tostring), $cpu, $others,
     ((100 * .pushes_per_second / ($ceiling|tonumber) | floor | tostring) + " %"),
     ((.calls_offered - .calls_ok)|tostring)] | "| " + join(" | ") + " |"' "$work/$2/report.json"
}
per_reg=$(python3 -c "print(round(($mem_after-$mem_before)/$devices))")
echo
echo "load average at the start: $load_start"
echo "machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs), $(awk '/MemTotal/{print int($2/1024)" MiB"}' /proc/meminfo); Redis $(redis-server --version | awk '{print $3}' | tr -d v=)"
echo "scenario: $IDENTITIES identities × devices $DEVICES ($devices devices; platforms $PLATFORMS), h2c ×4, ?wait=true, 10 % cancelled, 10 % answered elsewhere"
echo
echo "| phase | calls/s ok | pushes/s | delivery p50 ms | delivery p99 ms | API p99 ms | node CPU (cores) | simulator / Redis / box CPU | pushes/s ÷ h2load | failed calls |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row "max (concurrency $CONCURRENCY, ${MAX_SECONDS}s)" max
row "fixed $half/s (half of max, ${FIXED_SECONDS}s)" half
[ "$OVERLOAD_SECONDS" != 0 ] && row "fixed $double/s (twice max, ${OVERLOAD_SECONDS}s)" double
echo "| h2load ceiling (-c 4 -m 100) | - | $ceiling | - | - | - | - | $h2load_sim_cpu / - / $h2load_box_cpu | 100 % | $h2load_ok ok of $H2LOAD_REQUESTS |"
echo
echo "node peak RSS: $((max_rss_kb / 1024)) MiB up to the maximum rate, $((peak_rss_kb / 1024)) MiB after every phase; Redis: $per_reg B per registration ($devices registrations, used_memory $mem_before → $mem_after B; registered in ${reg_seconds} s, errors $(jq -c .registration.errors "$work/register/report.json"))"
for phase in max half double; do
  [ -f "$work/$phase/report.json" ] || continue
  report="$work/$phase/report.json"
  echo "$phase: outcomes $(jq -c .outcome_classes "$report"), errors $(jq -c .errors "$report"), pushes by type $(jq -c .pushes_by_type "$report")"
  # Every platform of the mix must be delivered: the node's outcomes and the simulator's
  # record, side by side.
  echo "$phase: delivered by platform $(jq -c '.outcomes_by_platform | map_values(.delivered // 0)' "$report"), pushes by service $(jq -c .pushes_by_service "$report")"
done
[ "$OVERLOAD_SECONDS" != 0 ] && echo "node alive after the overload phase: $node_alive"
echo "load average at the end (other work on this machine skews every number): $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reports: $work/{max,half,double}/ (report.json, report.svg, summary.txt)"
trap - EXIT
cleanup
