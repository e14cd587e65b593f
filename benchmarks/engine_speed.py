"""Prefill and decode speed of the engine on one model, with the per-step time split.

    python benchmarks/engine_speed.py [--model PATH.gguf] [--prompt-tokens 512] [--decode-tokens 128]
                                      [--bandwidth-gbs 4300]

Prints tokens/s (median of --repeats runs), the decode step's CPU encoding time and GPU time
(timestamp queries, where the adapter has them), dispatches per step, the fraction of the
memory-bandwidth roofline (weight bytes read per token / step time / bandwidth), and the peer's
figures for the same model shape. The peer (llama.cpp CUDA `llama-bench`, shared/peers/README.md)
was measured on an H200 on 2026-11-21, not in this run: compare ratios only on that GPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from notebook_llm.engine.core import ChatOptions, EngineCore
from notebook_llm.engine.generation import GenerationConfig, GenerationStats
from notebook_llm.engine.sampler import SamplingParams
from notebook_llm.gpu.timing import PassTimer

# llama-bench -ngl 99 -p 512 -n 128, FA on, H200 (shared/peers/README.md), shape A = SmolLM2-135M Q4_1.
PEER = {"name": "llama.cpp CUDA on H200 (2026-11-21, shared/peers)", "prefill_tps": 56000.0, "decode_tps": 960.0}


def measure_generation(core: EngineCore, prompt: list[int], new_tokens: int) -> GenerationStats:
    stats = GenerationStats()
    config = GenerationConfig(new_tokens, SamplingParams(temperature=0.0, seed=0))  # no stop ids: full length
    for _ in core.generate(prompt, config, stats):
        pass
    return stats


def decode_step_split(core: EngineCore, position: int, steps: int = 50) -> tuple[float, float | None]:
    """(median CPU µs to record one decode step, median GPU µs of its compute pass)."""
    model, ctx = core.model, core.ctx
    encode_us, gpu_us = [], []
    timer = PassTimer(ctx) if ctx.gpu.has_timestamps else None
    for _ in range(steps):
        model.write_step(1, position, 0, 0.0)
        t0 = time.perf_counter()
        encoder = ctx.device.create_command_encoder()
        ctx.encode(encoder, model.decode_graph, timer.timestamp_writes() if timer else None)
        if timer:
            timer.resolve(encoder)
        command_buffer = encoder.finish()
        encode_us.append((time.perf_counter() - t0) * 1e6)
        ctx.queue.submit([command_buffer])
        if timer:
            gpu_us.append(timer.read_ns() / 1e3)
    return statistics.median(encode_us), (statistics.median(gpu_us) if gpu_us else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="GGUF path (default: the embedded SmolLM2)")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bandwidth-gbs", type=float, default=None, help="memory bandwidth for the roofline, GB/s")
    parser.add_argument("--prefill-chunk", type=int, default=512)
    args = parser.parse_args()

    core = EngineCore(args.model, ChatOptions(context_window_size=2048, prefill_chunk_size=args.prefill_chunk))
    model = core.model
    rng = np.random.default_rng(0)
    prompt = rng.integers(100, core.config.vocab_size, size=args.prompt_tokens).tolist()
    print(f"adapter: {core.adapter_description}")
    print(f"model:   {core.model_id}  ({model.weight_bytes / 1e6:.1f} MB of weights on the GPU, load {core.load_seconds:.2f} s)")

    measure_generation(core, prompt[:32], 4)  # warm-up: pipelines, first-use driver work
    prefill, decode = [], []
    for _ in range(args.repeats):
        prefill.append(measure_generation(core, prompt, 1).prefill_tokens_per_s)
        decode.append(measure_generation(core, prompt[:16], args.decode_tokens + 1).decode_tokens_per_s)
    prefill_tps, decode_tps = statistics.median(prefill), statistics.median(decode)
    encode_us, gpu_us = decode_step_split(core, position=16 + args.decode_tokens // 2)
    dispatches = len(model.decode_graph)

    print(f"prefill pp{args.prompt_tokens}: {prefill_tps:10.1f} tokens/s   (runs: {', '.join(f'{v:.0f}' for v in prefill)})")
    print(f"decode  tg{args.decode_tokens}: {decode_tps:10.1f} tokens/s   (runs: {', '.join(f'{v:.1f}' for v in decode)})")
    step_us = 1e6 / decode_tps
    print(f"decode step: {step_us:8.1f} µs wall, {encode_us:8.1f} µs CPU encoding of {dispatches} dispatches "
          f"({encode_us / dispatches:.2f} µs each), GPU pass {'n/a' if gpu_us is None else f'{gpu_us:8.1f} µs'}")
    bytes_per_token = model.weight_bytes  # every matrix once per token (the tied head is the embedding)
    if args.bandwidth_gbs:
        achieved = bytes_per_token / (step_us * 1e-6) / 1e9
        print(f"roofline: {bytes_per_token / 1e6:.1f} MB/token -> {achieved:.1f} GB/s = "
              f"{100 * achieved / args.bandwidth_gbs:.2f}% of {args.bandwidth_gbs:.0f} GB/s")
    print(f"peer {PEER['name']}: prefill {PEER['prefill_tps']:.0f} tokens/s, decode {PEER['decode_tps']:.0f} tokens/s; "
          f"ours / peer: prefill {prefill_tps / PEER['prefill_tps']:.3f}, decode {decode_tps / PEER['decode_tps']:.3f}")


if __name__ == "__main__":
    main()
