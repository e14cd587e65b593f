"""Shader loading from `kernels/` and the pipeline cache.

WGSL has no `#include`, so this module has the one include step the project uses: a line
`//!include NAME` in a kernel is replaced by `kernels/NAME.wgsl`, and the line
`//!include weights` by the weight-layout file the caller picks (`weights_q4g32.wgsl`, ...), and
`//!include input` by the matvec input prologue it picks (`input_plain.wgsl`, `input_rmsnorm.wgsl`, ...),
`//!include scales` by the layout's group-scale file (`scales_q4g32.wgsl`, ...), `//!include group32` by
the layout's 32-column-group reader (`group32_q4g32.wgsl`, ...), and `//!include reduce`
by `reduce_subgroup.wgsl` on devices with subgroups, else `reduce_workgroup.wgsl`.
No other text substitution happens: shapes go in uniforms, tuning knobs are `override`s.
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

import wgpu

try:  # wgpu-native's module creation without runtime checks (see `create_module`)
    from wgpu.backends.wgpu_native import _api as _native
    from wgpu.backends.wgpu_native._ffi import ffi as _ffi, lib as _lib
    _TRUSTED_MODULES = hasattr(_lib, "wgpuDeviceCreateShaderModuleTrusted")
except ImportError:  # another wgpu backend
    _TRUSTED_MODULES = False

_INCLUDE = re.compile(r"^//!include (\w+)\s*$", re.MULTILINE)


def kernels_dir() -> Path:
    """`kernels/` inside the installed package (wheel), else the source checkout's top level."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "kernels", here.parent / "kernels"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"kernels/ not found next to {here}")


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (kernels_dir() / f"{name}.wgsl").read_text()


def shader_source(name: str, weights: str | None = None, prologue: str | None = None, subgroups: bool = False) -> str:
    """The full WGSL of kernel `name`, includes resolved (each file at most once)."""
    seen: set[str] = set()

    def expand(text: str) -> str:
        def replace(match: re.Match) -> str:
            include = match.group(1)
            if include in ("weights", "scales", "group32"):
                if weights is None:
                    raise ValueError(f"kernel {name!r} needs a weight layout (weights=...)")
                include = f"{include}_{weights}"
            elif include == "reduce":
                include = "reduce_subgroup" if subgroups else "reduce_workgroup"
            elif include == "input":
                include = f"input_{prologue or 'plain'}"
            if include in seen:
                return ""
            seen.add(include)
            return f"// ---- {include}.wgsl ----\n" + expand(_read(include))

        return _INCLUDE.sub(replace, text)

    source = expand(_read(name))
    # `enable` directives must come before everything else; hoist them out of includes.
    enables = sorted(set(re.findall(r"^enable \w+;\s*$", source, re.MULTILINE)))
    body = re.sub(r"^enable \w+;\s*$", "", source, flags=re.MULTILINE)
    return "\n".join(enables) + "\n" + body


def create_module(device: wgpu.GPUDevice, label: str, code: str) -> wgpu.GPUShaderModule:
    """A shader module of our own kernels, compiled without naga's runtime checks: the bounds check
    it wraps around every storage access and the counter it adds to every loop. Every kernel's tests
    poison the memory around its outputs and the inputs past its extents, so a read or write out of
    bounds fails them; the driver's own robust buffer access, where enabled, still applies. lavapipe,
    SmolLM2's decode step: 33 -> 31 ms. NOTEBOOK_LLM_CHECKED_SHADERS=1 keeps the checks (debugging)."""
    if not _TRUSTED_MODULES or os.environ.get("NOTEBOOK_LLM_CHECKED_SHADERS"):
        return device.create_shader_module(label=label, code=code)
    source = _native.new_struct_p("WGPUShaderSourceWGSL *", code=_native.to_c_string_view(code))
    source[0].chain.next = _ffi.NULL
    source[0].chain.sType = _lib.WGPUSType_ShaderSourceWGSL
    descriptor = _native.new_struct_p("WGPUShaderModuleDescriptor *", nextInChain=_ffi.cast("WGPUChainedStruct *", source),
                                      label=_native.to_c_string_view(label))
    no_checks = 0  # WGPUShaderRuntimeChecks_None
    handle = _native.libf.wgpuDeviceCreateShaderModuleTrusted(device._internal, descriptor, no_checks)
    if handle == _ffi.NULL:
        raise RuntimeError(f"shader module {label!r} could not be created")
    return _native.GPUShaderModule(label, handle, device)


class PipelineCache:
    """Compute pipelines keyed by (kernel, weight layout, input prologue, reduction, override constants), built once."""

    def __init__(self, device: wgpu.GPUDevice, subgroups: bool = False):
        self._device = device
        self.subgroups = subgroups  # resolve `//!include reduce` to subgroup shuffles
        self._modules: dict[tuple, wgpu.GPUShaderModule] = {}
        self._pipelines: dict[tuple, wgpu.GPUComputePipeline] = {}

    def get(self, name: str, weights: str | None = None, prologue: str | None = None,
            **constants: float) -> wgpu.GPUComputePipeline:
        key = (name, weights, prologue, self.subgroups, tuple(sorted(constants.items())))
        pipeline = self._pipelines.get(key)
        if pipeline is None:
            module_key = key[:4]
            module = self._modules.get(module_key)
            if module is None:
                label = "_".join(part for part in (name, weights, prologue) if part)
                module = create_module(self._device, label, shader_source(name, weights, prologue, self.subgroups))
                self._modules[module_key] = module
            stage = {"module": module, "entry_point": "main"}
            if constants:
                stage["constants"] = {k: float(v) for k, v in constants.items()}
            pipeline = self._device.create_compute_pipeline(label=name, layout="auto", compute=stage)
            self._pipelines[key] = pipeline
        return pipeline
