"""Adapter choice and the command line's behaviour when no adapter matches."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from notebook_llm.errors import NoAdapterError
from notebook_llm.gpu.device import ADAPTER_ENV, create_device, list_adapters, request_adapter
from notebook_llm.gpu.shaders import shader_source


def test_adapters_are_listed_native_backends_first():
    adapters = list_adapters()
    assert adapters, "the test machine has lavapipe at least"
    backends = [a.backend.lower() for a in adapters]
    assert backends == sorted(backends, key=lambda b: b == "opengl")


def test_adapter_name_override_picks_the_matching_adapter(monkeypatch):
    first = list_adapters()[0]
    fragment = first.description.split()[0]
    monkeypatch.setenv(ADAPTER_ENV, fragment.upper())  # case-insensitive substring
    assert fragment.lower() in request_adapter().summary.lower()


def test_unknown_adapter_name_raises_a_clear_typed_error(monkeypatch):
    monkeypatch.setenv(ADAPTER_ENV, "no-such-gpu-xyz")
    with pytest.raises(NoAdapterError, match="no-such-gpu-xyz.*Adapters seen"):
        request_adapter()


def test_device_gets_the_optional_features_the_adapter_offers():
    device = create_device()
    offered = device.adapter.features
    for feature in ("shader-f16", "subgroup", "timestamp-query"):
        assert (feature in device.features) == (feature in offered)
    assert device.max_storage_binding >= 128 * 2**20


def test_demo_without_a_usable_adapter_prints_one_line_not_a_traceback():
    env = {**os.environ, ADAPTER_ENV: "no-such-gpu-xyz"}
    result = subprocess.run([sys.executable, "-m", "notebook_llm", "demo"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no-such-gpu-xyz" in result.stderr


def test_include_step_resolves_the_weight_layout_and_hoists_enables():
    source = shader_source("matvec", weights="q4g32")
    assert "fn weight_block8" in source
    assert not any(line.startswith("//!include") for line in source.splitlines())
    with pytest.raises(ValueError, match="weight layout"):
        shader_source("matvec")


def test_kernel_modules_compile_without_runtime_checks_and_still_report_errors(ctx, monkeypatch):
    """create_module drops naga's bounds checks and loop counters (wgpu-native's trusted modules): the
    kernels' own tests check their bounds. A broken shader still raises wgpu's typed error, on both
    paths."""
    import numpy as np
    import wgpu

    from notebook_llm.gpu import shaders

    assert shaders._TRUSTED_MODULES  # the wgpu-native backend this project pins
    broken = "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }"
    with pytest.raises(wgpu.GPUValidationError):
        shaders.create_module(ctx.device, "broken", broken)
    monkeypatch.setenv("NOTEBOOK_LLM_CHECKED_SHADERS", "1")
    with pytest.raises(wgpu.GPUValidationError):
        shaders.create_module(ctx.device, "broken", broken)
    monkeypatch.delenv("NOTEBOOK_LLM_CHECKED_SHADERS")
    out = ctx.empty(16)
    code = ("@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n"
            "@compute @workgroup_size(4) fn main(@builtin(local_invocation_index) i: u32) { out[i] = i * 7u; }")
    pipeline = ctx.device.create_compute_pipeline(layout="auto", compute={
        "module": shaders.create_module(ctx.device, "trusted", code), "entry_point": "main"})
    bind_group = ctx.device.create_bind_group(layout=pipeline.get_bind_group_layout(0),
                                              entries=[{"binding": 0, "resource": {"buffer": out}}])
    encoder = ctx.device.create_command_encoder()
    compute_pass = encoder.begin_compute_pass()
    compute_pass.set_pipeline(pipeline)
    compute_pass.set_bind_group(0, bind_group)
    compute_pass.dispatch_workgroups(1)
    compute_pass.end()
    ctx.queue.submit([encoder.finish()])
    assert ctx.read(out, np.uint32, 4).tolist() == [0, 7, 14, 21]
