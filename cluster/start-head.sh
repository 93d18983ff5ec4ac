#!/usr/bin/env bash
# Start the Ray head node of an evodiff-ray cluster (Linux or macOS).
#
#   cluster/start-head.sh [--port 6379] [--dashboard-host 127.0.0.1] [--num-cpus N] [--no-eval]
#
# Token authentication: Ray 2.60 turns it on by default. `ray start --head` writes the
# cluster token to ~/.ray/auth_token; every worker and every client (`ray job submit`,
# `ray status`, `evodiff-ray search --address ...`) must present it and export the same
# RAY_AUTH_MODE. This script exports RAY_AUTH_MODE=token unless you set it yourself and
# never turns authentication off. To disable it (a loopback-only test cluster, nothing
# else), export RAY_AUTH_MODE=disabled yourself, for the head, the workers and all clients.
#
# The dashboard listens on 127.0.0.1 unless you pass --dashboard-host 0.0.0.0 (then put
# it behind a firewall; reach it by `ssh -L 8265:127.0.0.1:8265 head` otherwise).
#
# --no-eval gives the head zero CPUs for tasks, so evaluator actors land on workers only.
set -euo pipefail

PORT=6379
DASHBOARD_HOST=127.0.0.1
NUM_CPUS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --dashboard-host) DASHBOARD_HOST="$2"; shift 2 ;;
    --num-cpus) NUM_CPUS="$2"; shift 2 ;;
    --no-eval) NUM_CPUS=0; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "start-head.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if ! command -v ray >/dev/null 2>&1; then
  echo "start-head.sh: 'ray' not found; activate the venv that has evodiff-ray installed" >&2
  exit 2
fi

export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
if [ "$RAY_AUTH_MODE" = "disabled" ]; then
  echo "start-head.sh: WARNING: RAY_AUTH_MODE=disabled: anyone who reaches port $PORT controls this cluster" >&2
fi

args=(--head --port "$PORT" --dashboard-host "$DASHBOARD_HOST")
if [ -n "$NUM_CPUS" ]; then
  args+=(--num-cpus "$NUM_CPUS")
fi
# A Mac head advertises its chip like any Mac worker, so it can evaluate too.
if [ "$(uname -s)" = "Darwin" ] && [ "$(uname -m)" = "arm64" ] && [ "$NUM_CPUS" != "0" ]; then
  here="$(cd "$(dirname "$0")" && pwd)"
  # shellcheck source=cluster/mac-resources.sh
  . "$here/mac-resources.sh"
  args+=(--resources "$MAC_RESOURCES" --labels "$MAC_LABELS")
fi

ray start "${args[@]}"

ip="$(hostname -I 2>/dev/null | awk '{print $1}' || true)"
if [ -z "$ip" ]; then
  ip="$(ipconfig getifaddr en0 2>/dev/null || echo '<head-ip>')"
fi
cat <<EOF

Head is up (RAY_AUTH_MODE=$RAY_AUTH_MODE).
  Workers:  copy ~/.ray/auth_token to each worker's ~/.ray/auth_token, then
            RAY_AUTH_MODE=$RAY_AUTH_MODE cluster/join-mac-worker.sh $ip:$PORT
  Clients:  export RAY_AUTH_MODE=$RAY_AUTH_MODE; evodiff-ray search --address $ip:$PORT ...
  Jobs:     RAY_AUTH_MODE=$RAY_AUTH_MODE ray job submit --address http://127.0.0.1:8265 --runtime-env cluster/runtime_env.yaml -- evodiff-ray search ...
  Stop:     ray stop
EOF
