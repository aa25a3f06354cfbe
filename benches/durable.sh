#!/usr/bin/env bash
# The cost of durable intake (issue 15, part 2): benches/e2e.sh's maximum-rate phase with
# direct intake and with `[intake] durable = true`, alternately, in one run on one build.
# Prints each run's max-phase row and the ratios (durable ÷ direct) of calls/s and p99.
#
#   benches/durable.sh                 # 1 round (direct, then durable), ~2 minutes
#   ROUNDS=2 MAX_SECONDS=20 benches/durable.sh
#
# Needs what benches/e2e.sh needs.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-1}
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
  for mode in direct durable; do
    durable=false
    [ "$mode" = durable ] && durable=true
    # The node inherits the environment: RINGCAST__INTAKE__DURABLE switches its intake.
    row=$(RINGCAST__INTAKE__DURABLE=$durable benches/e2e.sh 2>/dev/null | grep '^| max' || true)
    [ -n "$row" ] || { echo "durable: the $mode run printed no max row" >&2; exit 1; }
    echo "$mode $row" | tee -a "$rows"
  done
done
# Columns of a row: | phase | calls/s ok | pushes/s | delivery p50 | delivery p99 | API p99 | ...
python3 - "$rows" <<'PY'
import sys
runs = {"direct": [], "durable": []}
for line in open(sys.argv[1]):
    mode, row = line.split(" ", 1)
    cells = [c.strip() for c in row.strip().strip("|").split("|")]
    runs[mode].append((float(cells[1]), float(cells[4]), float(cells[5])))
def mean(mode, i):
    values = [run[i] for run in runs[mode]]
    return sum(values) / len(values)
for name, i in (("calls/s", 0), ("delivery p99 ms", 1), ("API p99 ms", 2)):
    direct, durable = mean("direct", i), mean("durable", i)
    print(f"{name}: direct {direct:.1f}, durable {durable:.1f}, durable/direct {durable / direct:.3f}")
PY
