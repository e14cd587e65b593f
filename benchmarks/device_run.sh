#!/usr/bin/env bash
# The speed run on a lent GPU machine (H100 / H200): our engine and llama.cpp on the same GGUF files.
# Run from the checkout root with the Python environment already set up (numpy, wgpu, gguf, ...
# importable, a Vulkan loader and driver present); results land under $OUT.
#
#   bash benchmarks/device_run.sh prepare   # call 1, about 5 min: build llama-bench (CUDA) in the background
#                                           #   from .peer/llama.cpp-src.tgz while the GGUFs are written; wait for both
#   bash benchmarks/device_run.sh run       # call 2, under 8 min on an H200: llama-bench on the files (if built),
#                                           #   then benchmarks/run.py on the same files with --peer-json
#   bash benchmarks/device_run.sh           # = run (without a built llama-bench: ours only)
#
# Writes $OUT/benchmarks/results/<date>-<device>.json (run.py's JSON, peer figures paired in), and
# beside it <date>-<device>.txt (the table), <date>-<device>.llamacpp.json (llama-bench rows) and
# run.log and llamacpp-run.log (a device call returns at most 8 files: the rest stays in $WORK). Environment: OUT (/tmp/out), WORK (/tmp/nbllm-bench: the GGUFs, kept between calls),
# SHAPES (A,B,D,C: smallest first, so a timeout loses the least), PYTHON (python3),
# RUN_ARGS (more run.py options), PREPARE_WAIT (seconds prepare waits for the build, default 540),
# RUN_WAIT_BUILD (seconds run waits for a build prepare left running, default 120).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/nbllm-bench}
SHAPES=${SHAPES:-A,B,D,C}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT/benchmarks/results" "$WORK"

write_ggufs() {
  "$PYTHON" -m benchmarks.synthetic_gguf write --shapes "$SHAPES" --dir "$WORK/gguf" > "$WORK/files.txt" 2> "$WORK/write.log"
  local rc=$?
  cat "$WORK/write.log" "$WORK/files.txt" >&2
  return $rc
}

llama_bench_path() {
  for b in "${LLAMA_BENCH:-}" "$ROOT/.peer/bin/llama-bench" /tmp/llamacpp-build/build/bin/llama-bench; do
    [ -n "$b" ] && [ -x "$b" ] && { echo "$b"; return; }
  done
}

prepare() {
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap --format=csv 2>/dev/null >&2
  if [ -s .peer/llama.cpp-src.tgz ] && [ -z "$(llama_bench_path)" ]; then
    rm -f "$WORK/build.done"
    setsid nohup bash -c "bash '$ROOT/benchmarks/peers/build_llamacpp.sh' build > '$WORK/build.out' 2>&1; echo rc=\$? > '$WORK/build.done'" \
      > /dev/null 2>&1 &
    echo "llama-bench build started in the background (log $WORK/build.out)" >&2
  elif [ ! -s .peer/llama.cpp-src.tgz ]; then
    echo "no .peer/llama.cpp-src.tgz (carry .peer, made by build_llamacpp.sh fetch): no peer this time" >&2
  fi
  write_ggufs
  local waited=0 limit=${PREPARE_WAIT:-540}
  while [ -z "$(llama_bench_path)" ] && [ -s .peer/llama.cpp-src.tgz ] && [ ! -f "$WORK/build.done" ] && [ $waited -lt "$limit" ]; do
    sleep 10; waited=$((waited + 10))
  done
  cat "$WORK/build.out" 2>/dev/null >&2; cat "$WORK/build.done" 2>/dev/null >&2
  if [ -z "$(llama_bench_path)" ]; then  # the logs come back only when needed: a call returns at most 8 files
    cp "$WORK/build.out" "$OUT/llamacpp-build.log" 2>/dev/null
    cp /tmp/llamacpp-build/build.log "$OUT/llamacpp-build-full.log" 2>/dev/null
  fi
  echo "llama-bench: $(llama_bench_path || true)" >&2
}

run() {
  local t0=$SECONDS waited=0
  # a build still compiling would steal the cores our CPU-side timings need: give it a little time
  while [ -f "$WORK/build.out" ] && [ ! -f "$WORK/build.done" ] && [ $waited -lt "${RUN_WAIT_BUILD:-120}" ]; do
    sleep 10; waited=$((waited + 10))
  done
  [ -f "$WORK/build.out" ] && [ ! -f "$WORK/build.done" ] && echo "warning: the llama-bench build is still running" >&2
  write_ggufs || exit 1
  local files; files=$(awk '{print $2}' "$WORK/files.txt")
  local device; device=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
  device=$(echo "${device:-$("$PYTHON" -c 'from notebook_llm.gpu.device import request_adapter; print(request_adapter().summary)')}" \
           | tr 'A-Z' 'a-z' | sed -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//' | cut -c1-40)
  local stem; stem="$OUT/benchmarks/results/$(date -u +%Y-%m-%d)-$device"
  local peer_args=()
  if [ -n "$(llama_bench_path)" ]; then
    # shellcheck disable=SC2086
    bash benchmarks/peers/run_llamacpp.sh "$stem.llamacpp.json" $files 2> "$OUT/llamacpp-run.log" | tee "$WORK/llamacpp-table.txt"
    [ -s "$stem.llamacpp.json" ] && peer_args=(--peer-json "$stem.llamacpp.json")
    echo "peer done after $((SECONDS - t0)) s" >&2
  else
    echo "no llama-bench built: ours only" >&2
  fi
  nvidia-smi --query-gpu=name,clocks.sm,clocks.mem,temperature.gpu,power.draw --format=csv 2>/dev/null >&2
  # shellcheck disable=SC2086
  "$PYTHON" -m benchmarks.run --shapes "$SHAPES" --gguf-dir "$WORK/gguf" --json "$stem.json" "${peer_args[@]}" ${RUN_ARGS:-} \
    > "$stem.txt" 2> "$OUT/run.log"
  local rc=$?
  cat "$stem.txt"; tail -5 "$OUT/run.log" >&2
  echo "ours done after $((SECONDS - t0)) s (rc=$rc); results: $stem.json" >&2
  return $rc
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 [prepare | run]" >&2; exit 2 ;;
esac
