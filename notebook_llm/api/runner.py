"""From a validated request and prompt ids to per-choice text events, shared by the chat and
text-completion endpoints.

Owns what lies between tokens and text: incremental UTF-8 decoding, stop strings, per-token
logprob entries, the n choices (run one after another: each after the first re-runs only the
prompt's last token, the rest comes from the KV cache), seeds per choice, and usage numbers.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..engine.core import EngineCore
from ..engine.generation import GenerationConfig, GenerationStats
from ..engine.grammar import Grammar
from ..engine.sampler import SampledToken, SamplingParams
from ..loader.tokenizer import StreamDecoder
from .requests import GenerationRequest
from .stop import StopStringMatcher
from .types import ChatCompletionTokenLogprob, CompletionUsage, TopLogprob, UsageExtra

GOLDEN = 0x9E3779B9  # spreads the seeds of a request's choices


@dataclass(frozen=True)
class TokenText:
    """A sampled token with the text it decoded to (bytes as OpenAI reports them)."""

    sampled: SampledToken
    token: str
    bytes: list[int]


@dataclass(frozen=True)
class ChoiceEvent:
    """New text for choice `index`; `finish_reason` is set on the choice's last event."""

    index: int
    text: str
    tokens: tuple[TokenText, ...] = ()
    finish_reason: str | None = None


@dataclass
class RunStats:
    """Usage of one request over all its choices."""

    started: float = field(default_factory=time.perf_counter)
    per_choice: list[GenerationStats] = field(default_factory=list)
    dropped_messages: int = 0  # oldest turns left out to fit the context window

    def usage(self) -> CompletionUsage:
        first = self.per_choice[0]
        completion = sum(s.completion_tokens for s in self.per_choice)
        decode_steps = sum(s.decode_steps for s in self.per_choice)
        decode_seconds = sum(s.decode_seconds for s in self.per_choice)
        decode_tps = decode_steps / decode_seconds if decode_seconds else 0.0
        return CompletionUsage(
            prompt_tokens=first.prompt_tokens,
            completion_tokens=completion,
            total_tokens=first.prompt_tokens + completion,
            extra=UsageExtra(
                e2e_latency_s=time.perf_counter() - self.started,
                prefill_tokens_per_s=first.prefill_tokens_per_s,
                decode_tokens_per_s=decode_tps,
                time_to_first_token_s=first.prefill_seconds,
                time_per_output_token_s=1 / decode_tps if decode_tps else 0.0,
                dropped_messages=self.dropped_messages,
            ),
        )


def sampling_params(request: GenerationRequest, seed: int) -> SamplingParams:
    return SamplingParams(
        temperature=request.temperature, top_p=request.top_p, top_k=request.top_k, min_p=request.min_p,
        frequency_penalty=request.frequency_penalty, presence_penalty=request.presence_penalty,
        repetition_penalty=request.repetition_penalty, logit_bias=dict(request.logit_bias),
        logprobs=request.logprobs, top_logprobs=request.top_logprobs if request.logprobs else 0, seed=seed,
    )


def token_text(core: EngineCore, token_id: int) -> tuple[str, list[int]]:
    raw = core.tokenizer.token_to_bytes(token_id)
    return raw.decode("utf-8", errors="replace"), list(raw)


def chat_logprobs(core: EngineCore, tokens: tuple[TokenText, ...]) -> list[ChatCompletionTokenLogprob]:
    out = []
    for t in tokens:
        top = []
        for token_id, logprob in t.sampled.top:
            text, raw = token_text(core, token_id)
            top.append(TopLogprob(text, logprob, raw))
        out.append(ChatCompletionTokenLogprob(t.token, t.sampled.logprob, t.bytes, top))
    return out


def run_choices(
    core: EngineCore,
    prompt_ids: list[int],
    request: GenerationRequest,
    stats: RunStats,
    grammar: Grammar | None = None,
) -> Iterator[ChoiceEvent]:
    """Events of every choice in order: choice 0's text as it is generated, then choice 1's, ...
    `grammar` (from `compile_response_format`, compiled before this is called) constrains each."""
    base_seed = secrets.randbits(32) if request.seed is None else request.seed & 0xFFFFFFFF
    stop_ids = frozenset() if request.ignore_eos else frozenset(core.tokenizer.stop_token_ids)
    window = core.model.context_window_size
    for index in range(request.n):
        if grammar is not None and index:
            grammar.reset()
        config = GenerationConfig(
            max_new_tokens=request.max_tokens or window,
            sampling=sampling_params(request, (base_seed + index * GOLDEN) & 0xFFFFFFFF),
            stop_token_ids=stop_ids,
        )
        choice_stats = GenerationStats()
        stats.per_choice.append(choice_stats)
        stops = [*request.stop, *core.stop_strings]  # the model's own (an MLC conv_template's stop_str) too
        yield from _one_choice(core, index, prompt_ids, config, choice_stats, stops, grammar)


def _one_choice(core, index, prompt_ids, config, stats, stops, grammar) -> Iterator[ChoiceEvent]:
    decoder = StreamDecoder(core.tokenizer)
    stopper = StopStringMatcher(stops)
    tokens = core.generate(prompt_ids, config, stats, grammar)
    try:
        for sampled in tokens:
            text = stopper.push(decoder.push(sampled.token))
            token, raw = token_text(core, sampled.token)
            yield ChoiceEvent(index, text, (TokenText(sampled, token, raw),))
            if stopper.stopped:
                break
    finally:
        tokens.close()  # releases the engine's lock even when the consumer stops early
    tail = stopper.push(decoder.flush()) + stopper.flush()
    yield ChoiceEvent(index, tail, (), "stop" if stopper.stopped else stats.finish_reason)


@dataclass
class CollectedChoice:
    text: str = ""
    tokens: list[TokenText] = field(default_factory=list)
    finish_reason: str = "length"


def collect_choices(events: Iterator[ChoiceEvent], n: int, prefix: str = "") -> list[CollectedChoice]:
    """The whole text, tokens and finish reason of each of `n` choices (non-streaming responses)."""
    choices = [CollectedChoice(prefix) for _ in range(n)]
    for event in events:
        choice = choices[event.index]
        choice.text += event.text
        choice.tokens.extend(event.tokens)
        if event.finish_reason:
            choice.finish_reason = event.finish_reason
    return choices
