"""Decode matvec tuning sweep: kernels/matvec.wgsl and matvec_q4_int8.wgsl with each
(THREADS_PER_ROW, ROWS_PER_THREAD), and on CPU adapters matvec_broadcast.wgsl (one thread a row),
on random q4g32 matrices of the benchmark shapes' sizes.

    python -m benchmarks.matvec_sweep [MiB of copies per shape, default 600] [shape letters, e.g. A,C] [kernels]

`kernels` (comma-separated, default matvec,matvec_q4_int8) may name a copy of a kernel put into
kernels/ under another name, to time two versions side by side.

Each configuration runs in one compute pass of many dispatches over rotating copies of the matrix
(more bytes than the GPU's L2, as a decode step reads every matrix once), timed by timestamps,
after a warm-up round, best of four rounds interleaved across configurations (a lone first
configuration otherwise runs on a cold GPU clock). Every pass holds 200 dispatches: an H200 drops its
SM clock to ~345 MHz between short submits, so passes of a few dispatches time a slowed GPU (the
big shapes read up to 1.5x slower that way). Prints µs per dispatch and GB/s, and each
result's error against numpy float64. The constants chosen in notebook_llm/models/llama.py
(MATVEC_*, INT8_MATVEC_*) come from this sweep on an H200. Benchmark glue, not a test.
"""
import statistics
import sys
import time

import numpy as np
import wgpu

from notebook_llm.gpu.compute import GpuContext
from notebook_llm.models.llama import INT8_MATVEC_MAX_CHUNK_GROUPS

SHAPES = {"C.qkv": (6144, 4096), "C.o": (4096, 4096), "C.gate_up": (28672, 4096), "C.down": (4096, 14336),
          "B.qkv": (3072, 2048), "B.gate_up": (16384, 2048), "B.down": (2048, 8192),
          "A.qkv": (960, 576), "A.gate_up": (3072, 576), "A.down": (576, 1536)}
GPU_THREADS_PER_ROW = {"matvec": (32, 16), "matvec_q4_int8": (32, 16, 8)}  # others: the int8 kernel's
CPU_CONFIGS = [("matvec", 4, r) for r in (1, 2, 4)] + [("matvec_q4_int8", t, r) for t in (4, 2) for r in (2, 4)] + [
    ("matvec_broadcast", 1, r) for r in (1, 2, 4, 8)]
ALIGN = 256  # storage-buffer offset alignment


def random_q4g32(rng, rows, cols):
    """codes (u32, 8 nibbles each), scales ((f16 scale, f16 min) per group) and W as float64."""
    codes = rng.integers(0, 2**32, rows * cols // 8, dtype=np.uint32)
    scale_min = np.stack([rng.uniform(0.001, 0.01, rows * cols // 32),
                          rng.uniform(-0.08, 0.0, rows * cols // 32)], -1).astype(np.float16)
    q = ((codes[:, None] >> (4 * np.arange(8, dtype=np.uint32))) & 15).reshape(rows, cols // 32, 32)
    sm = scale_min.astype(np.float64).reshape(rows, cols // 32, 2)
    return codes, scale_min.view(np.uint32).ravel(), (q * sm[..., :1] + sm[..., 1:]).reshape(rows, cols)


def sweep_shape(ctx, rng, name, rows, cols, total_bytes, configs):
    dev = ctx.device
    codes, scales, w = random_q4g32(rng, rows, cols)
    stride_c, stride_s = -(-codes.nbytes // ALIGN) * ALIGN, -(-scales.nbytes // ALIGN) * ALIGN
    copies = max(2, min(400, total_bytes // (stride_c + stride_s)))
    usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST
    codes_buffer = dev.create_buffer(size=stride_c * copies, usage=usage)
    scales_buffer = dev.create_buffer(size=stride_s * copies, usage=usage)
    for i in range(copies):
        ctx.queue.write_buffer(codes_buffer, i * stride_c, codes.tobytes())
        ctx.queue.write_buffer(scales_buffer, i * stride_s, scales.tobytes())
    x = rng.standard_normal(cols).astype(np.float32)
    ref = w @ x.astype(np.float64)
    x_buffer, y = ctx.buffer(x), ctx.empty(rows * 4)
    params = ctx.uniform(np.array([rows, cols, 0, 0], np.uint32))
    nbytes = codes.nbytes + scales.nbytes
    print(f"\n{name} [{rows}, {cols}]: {nbytes / 1e6:.1f} MB, {copies} copies", flush=True)
    timed = []
    for kernel, threads_per_row, rows_per_thread in configs:
        if kernel == "matvec_broadcast":  # one lane a row, 16 lanes a workgroup
            pipeline = ctx.pipelines.get(kernel, "q4g32", None, ROWS_PER_THREAD=rows_per_thread)
            rows_per_workgroup = 16 * rows_per_thread
        else:
            # the int8 kernels stage the input as the model does (the float kernels take no CHUNK_GROUPS)
            staging = {"CHUNK_GROUPS": min(cols // 32, INT8_MATVEC_MAX_CHUNK_GROUPS)} if "int8" in kernel else {}
            pipeline = ctx.pipelines.get(kernel, "q4g32", None, THREADS_PER_ROW=threads_per_row, ROWS_PER_THREAD=rows_per_thread,
                                         **staging)
            rows_per_workgroup = 256 // threads_per_row * rows_per_thread
        bind_groups = [dev.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
            {"binding": 0, "resource": {"buffer": codes_buffer, "offset": i * stride_c, "size": codes.nbytes}},
            {"binding": 1, "resource": {"buffer": scales_buffer, "offset": i * stride_s, "size": scales.nbytes}},
            {"binding": 2, "resource": {"buffer": x_buffer, "offset": 0, "size": x_buffer.size}},
            {"binding": 3, "resource": {"buffer": y, "offset": 0, "size": y.size}},
            {"binding": 4, "resource": {"buffer": params, "offset": 0, "size": params.size}}]) for i in range(copies)]
        workgroups = -(-rows // rows_per_workgroup)
        timed.append(((kernel, threads_per_row, rows_per_thread), pipeline, bind_groups, workgroups))
    n = 200 if ctx.gpu.has_timestamps else 3  # long passes keep the GPU's clock up
    queries = dev.create_query_set(type=wgpu.QueryType.timestamp, count=2) if ctx.gpu.has_timestamps else None
    resolved = dev.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
    best = {}
    for round_ in range(5):  # round 0 warms the clocks up and is not kept
        for key, pipeline, bind_groups, workgroups in timed:
            times = []
            for _ in range(4):
                encoder = dev.create_command_encoder()
                writes = {"timestamp_writes": {"query_set": queries, "beginning_of_pass_write_index": 0,
                                               "end_of_pass_write_index": 1}} if queries else {}
                compute_pass = encoder.begin_compute_pass(**writes)
                compute_pass.set_pipeline(pipeline)
                for i in range(n):
                    compute_pass.set_bind_group(0, bind_groups[i % copies])
                    compute_pass.dispatch_workgroups(workgroups, 1, 1)
                compute_pass.end()
                if queries:
                    encoder.resolve_query_set(queries, 0, 2, resolved, 0)
                t0 = time.perf_counter()
                ctx.queue.submit([encoder.finish()])
                out = ctx.read(y)
                wall = time.perf_counter() - t0
                if queries:
                    start, end = np.frombuffer(ctx.queue.read_buffer(resolved), np.uint64)
                    wall = (end - start) / 1e9
                times.append(wall / n)
            error = float(np.abs(out - ref).max() / np.abs(ref).max())
            if round_:
                best[key] = min(best.get(key, (np.inf, 0.0)), (statistics.median(times), error))
    for (kernel, threads_per_row, rows_per_thread), (seconds, error) in sorted(best.items(), key=lambda kv: kv[1]):
        print(f"  {kernel:17s} threads/row {threads_per_row:2d} rows/thread {rows_per_thread}  {seconds * 1e6:8.2f} µs"
              f"  {nbytes / seconds / 1e9:7.1f} GB/s  max rel. error {error:.1e}", flush=True)


def main(argv):
    total_bytes = int(float(argv[0]) * 2**20) if argv else 600 * 2**20
    letters = argv[1].split(",") if len(argv) > 1 else None
    ctx = GpuContext.create()
    print(ctx.gpu.adapter.description, "with subgroups" if ctx.gpu.has_subgroups else "without subgroups", flush=True)
    kernels = argv[2].split(",") if len(argv) > 2 else list(GPU_THREADS_PER_ROW)
    configs = CPU_CONFIGS if ctx.gpu.adapter.is_cpu else [
        (k, t, r) for k in kernels for t in GPU_THREADS_PER_ROW.get(k, (32, 16, 8)) for r in (1, 2, 4)]
    rng = np.random.default_rng(1)
    for name, (rows, cols) in SHAPES.items():
        if letters is None or name.split(".")[0] in letters:
            sweep_shape(ctx, rng, name, rows, cols, total_bytes, configs)


if __name__ == "__main__":
    main(sys.argv[1:])
