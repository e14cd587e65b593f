"""Sampling on the GPU: logit processing, the token draw and logprobs, with only a record read back.

Owns the sampler's buffers (scores, logit bias, penalty counts, prompt tokens, grammar mask,
parameters, result record) and its three dispatches, all made once per model:

  logits_process   logits (left untouched) + bias, repetition / frequency / presence penalties,
                   grammar mask                                   -> scores
                   (skipped while a request has none of them: the draw reads the logits)
  sample_partials  the argmax and the unfiltered draw of slices of the vocabulary, across the GPU
                                                                  -> partials
  sample           greedy, or Gumbel-max over top-k ∩ top-p ∩ min-p at the step's temperature
                                                                  -> tokens[0], counts[token] += 1, record[0]
  token_logprobs   log-softmax of the raw logits: the token's logprob and the top-N (only when asked)
                                                                  -> record[1:44]

Per request `begin_request` writes the bias, the prompt's tokens, the parameters and zeroes the
counts; per step the caller writes the model's `Step` uniform (seed, position, temperature) and,
with a grammar, `set_mask`. Request validation happens before anything arrives here; nothing
here knows about chat messages or the OpenAI protocol.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np
import wgpu

from ..gpu.compute import Dispatch, GpuContext

# The result record, u32 words (kernels/sample.wgsl writes word 0, kernels/token_logprobs.wgsl the rest).
RECORD_TOKEN = 0  # sampled token id
RECORD_LOGPROB = 1  # its logprob, float32 bits
RECORD_TOP_COUNT = 2  # n, the number of top logprobs that follow
RECORD_RESERVED = 3
RECORD_TOP_IDS = 4  # [4, 24): top ids, best first
MAX_TOP_LOGPROBS = 20
RECORD_TOP_LOGPROBS = RECORD_TOP_IDS + MAX_TOP_LOGPROBS  # [24, 44): their logprobs, float32 bits
RECORD_WORDS = RECORD_TOP_LOGPROBS + MAX_TOP_LOGPROBS
RECORD_BYTES = 4 * RECORD_WORDS  # 176
TOKEN_ONLY_BYTES = 4

WORKGROUP = 256  # kernels/logits_process.wgsl: one thread per token
# kernels/sample_partials.wgsl: tokens an invocation scans. GPUs: few, so that each invocation's
# chain of loads stays short; CPU drivers: more, fewer candidates for sample.wgsl's one workgroup
# to reduce (lavapipe, vocab 49152: the draw 450 µs with 16, 353 with 64).
PARTIAL_TOKENS_GPU = 16
PARTIAL_TOKENS_CPU = 64
PARTIALS_WORKGROUP = 64


@dataclass(frozen=True)
class SamplingParams:
    """How one request samples (already validated by the request layer)."""

    temperature: float = 1.0  # 0 is greedy; read by the kernel from the model's Step uniform
    top_p: float = 1.0  # nucleus mass kept; 1.0 is off
    top_k: int = 0  # tokens kept; 0 is off
    min_p: float = 0.0  # keep p >= min_p * p_max (after temperature); 0.0 is off
    frequency_penalty: float = 0.0  # OpenAI: minus this times the count of the token generated so far
    presence_penalty: float = 0.0  # OpenAI: minus this once the token has been generated
    repetition_penalty: float = 1.0  # CTRL / HF: tokens in the prompt or generated, l > 0 -> l / rp else l * rp
    logit_bias: dict[int, float] = field(default_factory=dict)  # token id -> added to its logit
    top_logprobs: int = 0  # 0..20 alternatives reported per token
    logprobs: bool = False  # report the sampled token's logprob (and the top_logprobs)
    seed: int = 0  # u32; read by the kernel from the model's Step uniform


@dataclass(frozen=True)
class SampledToken:
    """One read-back record: the token, and when logprobs were asked its logprob and the top ones."""

    token: int
    logprob: float | None = None
    top: list[tuple[int, float]] = field(default_factory=list)  # (id, logprob), best first


def parse_record(raw: bytes) -> SampledToken:
    """The token (4-byte record) or the token with its logprobs (176-byte record)."""
    token = int.from_bytes(raw[:4], "little")
    if len(raw) < RECORD_BYTES:
        return SampledToken(token)
    words = np.frombuffer(raw, np.uint32, RECORD_WORDS)
    floats = words.view(np.float32)
    n = int(words[RECORD_TOP_COUNT])
    ids = words[RECORD_TOP_IDS : RECORD_TOP_IDS + n].tolist()
    logprobs = floats[RECORD_TOP_LOGPROBS : RECORD_TOP_LOGPROBS + n].tolist()
    return SampledToken(token, float(floats[RECORD_LOGPROB]), list(zip(ids, logprobs)))


def params_bytes(vocab_size: int, params: SamplingParams) -> bytes:
    """The `SamplingParams` uniform shared by the three kernels (48 bytes)."""
    return struct.pack(
        "<IIIIfffffIII",
        vocab_size, params.top_k, params.top_logprobs, 0,
        params.top_p, params.min_p, params.repetition_penalty, params.frequency_penalty, params.presence_penalty,
        0, 0, 0,
    )


class GpuSampler:
    """The sampling dispatches of one model, reading its `logits` and writing its `tokens[0]`.

    `step` is the model's Step uniform (n_tokens, position, seed, temperature), written per step
    by the caller. Everything is allocated here, once; a request or a step only writes buffers.
    """

    def __init__(self, ctx: GpuContext, vocab_size: int, logits: wgpu.GPUBuffer, tokens: wgpu.GPUBuffer, step: wgpu.GPUBuffer):
        self.ctx = ctx
        self.vocab_size = vocab_size
        self.mask_words = -(-vocab_size // 32)
        self.logits, self.tokens, self.step = logits, tokens, step
        self.scores = ctx.empty(4 * vocab_size, label="sample_scores")
        self.bias = ctx.buffer(np.zeros(vocab_size, np.float32), label="logit_bias")
        self.counts = ctx.buffer(np.zeros(vocab_size, np.uint32), label="generated_counts")
        self.prompt_seen = ctx.buffer(np.zeros(vocab_size, np.uint32), label="prompt_seen")
        self._all_allowed = np.full(self.mask_words, 0xFFFFFFFF, np.uint32)
        self.mask = ctx.buffer(self._all_allowed, label="grammar_mask")
        self.params = ctx.uniform(params_bytes(vocab_size, SamplingParams()), label="sampling_params")
        self.result = ctx.empty(RECORD_BYTES, label="sample_record")
        self._zero_counts = np.zeros(vocab_size, np.uint32).tobytes()
        self._bias_ids: list[int] = []  # ids whose bias is nonzero on the GPU now
        self._prompt_ids = np.zeros(0, np.int64)  # ids whose prompt_seen is set on the GPU now

        self.n_partials = -(-vocab_size // (PARTIAL_TOKENS_CPU if ctx.gpu.adapter.is_cpu else PARTIAL_TOKENS_GPU))
        self.partials = ctx.empty(16 * self.n_partials, label="sample_partials")
        self._penalized = False  # whether the request has a logit bias or a penalty
        self._masked = False  # whether a grammar mask is set

        self.process = process = ctx.dispatch(
            "logits_process", [logits, self.bias, self.counts, self.prompt_seen, self.mask, self.scores, self.params],
            -(-vocab_size // WORKGROUP),
        )
        logprobs = ctx.dispatch("token_logprobs", [logits, tokens, self.result, self.params], 1)
        draw_scores, draw_logits = self.draw_dispatches(self.scores, step), self.draw_dispatches(logits, step)
        self._dispatches = {  # (processed, with_logprobs)
            (True, False): [process, *draw_scores], (True, True): [process, *draw_scores, logprobs],
            (False, False): draw_logits, (False, True): [*draw_logits, logprobs],
        }

    def draw_dispatches(self, scores: wgpu.GPUBuffer, step: wgpu.GPUBuffer) -> list[Dispatch]:
        """sample_partials and sample over `scores` at `step`'s (seed, position, temperature)."""
        ctx = self.ctx
        partials = ctx.dispatch("sample_partials", [scores, self.partials, self.params, step],
                                -(-self.n_partials // PARTIALS_WORKGROUP), PARTIALS=self.n_partials)
        sample = ctx.dispatch("sample", [scores, self.tokens, self.counts, self.result, self.params, step, self.partials],
                              1, PARTIALS=self.n_partials)
        return [partials, sample]

    def dispatches(self, with_logprobs: bool) -> list[Dispatch]:
        """[logits_process,] sample_partials, sample[, token_logprobs]: append to a step's graph after
        the LM head (do not mutate). logits_process only while the request has a logit bias, a
        penalty or a grammar mask."""
        return self._dispatches[(self._penalized or self._masked, bool(with_logprobs))]

    @staticmethod
    def record_bytes(with_logprobs: bool) -> int:
        """Bytes of `result` to copy back: the token alone (4) or the whole record (176)."""
        return RECORD_BYTES if with_logprobs else TOKEN_ONLY_BYTES

    def begin_request(self, params: SamplingParams, prompt_ids: list[int]) -> None:
        """Write the request's parameters, logit bias and prompt tokens; zero the penalty counts.
        The grammar mask is left as it is: call `set_mask` (None for no grammar) per request."""
        queue = self.ctx.queue
        self._penalized = bool(params.logit_bias) or params.repetition_penalty != 1.0 or \
            params.frequency_penalty != 0.0 or params.presence_penalty != 0.0
        queue.write_buffer(self.params, 0, params_bytes(self.vocab_size, params))
        queue.write_buffer(self.counts, 0, self._zero_counts)
        bias_ids = [int(i) for i in params.logit_bias]
        if bias_ids or self._bias_ids:  # all zeros already when neither this request nor the last has one
            bias = np.zeros(self.vocab_size, np.float32)
            bias[bias_ids] = list(params.logit_bias.values())
            queue.write_buffer(self.bias, 0, bias.tobytes())
            self._bias_ids = bias_ids
        # prompt_seen only matters under a repetition penalty; without one it is cleared (or left
        # clear), which skips the 4·vocab-byte write on most requests.
        prompt = np.unique(np.asarray(prompt_ids if params.repetition_penalty != 1.0 else [], np.int64))
        if prompt.size or self._prompt_ids.size:
            seen = np.zeros(self.vocab_size, np.uint32)
            seen[prompt] = 1
            queue.write_buffer(self.prompt_seen, 0, seen.tobytes())
            self._prompt_ids = prompt

    def set_mask(self, bitmask: np.ndarray | None) -> None:
        """The grammar mask for the next sample: u32[ceil(vocab / 32)], bit i % 32 of word i // 32 set
        means token i is allowed (a bool[vocab] array is packed to that); None allows every token."""
        if bitmask is None:
            words = self._all_allowed
        elif bitmask.dtype == np.bool_:
            if bitmask.size != self.vocab_size:
                raise ValueError(f"grammar mask has {bitmask.size} entries; {self.vocab_size} (the vocabulary) expected")
            packed = np.packbits(np.asarray(bitmask, np.bool_), bitorder="little")
            words = np.zeros(self.mask_words * 4, np.uint8)
            words[: packed.size] = packed
            words = words.view("<u4")
        else:
            words = np.ascontiguousarray(bitmask, "<u4")
        if words.size != self.mask_words:
            raise ValueError(f"grammar mask has {words.size} words; {self.mask_words} (vocab {self.vocab_size}) expected")
        self.ctx.queue.write_buffer(self.mask, 0, words.tobytes())
        self._masked = bitmask is not None
