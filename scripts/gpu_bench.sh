#!/usr/bin/env bash
# The GPU benchmark run recorded in docs/benchmarks.md: HMM tasks on the lent GPU,
# every method and dynamax at T in {1e3, 1e4, 1e5}, the parallel methods at 1e6.
# Expects wheels for dynamax and its missing dependencies in .whl/ (with a no-op
# `fastprogress` in .whl/stub/: dynamax imports it only for progress bars), and
# writes under $OUT (or ./gpu_out).
set -o pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT" "$OUT/big"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD:$PWD/.whl/stub PYTHONUNBUFFERED=1
LOG="$OUT/gpu_log.txt"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv | tee "$LOG"
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$LOG"
CMP=""
python3 -c "import dynamax.hidden_markov_model.inference" 2>>"$LOG" && CMP="--compare dynamax"
echo "compare: ${CMP:-none}" | tee -a "$LOG"
for task in hmm-filter hmm-sample hmm-smoother; do
  timeout 120 python3 -m scanalg.bench "$task" --lengths 1000,10000,100000 --sizes 5 \
    --methods sequential,parallel,blocked,auto --repeats 3 $CMP --no-progress --out "$OUT" \
    2>&1 | tee -a "$LOG"
done
for task in hmm-filter hmm-sample hmm-smoother; do
  timeout 35 python3 -m scanalg.bench "$task" --lengths 1000000 --sizes 5 \
    --methods parallel,blocked --repeats 3 --no-progress 2>&1 | tee -a "$LOG"
done
