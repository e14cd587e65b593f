"""The token loop: chunked prefill, then decode with sampling on the GPU.

Pipelined mode (the default): decode step t+1 is submitted before step t's token is read. The
GPU sampler writes each token into the `tokens` buffer that the next step's embedding reads, and
its result record (token, logprob, top logprobs) into one of two mappable staging buffers that
the CPU reads one step behind (`gpu.readback.QueueReader`: the read waits for its own submission,
not for the step queued after it). The steps' command buffers are recorded ahead on worker
threads (`recording.StepRecorder`). Nothing is allocated per token but those command buffers.

Lock-step mode (a grammar or a CPU logit processor is active): the next token's mask or the
processed logits depend on the token just read, so each step waits for the previous one (with a
grammar the step is still recorded ahead: the mask is a buffer write).

The KV cache remembers which token ids it holds (`cached_ids`); a prompt that extends them is
prefilled from the first differing position only (multi-turn reuse, as WebLLM does).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import wgpu

from ..errors import ContextLengthError, InvalidRequestError
from ..gpu.readback import PendingRead, QueueReader
from ..models.llama import LlamaModel
from .recording import Recording, StepRecorder
from .sampler import GpuSampler, SampledToken, SamplingParams, parse_record

class LogitProcessor(Protocol):
    """WebLLM's LogitProcessor: edit the logits of each step on the CPU, observe the sampled token."""

    def process_logits(self, logits: np.ndarray) -> np.ndarray: ...

    def process_sampled_token(self, token: int) -> None: ...

    def reset_state(self) -> None: ...


class TokenConstraint(Protocol):
    """A grammar (notebook_llm.engine.grammar.Grammar): which tokens may come next."""

    def allowed_bitmask(self) -> np.ndarray: ...

    def consume(self, token_id: int) -> None: ...

    def is_finished(self) -> bool: ...


@dataclass(frozen=True)
class GenerationConfig:
    """What one generation asks of the loop (the request layer has already validated it)."""

    max_new_tokens: int
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop_token_ids: frozenset[int] = frozenset()


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    prefilled_tokens: int = 0  # prompt tokens actually run (the rest came from the KV cache)
    completion_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0
    decode_steps: int = 0  # tokens sampled by decode steps (the first comes from prefill)
    encode_seconds: float = 0.0  # CPU time recording decode steps (worker threads) and submitting them
    finish_reason: str = "length"
    started: float = field(default_factory=time.perf_counter)

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prefilled_tokens / self.prefill_seconds if self.prefill_seconds else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        return self.decode_steps / self.decode_seconds if self.decode_seconds else 0.0


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class TokenLoop:
    """Runs generations on one `LlamaModel`, one at a time."""

    def __init__(self, model: LlamaModel):
        self.model = model
        ctx = model.ctx
        self.sampler = GpuSampler(ctx, model.config.vocab_size, model.logits, model.tokens, model.step)
        usage = wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST
        size = self.sampler.record_bytes(True)
        self._staging = [ctx.device.create_buffer(size=size, usage=usage, label=f"sample_staging.{i}") for i in range(2)]
        self._written_by = [0, 0]  # the submission that last copied a record into each staging buffer
        self.reader = QueueReader(ctx.device)
        self.recorder = StepRecorder()
        self.cached_ids: list[int] = []  # token ids whose keys and values are in the KV cache, from position 0
        self.interrupt = threading.Event()
        self.logit_processor: LogitProcessor | None = None

    def reset(self) -> None:
        """Forget the KV cache's contents (the next prompt is prefilled in full)."""
        self.cached_ids = []
        if self.logit_processor is not None:
            self.logit_processor.reset_state()

    # -- GPU plumbing ----------------------------------------------------------------------------
    def _submit(self, dispatches, staging: int | None = None, record_bytes: int = 4) -> None:
        """Record `dispatches` and submit; with `staging`, also copy the sampler's record into
        staging buffer `staging`, whose read then waits for this submission only."""
        self._submit_recorded(self._record(dispatches, staging, record_bytes), staging)

    def _record(self, dispatches, staging: int | None, record_bytes: int) -> wgpu.GPUCommandBuffer:
        ctx = self.model.ctx
        encoder = ctx.device.create_command_encoder()
        ctx.encode(encoder, dispatches)
        if staging is not None:
            encoder.copy_buffer_to_buffer(self.sampler.result, 0, self._staging[staging], 0, record_bytes)
        return encoder.finish()

    def _submit_recorded(self, command_buffer: wgpu.GPUCommandBuffer, staging: int | None) -> None:
        submission = self.reader.submit(command_buffer)
        if staging is not None:
            self._written_by[staging] = submission

    def _request_read(self, staging: int, record_bytes: int) -> PendingRead:
        return self.reader.request(self._staging[staging], record_bytes, self._written_by[staging])

    def _finish_read(self, pending: PendingRead) -> SampledToken:
        return parse_record(self.reader.finish(pending))

    def _sample_with_processor(self, staging: int, record_bytes: int, with_logprobs: bool) -> None:
        """Lock-step: read the logits, let the CPU processor edit them, then sample on the GPU."""
        model, ctx = self.model, self.model.ctx
        logits = ctx.read(model.logits, np.float32, model.config.vocab_size)
        processed = np.ascontiguousarray(self.logit_processor.process_logits(logits), dtype=np.float32)
        ctx.queue.write_buffer(model.logits, 0, processed.tobytes())
        self._submit(self.sampler.dispatches(with_logprobs), staging, record_bytes)

    # -- prefill -----------------------------------------------------------------------------------
    def _prefill(self, prompt_ids: list[int], start: int, sampling: SamplingParams, staging: int, record_bytes: int) -> None:
        """Run prompt_ids[start:] in chunks; the last chunk samples the first new token into staging."""
        model, ctx = self.model, self.model.ctx
        n = model.prefill_chunk_size
        with_logprobs = sampling.logprobs
        for chunk_start in range(start, len(prompt_ids), n):
            chunk = prompt_ids[chunk_start : chunk_start + n]
            last = chunk_start + n >= len(prompt_ids)
            ctx.queue.write_buffer(model.tokens, 0, np.asarray(chunk, np.uint32).tobytes())
            model.write_step(len(chunk), chunk_start, sampling.seed, sampling.temperature)
            # one token (a cached prompt's last, a short turn's tail): the decode graph's matvecs
            # beat a matmul tile that is 1/32 full (about 10x on lavapipe)
            graph = model.decode_graph if len(chunk) == 1 else model.prefill_graph(len(chunk))
            if not last:  # the final norm and LM head only matter for the last chunk
                self._submit(model.prefill_body_graph(len(chunk)) if len(chunk) > 1 else graph)
            elif self.logit_processor is not None:
                self._submit(graph)
                self._sample_with_processor(staging, record_bytes, with_logprobs)
            else:
                self._submit(graph + self.sampler.dispatches(with_logprobs), staging, record_bytes)

    # -- generation ----------------------------------------------------------------------------------
    def generate(
        self,
        prompt_ids: list[int],
        config: GenerationConfig,
        stats: GenerationStats,
        constraint: TokenConstraint | None = None,
    ) -> Iterator[SampledToken]:
        """Yield sampled tokens until a stop token (not yielded), max_new_tokens, the window's end,
        a finished constraint, or `interrupt` (finish_reason "abort")."""
        model = self.model
        window = model.context_window_size
        if not prompt_ids:
            raise ContextLengthError("the prompt is empty; at least one token is needed", param="messages")
        vocab = model.config.vocab_size
        bad = next((t for t in prompt_ids if not 0 <= t < vocab), None)  # the kernels index the embedding unchecked
        if bad is not None:
            raise InvalidRequestError(f"prompt has token id {bad}; allowed: token ids 0..{vocab - 1}", param="prompt")
        if len(prompt_ids) >= window:
            raise ContextLengthError(
                f"the prompt has {len(prompt_ids)} tokens; the context window holds {window} "
                "(prompt plus at least one new token)", param="messages")
        self.interrupt.clear()
        sampling = config.sampling
        max_new = min(config.max_new_tokens, window - len(prompt_ids))
        stats.prompt_tokens = len(prompt_ids)
        start = min(_common_prefix(self.cached_ids, prompt_ids), len(prompt_ids) - 1)
        stats.prefilled_tokens = len(prompt_ids) - start
        self.cached_ids = list(prompt_ids[:start])  # what stays valid whatever happens next
        if self.logit_processor is not None:
            self.logit_processor.reset_state()
        self.sampler.begin_request(sampling, prompt_ids)
        self.sampler.set_mask(constraint.allowed_bitmask() if constraint is not None else None)
        lock_step = constraint is not None or self.logit_processor is not None
        record_bytes = self.sampler.record_bytes(sampling.logprobs)
        recording = None
        if self.logit_processor is None:  # decode step k samples token k into staging buffer k % 2
            decode = model.decode_graph + self.sampler.dispatches(sampling.logprobs)
            recording = self.recorder.recording(lambda k: self._record(decode, k % 2, record_bytes), range(1, max_new))
        try:
            yield from self._generate(prompt_ids, config, stats, constraint, start, max_new, lock_step, recording,
                                      record_bytes)
        finally:
            if recording is not None:
                recording.cancel()
                stats.encode_seconds += recording.seconds

    def _generate(self, prompt_ids: list[int], config: GenerationConfig, stats: GenerationStats, constraint,
                  start: int, max_new: int, lock_step: bool, recording: Recording | None,
                  record_bytes: int) -> Iterator[SampledToken]:
        """The prefill and the decode loop of `generate`. Decode steps come recorded from `recording`,
        except with a logit processor (its steps are split around the CPU's edit)."""
        model, sampling = self.model, config.sampling
        t0 = time.perf_counter()
        self._prefill(prompt_ids, start, sampling, 0, record_bytes)
        self.cached_ids = list(prompt_ids)
        fed: list[int] = []  # generated tokens whose KV entries the decode steps wrote
        for i in range(max_new):
            # pipelined: submit the step that samples token i + 1 before waiting for token i. The
            # read waits for token i's submission only (gpu/readback.py: wgpu-py's own map waited
            # for the whole queue, holding a lock that submit needs), so the next step is queued
            # while this one runs.
            pending = self._request_read(i % 2, record_bytes)
            if not lock_step and i + 1 < max_new:
                e0 = time.perf_counter()
                try:
                    command_buffer = recording.next()
                    model.write_step(1, len(prompt_ids) + i, sampling.seed, sampling.temperature)
                    self._submit_recorded(command_buffer, (i + 1) % 2)
                except BaseException:
                    self._finish_read(pending)  # leave it unmapped
                    raise
                stats.encode_seconds += time.perf_counter() - e0
            sampled = self._finish_read(pending)
            now = time.perf_counter()
            if i == 0:
                stats.prefill_seconds, t0 = now - t0, now
            else:
                stats.decode_seconds, stats.decode_steps = now - t0, i
            if self.logit_processor is not None:
                self.logit_processor.process_sampled_token(sampled.token)
            if sampled.token in config.stop_token_ids:
                stats.finish_reason = "stop"
                break
            if self.interrupt.is_set():
                stats.finish_reason = "abort"
                break
            stats.completion_tokens += 1
            yield sampled
            if i + 1 < max_new:
                fed.append(sampled.token)
            if constraint is not None:
                constraint.consume(sampled.token)
                if constraint.is_finished():
                    stats.finish_reason = "stop"
                    break
            if lock_step and i + 1 < max_new:
                self._lock_step(len(prompt_ids) + i, sampling, constraint, (i + 1) % 2, record_bytes, recording)
                self.cached_ids = list(prompt_ids) + fed
        else:
            stats.finish_reason = "length"
        self.cached_ids = list(prompt_ids) + fed[: max(0, stats.decode_steps)]

    def _lock_step(self, position: int, sampling: SamplingParams, constraint, staging: int, record_bytes: int,
                   recording: Recording | None) -> None:
        """One decode step that waits for the CPU: the constraint's mask, or the logit processor."""
        model = self.model
        if constraint is not None:
            self.sampler.set_mask(constraint.allowed_bitmask())
        model.write_step(1, position, sampling.seed, sampling.temperature)
        if recording is not None:  # a grammar: the step was recorded meanwhile; the mask is a buffer write
            self._submit_recorded(recording.next(), staging)
        else:
            self._submit(model.decode_graph)
            self._sample_with_processor(staging, record_bytes, sampling.logprobs)
