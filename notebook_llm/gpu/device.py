"""Adapter choice and device creation. The only module that asks wgpu for hardware.

High-performance adapters first; `NOTEBOOK_LLM_ADAPTER` (a case-insensitive substring of
the adapter's description, e.g. "llvmpipe" or "nvidia") overrides the choice.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field

import wgpu

from ..errors import DeviceLimitError, NoAdapterError

ADAPTER_ENV = "NOTEBOOK_LLM_ADAPTER"

# Optional features we ask for whenever the adapter offers them: each one turns on a fast path.
OPTIONAL_FEATURES = ("shader-f16", "subgroup", "timestamp-query")

# Limits raised to the adapter's maximum: model weights live in large storage bindings.
RAISED_LIMITS = (
    "max-storage-buffer-binding-size",
    "max-buffer-size",
    "max-storage-buffers-per-shader-stage",
    "max-compute-workgroup-storage-size",
    "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x",
)


@dataclass(frozen=True)
class AdapterInfo:
    """What a front end may show about the adapter, without touching wgpu."""

    description: str
    backend: str
    adapter_type: str
    features: frozenset[str]
    limits: dict = field(hash=False, compare=False)

    @property
    def is_cpu(self) -> bool:
        return self.adapter_type.lower() == "cpu" or "llvmpipe" in self.description.lower()


def _describe(adapter: wgpu.GPUAdapter) -> AdapterInfo:
    info = adapter.info
    return AdapterInfo(
        description=adapter.summary,
        backend=str(info.get("backend_type", "")),
        adapter_type=str(info.get("adapter_type", "")),
        features=frozenset(adapter.features),
        limits=dict(adapter.limits),
    )


def list_adapters() -> list[AdapterInfo]:
    """Every compute-capable adapter wgpu can see, in our order of preference."""
    return [_describe(a) for a in _ordered_adapters()]


def _quiet_headless_vulkan() -> None:
    """Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" (once per window-system probe) on
    machines without a desktop session; a private runtime directory keeps kernels' output clean."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    if not runtime_dir or not os.path.isdir(runtime_dir):
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="notebook-llm-runtime-")  # mode 0700


_ENUMERATED: list[wgpu.GPUAdapter] = []


def _enumerate_once() -> list[wgpu.GPUAdapter]:
    """wgpu's adapters, enumerated once per process and never released: releasing an OpenGL (EGL)
    adapter on another thread than the one that enumerated it aborts the process (wgpu-hal
    panics with EGL BadAccess), and widgets load models on worker threads."""
    if not _ENUMERATED:
        _ENUMERATED.extend(wgpu.gpu.enumerate_adapters_sync())
    return list(_ENUMERATED)


def _ordered_adapters() -> list[wgpu.GPUAdapter]:
    _quiet_headless_vulkan()
    try:
        adapters = _enumerate_once()
    except Exception as error:  # wgpu raises plain RuntimeErrors when no backend loads
        raise NoAdapterError(f"wgpu could not enumerate adapters: {error}") from error

    def rank(adapter: wgpu.GPUAdapter) -> tuple:
        info = adapter.info
        kind = str(info.get("adapter_type", "")).lower()
        backend = str(info.get("backend_type", "")).lower()
        kind_rank = {"discretegpu": 0, "integratedgpu": 1, "virtualgpu": 2, "cpu": 3}.get(kind, 4)
        # OpenGL lacks storage-buffer features we rely on; keep it last.
        backend_rank = 1 if backend == "opengl" else 0
        return (backend_rank, kind_rank)

    return sorted(adapters, key=rank)


def request_adapter(name: str | None = None) -> wgpu.GPUAdapter:
    """The adapter to run on: `name` (or $NOTEBOOK_LLM_ADAPTER) as a substring, else the best."""
    wanted = name if name is not None else os.environ.get(ADAPTER_ENV) or None
    adapters = _ordered_adapters()
    if not adapters:
        raise NoAdapterError(
            "No WebGPU adapter was found. Install a Vulkan driver for your GPU, or Mesa's "
            "CPU driver (Debian/Ubuntu: `apt-get install mesa-vulkan-drivers`)."
        )
    if wanted:
        matches = [a for a in adapters if wanted.lower() in a.summary.lower()]
        if not matches:
            seen = "; ".join(a.summary for a in adapters)
            raise NoAdapterError(f"{ADAPTER_ENV}={wanted!r} matches no adapter. Adapters seen: {seen}")
        return matches[0]
    return adapters[0]


@dataclass
class Device:
    """A wgpu device plus what we learned about its adapter."""

    device: wgpu.GPUDevice
    adapter: AdapterInfo
    features: frozenset[str]

    @property
    def queue(self) -> wgpu.GPUQueue:
        return self.device.queue

    @property
    def has_f16(self) -> bool:
        return "shader-f16" in self.features

    @property
    def has_subgroups(self) -> bool:
        return "subgroup" in self.features

    @property
    def has_timestamps(self) -> bool:
        return "timestamp-query" in self.features

    @property
    def max_storage_binding(self) -> int:
        return int(self.device.limits["max-storage-buffer-binding-size"])

    @property
    def max_workgroup_storage(self) -> int:
        """Bytes of workgroup memory one compute workgroup may declare on this device."""
        return int(self.device.limits["max-compute-workgroup-storage-size"])


def create_device(
    adapter_name: str | None = None,
    required_features: tuple[str, ...] = (),
) -> Device:
    """Create a device with `required_features` (error if missing) plus every optional one."""
    adapter = request_adapter(adapter_name)
    offered = set(adapter.features)
    missing = [f for f in required_features if f not in offered]
    if missing:
        raise DeviceLimitError(
            f"Adapter {adapter.summary!r} lacks required feature(s) {missing}; it offers {sorted(offered)}."
        )
    features = sorted(set(required_features) | {f for f in OPTIONAL_FEATURES if f in offered})
    limits = {name: adapter.limits[name] for name in RAISED_LIMITS if name in adapter.limits}
    device = adapter.request_device_sync(required_features=features, required_limits=limits)
    return Device(device=device, adapter=_describe(adapter), features=frozenset(features))
