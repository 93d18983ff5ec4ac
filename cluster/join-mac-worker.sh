#!/usr/bin/env bash
# Join an Apple Silicon Mac to an evodiff-ray Ray cluster as an evaluation worker.
#
#   cluster/join-mac-worker.sh HEAD_IP:PORT [--num-cpus N] [--dry-run]
#
# Detects the chip (sysctl machdep.cpu.brand_string, e.g. "Apple M2 Max") and starts Ray
# with the resources and labels evodiff-ray pins evaluators by:
#   --resources '{"apple_silicon": 1, "apple_m2_max": 1}'
#   --labels    evodiff.io/accelerator=apple-silicon,evodiff.io/chip=m2-max
# One apple_silicon unit per Mac: one MPS evaluator at a time owns the GPU, so timings
# are not shared with a second candidate.
#
# Token auth (Ray 2.60 default): copy the head's ~/.ray/auth_token to this Mac's
# ~/.ray/auth_token first (or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH), and run with the
# head's RAY_AUTH_MODE (default: token).
# PYTORCH_ENABLE_MPS_FALLBACK must stay unset: evaluations refuse to time with it.
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,17p' "$0"
  exit 2
fi
ADDRESS="$1"; shift
NUM_CPUS=""
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --num-cpus) NUM_CPUS="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    *) echo "join-mac-worker.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

if [ "$(uname -s)" != "Darwin" ] || [ "$(uname -m)" != "arm64" ]; then
  echo "join-mac-worker.sh: this is $(uname -s)/$(uname -m), not an Apple Silicon Mac; use 'ray start --address $ADDRESS' for other workers" >&2
  exit 2
fi
if [ -n "${PYTORCH_ENABLE_MPS_FALLBACK:-}" ]; then
  echo "join-mac-worker.sh: unset PYTORCH_ENABLE_MPS_FALLBACK first (it would time CPU kernels as MPS)" >&2
  exit 2
fi
if ! command -v ray >/dev/null 2>&1; then
  echo "join-mac-worker.sh: 'ray' not found; activate the venv that has evodiff-ray installed" >&2
  exit 2
fi

here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=cluster/mac-resources.sh
. "$here/mac-resources.sh"

export RAY_AUTH_MODE="${RAY_AUTH_MODE:-token}"
token_file="${RAY_AUTH_TOKEN_PATH:-$HOME/.ray/auth_token}"
if [ "$RAY_AUTH_MODE" = "token" ] && [ ! -s "$token_file" ] && [ -z "${RAY_AUTH_TOKEN:-}" ]; then
  echo "join-mac-worker.sh: no $token_file; copy it from the head (scp head:.ray/auth_token ~/.ray/) or set RAY_AUTH_TOKEN" >&2
  exit 2
fi

args=(--address "$ADDRESS" --resources "$MAC_RESOURCES" --labels "$MAC_LABELS")
if [ -n "$NUM_CPUS" ]; then
  args+=(--num-cpus "$NUM_CPUS")
fi
echo "chip $MAC_CHIP: ray start ${args[*]}"
if [ "$DRY_RUN" = 1 ]; then
  exit 0
fi
ray start "${args[@]}"
echo "joined $ADDRESS as $MAC_CHIP; check with: RAY_AUTH_MODE=$RAY_AUTH_MODE ray status --address $ADDRESS"
