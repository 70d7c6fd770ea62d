#!/usr/bin/env bash
# Every GPU check in one command: the `paper` study (one seed, data loading included), then the
# throughput benchmark (ours vs the usual torchvision DataLoader pipeline, SimCLR and RotNet).
# Writes logs, the run summary, Table 1 and the benchmark's JSON under $OUT (default ./gpu-out).
#
#   DATA=folder:.data/cifar10-jpeg.tar.gz OUT=/tmp/out bash benchmarks/gpu_check.sh
#
# Environment: DATA (ssltui --data source, default cifar10), DEVICE (default cuda), PRESET
# (default paper), SEEDS (default 0), EXTRA (more `ssltui run` arguments, e.g. --set ... for a
# CPU rehearsal), BENCH_ARGS (python -m benchmarks.throughput arguments; default sized for one GPU).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
DATA=${DATA:-cifar10}
DEVICE=${DEVICE:-cuda}
PRESET=${PRESET:-paper}
SEEDS=${SEEDS:-0}
BENCH_ARGS=${BENCH_ARGS:---method all --workers 8 --steps 50 --batch-size 512}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 SSLTUI_RUNS_DIR=${SSLTUI_RUNS_DIR:-/tmp/ssltui-gpu-runs}
export SSLTUI_DATA_DIR=${SSLTUI_DATA_DIR:-/tmp/ssltui-gpu-data}
PY=${PYTHON:-python3}

{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | sed 's/^/gpu /'
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

start=$(date +%s)
$PY -m ssltui run --preset "$PRESET" --seeds "$SEEDS" --data "$DATA" --device "$DEVICE" \
    --group gpu-check --json ${EXTRA:-} > "$OUT/run.json" 2> "$OUT/run.log"
rc=$?
echo "paper study: exit $rc in $(( $(date +%s) - start )) s"
tail -1 "$OUT/run.json"
$PY -m ssltui table gpu-check --format markdown > "$OUT/table.md" 2>> "$OUT/run.log"
cat "$OUT/table.md"
run_id=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["run_id"])' "$OUT/run.json" 2>/dev/null)
[ -n "$run_id" ] && cp "$SSLTUI_RUNS_DIR/$run_id/summary.json" "$OUT/summary.json"

start=$(date +%s)
$PY -m benchmarks.throughput --device "$DEVICE" $BENCH_ARGS --data "$DATA" --json > "$OUT/bench.json" 2> "$OUT/bench.log"
echo "benchmark: exit $? in $(( $(date +%s) - start )) s"
cat "$OUT/bench.json"

# ---------------------------------------------------------------- phases side by side (issue 12 item 4)
# The same study with runtime.workers = N worker processes on one GPU (the run above is N = 1
# on one GPU: workers "auto" starts one per device), then with one worker per GPU when the
# machine has several. Wall time, GPU memory summed over the workers and the results go to
# $OUT/sched-*.json. SCHED_WORKERS="" skips it; SCHED_EXTRA shortens it (e.g. "--set
# pretrain.epochs=10 --set supervised.epochs=20") so that it fits the device time left.
SCHED_WORKERS=${SCHED_WORKERS-2 4}
sched_run() {  # sched_run NAME ARGS...: one timed run of the study, its summary kept
  local name=$1; shift
  local start=$(date +%s)
  $PY -m ssltui run --preset "$PRESET" --seeds "$SEEDS" --data "$DATA" --group "gpu-check-$name" --json \
      --no-cache ${EXTRA:-} ${SCHED_EXTRA:-} "$@" > "$OUT/sched-$name.json" 2> "$OUT/sched-$name.log"
  local code=$?
  echo "study with $name: exit $code in $(( $(date +%s) - start )) s"
  local id=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["run_id"])' \
             "$OUT/sched-$name.json" 2>/dev/null)
  [ -n "$id" ] && cp "$SSLTUI_RUNS_DIR/$id/summary.json" "$OUT/sched-$name-summary.json" && \
    $PY -c 'import json,sys; s=json.load(open(sys.argv[1])); print(" ", s["device"], "wall", s["timings"].get("wall"), "s;", s["memory"])' \
        "$OUT/sched-$name-summary.json"
}
if [ -n "$SCHED_WORKERS" ]; then
  [ -n "${SCHED_EXTRA:-}" ] && sched_run "workers1" --device "$DEVICE" --set runtime.workers=1
  for n in $SCHED_WORKERS; do
    sched_run "workers$n" --device "$DEVICE" --set runtime.workers="$n"
  done
  gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, | sed 's/\([0-9]\+\)/cuda:\1/g')
  case "$gpus" in
    *,*) sched_run "devices" --devices "$gpus" ;;
    *) echo "one GPU or none: the several-GPU run (--devices cuda:0,cuda:1,...) is not measured here" ;;
  esac
fi

exit $rc
