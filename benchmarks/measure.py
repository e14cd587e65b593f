"""Measurements on one loaded model: prefill, decode, the decode step's CPU/GPU split, GPU time per
kernel, and the adapter's read bandwidth (the roofline's denominator).

Drives `TokenLoop.generate` as the engine does (greedy, no stop ids, so every run has its full
length), and records the decode step as the loop records it — `decode_graph` plus the sampler's
dispatches in one compute pass, the sampled token copied to a staging buffer — to time its parts.
GPU times come from timestamp queries where the adapter has them; their values are taken as
nanoseconds, as notebook_llm/gpu/timing.py takes them. Benchmark glue: notebook_llm never imports this.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import wgpu

from notebook_llm.engine.generation import GenerationConfig, GenerationStats, TokenLoop
from notebook_llm.engine.sampler import SamplingParams
from notebook_llm.gpu.compute import Dispatch, GpuContext
from notebook_llm.gpu.timing import PassTimer
from notebook_llm.models.llama import GpuMatrix, LlamaModel

MAX_QUERIES = 4096  # wgpu's limit on one timestamp query set
BANDWIDTH_SHADER = Path(__file__).with_name("bandwidth.wgsl")


@dataclass(frozen=True)
class PrefillResult:
    prompt_tokens: int
    tokens_per_s: float  # median over runs
    ttft_ms: float  # median wall time from the generate call to the first sampled token in hand
    runs_tokens_per_s: list[float]
    runs_ttft_ms: list[float]


@dataclass(frozen=True)
class DecodeResult:
    depth: int  # tokens in the KV cache before the first timed step
    tokens: int  # decode steps timed per run
    tokens_per_s: float  # median over runs
    runs_tokens_per_s: list[float]
    # Per step inside the loop (GenerationStats.encode_seconds): writing the Step uniform, recording
    # and submitting, including any wait inside submit (lavapipe waits there for the GPU's previous
    # work; the first step's submit can wait for the prefill). Median over runs.
    loop_cpu_us: float


@dataclass(frozen=True)
class StepSplit:
    position: int
    dispatches: int
    encode_us: float  # median CPU time to record the step into a command buffer (encoder → finish)
    submit_us: float  # median CPU time of queue.submit
    gpu_us: float | None  # median GPU time of the step's compute pass; None without timestamps
    steps: int


@dataclass(frozen=True)
class PrefillSplit:
    tokens: int
    dispatches: int
    encode_us: float  # median CPU time to record the chunk (graph, sampler, record copy)
    wall_us: float  # median time from queue.submit to the sampled token in hand
    gpu_us: float | None  # median GPU time of the chunk's one compute pass (timestamps); None without
    repeats: int


@dataclass(frozen=True)
class KernelTime:
    label: str  # Dispatch.label; the LM head's matvec gets " (lm head)"
    dispatches: int  # per decode step (prefill: per chunk)
    gpu_us: float  # per decode step (prefill: per chunk), summed over its dispatches
    share: float  # of the sum over all labels


@dataclass(frozen=True)
class KernelProfile:
    method: str
    total_us: float  # sum over every label
    kernels: list[KernelTime]


@dataclass(frozen=True)
class Bandwidth:
    gbs: float  # best pass
    median_gbs: float
    buffer_bytes: int
    method: str


# --- generation-level timings -----------------------------------------------------------------


def run_generation(loop: TokenLoop, prompt: Sequence[int], new_tokens: int) -> tuple[GenerationStats, float]:
    """(stats, seconds from the call to the first token in hand) of one greedy generation."""
    stats = GenerationStats()
    config = GenerationConfig(new_tokens, SamplingParams(temperature=0.0, seed=0))
    t0 = time.perf_counter()
    first = None
    for _ in loop.generate(list(prompt), config, stats):
        if first is None:
            first = time.perf_counter() - t0
    return stats, first if first is not None else time.perf_counter() - t0


def measure_prefill(loop: TokenLoop, prompt: Sequence[int], repeats: int) -> PrefillResult:
    """The whole prompt prefilled from an empty cache, then one token sampled, `repeats` times."""
    tps, ttft = [], []
    for _ in range(repeats):
        loop.reset()
        stats, first = run_generation(loop, prompt, 1)
        tps.append(stats.prefill_tokens_per_s)
        ttft.append(first * 1e3)
    return PrefillResult(len(prompt), statistics.median(tps), statistics.median(ttft), tps, ttft)


def measure_decode(loop: TokenLoop, context: Sequence[int], tokens: int, repeats: int, depth: int,
                   fill: str = "prefill") -> DecodeResult:
    """`tokens` decode steps after `context` (`depth` tokens, or one for depth 0, as llama-bench's tg
    starts from one). fill "prefill": the first run prefills the context, later runs find it in the
    KV cache and prefill only its last token. fill "assume": the loop is told the context is cached
    (`cached_ids`) without computing it, so every run prefills one token; the cache rows below the
    depth then hold stale values, which changes what attention computes but not what it reads or
    how long it takes (for CPU adapters, where a 1024-token prefill takes minutes). The token the
    prefill samples is not counted: GenerationStats times decode from the first token in hand."""
    loop.reset()
    tps, cpu_us = [], []
    for _ in range(repeats):
        if fill == "assume":
            loop.cached_ids = list(context)
        stats, _ = run_generation(loop, context, tokens + 1)
        tps.append(stats.decode_tokens_per_s)
        cpu_us.append(stats.encode_seconds / max(stats.decode_steps, 1) * 1e6)
    return DecodeResult(depth, tokens, statistics.median(tps), tps, statistics.median(cpu_us))


# --- the decode step, recorded by hand ------------------------------------------------------------


def decode_step(loop: TokenLoop) -> list[Dispatch]:
    """The dispatches of one pipelined decode step: the model's graph and the sampler (no logprobs)."""
    return loop.model.decode_graph + loop.sampler.dispatches(False)


@dataclass(frozen=True)
class _SubmissionTimes:
    encode_us: float  # median: command encoder to finish()
    submit_us: float  # median: queue.submit alone
    wall_us: float  # median: queue.submit to the sampled token in hand
    gpu_us: float | None  # median GPU time of the one compute pass (timestamps); None without


def _time_submissions(loop: TokenLoop, graph: list[Dispatch], write_step, repeats: int) -> _SubmissionTimes:
    """`graph` (ending with the sampler) recorded into one pass, submitted and its token read back,
    `repeats` times, each waiting for the last (no overlap, unlike the loop)."""
    ctx = loop.model.ctx
    staging = ctx.device.create_buffer(size=4, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
    timer = PassTimer(ctx) if ctx.gpu.has_timestamps else None
    encode_us, submit_us, wall_us, gpu_us = [], [], [], []
    for _ in range(repeats):
        write_step()
        t0 = time.perf_counter()
        encoder = ctx.device.create_command_encoder()
        ctx.encode(encoder, graph, timer.timestamp_writes() if timer else None)
        encoder.copy_buffer_to_buffer(loop.sampler.result, 0, staging, 0, 4)
        if timer:
            timer.resolve(encoder)
        command_buffer = encoder.finish()
        t1 = time.perf_counter()
        ctx.queue.submit([command_buffer])
        t2 = time.perf_counter()
        staging.map_sync(wgpu.MapMode.READ, 0, 4)
        t3 = time.perf_counter()
        staging.unmap()
        if timer:
            gpu_us.append(timer.read_ns() / 1e3)
        encode_us.append((t1 - t0) * 1e6)
        submit_us.append((t2 - t1) * 1e6)
        wall_us.append((t3 - t1) * 1e6)
    return _SubmissionTimes(statistics.median(encode_us), statistics.median(submit_us), statistics.median(wall_us),
                            statistics.median(gpu_us) if gpu_us else None)


def step_split(loop: TokenLoop, position: int, steps: int = 30) -> StepSplit:
    """CPU time to record and submit one decode step, and the GPU time of its pass, step by step
    (each waits for the last: no overlap, unlike the loop)."""
    graph = decode_step(loop)
    times = _time_submissions(loop, graph, lambda: loop.model.write_step(1, position, 0, 0.0), steps)
    return StepSplit(position, len(graph), times.encode_us, times.submit_us, times.gpu_us, steps)


def prefill_split(loop: TokenLoop, n_tokens: int, repeats: int = 5) -> PrefillSplit:
    """One prefill chunk of `n_tokens` from position 0 with its first token sampled, recorded and
    submitted by hand: CPU recording, submit-to-token wall time, and the GPU time of its one pass
    (what the generation's prefill time is made of, apart from the Python around it)."""
    model = loop.model
    graph = model.prefill_graph(n_tokens) + loop.sampler.dispatches(False)
    model.ctx.queue.write_buffer(model.tokens, 0, np.zeros(n_tokens, np.uint32).tobytes())
    times = _time_submissions(loop, graph, lambda: model.write_step(n_tokens, 0, 0, 0.0), repeats)
    return PrefillSplit(n_tokens, len(graph), times.encode_us, times.wall_us, times.gpu_us, repeats)


def _step_labels(loop: TokenLoop) -> list[str]:
    """Dispatch.label of each dispatch of the step; the LM head's row blocks are told apart from
    the layers' matvecs of the same layout (they end `decode_graph`)."""
    graph = decode_step(loop)
    labels = [d.label for d in graph]
    head_blocks = len(loop.model.lm_head.blocks)
    end = len(loop.model.decode_graph)
    for i in range(end - head_blocks, end):
        labels[i] += " (lm head)"
    return labels


def _per_dispatch_gpu_us(ctx: GpuContext, graph: list[Dispatch]) -> np.ndarray:
    """GPU µs of each dispatch, each in its own timestamped compute pass, in graph order (one submit
    per MAX_QUERIES / 2 dispatches). Data dependencies are those of the real step."""
    out = []
    per_set = MAX_QUERIES // 2
    for start in range(0, len(graph), per_set):
        chunk = graph[start : start + per_set]
        queries = ctx.device.create_query_set(type=wgpu.QueryType.timestamp, count=2 * len(chunk))
        resolved = ctx.device.create_buffer(size=16 * len(chunk), usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
        encoder = ctx.device.create_command_encoder()
        for i, d in enumerate(chunk):
            compute_pass = encoder.begin_compute_pass(timestamp_writes={
                "query_set": queries, "beginning_of_pass_write_index": 2 * i, "end_of_pass_write_index": 2 * i + 1})
            compute_pass.set_pipeline(d.pipeline)
            compute_pass.set_bind_group(0, d.bind_group)
            compute_pass.dispatch_workgroups(*d.workgroups)
            compute_pass.end()
        encoder.resolve_query_set(queries, 0, 2 * len(chunk), resolved, 0)
        ctx.queue.submit([encoder.finish()])
        stamps = np.frombuffer(ctx.queue.read_buffer(resolved), np.uint64).reshape(-1, 2).astype(np.int64)
        out.append((stamps[:, 1] - stamps[:, 0]) / 1e3)
        queries.destroy()
        resolved.destroy()
    return np.concatenate(out)


def _wall_us(ctx: GpuContext, dispatches: list[Dispatch], flag: wgpu.GPUBuffer) -> float:
    encoder = ctx.device.create_command_encoder()
    ctx.encode(encoder, dispatches)
    t0 = time.perf_counter()
    ctx.queue.submit([encoder.finish()])
    ctx.queue.read_buffer(flag)  # returns once the GPU has finished the submission
    return (time.perf_counter() - t0) * 1e6


def kernel_profile(loop: TokenLoop, position: int, repeats: int = 3) -> KernelProfile:
    """GPU time of one decode step by Dispatch.label (see `_profile`)."""
    model = loop.model
    return _profile(model.ctx, decode_step(loop), _step_labels(loop), lambda: model.write_step(1, position, 0, 0.0), repeats)


def prefill_profile(loop: TokenLoop, n_tokens: int, repeats: int = 3) -> KernelProfile:
    """GPU time of one prefill chunk of `n_tokens` from position 0 by Dispatch.label, the last
    token's final norm and LM head included, sampling not."""
    model = loop.model
    graph = model.prefill_graph(n_tokens)
    labels = [d.label for d in graph]
    for i in range(len(graph) - len(model.lm_head.blocks), len(graph)):
        labels[i] += " (lm head)"
    model.ctx.queue.write_buffer(model.tokens, 0, np.zeros(n_tokens, np.uint32).tobytes())
    return _profile(model.ctx, graph, labels, lambda: model.write_step(n_tokens, 0, 0, 0.0), repeats)


def _profile(ctx: GpuContext, graph: list[Dispatch], labels: list[str], write_step, repeats: int) -> KernelProfile:
    """GPU time of `graph` by label. With timestamps: every dispatch in its own timestamped pass
    (median over `repeats` runs). Without: the dispatches of each label alone in one pass, wall time
    from submit to completion minus that of an empty pass."""
    totals: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if ctx.gpu.has_timestamps:
        method = "timestamps, one compute pass per dispatch"
        runs = []
        for _ in range(repeats):
            write_step()
            runs.append(_per_dispatch_gpu_us(ctx, graph))
        per_dispatch = np.median(np.stack(runs), axis=0)
        for label, us in zip(labels, per_dispatch):
            totals.setdefault(label, []).append(float(us))
        by_label = {label: sum(v) for label, v in totals.items()}
    else:
        method = "wall clock, each label's dispatches alone in one pass, minus an empty pass"
        flag = ctx.empty(4, label="profile_flag")
        empty = statistics.median(_wall_us(ctx, [], flag) for _ in range(repeats + 2))
        by_label = {}
        for label in counts:
            chosen = [d for d, lab in zip(graph, labels) if lab == label]
            write_step()
            by_label[label] = max(0.0, statistics.median(_wall_us(ctx, chosen, flag) for _ in range(repeats)) - empty)
    total = sum(by_label.values())
    kernels = sorted((KernelTime(label, counts[label], us, us / total if total else 0.0) for label, us in by_label.items()),
                     key=lambda k: -k.gpu_us)
    return KernelProfile(method, total, kernels)


# --- bytes a decode step reads ----------------------------------------------------------------------


def decode_weight_bytes(model: LlamaModel) -> int:
    """Bytes of weights one decode step reads in the GPU layouts: every layer matrix and the LM head
    once, one row of the embedding (a tied embedding is the LM head, read whole). Norm vectors and
    biases (a few KB) are left out."""
    layers = sum(m.nbytes for layer in model.layers for m in layer.values() if isinstance(m, GpuMatrix))
    return layers + model.lm_head.nbytes + model.embedding.nbytes // model.embedding.rows


def kv_bytes_per_position(model: LlamaModel) -> int:
    """K and V bytes of one cached position over all layers (the attention of a step reads them all)."""
    return model.kv_cache_bytes // model.context_window_size


# --- memory bandwidth ----------------------------------------------------------------------------


def memory_bandwidth(ctx: GpuContext, nbytes: int, repeats: int = 5, dispatches_per_pass: int = 4) -> Bandwidth:
    """Read bandwidth of a plain grid-stride kernel (benchmarks/bandwidth.wgsl) over a buffer of about
    `nbytes` (capped by the binding limit), read `dispatches_per_pass` times per pass; best of `repeats`."""
    device = ctx.device
    limit = min(ctx.gpu.max_storage_binding, int(device.limits["max-buffer-size"]))
    nbytes = max(1 << 20, min(nbytes, limit)) // (1 << 20) * (1 << 20)
    data = device.create_buffer(size=nbytes, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_DST, label="bandwidth_data")
    rng = np.random.default_rng(0)
    chunk = 1 << 24
    for offset in range(0, nbytes, chunk):  # random words: nothing a driver could compress or skip
        ctx.queue.write_buffer(data, offset, rng.bytes(min(chunk, nbytes - offset)))
    workgroup = 256
    groups = int(min(65535, max(1, nbytes // 16 // (workgroup * 16))))  # about 16 loads per thread
    sums = device.create_buffer(size=groups * workgroup * 4, usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC)
    module = device.create_shader_module(label="bandwidth", code=BANDWIDTH_SHADER.read_text())
    pipeline = device.create_compute_pipeline(layout="auto", compute={"module": module, "entry_point": "main",
                                                                       "constants": {"WORKGROUP_SIZE": workgroup}})
    bind_group = device.create_bind_group(layout=pipeline.get_bind_group_layout(0), entries=[
        {"binding": 0, "resource": {"buffer": data, "offset": 0, "size": nbytes}},
        {"binding": 1, "resource": {"buffer": sums, "offset": 0, "size": sums.size}}])
    probe = Dispatch(pipeline, bind_group, (groups, 1, 1), "bandwidth")
    timer = PassTimer(ctx) if ctx.gpu.has_timestamps else None
    flag = ctx.empty(4, label="bandwidth_flag")
    ctx.run([probe])  # warm-up
    rates = []
    for _ in range(repeats):
        encoder = device.create_command_encoder()
        ctx.encode(encoder, [probe] * dispatches_per_pass, timer.timestamp_writes() if timer else None)
        if timer:
            timer.resolve(encoder)
        t0 = time.perf_counter()
        device.queue.submit([encoder.finish()])
        ctx.queue.read_buffer(flag)
        wall = time.perf_counter() - t0
        seconds = timer.read_ns() / 1e9 if timer else wall
        rates.append(dispatches_per_pass * nbytes / seconds / 1e9)
    data.destroy()
    sums.destroy()
    method = "timestamps around one pass" if timer else "wall clock from submit to completion"
    return Bandwidth(max(rates), statistics.median(rates), nbytes, f"{method}, {dispatches_per_pass} reads of the buffer per pass")
