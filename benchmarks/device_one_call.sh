#!/usr/bin/env bash
# Everything a session's untimed kernel changes need, in one 10-minute call on a lent GPU (device
# time is short and refused starts cost minutes, so a session may get a single call):
#
#   bash benchmarks/device_one_call.sh        # from the checkout root; results under $OUT
#
# In order, each step bounded so that a slow one cannot starve the rest:
#   0 s    the lent machine's setup where its carried files are present (.gl: Vulkan loader debs,
#          .whl/.whl2: wheels), llama-bench (CUDA) building niced in the background from
#          .peer/llama.cpp-src.tgz, the synthetic GGUFs of B (and C, in the background);
#   ~20 s  B decode A/B (benchmarks/ab_constant.py, one round, interleaved): split attention's lanes
#          a key (SPLIT_ATTENTION_LANE_COLUMNS 64 ~ one key a thread, 4 the model's);
#   ~150 s C (8B shape) decode at depths 0 and 1024 (the bandwidth target) with the default code;
#   ~320 s llama-bench on B, then ours on B with --peer-json (the decode and prefill ratios);
#   ~420 s A/Bs while time lasts, most wanted first: the int8 matmul's stage depth, int8 inputs
#          written by the norms and the SwiGLU middle (B prefill), the int8 matvec's deferred
#          rmsnorm scale (B decode), attention_tiled's key tile, the FFN-down tile (B prefill).
# Each A/B keeps its runs' full outputs (profiles, step splits) under $OUT/ab-NAME/.
# Environment: OUT (/tmp/out), LIMIT (seconds for the whole call, 585).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/out}
LIMIT=${LIMIT:-585}
GGUF=/tmp/nbllm-one-call
mkdir -p "$OUT" "$GGUF"
T0=$SECONDS
elapsed() { echo $((SECONDS - T0)); }

if [ -d .gl ]; then  # the lent machine: no Vulkan loader, no Python packages but numpy
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    .whl/*.whl .whl2/*.whl
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null

(nice -n 19 bash benchmarks/peers/build_llamacpp.sh build > /tmp/build.out 2>&1
 echo "build rc=$? at $(elapsed) s" >> /tmp/build.out) &
python3 -m benchmarks.synthetic_gguf write --shapes B --dir "$GGUF" > /dev/null 2>&1
(python3 -m benchmarks.synthetic_gguf write --shapes C --dir "$GGUF" > /tmp/gguf-c.out 2>&1
 echo "C written rc=$? at $(elapsed) s" >> /tmp/gguf-c.out) &
echo "B written at $(elapsed) s"

ab() {  # ab NAME VALUES SECONDS -- run.py options
  local name=$1 values=$2 limit=$3; shift 4
  local left=$((LIMIT - $(elapsed)))
  [ "$limit" -gt "$left" ] && limit=$left
  [ "$limit" -lt 40 ] && { echo "ab $name skipped: $left s left"; return; }
  timeout "$limit" python3 -m benchmarks.ab_constant "$name" "$values" --rounds 1 --out "$OUT/ab-$name" -- \
    --gguf-dir "$GGUF" --synthetic-only --bandwidth-mb 256 "$@" > "$OUT/ab-$name.txt" 2>&1
  echo "ab $name rc=$? at $(elapsed) s"; cat "$OUT/ab-$name.txt"
}
decode_b=(--shapes B --repeats 2 --depths 0,1024 --prompt-tokens 64 --decode-tokens 128 --split-steps 3)
prefill_b=(--shapes B --repeats 3 --depths 0 --prompt-tokens 512 --decode-tokens 16 --split-steps 2)

ab SPLIT_ATTENTION_LANE_COLUMNS 64,4 130 -- "${decode_b[@]}"

while ! grep -q "C written" /tmp/gguf-c.out 2>/dev/null && [ "$(elapsed)" -lt 200 ]; do sleep 5; done
timeout 170 python3 -m benchmarks.run --shapes C --gguf-dir "$GGUF" --synthetic-only --repeats 2 --depths 0,1024 \
  --prompt-tokens 512 --decode-tokens 128 --split-steps 5 --json "$OUT/C.json" > "$OUT/C.txt" 2>&1
echo "C rc=$? at $(elapsed) s"; head -30 "$OUT/C.txt"

while ! grep -q "build rc" /tmp/build.out && [ "$(elapsed)" -lt 360 ]; do sleep 5; done
tail -1 /tmp/build.out
REPS=3 bash benchmarks/peers/run_llamacpp.sh "$OUT/B.llamacpp.json" "$GGUF"/B-*.gguf 2> "$OUT/llamacpp-run.log" | tail -8
echo "peer at $(elapsed) s"
timeout 80 python3 -m benchmarks.run --shapes B --gguf-dir "$GGUF" --synthetic-only --repeats 3 --depths 0,1024 \
  --prompt-tokens 512 --decode-tokens 128 --split-steps 5 --peer-json "$OUT/B.llamacpp.json" --json "$OUT/B.json" \
  > "$OUT/B.txt" 2>&1
echo "B rc=$? at $(elapsed) s"; sed -n 1,14p "$OUT/B.txt"; grep -A6 "prefill chunk by kernel" "$OUT/B.txt"

ab INT8_MATMUL_STAGE_GROUPS 1,2,4 120 -- "${prefill_b[@]}"
ab INT8_PREFILL_FUSED_QUANTIZE True,False 80 -- "${prefill_b[@]}"
ab INT8_MATVEC_DEFER_INPUT_SCALE True,False 130 -- "${decode_b[@]}"
ab TILED_ATTENTION_SMALL_HEAD_KEYS 16,32 80 -- "${prefill_b[@]}"
ab INT8_MATMUL_WIDE_TOKENS_PER_THREAD 8,4 80 -- "${prefill_b[@]}"
echo "done at $(elapsed) s"
