"""The token loop: chunked prefill, then pipelined decode with only token ids read back.

Decode step t+1 is submitted before step t's token is read: the GPU writes each sampled token
into the `tokens` buffer that the next step's embedding reads, and a copy of it into one of
two mappable staging buffers that the CPU reads one step behind. Nothing is allocated per token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import wgpu

from ..errors import ContextLengthError
from ..models.llama import LlamaModel


@dataclass(frozen=True)
class GenerationConfig:
    """What one generation asks of the loop (the request layer has already validated it)."""

    max_new_tokens: int
    temperature: float = 0.0
    seed: int = 0
    stop_token_ids: frozenset[int] = frozenset()


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_steps: int = 0  # tokens sampled by decode steps (the first comes from prefill)
    encode_seconds: float = 0.0  # CPU time spent recording decode steps
    finish_reason: str = "length"
    started: float = field(default_factory=time.perf_counter)

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.decode_steps / self.decode_seconds if self.decode_seconds else 0.0


class TokenLoop:
    """Runs generations on one `LlamaModel`; one generation at a time."""

    def __init__(self, model: LlamaModel):
        self.model = model
        ctx = model.ctx
        usage = wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST
        self._staging = [ctx.device.create_buffer(size=4, usage=usage, label=f"token_staging.{i}") for i in range(2)]

    def _submit(self, dispatches, staging: wgpu.GPUBuffer | None) -> None:
        ctx = self.model.ctx
        encoder = ctx.device.create_command_encoder()
        ctx.encode(encoder, dispatches)
        if staging is not None:
            encoder.copy_buffer_to_buffer(self.model.tokens, 0, staging, 0, 4)
        ctx.queue.submit([encoder.finish()])

    def _read(self, staging: wgpu.GPUBuffer) -> int:
        staging.map_sync(wgpu.MapMode.READ)
        token = int.from_bytes(staging.read_mapped(0, 4, copy=False), "little")
        staging.unmap()
        return token

    def prefill(self, prompt_ids: list[int], config: GenerationConfig) -> None:
        """Run the prompt in chunks; the last chunk samples the first new token into staging 0."""
        model, ctx = self.model, self.model.ctx
        n = model.prefill_chunk_size
        for start in range(0, len(prompt_ids), n):
            chunk = prompt_ids[start : start + n]
            last = start + n >= len(prompt_ids)
            ctx.queue.write_buffer(model.tokens, 0, np.asarray(chunk, np.uint32).tobytes())
            model.write_step(len(chunk), start, config.seed, config.temperature)
            graph = model.prefill_graph(len(chunk))
            self._submit(graph if last else graph[:-3], self._staging[0] if last else None)

    def generate(self, prompt_ids: list[int], config: GenerationConfig, stats: GenerationStats) -> Iterator[int]:
        """Yield new token ids until a stop token (not yielded), max_new_tokens or the window's end."""
        model = self.model
        window = model.context_window_size
        if not prompt_ids:
            raise ContextLengthError("the prompt is empty; at least one token is needed", param="messages")
        if len(prompt_ids) >= window:
            raise ContextLengthError(
                f"the prompt has {len(prompt_ids)} tokens; the context window holds {window} "
                "(prompt plus at least one new token)", param="messages")
        max_new = min(config.max_new_tokens, window - len(prompt_ids))
        stats.prompt_tokens = len(prompt_ids)
        if max_new <= 0:
            return
        t0 = time.perf_counter()
        self.prefill(prompt_ids, config)
        decode_graph = model.decode_graph
        token = None
        for i in range(max_new):
            # submit step i (which samples token i+1) before reading token i
            if i + 1 < max_new:
                e0 = time.perf_counter()
                model.write_step(1, len(prompt_ids) + i, config.seed, config.temperature)
                self._submit(decode_graph, self._staging[(i + 1) % 2])
                stats.encode_seconds += time.perf_counter() - e0
            token = self._read(self._staging[i % 2])
            now = time.perf_counter()
            if i == 0:
                stats.prefill_seconds = now - t0
                t0 = now
            else:
                stats.decode_seconds = now - t0
                stats.decode_steps = i
            if token in config.stop_token_ids:
                stats.finish_reason = "stop"
                return  # a step may still be in flight; its staging copy is simply never read
            stats.completion_tokens += 1
            yield token
        stats.finish_reason = "length"
