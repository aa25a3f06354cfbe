#!/usr/bin/env bash
# The cost of a Redis Streams feature (issue 15): benches/e2e.sh's maximum-rate phase with the
# feature off and on, alternately, in one run on one build. Prints each run's max-phase row
# and the ratios (on ÷ off) of calls/s and p99.
#
#   benches/durable.sh                  # durable intake (part 2): direct vs durable, ~2 min
#   FEATURE=outcomes benches/durable.sh # the outcome stream (part 4): off vs stream
#   ROUNDS=2 MAX_SECONDS=20 benches/durable.sh
#
# Needs what benches/e2e.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
FEATURE=${FEATURE:-intake}
# Each feature: the environment variable that switches it (the node inherits the environment)
# and the names of its two runs.
case "$FEATURE" in
  intake) switch=RINGCAST__INTAKE__DURABLE off=direct on=durable ;;
  outcomes) switch=RINGCAST__OUTCOMES__STREAM off=off on=stream ;;
  *) echo "durable: FEATURE is intake or outcomes, not $FEATURE" >&2; exit 2 ;;
esac
export IDENTITIES=${IDENTITIES:-5000} MAX_SECONDS=${MAX_SECONDS:-15} FIXED_SECONDS=${FIXED_SECONDS:-5}
export OVERLOAD_SECONDS=0 H2LOAD_REQUESTS=${H2LOAD_REQUESTS:-20000}
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked --bin ringcast >&2
  BIN="${CARGO_TARGET_DIR:-target}/release/ringcast"
fi
export BIN
rows=$(mktemp)
trap 'rm -f "$rows"' EXIT
for round in $(seq "$ROUNDS"); do
  for mode in "$off" "$on"; do
    enabled=false
    [ "$mode" = "$on" ] && enabled=true
    row=$(env "$switch=$enabled" benches/e2e.sh 2>/dev/null | grep '^| max' || true)
    [ -n "$row" ] || { echo "durable: the $mode run printed no max row" >&2; exit 1; }
    echo "$mode $row" | tee -a "$rows"
  done
done
# Columns of a row: | phase | calls/s ok | pushes/s | delivery p50 | delivery p99 | API p99 | ...
python3 - "$rows" "$off" "$on" <<'PY'
import sys
path, off, on = sys.argv[1:]
runs = {off: [], on: []}
for line in open(path):
    mode, row = line.split(" ", 1)
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    runs[mode].append((float(cells[1]), float(cells[4]), float(cells[5])))
def mean(mode, i):
    values = [run[i] for run in runs[mode]]
    return sum(values) / len(values)
for name, i in (("calls/s", 0), ("delivery p99 ms", 1), ("API p99 ms", 2)):
    a, b = mean(off, i), mean(on, i)
    print(f"{name}: {off} {a:.1f}, {on} {b:.1f}, {on}/{off} {b / a:.3f}")
PY
