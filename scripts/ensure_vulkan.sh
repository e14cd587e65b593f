#!/usr/bin/env bash
# Make sure wgpu finds a native (Vulkan) adapter. Installs Debian's mesa-vulkan-drivers
# (lavapipe, a Vulkan driver running on the CPU) only when no adapter is found.
# Usage: scripts/ensure_vulkan.sh PYTHON
set -u
py=${1:-python3}
if "$py" -m notebook_llm adapters --require-native >/dev/null 2>&1; then exit 0; fi
echo "No Vulkan adapter found; installing Mesa's CPU Vulkan driver (mesa-vulkan-drivers)..."
bash "$(dirname "$0")/apt_install.sh" mesa-vulkan-drivers
if "$py" -m notebook_llm adapters --require-native; then exit 0; fi
cat >&2 <<'MSG'
error: no WebGPU adapter could be found, and none could be installed.
  notebook_llm needs a GPU driver with Vulkan (Linux/Windows), Metal (macOS) or D3D12 (Windows).
  On Debian/Ubuntu without a GPU, install Mesa's CPU driver as root:  apt-get install mesa-vulkan-drivers
MSG
exit 1
