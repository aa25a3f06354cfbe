#!/usr/bin/env bash
# Fuzzes ringcast's parsers with cargo-fuzz (libFuzzer + AddressSanitizer) on this machine's
# one stable toolchain.
#
#   scripts/fuzz.sh                 # every target, 30 s each (a smoke run)
#   scripts/fuzz.sh 600             # every target, 10 minutes each
#   scripts/fuzz.sh 600 call_body   # named targets only
#
# cargo-fuzz asks rustc for unstable flags (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 lets the
# stable compiler take them, which is how this runs without a nightly toolchain. Each target
# starts from its committed seed corpus (fuzz/corpus/<target>, read-only) and writes what it
# finds to fuzz/target/corpus/<target>; a crash lands in fuzz/artifacts/<target>/ and fails
# the run. Replay one with `scripts/fuzz.sh replay <target> <file>`.
#
#   scripts/fuzz.sh seeds           # after long runs: new committed seeds (see below)
#   scripts/fuzz.sh lock            # after a dependency change: fuzz/Cargo.lock = the main lock
#                                   # plus libFuzzer's crates (CI checks the targets --locked)
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

export RUSTC_BOOTSTRAP=1
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz.sh: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked
fi

if [ "${1:-}" = lock ]; then
  cp ../Cargo.lock Cargo.lock
  exec cargo metadata --format-version 1 >/dev/null
fi

# The committed seeds of each target become the smallest set of inputs that reaches every
# code edge the seeds and the last runs' finds (target/corpus) reach. Edges only, without hit
# counts or value profiles, keeps it to a few hundred small files per target; hand-written
# seeds (names that are not a SHA-1) stay as examples of each format.
if [ "${1:-}" = seeds ]; then
  shift
  targets=("$@")
  [ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)
  for target in "${targets[@]}"; do
    fresh=$(mktemp -d)
    mkdir -p "target/corpus/$target" "corpus/$target"
    cargo fuzz run "$target" "$fresh" "corpus/$target" "target/corpus/$target" -- \
      -set_cover_merge=1 -use_counters=0 -use_value_profile=0 >"target/$target.seeds.log" 2>&1
    find "corpus/$target" -type f -regextype egrep -regex '.*/[0-9a-f]{40}' -delete
    cp -n "$fresh"/* "corpus/$target/" 2>/dev/null || true
    rm -rf "$fresh"
    echo "fuzz.sh: $target: $(find "corpus/$target" -type f | wc -l) seeds"
  done
  exit 0
fi

if [ "${1:-}" = replay ]; then
  exec cargo fuzz run "$2" "$3"
fi

seconds=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi

for target in "${targets[@]}"; do cargo fuzz build "$target"; done
failed=()
for target in "${targets[@]}"; do
  mkdir -p "target/corpus/$target" "corpus/$target"
  echo "fuzz.sh: $target for ${seconds} s"
  # -rss_limit_mb: a parser that needs more than this for one input is a finding too.
  if cargo fuzz run "$target" "target/corpus/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
      > "target/$target.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "target/$target.log" \
      | sed "s/^/  /"
  else
    echo "fuzz.sh: $target FAILED; see fuzz/target/$target.log and fuzz/artifacts/$target/" >&2
    tail -30 "target/$target.log" >&2
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz.sh: crashes in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz.sh: ${#targets[@]} target(s), ${seconds} s each, no crash"
