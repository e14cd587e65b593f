"""What a storage load costs on a CPU Vulkan driver (lavapipe): read-only kernels, one lane a row,
each lane XOR-folding its row, timed by the element type of the load.

    python -m benchmarks.cpu_loads [rows, default 3072] [row bytes, default 1152]

lavapipe (Mesa 22.3, LLVM 15) runs a subgroup as the SIMD lanes of one thread and loads a value
at a lane-varying address lane by lane (a loop over the lanes with a mask test, a bounds check and
an insert per component), so a load's cost follows its lane count and component count, not its
bytes: on a 2-core EPYC (AVX-512, 8 lanes), default size, one run: ~17 ns per 8 lanes of u32,
~37 ns of vec4<u32> (~7 ns a further component), ~48 ns of vec4<u64>, which moves twice the bytes
of vec4<u32> for 1.3x the time (10.6 against 6.9 GB/s).
`uniform` loads the same vec4<u32> at an address shared by the subgroup (a workgroup of 8 lanes
walks its rows): Mesa 22.3 takes its scalar load-and-broadcast path only where the address is built
from constants and push constants, outside any loop, so inside the row loop it still loads lane by
lane, the same bytes 8 times, and reads ~8x slower. Prints µs per dispatch and GB/s; each
kernel's result is checked against numpy. Benchmark glue, not a test; `measure` is what
tests/test_benchmarks.py runs small.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import numpy as np

from notebook_llm.gpu.compute import Dispatch, GpuContext
from notebook_llm.gpu.device import request_adapter

# element type -> (bytes, WGSL folding the XOR of a row's elements into one u32)
ELEMENTS = {
    "u32": (4, "s"),
    "vec2<u32>": (8, "s.x ^ s.y"),
    "vec4<u32>": (16, "s.x ^ s.y ^ s.z ^ s.w"),
    "u64": (8, "u32(s) ^ u32(s >> 32u)"),
    "vec2<u64>": (16, "u32(s.x ^ s.y) ^ u32((s.x ^ s.y) >> 32u)"),
    "vec4<u64>": (32, "u32(s.x ^ s.y ^ s.z ^ s.w) ^ u32((s.x ^ s.y ^ s.z ^ s.w) >> 32u)"),
}
LANE_ROWS = 16  # workgroup of the lane-varying kernels
UNIFORM_ROWS = 8  # rows a workgroup walks in the uniform-address kernel


def _source(element: str, uniform: bool) -> str:
    fold = ELEMENTS[element][1]
    head = f"""
struct Params {{ rows: u32, elements: u32, pad0: u32, pad1: u32 }}
@group(0) @binding(0) var<storage, read> data: array<{element}>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> params: Params;
"""
    if uniform:  # every lane of the workgroup reads row `row`: the address is subgroup-uniform
        return head + f"""
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lane: u32) {{
    for (var r = 0u; r < {UNIFORM_ROWS}u; r++) {{
        let row = wg.x * {UNIFORM_ROWS}u + r;
        var s = {element}();
        for (var e = 0u; e < params.elements; e++) {{ s ^= data[min(row, params.rows - 1u) * params.elements + e]; }}
        if (lane == 0u && row < params.rows) {{ out[row] = {fold}; }}
    }}
}}"""
    return head + f"""
@compute @workgroup_size({LANE_ROWS})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {{
    let row = min(gid.x, params.rows - 1u);
    var s = {element}();
    for (var e = 0u; e < params.elements; e++) {{ s ^= data[row * params.elements + e]; }}
    if (gid.x < params.rows) {{ out[gid.x] = {fold}; }}
}}"""


@dataclass(frozen=True)
class LoadTime:
    element: str
    uniform: bool
    seconds: float  # one dispatch, best of the rounds
    nbytes: int

    @property
    def gbs(self) -> float:
        return self.nbytes / self.seconds / 1e9


def _kind(uniform: bool) -> str:
    return "subgroup-uniform address" if uniform else "lane-varying address"


def load_context() -> GpuContext:
    """The best adapter's context, with 64-bit integers where it offers them (the u64 cases)."""
    offered = request_adapter(None).features
    return GpuContext.create(required_features=("shader-int64",) if "shader-int64" in offered else ())


def measure(ctx: GpuContext, rows: int, row_bytes: int, dispatches: int = 20, rounds: int = 5) -> list[LoadTime]:
    """Each kernel over the same random rows (rounds interleaved across kernels), its output checked."""
    dev = ctx.device
    rng = np.random.default_rng(0)
    words = rng.integers(0, 2**32, size=(rows, row_bytes // 4), dtype=np.uint32)
    expected = np.bitwise_xor.reduce(words, axis=1)
    data, out = ctx.buffer(words), ctx.empty(rows * 4)
    cases = [(e, False) for e in ELEMENTS if "u64" not in e or "shader-int64" in ctx.gpu.features]
    cases.append(("vec4<u32>", True))
    runs = []
    for element, uniform in cases:
        size = ELEMENTS[element][0]
        params = ctx.uniform(np.array([rows, row_bytes // size, 0, 0], np.uint32))
        module = dev.create_shader_module(code=_source(element, uniform))
        pipeline = dev.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main"})
        bind_group = dev.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
            {"binding": i, "resource": {"buffer": b, "offset": 0, "size": b.size}} for i, b in enumerate((data, out, params))])
        dispatch = Dispatch(pipeline, bind_group, (-(-rows // (UNIFORM_ROWS if uniform else LANE_ROWS)), 1, 1))

        def run(n: int, dispatch=dispatch) -> np.ndarray:
            ctx.run([dispatch] * n)
            return ctx.read(out, np.uint32, rows)

        ctx.fill(out, 0)
        if not np.array_equal(run(1), expected):
            raise AssertionError(f"{element} ({_kind(uniform)}) read the rows wrong")
        runs.append(((element, uniform), run))
    best = {key: np.inf for key, _ in runs}
    for _ in range(rounds):
        for key, run in runs:
            t0 = time.perf_counter()
            run(dispatches)
            best[key] = min(best[key], (time.perf_counter() - t0) / dispatches)
    return [LoadTime(element, uniform, seconds, words.nbytes) for (element, uniform), seconds in best.items()]


def main(argv: list[str]) -> None:
    rows = int(argv[0]) if argv else 3072
    row_bytes = int(argv[1]) if len(argv) > 1 else 1152
    ctx = load_context()
    print(f"{ctx.gpu.adapter.description}: {rows} rows of {row_bytes} bytes, one lane a row", flush=True)
    for t in measure(ctx, rows, row_bytes):
        print(f"  {t.element:10s} {_kind(t.uniform):25s} {t.seconds * 1e6:9.1f} µs  {t.gbs:6.2f} GB/s")


if __name__ == "__main__":
    main(sys.argv[1:])
