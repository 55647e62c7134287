#!/usr/bin/env bash
# Second GPU run (see gpu_bench.sh): the sequential/parallel crossover at short
# lengths, K = 20, the work-efficient `associative_scan` variant, and the LGSSM.
set -o pipefail
OUT=${OUT:-gpu_out2}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD:$PWD/.whl/stub PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
LOG="$OUT/gpu_log2.txt"
B="python3 -m scanalg.bench"
for task in hmm-filter hmm-sample; do
  timeout 30 $B $task --lengths 16,64,256,1024 --sizes 5 --methods sequential,parallel \
    --repeats 5 --no-progress 2>&1 | tee -a "$LOG"
done
for task in hmm-filter hmm-sample; do
  timeout 80 $B $task --lengths 10000,100000 --sizes 20 \
    --methods parallel,associative_scan,blocked,auto --repeats 3 --compare dynamax \
    --no-progress 2>&1 | tee -a "$LOG"
done
timeout 40 $B hmm-mode --lengths 10000,100000 --sizes 5,20 --methods sequential,parallel,auto \
  --repeats 3 --no-progress 2>&1 | tee -a "$LOG"
for task in lgssm-filter lgssm-smoother; do
  timeout 80 $B $task --lengths 1000,10000,100000 --sizes 8 \
    --methods sequential,parallel,associative_scan,auto --repeats 3 --compare dynamax \
    --no-progress 2>&1 | tee -a "$LOG"
done
