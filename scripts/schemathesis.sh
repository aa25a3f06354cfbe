#!/usr/bin/env bash
# Runs schemathesis against a node's own /openapi.json, as a new user would (issue 17):
# the development default (embedded store in a temporary folder, the demo tenant and its
# well-known server key), every phase (examples, coverage, fuzzing, stateful), every default
# check. Exit status is schemathesis': 0 only with no failure and no error.
#
#   scripts/schemathesis.sh            # 100 examples per operation (~20 s once built)
#   scripts/schemathesis.sh --short    # 10 examples per operation: what .ci/run runs
#   EXAMPLES=500 SEED=7 scripts/schemathesis.sh
#
# schemathesis is installed from PyPI into a virtual environment under the cargo target folder
# (SCHEMATHESIS_VENV to put it elsewhere; not committed, reused by later runs). Its settings
# and hooks are in scripts/schemathesis/ (config.toml, hooks.py: why each is there). Extra
# arguments go to `schemathesis run`.
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES=${EXAMPLES:-100}
if [ "${1:-}" = --short ]; then
  EXAMPLES=10
  shift
fi
MAX_TIME=${MAX_TIME:-}
target=${CARGO_TARGET_DIR:-target}
venv=${SCHEMATHESIS_VENV:-$target/schemathesis-venv}
# Pinned: the hooks and config.toml are written against this version's behaviour.
version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "version $version\$"; then
  echo "schemathesis.sh: installing schemathesis $version into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

cargo build --quiet --bin ringcast
work=$(mktemp -d)
node_pid=
cleanup() { [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

RINGCAST__SERVER__LISTEN="127.0.0.1:$port" \
RINGCAST__REGISTRY__EMBEDDED__PATH="$work/ringcast.redb" \
RINGCAST__LOG__LEVEL=warn \
  "$target/debug/ringcast" serve >"$work/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
  sleep 0.1
done

export SCHEMATHESIS_HOOKS=scripts/schemathesis/hooks.py
args=(--phases examples,coverage,fuzzing,stateful --max-examples "$EXAMPLES" --generation-codec ascii
  --request-timeout 10 --seed "${SEED:-1}" --no-color)
[ -n "$MAX_TIME" ] && args+=(--max-time "$MAX_TIME")
"$venv/bin/schemathesis" --config-file scripts/schemathesis/config.toml run "http://127.0.0.1:$port/openapi.json" "${args[@]}" "$@"
