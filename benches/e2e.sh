#!/usr/bin/env bash
# The end-to-end benchmark (issues 8 and 18): on one machine, a Redis, the push-service
# simulator, a node (release build, Redis store) and the load generator; then h2load (the
# ceiling of what this machine can push) and @parse/node-apn (the peer: what a Node.js team
# would use) against the same simulator. Prints one table, with every ratio from this run.
#
#   benches/e2e.sh                     # defaults below, ~2 minutes
#   PLATFORMS=apns=1 DEVICES=5 IDENTITIES=4000 benches/e2e.sh   # issue 18's shape
#   REDIS_MASTERS=3 benches/e2e.sh     # over a Redis Cluster of 3 masters (the carriers' store);
#                                      # RINGCAST__REGISTRY__REDIS__CLIENT=redis-rs: the crate's client
#
# Phases: an open-loop ramp finds the knee (the highest rate whose ring delivery p99 stays
# under KNEE_P99_MS, src/loadgen/knee.rs); then fixed rates at the knee, at half of it and at
# twice it. Per phase: the node's, simulator's, Redis's and box's CPU in cores over the load
# generator's drive, the node's CPU per push (/proc/<pid>/stat over the phase ÷ pushes the
# simulator accepted) and the kernel's share of it, its RSS (VmRSS sampled through the
# phase), the load generator's own CPU
# over its drive (from its report) and the node's /metrics as the phase ends ($work/<phase>.metrics).
#
# Needs: redis-server, h2load (Debian nghttp2-client), openssl, python3, jq, curl; node and npm
# for the peer (NODE_APN=0 skips it; NODE_APN_DIR=<dir> reuses a folder where
# `npm install @parse/node-apn@8` ran). Run from anywhere;
# it works in the repository: the node is the development default (config/ringcast.toml) moved
# to this run's ports, so all four providers deliver to the simulator, which serves config/dev's
# certificate and accepts the demo apps' development credentials; the load generator registers
# each Web Push device with a subscription it makes on the simulator.
set -euo pipefail
cd "$(dirname "$0")/.."

IDENTITIES=${IDENTITIES:-10000}     # callees
DEVICES=${DEVICES:-1,5}             # devices per callee, cycled: 1,5 → 3 on average; 1 or 5 alone
RAMP_FROM=${RAMP_FROM:-200}         # phase 1: open-loop ramp, calls/s from → to
RAMP_TO=${RAMP_TO:-12000}
RAMP_SECONDS=${RAMP_SECONDS:-30}
KNEE_P99_MS=${KNEE_P99_MS:-10}      # the knee: ring delivery p99 under this
KNEE_SECONDS=${KNEE_SECONDS:-10}    # phase 2: fixed rate at the knee
KNEE_TRIES=${KNEE_TRIES:-3}         # phase 2 runs again this often in all, stepped down, until it holds
KNEE_STEP=${KNEE_STEP:-0.9}         # each step down: the rate times this
FIXED_SECONDS=${FIXED_SECONDS:-15}  # phase 3: fixed rate at half the knee
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-10}  # phase 4: fixed rate at twice the knee (0 = skip)
H2LOAD_REQUESTS=${H2LOAD_REQUESTS:-100000}
H2LOAD_ROUNDS=${H2LOAD_ROUNDS:-3}   # the ceiling is the median of this many h2load runs
NODE_APN=${NODE_APN:-1}             # 0: no node-apn peer
NODE_APN_PUSHES=${NODE_APN_PUSHES:-50000}
PLATFORMS=${PLATFORMS:-apns=2,fcm=1,wns=1,webpush=1}
KNEE=${KNEE:-}                      # a rate (calls/s): no ramp, the fixed phases at it (A/B runs)
WARMUP_SECONDS=${WARMUP_SECONDS:-3} # with KNEE: an unmeasured warm-up at half of it first (0 = none)
CALLGRIND=${CALLGRIND:-0}           # 1: instead of the phases, the node's instructions per push
CALLGRIND_RATE=${CALLGRIND_RATE:-10}        # calls/s of the counted phase (the node runs ~50× slower)
CALLGRIND_SECONDS=${CALLGRIND_SECONDS:-15}
CALLGRIND_IDLE_SECONDS=${CALLGRIND_IDLE_SECONDS:-5}  # counted first with no calls: the node's fixed cost
CALLGRIND_CACHE=${CALLGRIND_CACHE:-0}       # 1: also simulate the caches, instruction misses per push
REDIS_HZ=${REDIS_HZ:-100}           # Redis's `hz` as README "Stores" recommends (Redis's default: 10)
REDIS_MASTERS=${REDIS_MASTERS:-0}   # ≥ 3: a Redis Cluster of that many masters on this box, not one server
SYSCALLS=${SYSCALLS:-0}             # 1: the node's syscalls per call in each phase (perf stat, tracepoints)
PERF=${PERF:-0}                     # 1: the node's cycles by function in each phase (perf record)
PERF_HZ=${PERF_HZ:-999}             # its samples per second per thread
PERF_TOP=${PERF_TOP:-15}            # how many functions each phase prints
BIN=${BIN:-}
TOOLS_BIN=${TOOLS_BIN:-}         # the simulator and load generator from this build instead of BIN
SIM_PROFILE=${SIM_PROFILE:-}       # a simulator profile (TOML) instead of its defaults
PAUSE_SECONDS=${PAUSE_SECONDS:-10}  # the box's own pauses measured first, this long (0 = skip)

tools=(redis-server redis-cli h2load openssl python3 jq curl)
[ "$NODE_APN" = 0 ] || [ "$CALLGRIND" != 0 ] || tools+=(node npm)
[ "$CALLGRIND" = 0 ] || tools+=(valgrind callgrind_control)
[ "$SYSCALLS" = 0 ] && [ "$PERF" = 0 ] || tools+=(perf)
for tool in "${tools[@]}"; do
  command -v "$tool" >/dev/null || { echo "e2e: $tool is missing" >&2; exit 1; }
done
if [ -z "$BIN" ]; then
  cargo build --release --locked --bin ringcast >&2
  BIN="${CARGO_TARGET_DIR:-target}/release/ringcast"
fi
# A/B runs of two builds keep the simulator and the load generator of one (TOOLS_BIN), so that
# only the node differs: both share the box's two cores with it.
TOOLS_BIN=${TOOLS_BIN:-$BIN}

work=$(mktemp -d /tmp/ringcast-e2e.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
# The peer, installed before anything is measured (npm's own CPU would skew the box).
if [ "$NODE_APN" != 0 ] && [ "$CALLGRIND" = 0 ] && [ -z "${NODE_APN_DIR:-}" ]; then
  NODE_APN_DIR="$work/node-apn"
  mkdir -p "$NODE_APN_DIR"
  (cd "$NODE_APN_DIR" && npm install --silent --no-audit --no-fund @parse/node-apn@8 >&2)
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { for _ in $(seq "${2:-100}"); do eval "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "e2e: timed out: $1" >&2; exit 1; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
# The box's own pauses (benches/pauses.py: the host stopping a virtual CPU), measured before
# anything starts: the floor under every p99 below. PAUSE_SECONDS=0 skips it.
pauses="not measured"
[ "$PAUSE_SECONDS" = 0 ] || [ "$CALLGRIND" != 0 ] || pauses=$(python3 benches/pauses.py "$PAUSE_SECONDS")
redis_port=$(free_port); sim_port=$(free_port); sim_h1_port=$(free_port); node_port=$(free_port)

# Redis: no persistence; listpack values up to 128 bytes and hz 100 (README "Stores").
# Its latency monitor records every event over 5 ms (printed at the end: a stall of Redis
# shows there, not only as the node's latency). With REDIS_MASTERS, that many such servers
# joined into a cluster (no replicas); every Redis figure below is their sum.
redis_ports=("$redis_port")
cluster_args=()
if [ "$REDIS_MASTERS" != 0 ]; then
  # A cluster node also listens on its port + 10,000 (the cluster bus): both must be free.
  cluster_port() { python3 -c '
import socket
while True:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    if port <= 55535:
        try:
            socket.socket().bind(("127.0.0.1", port + 10000)); print(port); break
        except OSError:
            pass
'; }
  redis_ports=()
  for _ in $(seq "$REDIS_MASTERS"); do redis_ports+=("$(cluster_port)"); done
  redis_port=${redis_ports[0]}
  cluster_args=(--cluster-enabled yes --cluster-config-file nodes.conf)
fi
redis_pids=()
for port in "${redis_ports[@]}"; do
  mkdir -p "$work/redis-$port"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --hash-max-listpack-value 128 --latency-monitor-threshold 5 --hz "$REDIS_HZ" \
    "${cluster_args[@]}" --dir "$work/redis-$port" >"$work/redis-$port.log" 2>&1 &
  redis_pids+=($!)
  pids+=($!)
  wait_for "redis-cli -p $port ping"
done
if [ "$REDIS_MASTERS" != 0 ]; then
  redis-cli --cluster create $(printf '127.0.0.1:%s ' "${redis_ports[@]}") --cluster-yes \
    >"$work/cluster-create.log" 2>&1
  wait_for "redis-cli -p $redis_port cluster info | grep -q cluster_state:ok"
  nodes=$(printf '"redis://127.0.0.1:%s",' "${redis_ports[@]}")
  store=(RINGCAST__REGISTRY__STORE=redis-cluster "RINGCAST__REGISTRY__REDIS__NODES=[${nodes%,}]")
else
  store=(RINGCAST__REGISTRY__STORE=redis "RINGCAST__REGISTRY__REDIS__URL=redis://127.0.0.1:$redis_port")
fi
# Each Redis's INFO <section> lines, every server's after another.
redis_info() { for port in "${redis_ports[@]}"; do redis-cli -p "$port" info "$1" | tr -d '\r'; done; }
redis_memory() { redis_info memory | awk -F: '/^used_memory:/{sum += $2} END{print sum + 0}'; }

"$TOOLS_BIN" simulate --listen "127.0.0.1:$sim_port" --http1-listen "127.0.0.1:$sim_h1_port" --record "$work/pushes.jsonl" \
  ${SIM_PROFILE:+--profile "$SIM_PROFILE"} >"$work/sim.log" 2>&1 &
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
# With CALLGRIND the node runs under callgrind, counting nothing until told to (start-up and
# registration are not what is measured, and run ~5× faster uninstrumented).
node_wrap=()
[ "$CALLGRIND" = 0 ] || node_wrap=(valgrind --tool=callgrind --instr-atstart=no
  --callgrind-out-file="$work/callgrind.out")
# CALLGRIND_CACHE=1: callgrind also runs the instructions through a model of this CPU's caches.
# Code layout (PGO, BOLT) changes how often a push misses the instruction cache far more than
# how many instructions it runs, and the model counts those misses as repeatably.
[ "$CALLGRIND" = 0 ] || [ "$CALLGRIND_CACHE" = 0 ] || node_wrap+=(--cache-sim=yes)
env "${store[@]}" \
RINGCAST__SERVER__LISTEN="127.0.0.1:$node_port" \
RINGCAST__PROVIDERS__APNS__PRODUCTION_URL="$sim" \
RINGCAST__PROVIDERS__APNS__SANDBOX_URL="$sim" \
RINGCAST__PROVIDERS__FCM__BASE_URL="$sim" \
RINGCAST__TENANTS__DEMO__APPS__ANDROID__SERVICE_ACCOUNT__FILE="$work/fcm-service-account.json" \
RINGCAST__PROVIDERS__WNS__TOKEN_URL="$sim_h1/wns/token" \
RINGCAST__PROVIDERS__WNS__CHANNEL_BASE_URL="$sim" \
RINGCAST__WEBPUSH__ALLOWED_HOSTS="[127.0.0.1:$sim_port]" \
RINGCAST__WEBPUSH__ALLOWED_PRIVATE_ADDRESSES="[127.0.0.1:$sim_port]" \
RINGCAST__LOG__LEVEL=warn \
  "${node_wrap[@]}" "$BIN" serve >"$work/node.log" 2>&1 &
node_pid=$!
pids+=($node_pid)
wait_for "curl -sf http://127.0.0.1:$node_port/readyz" 600

common=(--target "http://127.0.0.1:$node_port" --http h2c --connections 4 --quiet
        --identities "$IDENTITIES" --devices "$DEVICES" --platforms "$PLATFORMS" --prefix "e2e-${DEVICES//,/-}"
        --end-early 0.1 --answered-elsewhere 0.1 --simulator-record "$work/pushes.jsonl"
        --webpush-subscribe "$sim/wp/subscribe")

# Registration, with Redis memory before and after.
mem_before=$(redis_memory)
"$TOOLS_BIN" loadgen "${common[@]}" --calls 1 --out "$work/register" >"$work/register.txt"
mem_after=$(redis_memory)
devices=$(jq .registration.devices "$work/register/report.json")
reg_seconds=$(jq .registration.seconds "$work/register/report.json")

# CALLGRIND=1: the node's instructions per push. Its CPU seconds per push move with whatever
# else runs on the machine (cache misses, wake-ups); instruction counts do not. A warm-up at
# CALLGRIND_RATE uninstrumented, then two counted windows, each its own dump: the node idle
# for CALLGRIND_IDLE_SECONDS (timers, pings, sweeps: what it costs with no calls), then one
# phase at CALLGRIND_RATE. Per push: the phase's total instructions (every thread, idle time
# included) ÷ the pushes the simulator accepted, and the same net of the idle rate over the
# phase's duration (at 10 calls/s the fixed cost is a large share; at the knee it is not).
if [ "$CALLGRIND" != 0 ]; then
  "$TOOLS_BIN" loadgen "${common[@]}" --reuse --rate "$CALLGRIND_RATE" --duration 3 --out "$work/warm" >/dev/null
  callgrind_control --instr=on "$node_pid" >/dev/null
  idle_start=$(date +%s.%N)
  sleep "$CALLGRIND_IDLE_SECONDS"
  callgrind_control --dump=idle "$node_pid" >/dev/null
  idle_seconds=$(python3 -c "import time; print(time.time() - $idle_start)")
  phase_start=$(date +%s.%N)
  "$TOOLS_BIN" loadgen "${common[@]}" --reuse --rate "$CALLGRIND_RATE" --duration "$CALLGRIND_SECONDS" \
    --out "$work/counted" >"$work/counted.txt"
  callgrind_control --dump=phase "$node_pid" >/dev/null
  phase_seconds=$(python3 -c "import time; print(time.time() - $phase_start)")
  # A dump states its total once (`totals:` at the end); the dumps are numbered in order.
  # event NAME DUMP: that event's total in the dump (Ir: instructions; with the cache model,
  # I1mr and ILmr: first- and last-level instruction cache misses), 0 when not counted.
  event() {
    awk -v name="$1" '/^events:/ { for (i = 2; i <= NF; i++) if ($i == name) col = i }
      /^totals:/ { print (col ? $col : 0) + 0 }' "$work/callgrind.out.$2"
  }
  idle_instructions=$(event Ir 1)
  instructions=$(event Ir 2)
  pushes=$(jq '[.pushes_by_service[]] | add // 0' "$work/counted/report.json")
  # SHA-256 in software, apart: valgrind hides the CPU's SHA extensions from the sha2 crate
  # (src/sha256.rs), so it counts ~3,500 instructions a block that the CPU does in ~30 ns.
  # By function (compress256) or by the sha2 crate's source file: the PGO build inlines the
  # compression into its callers, where the function's name finds none of it. There the
  # rotations inlined from core are not counted (filed under core's source): a lower bound.
  sha256=$(callgrind_annotate --auto=no --inclusive=no --threshold=100 "$work/callgrind.out.2" 2>/dev/null |
    awk '/sha2::sha256::compress256|\/sha2-[^\/]*\/src\/sha256\// { gsub(",", "", $1); sum += $1 }
      END { print sum + 0 }')
  # Heap allocations: the calls into the allocator (mimalloc's entry points, which every Rust
  # allocation and reallocation goes through), read off each dump's call records.
  allocations() { python3 benches/alloc_sites.py "$work/callgrind.out.$1"; }
  idle_allocations=$(allocations 1)
  phase_allocations=$(allocations 2)
  echo
  echo "load average at the start: $load_start"
  echo "scenario: $IDENTITIES identities × devices $DEVICES ($devices devices; platforms $PLATFORMS), h2c ×4, ?wait=true, 10 % cancelled, 10 % answered elsewhere"
  echo "node under callgrind, ${CALLGRIND_RATE} calls/s for ${CALLGRIND_SECONDS} s: $(jq .calls_ok "$work/counted/report.json") calls ok, $pushes pushes accepted, errors $(jq -c .errors "$work/counted/report.json")"
  python3 - "$idle_seconds" "$phase_seconds" "$pushes" "$sha256" "$CALLGRIND_CACHE" \
    "$idle_instructions" "$instructions" "$idle_allocations" "$phase_allocations" \
    "$(event I1mr 1)" "$(event I1mr 2)" "$(event ILmr 1)" "$(event ILmr 2)" <<'PY'
import sys
idle_s, phase_s, pushes, sha256, cache, idle, total, idle_allocs, allocs, idle_i1, i1, idle_ll, ll = (
    float(a) for a in sys.argv[1:])
def net(idle_count, phase_count):
    """Per push, less what the node counts idle over the phase's duration."""
    return (phase_count - idle_count / idle_s * phase_s) / pushes
print(f"node idle: {idle / idle_s / 1e6:.2f} M instructions/s ({idle:.0f} in {idle_s:.1f} s)")
if pushes:
    print(f"node instructions per push: {total / pushes:.0f} ({total:.0f} in all over {phase_s:.1f} s)")
    print(f"node instructions per push net of idle: {net(idle, total):.0f}")
    print(f"  of which SHA-256 in software (valgrind hides the SHA extensions): {sha256 / pushes:.0f}")
    print(f"node heap allocations per push net of idle: {net(idle_allocs, allocs):.1f} ({allocs:.0f} in all)")
    if cache:
        print(f"node instruction cache misses per push net of idle (simulated): "
              f"first level {net(idle_i1, i1):.0f}, last level {net(idle_ll, ll):.1f}")
PY
  echo "where the phase's allocations come from (estimated per site: benches/alloc_sites.py), per push:"
  [ "$pushes" -gt 0 ] && python3 benches/alloc_sites.py "$work/callgrind.out.2" "$pushes" 15
  echo "where the phase's instructions go, by library (benches/callgrind_crates.py), per push:"
  [ "$pushes" -gt 0 ] && python3 benches/callgrind_crates.py "$work/callgrind.out.2" "$pushes" 12
  echo "callgrind files: $work/callgrind.out* (callgrind_annotate)"
  trap - EXIT
  cleanup
  exit 0
fi

# Where the box's CPU goes during a phase, in cores: the node, the simulator, Redis, and the
# whole box (the load generator is most of the rest). Everything shares 2 cores, so the
# simulator's work (it decrypts every Web Push body, as the browser would) limits the node.
process_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
box_ticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)
redis_ticks() { local sum=0; for pid in "${redis_pids[@]}"; do sum=$((sum + $(process_ticks "$pid"))); done; echo "$sum"; }
ticks() { echo "$(process_ticks "$node_pid") $(process_ticks "$sim_pid") $(redis_ticks) $(box_ticks) $(date +%s.%N)"; }
# Two ticks readings → "node simulator redis box" in cores, then the node's CPU seconds.
cores() {
  python3 - "$1" "$2" "$hz" <<'PY'
import sys
b, a, hz = [float(x) for x in sys.argv[1].split()], [float(x) for x in sys.argv[2].split()], float(sys.argv[3])
print(" ".join(str(round((a[i] - b[i]) / hz / (a[4] - b[4]), 2)) for i in range(4)), (a[0] - b[0]) / hz)
PY
}
# A phase's "node simulator redis box" in cores over the load generator's drive, not over the
# whole phase: after the drive the generator joins the simulator's record (seconds, in a long
# run) while the rest idles, which diluted every figure and added to the box's. The node,
# simulator and Redis idle outside the drive; the box's ticks lose the generator's CPU
# outside it (its whole life, from `times`, less its drive, from its report).
drive_cores() {
  python3 - "$(cat "$work/$1.ticks-before")" "$(cat "$work/$1.ticks-after")" "$hz" \
    "$work/$1.times" "$work/$1/report.json" <<'PY'
import json, re, sys
b, a, hz = [float(x) for x in sys.argv[1].split()], [float(x) for x in sys.argv[2].split()], float(sys.argv[3])
report = json.load(open(sys.argv[5]))
drive = report["drive_seconds"] or 1e-9
children = open(sys.argv[4]).read().splitlines()[1]  # `times`: the shell's line, its children's
generator_life = sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", children))
generator_drive = (report.get("generator_cpu_cores") or 0) * drive
spent = [(a[i] - b[i]) / hz for i in range(4)]
spent[3] -= max(0.0, generator_life - generator_drive) if generator_drive else 0.0
print(" ".join(str(round(x / drive, 2)) for x in spent))
PY
}
rss_kb() { awk '/^VmRSS:/{print $2}' "/proc/$node_pid/status"; }
# Redis's command counts ("cmdstat_<name> <calls>" lines): what each call costs the store.
redis_commands() { redis_info commandstats | sed -n 's/^\(cmdstat_[^:]*\):calls=\([0-9]*\),.*/\1 \2/p' | awk '{sum[$1] += $2} END{for (c in sum) print c, sum[c]}'; }
# The node's context switches so far, voluntary and not, over its threads: a thread that sleeps
# and is woken pays the kernel (and on a VM the hypervisor) each time, so switches per call
# measure the thread crossings a ring costs.
node_switches() { cat /proc/"$node_pid"/task/*/status 2>/dev/null | awk '/ctxt_switches/{s += $2} END{print s + 0}'; }
# The node's CPU so far as "user kernel" ticks: a share of kernel time that grows while the
# instructions per push fall says the next lever is fewer syscalls and wake-ups, not less code.
node_user_kernel() { awk '{print $14, $15}' "/proc/$node_pid/stat"; }
# SYSCALLS=1: the syscalls the node makes over a phase's drive, counted by perf stat from the
# kernel's tracepoints (all of them, the five a ring's I/O makes, the allocator's `madvise`
# and the threads' `futex` wake-ups). At moderate rates a third of the node's CPU is in the
# kernel; these say which writes and wake-ups it pays for.
syscall_events=raw_syscalls:sys_enter,syscalls:sys_enter_writev,syscalls:sys_enter_recvfrom,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_sendto,syscalls:sys_enter_write,syscalls:sys_enter_madvise,syscalls:sys_enter_futex
count_syscalls() {
  local name=$1 seconds=$2
  [ "$SYSCALLS" = 0 ] && return
  perf stat -x, -e "$syscall_events" -p "$node_pid" -o "$work/$name.syscalls" -- sleep "$seconds" >/dev/null 2>&1 &
  echo $! >"$work/$name.syscalls-pid"
}
# PERF=1: where the node's cycles go over a phase's drive, its own functions and the kernel's
# on its behalf, by `perf record` of its threads (no call graphs: each function's own samples).
# Callgrind's instructions (CALLGRIND=1) say what the code does and repeat from run to run;
# these say what it costs on this CPU: cache misses, and the kernel switching threads in and
# out, which no instruction count shows (docs/performance.md, "A push's request in one
# allocation"). The sampling is work of its own on the box: compare runs with the same PERF.
record_cycles() {
  local name=$1 seconds=$2
  [ "$PERF" = 0 ] && return
  perf record -F "$PERF_HZ" -p "$node_pid" -o "$work/$name.perf" -- sleep "$seconds" >/dev/null 2>&1 &
  echo $! >"$work/$name.perf-pid"
}
# phase name, then the load generator's arguments; leaves $work/<phase>.cpu as
# "node simulator redis box" cores and the node's CPU seconds, and $work/<phase>.rss as the
# node's highest VmRSS (KiB) sampled every 200 ms through the phase.
phase() {
  local name=$1; shift
  local before after sampler
  ( while kill -0 "$node_pid" 2>/dev/null; do rss_kb; sleep 0.2; done ) >"$work/$name.rss-samples" 2>/dev/null &
  sampler=$!
  redis_commands >"$work/$name.redis-before"
  node_switches >"$work/$name.switches-before"
  node_user_kernel >"$work/$name.user-kernel-before"
  before=$(ticks)
  local seconds
  seconds=$(python3 -c 'import sys; a = sys.argv[1:]; print(a[a.index("--duration") + 1] if "--duration" in a else 0)' "$@")
  count_syscalls "$name" "$seconds"
  record_cycles "$name" "$seconds"
  # In a subshell whose `times` gives the load generator's CPU over its whole life (its
  # only child), so its work after the drive (joining the simulator's record) can be taken
  # out of the box's figure.
  ( "$TOOLS_BIN" loadgen "${common[@]}" --reuse "$@" --out "$work/$name" >"$work/$name.txt"
    times >"$work/$name.times" )
  after=$(ticks)
  echo "$before" >"$work/$name.ticks-before"
  echo "$after" >"$work/$name.ticks-after"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  [ -f "$work/$name.syscalls-pid" ] && { wait "$(cat "$work/$name.syscalls-pid")" 2>/dev/null || true; }
  [ -f "$work/$name.perf-pid" ] && { wait "$(cat "$work/$name.perf-pid")" 2>/dev/null || true; }
  cores "$before" "$after" >"$work/$name.cpu"
  redis_commands >"$work/$name.redis-after"
  node_switches >"$work/$name.switches-after"
  node_user_kernel >"$work/$name.user-kernel-after"
  sort -n "$work/$name.rss-samples" | tail -1 >"$work/$name.rss"
  # The node's metrics as the phase ends (cumulative: diff two phases' files to read one).
  curl -s "http://127.0.0.1:$node_port/metrics" >"$work/$name.metrics" || true
  # Calls the node refused or still answers must not spill into the next phase.
  sleep 2
}

# Phase 1: the ramp, open loop, past the knee (unless KNEE names it: two builds compared at
# the same rates).
if [ -n "$KNEE" ]; then
  knee=$KNEE
  # Not measured: in a full run the ramp warms the node before its knee phase; here the knee
  # phase would start on a node idle since registration, and in about half of such runs its
  # first second had a 100-300 ms API p99 (the rest of the phase ~10 ms), which alone set the
  # phase's p99. Warm up at half the rate first, as the ramp would.
  if [ "$WARMUP_SECONDS" != 0 ]; then
    phase warmup --rate "$(python3 -c "print(max(1, round($KNEE/2)))")" --duration "$WARMUP_SECONDS"
  fi
  else
  phase ramp --ramp "$RAMP_FROM:$RAMP_TO:$RAMP_SECONDS" --duration "$RAMP_SECONDS" --knee-p99-ms "$KNEE_P99_MS"
  knee=$(jq -r '.knee.calls_per_second // empty' "$work/ramp/report.json")
  if [ -z "$knee" ]; then
    echo "e2e: the ramp found no knee (no second with ring delivery p99 ≤ $KNEE_P99_MS ms); lower RAMP_FROM" >&2
    cat "$work/ramp.txt" >&2
    exit 1
  fi
  knee_broke=$(jq -r '.knee.broke_at_second // "never"' "$work/ramp/report.json")
fi

# Phase 2: open loop at the knee: the capacity at which delivery p99 holds. The ramp reads its
# knee off single seconds, and one second within the bound at a rate is not ten: a knee phase
# that does not hold the bound as the ramp counts it (delivery p99 ≤ KNEE_P99_MS, at most 1 %
# of its calls failed: src/loadgen/knee.rs) is kept as a try, and the phase runs again at
# KNEE_STEP of that rate, up to KNEE_TRIES runs in all. Half and twice are of the knee that
# held (or of the last try). A rate given by KNEE is run once, as given.
ramp_knee=$knee
knee_tries=()
while :; do
  phase knee --rate "$knee" --duration "$KNEE_SECONDS"
  held=$(jq --argjson bound "$KNEE_P99_MS" \
    '(.delivery_latency.p99_ms // 1e9) <= $bound and (.calls_offered - .calls_ok) <= 0.01 * .calls_offered' \
    "$work/knee/report.json")
  if [ "$held" = true ] || [ -n "$KNEE" ] || [ $((${#knee_tries[@]} + 1)) -ge "$KNEE_TRIES" ]; then
    break
  fi
  try="knee-try$((${#knee_tries[@]} + 1))"
  for file in "$work"/knee.*; do mv "$file" "$work/$try.${file##*/knee.}"; done
  mv "$work/knee" "$work/$try"
  knee_tries+=("$knee:$try")
  knee=$(python3 -c "print(max(1, round($knee * $KNEE_STEP)))")
done
half=$(python3 -c "print(max(1, round($knee/2)))")
double=$((knee * 2))
# Phase 3: open loop at half the knee.
phase half --rate "$half" --duration "$FIXED_SECONDS"
# Phase 4: open loop at twice the knee: rings must keep flowing, nothing may crash.
if [ "$OVERLOAD_SECONDS" != 0 ]; then
  phase double --rate "$double" --duration "$OVERLOAD_SECONDS"
  kill -0 "$node_pid" 2>/dev/null && node_alive=yes || node_alive=NO
  after_overload_rss_kb=$(rss_kb)
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
# Each run lasts about a second, so one of the box's pauses (tens of ms) or a slow start moves
# it by a fifth: two runs a minute apart measured 106.8k and 129.5k. The median of
# H2LOAD_ROUNDS runs is the ceiling; every run is printed.
before=$(ticks)
for round in $(seq "$H2LOAD_ROUNDS"); do
  h2load -n "$H2LOAD_REQUESTS" -c 4 -m 100 -t 1 -d "$work/push.json" \
    -H "authorization: bearer $header.$claims.$sig" -H 'apns-topic: com.example.ringcast.voip' \
    -H 'apns-push-type: voip' -H 'apns-priority: 10' -H "apns-expiration: $((now + 45))" \
    "https://127.0.0.1:$sim_port/3/device/$(printf 'a%.0s' $(seq 64))" >"$work/h2load.$round.txt" 2>&1
done
after=$(ticks)
read -r _ h2load_sim_cpu _ h2load_box_cpu _ < <(cores "$before" "$after")
h2load_rounds=$(for round in $(seq "$H2LOAD_ROUNDS"); do
  awk '/^finished in/{gsub(",","");print $4}' "$work/h2load.$round.txt"; done)
ceiling=$(printf '%s\n' $h2load_rounds | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
h2load_ok=$(for round in $(seq "$H2LOAD_ROUNDS"); do
  awk '/^status codes:/{print $3}' "$work/h2load.$round.txt"; done | awk '{s+=$1} END {print s}')

# The peer: node-apn sending the same push, raw (no API, no registry), to the same simulator
# with h2load's shape: 4 connections, 400 pushes in flight, a device token per push.
peer=0
if [ "$NODE_APN" != 0 ]; then
  before=$(ticks)
  NODE_PATH="$NODE_APN_DIR/node_modules" PUSHES="$NODE_APN_PUSHES" CLIENTS=4 IN_FLIGHT=400 \
    node benches/support/node-apn.js "127.0.0.1:$sim_port" config/dev/apns-dev-key.p8 \
    config/dev/simulator-cert.pem "$work/push.json" >"$work/node-apn.json" 2>"$work/node-apn.err"
  after=$(ticks)
  read -r _ peer_sim_cpu _ peer_box_cpu _ < <(cores "$before" "$after")
  peer=$(jq .per_second "$work/node-apn.json")
  peer_ok="$(jq .sent "$work/node-apn.json") ok of $NODE_APN_PUSHES, failures $(jq -c .failures "$work/node-apn.json")"
fi

# A phase's pushes accepted by the simulator, all services.
pushes_of() { jq '[.pushes_by_service[]] | add // 0' "$work/$1/report.json"; }
# The node's CPU per push over a phase, µs (its CPU seconds ÷ the phase's pushes).
cpu_per_push() {
  local node_seconds
  read -r _ _ _ _ node_seconds <"$work/$1.cpu"
  python3 -c "p = $(pushes_of "$1"); print(round($node_seconds * 1e6 / p, 1) if p else '-')"
}
mb() { python3 -c "print(round($1 * 1024 / 1e6))"; }
row() { # name, phase
  local node sim redis box
  read -r node sim redis box < <(drive_cores "$2")
  jq -r --arg name "$1" --arg cpu "$node" --arg per_push "$(cpu_per_push "$2")" \
    --arg others "$sim / $redis / $box" --arg ceiling "$ceiling" --arg peer "$peer" \
    --arg rss "$(mb "$(cat "$work/$2.rss")")" '
    [$name, (.calls_per_second|tostring), (.pushes_per_second|tostring),
     (.delivery_latency.p50_ms|tostring), (.delivery_latency.p99_ms|tostring),
     (.api_latency.p99_ms|tostring), $cpu, $per_push, $rss, $others,
     ((100 * .pushes_per_second / ($ceiling|tonumber) | floor | tostring) + " %"),
     (if ($peer|tonumber) > 0 then ((100 * .pushes_per_second / ($peer|tonumber) | round) / 100 | tostring) + "×" else "-" end),
     ((.calls_offered - .calls_ok)|tostring)] | "| " + join(" | ") + " |"' "$work/$2/report.json"
}
per_reg=$(python3 -c "print(round(($mem_after-$mem_before)/$devices))")
echo
echo "load average at the start: $load_start"
echo "$pauses"
echo "machine: $(nproc) cores, $(awk -F: '/model name/{print $2; exit}' /proc/cpuinfo | xargs), $(awk '/MemTotal/{print int($2/1024)" MiB"}' /proc/meminfo); Redis $(redis-server --version | awk '{print $3}' | tr -d v=)"
echo "scenario: $IDENTITIES identities × devices $DEVICES ($devices devices; platforms $PLATFORMS), h2c ×4, ?wait=true, 10 % cancelled, 10 % answered elsewhere"
if [ -n "$KNEE" ]; then
  echo "knee: $knee calls/s, as given (KNEE; no ramp)"
else
  echo "knee: $ramp_knee calls/s, the highest rate of the ramp $RAMP_FROM → $RAMP_TO calls/s over ${RAMP_SECONDS}s whose ring delivery p99 stayed ≤ $KNEE_P99_MS ms (over it for good from second $knee_broke)"
  if [ "${#knee_tries[@]}" -gt 0 ]; then
    echo "knee: $knee calls/s after $((${#knee_tries[@]})) step(s) down of ×$KNEE_STEP: a fixed phase at $(for t in "${knee_tries[@]}"; do printf '%s ' "${t%%:*}"; done)calls/s did not hold the bound (rows \"did not hold\" below)$([ "$held" = true ] || echo "; the last try did not hold it either (KNEE_TRIES=$KNEE_TRIES)")"
  fi
fi
echo
echo "| phase | calls/s ok | pushes/s | delivery p50 ms | delivery p99 ms | API p99 ms | node CPU (cores) | node CPU µs/push | node RSS MB (peak) | simulator / Redis / box CPU | pushes/s ÷ h2load | pushes/s ÷ node-apn | failed calls |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
[ -z "$KNEE" ] && row "ramp $RAMP_FROM → $RAMP_TO/s (${RAMP_SECONDS}s)" ramp
for t in "${knee_tries[@]}"; do
  row "fixed ${t%%:*}/s (a knee that did not hold, ${KNEE_SECONDS}s)" "${t#*:}"
done
row "fixed $knee/s (the knee, ${KNEE_SECONDS}s)" knee
row "fixed $half/s (half the knee, ${FIXED_SECONDS}s)" half
[ "$OVERLOAD_SECONDS" != 0 ] && row "fixed $double/s (twice the knee, ${OVERLOAD_SECONDS}s)" double
echo "| h2load ceiling (-c 4 -m 100, median of $H2LOAD_ROUNDS: $(echo $h2load_rounds | tr ' ' '/')) | - | $ceiling | - | - | - | - | - | - | $h2load_sim_cpu / - / $h2load_box_cpu | 100 % | - | $h2load_ok ok of $((H2LOAD_REQUESTS * H2LOAD_ROUNDS)) |"
[ "$NODE_APN" != 0 ] && echo "| node-apn 8 (4 connections, 400 in flight) | - | $peer | - | - | - | - | - | - | $peer_sim_cpu / - / $peer_box_cpu | $(python3 -c "print(int(100 * $peer / $ceiling))") % | 1× | $peer_ok |"
echo
echo "node RSS: $(mb "$(cat "$work/knee.rss")") MB at the knee (peak through that phase), ${after_overload_rss_kb:+$(mb "$after_overload_rss_kb") MB after the overload phase, }$(mb "$peak_rss_kb") MB peak over the run (VmHWM, the ramp's overload part included)"
echo "Redis: $per_reg B per registration ($devices registrations, used_memory $mem_before → $mem_after B; registered in ${reg_seconds} s, errors $(jq -c .registration.errors "$work/register/report.json"))"
for phase in ramp knee half double; do
  [ -f "$work/$phase/report.json" ] || continue
  report="$work/$phase/report.json"
  # Commands per call offered (INFO commandstats before and after the phase; the node's
  # background work, presence renewals and lease sweeps, included).
  echo "$phase: Redis commands per call $(python3 - "$work/$phase.redis-before" "$work/$phase.redis-after" "$(jq .calls_offered "$report")" <<'PY'
import sys
read = lambda f: {k[len("cmdstat_"):]: int(v) for k, v in (l.split() for l in open(f))}
b, a, calls = read(sys.argv[1]), read(sys.argv[2]), int(sys.argv[3]) or 1
d = {k: (v - b.get(k, 0)) / calls for k, v in a.items() if v > b.get(k, 0)}
d.pop("info", None)
print(f"{sum(d.values()):.2f} (" + ", ".join(f"{k} {v:.2f}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) + ")")
PY
)"
  # The generator's own summary line (`generator CPU over the drive: …`), absent from builds
  # before it reported one.
  echo "$phase: $(grep -m1 '^generator CPU over the drive' "$work/$phase.txt" || echo "generator CPU over the drive: - (not reported by this build)")"
  read -r user_before kernel_before <"$work/$phase.user-kernel-before"
  read -r user_after kernel_after <"$work/$phase.user-kernel-after"
  echo "$phase: node CPU in the kernel $(python3 -c "u, k = $user_after - $user_before, $kernel_after - $kernel_before; print(round(100 * k / max(1, u + k)))") %"
  [ -f "$work/$phase.syscalls" ] && echo "$phase: node syscalls per call $(python3 - "$work/$phase.syscalls" "$(jq .calls_offered "$report")" <<'PY'
import sys
counts = {}
for line in open(sys.argv[1]):
    parts = line.strip().split(",")
    if len(parts) > 2 and parts[0].isdigit():
        counts[parts[2].split(":")[-1].replace("sys_enter_", "")] = int(parts[0])
calls = int(sys.argv[2]) or 1
total = counts.pop("sys_enter", 0)
print(f"{total / calls:.2f} (" + ", ".join(f"{k} {v / calls:.2f}" for k, v in counts.items()) + ")")
PY
)"
  if [ -f "$work/$phase.perf" ]; then
    echo "$phase: node cycles by function (perf record, own samples; [k] the kernel's):"
    { perf report -i "$work/$phase.perf" --no-children --sort sym --stdio 2>/dev/null || true; } |
      awk -v top="$PERF_TOP" '/^ +[0-9.]+%/ && shown++ < top { print "  " substr($0, 1, 150) }'
  fi
  echo "$phase: node context switches per call $(python3 -c "print(round(($(cat "$work/$phase.switches-after") - $(cat "$work/$phase.switches-before")) / max(1, $(jq .calls_offered "$report")), 2))")"
  echo "$phase: outcomes $(jq -c .outcome_classes "$report"), errors $(jq -c .errors "$report"), pushes by type $(jq -c .pushes_by_type "$report")"
  # Every platform of the mix must be delivered: the node's outcomes and the simulator's
  # record, side by side.
  echo "$phase: delivered by platform $(jq -c '.outcomes_by_platform | map_values(.delivered // 0)' "$report"), pushes by service $(jq -c .pushes_by_service "$report")"
done
[ "$OVERLOAD_SECONDS" != 0 ] && echo "node alive after the overload phase: $node_alive"
# Issue 18's targets, read off this run (the ratios are only meaningful with PLATFORMS=apns=1).
verdict() { python3 -c "print('met' if $1 else 'not met')"; }
knee_pushes=$(jq .pushes_per_second "$work/knee/report.json")
half_p99=$(jq .delivery_latency.p99_ms "$work/half/report.json")
knee_cpu=$(cpu_per_push knee)
echo "targets: at the knee ${knee_pushes} pushes/s = $(python3 -c "print(round(100 * $knee_pushes / $ceiling, 1))") % of h2load (≥ 50 %: $(verdict "$knee_pushes * 2 >= $ceiling"))$([ "$peer" != 0 ] && echo ", $(python3 -c "print(round($knee_pushes / $peer, 2))")× node-apn (≥ 5×: $(verdict "$knee_pushes >= 5 * $peer"))");" \
  "delivery p99 at half the knee $half_p99 ms (≤ 2 ms: $(verdict "$half_p99 <= 2"));" \
  "node CPU ${knee_cpu} µs/push at the knee (≤ 10 µs: $(verdict "'$knee_cpu' != '-' and float('$knee_cpu') <= 10"));" \
  "node RSS ≤ 150 MB at the knee and after the overload phase: $(verdict "$(cat "$work/knee.rss") * 1024 <= 150e6 and ${after_overload_rss_kb:-0} * 1024 <= 150e6")"
echo "Redis latency events over 5 ms (event, latest ms, max ms): $(for port in "${redis_ports[@]}"; do redis-cli -p "$port" latency latest; done | paste -sd' ' | awk '{for (i = 1; i <= NF; i += 4) printf "%s%s %s %s", (i > 1 ? ", " : ""), $i, $(i + 2), $(i + 3)} END{if (NF == 0) printf "none"}')"
echo "load average at the end (other work on this machine skews every number): $(cut -d' ' -f1-3 /proc/loadavg)"
echo "reports: $work/{ramp,knee,half,double}/ (report.json, report.svg, summary.txt)"
trap - EXIT
cleanup
