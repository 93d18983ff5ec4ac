#!/usr/bin/env bash
# The check a session runs when it is lent a GPU machine (16 cores, one H100/H200):
#   1. the CUDA path: the reference UNet trained, sampled and measured on cuda (quick and
#      standard) and on the CPU (quick), with the memory method and device each reports;
#   2. the search-quality benchmark with --workers 16 on cuda, async as in the README's table,
#      a short budget per run, as many systems as the time allows (mf, then tune, then
#      nsga2), then its report. (Session 6 ran it generational, the bench's default: with
#      pop 24 on 16 workers that left half of them idle; see results/device_h100.)
#
# The machine has torch but none of ray, pymoo or optuna and no network: those travel as
# wheels in .whl (ray as a slimmed tar.xz, since its wheel is over the 64 MiB a call may
# carry; see the comment at the install step). Everything it writes goes to $OUT
# (default /tmp/device-out): log.txt, cuda_check.jsonl, sq/*.json, search_quality.{json,png}.
#
#     OUT=/tmp/dev DEADLINE_S=540 BUDGET_S=100 benchmarks/device_check.sh
set -u
OUT=${OUT:-/tmp/device-out}
mkdir -p "$OUT/sq"
exec > >(tee -a "$OUT/log.txt") 2>&1
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0
PY=${PY:-python3}
T0=$(date +%s)
DEADLINE=${DEADLINE_S:-540}     # seconds this script may take in all
BUDGET=${BUDGET_S:-100}         # wall-clock budget of one search run
WORKERS=${WORKERS:-16}
DEVICE=${DEVICE:-cuda}         # cpu for a dry run on a machine without a GPU
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
stamp() { echo "== $(date -u +%T) ($(( $(date +%s) - T0 )) s) $*"; }

if [ -d .whl ] && [ -z "${NO_INSTALL:-}" ]; then
    stamp "install"
    # ray 2.60's cp312 wheel is 79 MB: .whl/ray312.tar.xz is that wheel unpacked without
    # ray/jars (Java), ray/rllib and ray/llm, which nothing here imports.
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 3
    tar -xJf .whl/ray312.tar.xz -C /tmp/site || exit 3
    export PYTHONPATH=$PWD:/tmp/site
fi

stamp "hardware"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
nproc; free -g | head -2
$PY -c "import torch, ray, pymoo, optuna, platform; print('python', platform.python_version(), 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0), 'ray', ray.__version__, 'pymoo', pymoo.__version__, 'optuna', optuna.__version__)" || exit 3

stamp "1. the CUDA path"
check() {   # fidelity device [threads]
    local t=$(date +%s.%N)
    local json
    json=$(timeout 240 $PY -m evodiff_ray baseline --evaluate --fidelity "$1" --device "$2" ${3:+--threads $3} --format json) || { echo "{\"fidelity\": \"$1\", \"device\": \"$2\", \"error\": \"exit $?\"}" >> "$OUT/cuda_check.jsonl"; return; }
    echo "$json" | $PY -c "
import json, sys, time
d = json.load(sys.stdin); e = d['extras']
row = {'fidelity': '$1', 'device_asked': '$2', 'wall_s': round(time.time() - $t, 1), 'feasible': d['feasible'],
       'objectives': d['objectives'], 'memory_method': e.get('memory_method'), 'train_seconds': e.get('train_seconds'),
       'sample_seconds': e.get('sample_seconds'), 'train_steps': e.get('train_steps'), 'measured_on': d['measured_on'], 'reason': d.get('reason')}
print(json.dumps(row))" | tee -a "$OUT/cuda_check.jsonl"
}
check quick "$DEVICE"
check quick cpu "$WORKERS"
check standard "$DEVICE"

stamp "2. search quality, --workers $WORKERS on $DEVICE, $BUDGET s per run"
for system in ${SYSTEMS:-mf tune nsga2}; do
    need=$(( BUDGET + 90 ))
    if [ "$(left)" -lt "$need" ]; then stamp "skip $system: $(left) s left, a run needs about $need"; continue; fi
    stamp "$system"
    timeout $(( $(left) - 30 )) $PY benchmarks/bench_search_quality.py --systems "$system" --seeds 1 \
        --budget-s "$BUDGET" --workers "$WORKERS" --device "$DEVICE" --mode "${MODE:-async}" --out-dir "$OUT/sq" --progress-s 20 \
        || stamp "$system ended with exit $?"
done
stamp "report"
timeout 60 $PY benchmarks/bench_search_quality.py --report-only \
    --device "$DEVICE" --out-dir "$OUT/sq" --workers "$WORKERS" --budget-s "$BUDGET" || stamp "report ended with exit $?"
stamp "done"
