#!/usr/bin/env bash
# The GPU benchmark behind docs/benchmarks.md: `python -m scanalg.bench` on the GPU
# against dynamax's serial and parallel functions, and a re-fit of `Auto`'s threshold.
#
#   scripts/gpu_bench.sh [PART ...]     PART: hmm big auto lgssm (default: all four)
#
# - hmm:   HMM filter, smoother, sampler at K in {5, 20}: every method and both dynamax
#          functions at T in {1e3, 1e4}; the parallel ones at T = 1e5      (~5 min)
# - big:   the same at T = 1e6, parallel methods and dynamax parallel    (~2 min)
# - auto:  sequential against parallel at T = 16 ... 1024 (filter, sampler), then
#          `python -m scanalg.bench.fit`: the suggested `Auto(min_parallel_length=)`
#                                                                         (~2 min)
# - lgssm: LGSSM filter and smoother, state dimension n in {2, 8}, T in {1e3, 1e4, 1e5}
#                                                                         (~4 min)
# Each part fits in one 10-minute device call; every bench run has its own timeout,
# so a part cut short still logs what it measured. Writes the log and the JSON/PNG of
# every run under $OUT (default ./gpu_out). Wheels for dynamax and its missing
# dependencies may be put in .whl/ (a no-op `fastprogress` in .whl/stub/: dynamax
# imports it only for progress bars); they are installed first.
set -o pipefail
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD:$PWD/.whl/stub PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
LOG="$OUT/gpu_log.txt"
PARTS=("$@")
[ ${#PARTS[@]} -eq 0 ] && PARTS=(hmm big auto lgssm)

{
  date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv 2>&1
  python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
} | tee -a "$LOG"
DX=dynamax
python3 -c "import dynamax.hidden_markov_model.inference" 2>>"$LOG" || DX=""
echo "compare: ${DX:-none (dynamax not importable)}" | tee -a "$LOG"

# bench SECONDS NAME ARGS...: one `python -m scanalg.bench` run, JSON under $OUT/NAME.
bench() {
  local limit=$1 name=$2
  shift 2
  echo "== $name: $*" | tee -a "$LOG"
  timeout "$limit" python3 -m scanalg.bench "$@" --no-progress --out "$OUT/$name" 2>&1 |
    tee -a "$LOG"
}
# compare KIND: `--compare KIND` if dynamax is there (KIND: dynamax, dynamax-parallel).
compare() { [ -n "$DX" ] && echo "--compare $1"; }

for part in "${PARTS[@]}"; do
  case $part in
  hmm)
    for task in hmm-filter hmm-smoother hmm-sample; do
      bench 100 "$task-short" "$task" --lengths 1000,10000 --sizes 5,20 \
        --methods sequential,parallel,blocked,auto --repeats 5 $(compare dynamax)
      bench 60 "$task-1e5" "$task" --lengths 100000 --sizes 5,20 \
        --methods parallel,blocked,auto --repeats 5 $(compare dynamax-parallel)
    done
    ;;
  big)
    for task in hmm-filter hmm-smoother hmm-sample; do
      bench 50 "$task-1e6" "$task" --lengths 1000000 --sizes 5,20 \
        --methods parallel,blocked-parallel,blocked --repeats 3 $(compare dynamax-parallel)
    done
    bench 40 "hmm-filter-1e6-memory" hmm-filter --lengths 1000000 --sizes 20 \
      --methods parallel,blocked-parallel --repeats 1 --memory
    ;;
  auto)
    for task in hmm-filter hmm-sample; do
      bench 60 "auto-$task" "$task" --lengths 16,32,64,128,256,512,1024 --sizes 5,20 \
        --methods sequential,parallel --repeats 5
    done
    python3 -m scanalg.bench.fit "$OUT"/auto-* 2>&1 | tee -a "$LOG"
    ;;
  lgssm)
    for task in lgssm-filter lgssm-smoother; do
      bench 120 "$task" "$task" --lengths 1000,10000,100000 --sizes 2,8 \
        --methods sequential,parallel,auto --repeats 3 $(compare dynamax)
    done
    ;;
  *)
    echo "unknown part $part (hmm big auto lgssm)" | tee -a "$LOG"
    ;;
  esac
done
