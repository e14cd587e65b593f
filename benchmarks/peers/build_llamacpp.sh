#!/usr/bin/env bash
# Build llama.cpp's llama-bench (the peer of benchmarks/run.py) from the llama.cpp source bundled in
# the llama-cpp-python 0.3.36 sdist, taken from the package registry. Nothing of llama.cpp enters
# the repository: the source and the binary live in the git-ignored .peer/ of the checkout.
#
#   bash benchmarks/peers/build_llamacpp.sh fetch         # needs the registry: sdist -> .peer/llama.cpp-src.tgz (trimmed, ~10 MB)
#   bash benchmarks/peers/build_llamacpp.sh build [--cpu] # no network: untar, configure, build -> .peer/bin/llama-bench
#   bash benchmarks/peers/build_llamacpp.sh               # fetch if needed, then build
#
# CUDA when nvcc is found (PATH or /usr/local/cuda/bin), for the GPU's compute capability
# (nvidia-smi; default 90 = H100/H200); else, or with --cpu, CPU only. Either way the CPU code is
# built with explicit non-native flags (the native build crashes in ggml's AMX code on our CI CPU).
# Environment: JOBS (default: all cores), BUILD_DIR (default /tmp/llamacpp-build; kept, so a second
# build only relinks), CUDA_ARCH (override the detected architecture).
set -euo pipefail

VERSION=0.3.36
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PEER="$ROOT/.peer"
SRC_TGZ="$PEER/llama.cpp-src.tgz"
BUILD_DIR=${BUILD_DIR:-/tmp/llamacpp-build}
JOBS=${JOBS:-$(nproc)}

fetch() {
  mkdir -p "$PEER"
  if [ -s "$SRC_TGZ" ]; then echo "have $SRC_TGZ"; return; fi
  local tmp; tmp=$(mktemp -d)
  python3 -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$tmp"
  tar xzf "$tmp/llama_cpp_python-$VERSION.tar.gz" -C "$tmp"
  # Only what a llama-bench build reads: no docs, model vocabularies, examples, tests, web UI, or
  # backends other than CPU and CUDA (keeps .peer/ well under the device's 64 MiB carry limit).
  local x=()
  for d in docs models benches examples pocs tests tools/ui tools/server/public gguf-py media \
           ggml/src/ggml-sycl ggml/src/ggml-opencl ggml/src/ggml-hexagon ggml/src/ggml-cann ggml/src/ggml-metal \
           ggml/src/ggml-et ggml/src/ggml-openvino ggml/src/ggml-webgpu ggml/src/ggml-virtgpu ggml/src/ggml-musa; do
    x+=("--exclude=llama.cpp/$d")
  done
  tar czf "$SRC_TGZ" -C "$tmp/llama_cpp_python-$VERSION/vendor" "${x[@]}" --exclude=.git llama.cpp
  rm -rf "$tmp"
  echo "wrote $SRC_TGZ ($(du -h "$SRC_TGZ" | cut -f1)) from llama-cpp-python $VERSION"
}

find_nvcc() {
  command -v nvcc 2>/dev/null || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; } || true
}

build() {
  local force_cpu=${1:-}
  [ -s "$SRC_TGZ" ] || { echo "no $SRC_TGZ: run '$0 fetch' where the package registry is reachable" >&2; exit 1; }
  mkdir -p "$BUILD_DIR" "$PEER/bin"
  [ -d "$BUILD_DIR/llama.cpp" ] || tar xzf "$SRC_TGZ" -C "$BUILD_DIR"
  local generator=() backend nvcc; nvcc=$(find_nvcc)
  command -v ninja > /dev/null && generator=(-G Ninja)
  local common=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF
                -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF)
  # The CPU part is never built -march=native (its AMX code crashes on our CI machine's CPU); with
  # -ngl 99 it only does the token-embedding lookup, so AVX2 costs the GPU figures nothing.
  local flags=(-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON)
  if [ -n "$nvcc" ] && [ "$force_cpu" != "--cpu" ]; then
    local arch=${CUDA_ARCH:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')}
    backend="CUDA (sm_${arch:-90}, $("$nvcc" --version | tail -1))"
    flags+=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=${arch:-90}")
    command -v nvcc > /dev/null || flags+=("-DCMAKE_CUDA_COMPILER=$nvcc")  # not on PATH: tell CMake
  else
    backend="CPU (AVX2, FMA, F16C; not native)"
  fi
  echo "building llama-bench: $backend, $JOBS jobs, in $BUILD_DIR"
  local t0=$SECONDS
  cmake -S "$BUILD_DIR/llama.cpp" -B "$BUILD_DIR/build" "${generator[@]}" "${common[@]}" "${flags[@]}" > "$BUILD_DIR/configure.log" 2>&1 \
    || { tail -30 "$BUILD_DIR/configure.log"; exit 1; }
  cmake --build "$BUILD_DIR/build" --target llama-bench -j "$JOBS" > "$BUILD_DIR/build.log" 2>&1 \
    || { tail -30 "$BUILD_DIR/build.log"; exit 1; }
  cp "$BUILD_DIR/build/bin/llama-bench" "$PEER/bin/llama-bench"
  echo "$backend" > "$PEER/bin/llama-bench.backend"
  echo "built $PEER/bin/llama-bench in $((SECONDS - t0)) s"
}

case "${1:-all}" in
  fetch) fetch ;;
  build) build "${2:-}" ;;
  all) fetch; build "${2:-}" ;;
  --cpu) fetch; build --cpu ;;
  *) echo "usage: $0 [fetch | build [--cpu] | all [--cpu]]" >&2; exit 2 ;;
esac
