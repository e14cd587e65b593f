"""`engine.completions.create`: OpenAI's legacy text-completion API (raw prompt, no chat template).

`echo` prepends the prompt to the text; `suffix` (insertion) is rejected by the validator, and
so is `echo` together with `logprobs` (it would need the prompt tokens' log-probabilities).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import InvalidRequestError
from .chat import check_fits
from .requests import CompletionRequest, validate_completion_request
from .runner import RunStats, TokenText, collect_choices, run_choices, token_text
from .types import Completion, CompletionChoice, CompletionLogprobs, RequestIdentity

if TYPE_CHECKING:
    from .engine import Engine


def _legacy_logprobs(core, tokens: list[TokenText], start_offset: int) -> CompletionLogprobs:
    texts, logprobs, tops, offsets = [], [], [], []
    offset = start_offset
    for t in tokens:
        texts.append(t.token)
        logprobs.append(t.sampled.logprob)
        tops.append({token_text(core, i)[0]: lp for i, lp in t.sampled.top})
        offsets.append(offset)
        offset += len(t.token)
    return CompletionLogprobs(texts, logprobs, tops, offsets)


class Completions:
    def __init__(self, engine: "Engine"):
        self._engine = engine

    def create(self, **kwargs: Any) -> Completion | Iterator[Completion]:
        """OpenAI's `completions.create`; with `stream=True` an iterator of `Completion` chunks."""
        core = self._engine.core_for(kwargs.get("model"))
        request = validate_completion_request(kwargs, vocab_size=core.config.vocab_size,
                                              defaults=core.sampling_defaults)
        if request.echo and request.logprobs:
            raise InvalidRequestError("echo together with logprobs is not supported by notebook_llm", param="echo")
        if isinstance(request.prompt, str):
            prompt_ids = core.tokenizer.encode(request.prompt, add_special_tokens=True)
            prompt_text = request.prompt
        else:
            prompt_ids, prompt_text = list(request.prompt), core.tokenizer.decode(request.prompt)
        if not prompt_ids:
            raise InvalidRequestError("prompt is empty; at least one token is needed", param="prompt")
        check_fits(core, prompt_ids)
        stats = RunStats()
        events = run_choices(core, prompt_ids, request, stats)
        self._engine.remember(core, stats)
        echo = prompt_text if request.echo else ""
        if request.stream:
            return self._stream(core, request, events, stats, echo)
        return self._collect(core, request, events, stats, echo)

    def _collect(self, core, request: CompletionRequest, events, stats: RunStats, echo: str) -> Completion:
        collected = collect_choices(events, request.n, prefix=echo)
        ident = RequestIdentity.for_completion()
        choices = [
            CompletionChoice(c.text, i, c.finish_reason,
                             _legacy_logprobs(core, c.tokens, len(echo)) if request.logprobs else None)
            for i, c in enumerate(collected)
        ]
        self._engine.set_last_message(core, collected[0].text)
        return Completion(id=ident.id, created=ident.created, model=core.model_id, choices=choices, usage=stats.usage())

    def _stream(self, core, request: CompletionRequest, events, stats: RunStats, echo: str):
        ident = RequestIdentity.for_completion()

        def chunk(choices, usage=None) -> Completion:
            return Completion(id=ident.id, created=ident.created, model=core.model_id, choices=choices, usage=usage)

        started: set[int] = set()
        try:
            for event in events:
                text = event.text
                if event.index not in started:
                    started.add(event.index)
                    text = echo + text
                logprobs = _legacy_logprobs(core, list(event.tokens), 0) if request.logprobs and event.tokens else None
                if text or logprobs or event.finish_reason:
                    yield chunk([CompletionChoice(text, event.index, event.finish_reason, logprobs)])
        finally:
            events.close()
        if request.include_usage:
            yield chunk([], usage=stats.usage())
