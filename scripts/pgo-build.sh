#!/usr/bin/env bash
# Builds ringcast with profile-guided optimisation (PGO): the release build, laid out by what a
# running node actually does. Each step has its own target folder, so that none disturbs the
# plain release build in target/:
#  1. an instrumented release build of the node (target/pgo-generate);
#  2. a training run: benches/e2e.sh at a fixed rate over all four push services (APNs, FCM,
#     WNS, Web Push against the simulator, Redis as the store, registrations first), the
#     instrumented binary as the node; the node writes its profile as it stops;
#  3. llvm-profdata merges it;
#  4. the release build with it (target/pgo/release/ringcast).
#
#   scripts/pgo-build.sh                          # the default features (simulator, load generator)
#   scripts/pgo-build.sh --no-default-features    # the production feature set (deploy/Dockerfile's)
#
# Extra arguments go to both builds of the node, so the profile is taken from the binary it
# is used on; so does RUSTFLAGS (RUSTFLAGS="-C target-cpu=x86-64-v3" where every host has
# that CPU level: README, "Deploying"). The training's simulator and load generator come from
# the instrumented binary when it has them (their profile is then merged in too) and
# otherwise from the plain release build (built if missing; TOOLS_BIN=path to name another).
#
# Needs what benches/e2e.sh needs (redis-server, h2load, jq, ...) and an llvm-profdata of the
# LLVM that rustc uses (`rustc -vV` names it): rustup's llvm-tools component (`rustup component
# add llvm-tools`), or Debian's package of that major version (`apt-get install llvm-22`).
# PROFDATA=path overrides the search. Code a training run never reaches is laid out as cold,
# so the run covers every platform and the registration API, not only APNs rings. Measured:
# docs/performance.md, "Profile-guided optimisation".
set -euo pipefail
cd "$(dirname "$0")/.."

target=${CARGO_TARGET_DIR:-target}
work="$target/pgo-profiles"
TRAIN_RATE=${TRAIN_RATE:-1500}        # calls/s of the training run
TRAIN_SECONDS=${TRAIN_SECONDS:-10}

major=$(rustc -vV | awk '/^LLVM version:/ { split($3, v, "."); print v[1] }')
sysroot_profdata=$(ls "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-profdata 2>/dev/null | head -1 || true)
PROFDATA=${PROFDATA:-${sysroot_profdata:-$(command -v "llvm-profdata-$major" || true)}}
if [ -z "$PROFDATA" ]; then
  echo "pgo-build: no llvm-profdata of LLVM $major (rustc's): rustup component add llvm-tools," \
    "or apt-get install llvm-$major, or PROFDATA=path" >&2
  exit 1
fi
profdata_major=$("$PROFDATA" --version | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -1)
if [ "$profdata_major" != "$major" ]; then
  echo "pgo-build: $PROFDATA is LLVM $profdata_major, rustc's is $major: its profiles would not load" >&2
  exit 1
fi

rm -rf "$work"
mkdir -p "$work/raw"
work=$(cd "$work" && pwd)

echo "pgo-build: 1/4 instrumented build" >&2
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-generate=$work/raw" \
  cargo build --release --locked --bin ringcast --target-dir "$target/pgo-generate" "$@"
instrumented="$target/pgo-generate/release/ringcast"
if [ -z "${TOOLS_BIN:-}" ]; then
  if "$instrumented" simulate --help >/dev/null 2>&1; then
    TOOLS_BIN=$instrumented
  else
    cargo build --release --locked --bin ringcast
    TOOLS_BIN="$target/release/ringcast"
  fi
fi
# Build scripts and proc macros ran instrumented during the build, and the check above ran
# the binary: their profiles go.
rm -f "$work"/raw/*

echo "pgo-build: 2/4 training run (${TRAIN_RATE} calls/s, ${TRAIN_SECONDS} s per phase)" >&2
BIN="$instrumented" TOOLS_BIN="$TOOLS_BIN" KNEE="$TRAIN_RATE" KNEE_SECONDS="$TRAIN_SECONDS" \
  FIXED_SECONDS="$TRAIN_SECONDS" OVERLOAD_SECONDS=0 NODE_APN=0 PAUSE_SECONDS=0 H2LOAD_ROUNDS=1 \
  PLATFORMS=apns=2,fcm=1,wns=1,webpush=1 DEVICES=1,5 IDENTITIES=2000 \
  benches/e2e.sh >"$work/training.txt"
ls "$work"/raw/*.profraw >/dev/null 2>&1 || { echo "pgo-build: the training run wrote no profile" >&2; exit 1; }

echo "pgo-build: 3/4 merging $(ls "$work"/raw/*.profraw | wc -l) profile files" >&2
"$PROFDATA" merge -o "$work/merged.profdata" "$work"/raw/*.profraw
# Named by its content: cargo tells builds apart by their flags, not by the files the flags
# name, so a profile kept under one name would leave a build made with the last one in place.
profile="$work/$(sha256sum "$work/merged.profdata" | cut -c1-16).profdata"
mv "$work/merged.profdata" "$profile"

echo "pgo-build: 4/4 optimised build" >&2
RUSTFLAGS="${RUSTFLAGS:-} -Cprofile-use=$profile" \
  cargo build --release --locked --bin ringcast --target-dir "$target/pgo" "$@"
echo "pgo-build: $target/pgo/release/ringcast (profile $profile; training run: $work/training.txt)"
