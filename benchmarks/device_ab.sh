#!/usr/bin/env bash
# Same-machine A/Bs of tuning constants on a lent GPU, one set per call (each fits a 10-minute call
# on an H100). Run from the checkout root with the environment device_run.sh expects (numpy, wgpu,
# gguf importable; the Vulkan loader and driver present); results under $OUT.
#
#   bash benchmarks/device_ab.sh decode-loop   # readback path, steps recorded ahead, recorder threads
#   bash benchmarks/device_ab.sh attention     # split attention's chunk at depth 1024, its lanes a key
#   bash benchmarks/device_ab.sh int8          # the rmsnorm scale deferred in the int8 matvec (B); INT8_MATVEC_MIN_WEIGHTS for D
#   bash benchmarks/device_ab.sh prefill       # B at 512 tokens (prefill split, kernel profile) + matmul sweep
#
# Each A/B is benchmarks/ab_constant.py: run.py once per value and round, interleaved, in fresh
# processes. Environment: OUT (/tmp/out), WORK (/tmp/nbllm-bench: the synthetic GGUFs), PYTHON.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/out}
WORK=${WORK:-/tmp/nbllm-bench}
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT" "$WORK/gguf"
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null

ggufs() { "$PYTHON" -m benchmarks.synthetic_gguf write --shapes "$1" --dir "$WORK/gguf" > /dev/null; }
ab() {  # ab NAME VALUES SECONDS -- run.py options
  local name=$1 values=$2 limit=$3; shift 4
  timeout "$limit" "$PYTHON" -m benchmarks.ab_constant "$name" "$values" --rounds 2 --out "$OUT/ab-$name" -- \
    --gguf-dir "$WORK/gguf" --synthetic-only --repeats 3 --split-steps 5 "$@" 2>&1 | tee "$OUT/ab-$name.txt"
}

case "${1:-}" in
  decode-loop)
    ggufs A,B,D
    ab gpu.readback.USE_NATIVE False,True 200 -- --shapes A,B,D --depths 0,1024 --prompt-tokens 64 --decode-tokens 128
    ab engine.recording.STEPS_AHEAD 0,2 170 -- --shapes A,B --depths 0 --prompt-tokens 64 --decode-tokens 128
    ab engine.recording.RECORDER_THREADS 1,2 170 -- --shapes A,B --depths 0 --prompt-tokens 64 --decode-tokens 128
    ;;
  attention)
    ggufs A,B,D
    ab ATTENTION_CHUNK 256,128,64 300 -- --shapes A,D --depths 1024 --prompt-tokens 64 --decode-tokens 64
    # lanes a key in attention_split's scores (64: one lane a key, four keys a thread; 4: the model's)
    ab SPLIT_ATTENTION_LANE_COLUMNS 64,4,2 250 -- --shapes B --depths 0,1024 --prompt-tokens 64 --decode-tokens 128
    ;;
  int8)
    ggufs B,D
    ab INT8_MATVEC_DEFER_INPUT_SCALE False,True 200 -- --shapes B --depths 0,1024 --prompt-tokens 64 --decode-tokens 128
    ab INT8_MATVEC_MIN_WEIGHTS 4194304,786432 300 -- --shapes D --depths 0 --prompt-tokens 512 --decode-tokens 64
    ;;
  prefill)
    ggufs B
    timeout 240 "$PYTHON" -m benchmarks.run --shapes B --gguf-dir "$WORK/gguf" --synthetic-only --repeats 3 --depths 0 \
      --prompt-tokens 512 --decode-tokens 64 --split-steps 10 --json "$OUT/prefill-B.json" > "$OUT/prefill-B.txt" 2>&1
    tail -40 "$OUT/prefill-B.txt"
    timeout 200 "$PYTHON" -m benchmarks.matmul_sweep B 512 2>&1 | tee "$OUT/matmul-sweep-B.txt"
    # the FFN down tile in the model (the sweep chose 4 tokens a lane; its FFN-up figures disagreed with the model's)
    ab INT8_MATMUL_WIDE_TOKENS_PER_THREAD 4,8 150 -- --shapes B --depths 0 --prompt-tokens 512 --decode-tokens 16
    # attention_tiled's key tile for head_dim 64 (session 9 made it 32, untimed on a GPU)
    ab TILED_ATTENTION_SMALL_HEAD_KEYS 16,32 150 -- --shapes B --depths 0 --prompt-tokens 512 --decode-tokens 16
    # matmul_q4_int8's groups staged between a pair of barriers (session 10, untimed on a GPU)
    ab INT8_MATMUL_STAGE_GROUPS 1,2,4 220 -- --shapes B --depths 0 --prompt-tokens 512 --decode-tokens 16
    ab INT8_PREFILL_FUSED_QUANTIZE True,False 150 -- --shapes B --depths 0 --prompt-tokens 512 --decode-tokens 16
    ;;
  *) echo "usage: $0 decode-loop | attention | int8 | prefill" >&2; exit 2 ;;
esac
