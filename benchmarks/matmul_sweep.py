"""Prefill matmul sweep: kernels/matmul.wgsl (float) against quantize_int8.wgsl + matmul_q4_int8.wgsl
(int8 dot products) with each TOKENS_PER_THREAD and ROW_LANES, on random q4g32
matrices of the benchmark shapes' sizes times a 512-token chunk.

    python -m benchmarks.matmul_sweep [shape letters, e.g. B,C] [tokens, default 512]

Each configuration runs 20 times in one compute pass (a long pass keeps the GPU's clock up), timed
by timestamps, best of three rounds interleaved across configurations after a warm-up round.
Prints µs per matmul (the int8 path: quantize + matmul, and the quantize alone), the effective
TFLOPS (2 · rows · cols · tokens / time), and each result's error against numpy float64 (the int8
path's includes its input rounding). Benchmark glue, not a test.
"""
import sys
import time

import numpy as np
import wgpu

from benchmarks.matvec_sweep import SHAPES, random_q4g32
from notebook_llm.gpu.compute import GpuContext

MORE_SHAPES = {"B.o": (2048, 2048), "D.qkv": (1152, 896), "D.gate_up": (9728, 896), "D.down": (896, 4864)}
# (kernel, tokens a thread, other pipeline constants)
CONFIGS = [("matmul", 4, {})] + [("matmul_q4_int8", t, {"ROW_LANES": r}) for t in (8, 4) for r in (32, 16)]
REPEATS = 20  # matmuls a timed pass


def sweep_shape(ctx, rng, name, rows, cols, n_tokens):
    codes, scales, w = random_q4g32(rng, rows, cols)
    x = rng.standard_normal((n_tokens, cols)).astype(np.float32)
    ref = x.astype(np.float64) @ w.T
    codes_buffer, scales_buffer, x_buffer = ctx.buffer(codes), ctx.buffer(scales), ctx.buffer(x)
    y = ctx.empty(n_tokens * rows * 4)
    x_codes, x_scales = ctx.empty(n_tokens * cols), ctx.empty(n_tokens * cols // 32 * 8)
    shape = ctx.uniform(np.array([rows, cols, 0, 0], np.uint32))
    step = ctx.uniform(np.array([n_tokens, 0, 0, 0], np.uint32))
    quantize = ctx.dispatch("quantize_int8", [x_buffer, x_codes, x_scales, shape, step], (-(-cols // 2048), n_tokens, 1))
    runs = {}
    for kernel, tokens_per_thread, constants in CONFIGS:
        key = (kernel, tokens_per_thread, tuple(sorted(constants.items())))
        if kernel == "matmul":
            d = ctx.dispatch(kernel, [codes_buffer, scales_buffer, x_buffer, y, shape, step],
                             (-(-rows // 64), -(-n_tokens // (16 * tokens_per_thread)), 1), weights="q4g32",
                             TOKENS_PER_THREAD=tokens_per_thread)
            runs[key] = [d]
        else:
            d = ctx.dispatch(kernel, [codes_buffer, scales_buffer, x_codes, x_scales, y, shape, step],
                             (-(-rows // (4 * constants["ROW_LANES"])), -(-n_tokens // (8 * tokens_per_thread)), 1),
                             weights="q4g32", TOKENS_PER_THREAD=tokens_per_thread, **constants)
            runs[key] = [quantize, d]
    runs[("quantize_int8", 0, ())] = [quantize]
    best = {}
    for round_ in range(4):  # round 0 warms the clocks up and is not kept
        for key, dispatches in runs.items():
            seconds = time_pass(ctx, dispatches * REPEATS) / REPEATS
            out = ctx.read(y, np.float32, n_tokens * rows).reshape(n_tokens, rows)
            error = float(np.abs(out - ref).max() / np.abs(ref).max())
            if round_:
                best[key] = min(best.get(key, (np.inf, 0.0)), (seconds, error))
    flops = 2 * rows * cols * n_tokens
    print(f"\n{name} [{rows}, {cols}] x {n_tokens} tokens", flush=True)
    results = {}
    for (kernel, tokens_per_thread, constants), (seconds, error) in sorted(best.items(), key=lambda kv: kv[1]):
        label = kernel if kernel == "quantize_int8" else " ".join(
            [f"{kernel} tokens/thread {tokens_per_thread}"] + [f"{k}={v}" for k, v in constants])
        figures = "" if kernel == "quantize_int8" else f"  {flops / seconds / 1e12:6.1f} TFLOPS  max rel. error {error:.1e}"
        print(f"  {label:50s} {seconds * 1e6:9.1f} µs{figures}", flush=True)
        results[label] = (seconds, error)
    return results


def time_pass(ctx, dispatches) -> float:
    """Seconds of one compute pass of `dispatches`: timestamps where the adapter has them, else wall."""
    dev = ctx.device
    queries = dev.create_query_set(type=wgpu.QueryType.timestamp, count=2) if ctx.gpu.has_timestamps else None
    encoder = dev.create_command_encoder()
    writes = {"timestamp_writes": {"query_set": queries, "beginning_of_pass_write_index": 0,
                                   "end_of_pass_write_index": 1}} if queries else {}
    compute_pass = encoder.begin_compute_pass(**writes)
    for d in dispatches:
        compute_pass.set_pipeline(d.pipeline)
        compute_pass.set_bind_group(0, d.bind_group)
        compute_pass.dispatch_workgroups(*d.workgroups)
    compute_pass.end()
    resolved = None
    if queries:
        resolved = dev.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
        encoder.resolve_query_set(queries, 0, 2, resolved, 0)
    t0 = time.perf_counter()
    ctx.queue.submit([encoder.finish()])
    if resolved is None:
        ctx.read(ctx.empty(4))  # returns once the GPU has finished the submission
        return time.perf_counter() - t0
    start, end = np.frombuffer(ctx.queue.read_buffer(resolved), np.uint64)
    return (end - start) / 1e9


def main(argv):
    letters = argv[0].split(",") if argv else ["B"]
    n_tokens = int(argv[1]) if len(argv) > 1 else 512
    ctx = GpuContext.create()
    print(ctx.gpu.adapter.description, flush=True)
    rng = np.random.default_rng(1)
    for name, (rows, cols) in {**SHAPES, **MORE_SHAPES}.items():
        if name.split(".")[0] in letters:
            sweep_shape(ctx, rng, name, rows, cols, n_tokens)


if __name__ == "__main__":
    main(sys.argv[1:])
