#!/usr/bin/env bash
# Every GPU check of issue 12 in one command, sized for one 10-minute device call:
#   1. graph checks (python -m benchmarks.graph_check): eager vs graphed steps of SimCLR, RotNet
#      and the supervised baseline at 512 and 2,048 views; graphed vs eager training over a few
#      hundred steps; the eager fallback of a step that cannot be captured; a resumed phase
#   2. the `paper` study (one seed, data decode included) under a time limit, nvidia-smi sampling
#      the GPU meanwhile: wall time, per-phase times, peak memory, Table 1
#   3. the throughput benchmark (ours vs the usual torchvision DataLoader pipeline)
# Later sections (phases side by side, ...) follow, each its own.
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
# GRAPH_TIMEOUT (180 s), STUDY_TIMEOUT (300 s), BENCH_TIMEOUT (90 s).
set -uo pipefail
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

# ---------------------------------------------------------------- 1. CUDA graphs (issue 12 item 1)
start=$(date +%s)
# Its own decode cache: the study below decodes the archive itself, as a user's first run does.
SSLTUI_DATA_DIR=$SSLTUI_DATA_DIR-graphs timeout -k 20 "${GRAPH_TIMEOUT:-180}" $PY -m benchmarks.graph_check --device "$DEVICE" --data "$DATA" \
    --out "$OUT" ${GRAPH_ARGS:-} > "$OUT/graph_check.log" 2>&1
echo "graph checks: exit $? in $(( $(date +%s) - start )) s"
cp "$OUT/graph_check.json" "$FINAL/" 2>/dev/null

# ---------------------------------------------------------------- 2. the study
start=$(date +%s)
(nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -lms 1000 \
  > "$OUT/smi.csv" 2>/dev/null &
 echo $! > "$OUT/smi.pid")
# SIGTERM at the limit is a clean stop: the summary keeps every phase finished by then.
timeout -k 30 "${STUDY_TIMEOUT:-300}" $PY -m ssltui run --preset "$PRESET" --seeds "$SEEDS" --data "$DATA" \
    --device "$DEVICE" --group gpu-check --json ${EXTRA:-} > "$OUT/run.json" 2> "$OUT/study-stderr.log"
rc=$?
kill "$(cat "$OUT/smi.pid")" 2>/dev/null
echo "$PRESET study: exit $rc in $(( $(date +%s) - start )) s"
tail -1 "$OUT/run.json"
$PY -m ssltui table gpu-check --format markdown > "$OUT/table.md" 2>> "$OUT/study-stderr.log"
cp "$OUT/table.md" "$FINAL/" 2>/dev/null
run_id=$($PY -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])["run_id"])' \
         "$OUT/run.json" 2>/dev/null)
if [ -n "$run_id" ]; then
  cp "$SSLTUI_RUNS_DIR/$run_id/summary.json" "$OUT/summary.json"
  cp "$OUT/summary.json" "$FINAL/study-summary.json"
  cp "$SSLTUI_RUNS_DIR/$run_id/metrics.jsonl" "$SSLTUI_RUNS_DIR/$run_id/run.log" "$OUT/" 2>/dev/null
fi

# ---------------------------------------------------------------- 3. throughput benchmark
start=$(date +%s)
timeout -k 20 "${BENCH_TIMEOUT:-90}" $PY -m benchmarks.throughput --device "$DEVICE" $BENCH_ARGS --data "$DATA" \
    --json > "$OUT/bench.json" 2> "$OUT/bench.log"
echo "benchmark: exit $? in $(( $(date +%s) - start )) s"

# ---------------------------------------------------------------- the summary (last: the reply shows the end)
echo "================ summary"
tail -n 25 "$OUT/graph_check.log"
[ -n "$run_id" ] && $PY -m benchmarks.gpu_report "$SSLTUI_RUNS_DIR/$run_id" "$OUT/smi.csv"
cat "$OUT/table.md"
cat "$OUT/bench.json"
exit $rc
