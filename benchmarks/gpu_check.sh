#!/usr/bin/env bash
# Every GPU check in one command, sized for one 10-minute device call:
#   1. graph checks (python -m benchmarks.graph_check): eager vs graphed steps of SimCLR, RotNet
#      and the supervised baseline at 512 and 2,048 views; graphed vs eager training over a few
#      hundred steps; the eager fallback of a step that cannot be captured; a resumed phase
#   2. the `paper` study (one seed, data decode included) under a time limit, nvidia-smi sampling
#      the GPU meanwhile: wall time, per-phase times, peak memory, Table 1
#   3. the throughput benchmark (ours vs the usual torchvision DataLoader pipeline)
#   4. phases side by side: the study with runtime.workers = 2, 4 (and one worker per GPU)
# SECTIONS picks some (default "graphs study bench sched"); a section that cannot finish in what
# is left of the call (CALL_SECONDS) is skipped with one line, so the call never runs past its
# limit: with the defaults 1-3 take up to 570 s and 4 needs a call of its own, e.g.
#   run(command='SECTIONS=sched SCHED_EXTRA="--set pretrain.epochs=10" bash benchmarks/gpu_check.sh', ...)
#
# First, on the CPU machine, put what the GPU machine lacks into the git-ignored .data/:
#   bash benchmarks/gpu_prepare.sh
# then make the device call (docs/results.md, "GPU check (prepared, unmeasured)"):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".data"], timeout_s=600)
# Rehearse all of it on the CPU at toy sizes (only the device is missing):
#   CPU_REHEARSAL=1 OUT=/tmp/rehearsal bash benchmarks/gpu_check.sh
#
# Every log goes to a scratch folder packed into $OUT/gpu-check.tgz at exit (the device tool
# brings back at most 8 files); $OUT also gets graph_check.json, study-summary.json and
# table.md, and the summary is printed last.
#
# Environment: OUT (default ./gpu-out), DATA (ssltui --data; default the carried archive, else
# cifar10), DEVICE (cuda), PRESET (paper), SEEDS (0), EXTRA (more `ssltui run` arguments),
# GRAPH_ARGS (more graph_check arguments), BENCH_ARGS (throughput arguments), and the limits
# GRAPH_TIMEOUT (180 s), STUDY_TIMEOUT (300 s), BENCH_TIMEOUT (90 s), SCHED_TIMEOUT (a run of
# section 4: 240 s), CALL_SECONDS (the device call's limit less what the summary needs: 570 s).
set -uo pipefail
T0=$(date +%s)
SECTIONS=" ${SECTIONS:-graphs study bench sched} "
section() { [[ $SECTIONS == *" $1 "* ]]; }
left() { echo $(( ${CALL_SECONDS:-570} - ($(date +%s) - T0) )); }
rc=0 run_id=""
cd "$(dirname "$0")/.."
FINAL=${OUT:-gpu-out}
mkdir -p "$FINAL"
OUT=$(mktemp -d /tmp/gpu-check.XXXXXX)
trap 'tar czf "$FINAL/gpu-check.tgz" -C "$OUT" . 2>/dev/null' EXIT
export PYTHONUNBUFFERED=1 SSLTUI_RUNS_DIR=${SSLTUI_RUNS_DIR:-/tmp/ssltui-gpu-runs}
export SSLTUI_DATA_DIR=${SSLTUI_DATA_DIR:-/tmp/ssltui-gpu-data}
PY=${PYTHON:-python3}
if [ -n "${CPU_REHEARSAL:-}" ]; then
  DEVICE=cpu DATA=${DATA:-synthetic} PRESET=${PRESET:-paper-smoke} PY=${PYTHON:-python}
  GRAPH_ARGS="--cpu-rehearsal ${GRAPH_ARGS:-}"
  BENCH_ARGS=${BENCH_ARGS:---method all --workers 0 --steps 2 --warmup 1 --batch-size 16}
  SCHED_WORKERS=${SCHED_WORKERS-2}
  echo "CPU REHEARSAL: toy sizes on the CPU; no figure printed here is a GPU measurement"
elif ls .data/wheels/*.whl > /dev/null 2>&1; then
  # The packages the GPU machine's image lacks (pydantic, tomli-w, platformdirs, ...).
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
      .data/wheels/*.whl && export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
if [ -z "${DATA:-}" ] && [ -f .data/cifar10-jpeg.tar.gz ]; then DATA=folder:.data/cifar10-jpeg.tar.gz; fi
DATA=${DATA:-cifar10} DEVICE=${DEVICE:-cuda} PRESET=${PRESET:-paper} SEEDS=${SEEDS:-0}
BENCH_ARGS=${BENCH_ARGS:---method all --workers 8 --steps 50 --batch-size 512}

{
  date -u +"date %Y-%m-%dT%H:%M:%SZ"
  git rev-parse --short HEAD 2>/dev/null | sed 's/^/commit /'
  git status --porcelain 2>/dev/null | head -5 | sed 's/^/uncommitted /'
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader 2>/dev/null \
    | sed 's/^/gpu /'
  $PY -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# ---------------------------------------------------------------- 1. CUDA graphs
if section graphs; then
start=$(date +%s)
# Its own decode cache: the study below decodes the archive itself, as a user's first run does.
SSLTUI_DATA_DIR=$SSLTUI_DATA_DIR-graphs timeout -k 20 "${GRAPH_TIMEOUT:-180}" $PY -m benchmarks.graph_check --device "$DEVICE" --data "$DATA" \
    --out "$OUT" ${GRAPH_ARGS:-} > "$OUT/graph_check.log" 2>&1
echo "graph checks: exit $? in $(( $(date +%s) - start )) s"
cp "$OUT/graph_check.json" "$FINAL/" 2>/dev/null
fi

# ---------------------------------------------------------------- 2. the study
if section study; then
start=$(date +%s)
(nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 1000 \
  > "$OUT/smi.csv" 2>/dev/null &
 echo $! > "$OUT/smi.pid")
# SIGTERM at the limit is a clean stop: the summary keeps every phase finished by then.
timeout -k 30 "${STUDY_TIMEOUT:-300}" $PY -m ssltui run --preset "$PRESET" --seeds "$SEEDS" --data "$DATA" \
    --device "$DEVICE" --group "gpu-check-$PRESET" --json ${EXTRA:-} > "$OUT/run.json" 2> "$OUT/study-stderr.log"
rc=$?
kill "$(cat "$OUT/smi.pid")" 2>/dev/null
echo "$PRESET study: exit $rc in $(( $(date +%s) - start )) s"
tail -1 "$OUT/run.json"
$PY -m ssltui table "gpu-check-$PRESET" --format markdown > "$OUT/table.md" 2>> "$OUT/study-stderr.log"
cp "$OUT/table.md" "$FINAL/" 2>/dev/null
run_id=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["run_id"])' \
         "$OUT/run.json" 2>/dev/null)
if [ -n "$run_id" ]; then
  cp "$SSLTUI_RUNS_DIR/$run_id/summary.json" "$OUT/summary.json"
  cp "$OUT/summary.json" "$FINAL/study-summary.json"
  cp "$SSLTUI_RUNS_DIR/$run_id/metrics.jsonl" "$SSLTUI_RUNS_DIR/$run_id/run.log" "$OUT/" 2>/dev/null
fi
fi

# ---------------------------------------------------------------- 3. throughput benchmark
if section bench; then
start=$(date +%s)
timeout -k 20 "${BENCH_TIMEOUT:-90}" $PY -m benchmarks.throughput --device "$DEVICE" $BENCH_ARGS --data "$DATA" \
    --json > "$OUT/bench.json" 2> "$OUT/bench.log"
echo "benchmark: exit $? in $(( $(date +%s) - start )) s"
fi

# ---------------------------------------------------------------- 4. phases side by side
# The same study with runtime.workers = N worker processes on one GPU (the run above is N = 1
# on one GPU: workers "auto" starts one per device), then with one worker per GPU when the
# machine has several. Wall time, GPU memory summed over the workers and the results go to
# $OUT/sched-*.json. SCHED_WORKERS="" skips it; SCHED_EXTRA shortens it (e.g. "--set
# pretrain.epochs=10 --set supervised.epochs=20") so that it fits the device time left.
SCHED_WORKERS=${SCHED_WORKERS-2 4}
sched_run() {  # sched_run NAME ARGS...: one timed run of the study, its summary kept
  local name=$1; shift
  local start=$(date +%s) limit=$(( $(left) < ${SCHED_TIMEOUT:-240} ? $(left) : ${SCHED_TIMEOUT:-240} ))
  if [ "$limit" -lt 60 ]; then echo "study with $name: skipped ($(left) s left in this call)"; return; fi
  # SIGTERM at the limit is a clean stop (the summary keeps the finished phases).
  timeout -k 20 "$limit" $PY -m ssltui run --preset "$PRESET" --seeds "$SEEDS" --data "$DATA" --group "gpu-check-$name" --json \
      --no-cache ${EXTRA:-} ${SCHED_EXTRA:-} "$@" > "$OUT/sched-$name.json" 2> "$OUT/sched-$name.log"
  local code=$?
  echo "study with $name: exit $code in $(( $(date +%s) - start )) s"
  local id=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["run_id"])' \
             "$OUT/sched-$name.json" 2>/dev/null)
  [ -n "$id" ] && cp "$SSLTUI_RUNS_DIR/$id/summary.json" "$OUT/sched-$name-summary.json" && \
    $PY -c 'import json,sys; s=json.load(open(sys.argv[1])); print(" ", s["device"], "wall", s["timings"].get("wall"), "s;", s["memory"])' \
        "$OUT/sched-$name-summary.json"
}
if section sched && [ -n "$SCHED_WORKERS" ]; then
  # The study of section 2 is the one-worker run unless SCHED_EXTRA changes it or it did not run.
  { [ -n "${SCHED_EXTRA:-}" ] || ! section study; } && sched_run "workers1" --device "$DEVICE" --set runtime.workers=1
  for n in $SCHED_WORKERS; do
    sched_run "workers$n" --device "$DEVICE" --set runtime.workers="$n"
  done
  gpus=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | paste -sd, | sed 's/\([0-9]\+\)/cuda:\1/g')
  case "$gpus" in
    *,*) sched_run "devices" --devices "$gpus" ;;
    *) echo "one GPU or none: the several-GPU run (--devices cuda:0,cuda:1,...) is not measured here" ;;
  esac
fi

# ---------------------------------------------------------------- the summary (last: the reply shows the end)
echo "================ summary"
tail -n 25 "$OUT/graph_check.log" 2>/dev/null
[ -n "$run_id" ] && $PY -m benchmarks.gpu_report "$SSLTUI_RUNS_DIR/$run_id" "$OUT/smi.csv"
cat "$OUT/table.md" "$OUT/bench.json" 2>/dev/null
exit $rc
